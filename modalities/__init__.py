"""Built-in aip modalities (image, ...). Each registers under the entry-point group ``aip.modalities``."""
