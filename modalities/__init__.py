"""Built-in aip modalities (image, ...). Each registers under the entry-point group ``aip.modalities``."""

#: the marker aip checks before it loads a built-in modality (aip.registry.check_builtin_package): an unrelated
#: project on the package index is also called ``modalities``, and installed beside aip it replaces this file
__aip__ = True
