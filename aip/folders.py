"""Class-folder datasets (``ROOT/train/CLASS/FILE``): which entries are classes and items, for every modality.

Names starting with a dot are never classes or items. A Jupyter ``.ipynb_checkpoints`` folder would otherwise
become a class (and shift every label after it), and the ``._NAME.jpg`` files that macOS writes beside each
file on foreign disks and in zip archives carry a data file's extension but hold no image or sound.
"""

from __future__ import annotations

import os
from pathlib import Path

from aip.errors import AipError


def visible(name: str) -> bool:
    """Whether a file or folder name is one a dataset reads (not hidden: no leading dot)."""
    return not name.startswith(".")


def class_names(split_dir: Path) -> list[str]:
    """The sorted names of the visible sub-folders of ``split_dir``: a split's classes, label ``i`` for the
    ``i``-th name."""
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and visible(e.name))


def split_classes(root: Path, split_dir: Path, what: str) -> list[str]:
    """The classes of the split in ``split_dir``: those of ``root/train`` when it exists, so every split gives
    a class the same label, else those of ``split_dir`` itself.

    Raises:
        AipError: ``split_dir`` has a class folder that ``root/train`` lacks (its label would be undefined).
    """
    train = root / "train"
    if not train.is_dir() or Path(split_dir) == train:
        return class_names(split_dir)
    classes = class_names(train)
    extra = sorted(set(class_names(split_dir)) - set(classes))
    if extra:
        raise AipError(f"{what}: class folders {', '.join(extra[:5])} in {split_dir} are not in {train}; "
                       "both splits need the same class folders")
    return classes


def empty_classes_error(what: str, split_dir: Path, empty: list[str], kinds: str) -> AipError:
    """The error for training class folders that hold no item (a class the teacher could never learn)."""
    shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
    return AipError(f"{what}: class folders {shown} in {split_dir} hold no {kinds}; add some, or remove "
                    "the folders")
