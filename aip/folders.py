"""Class-folder datasets (``ROOT/train/CLASS/FILE``): which entries are classes and items, for every modality.

Names starting with a dot are never classes or items. A Jupyter ``.ipynb_checkpoints`` folder would otherwise
become a class (and shift every label after it), and the ``._NAME.jpg`` files that macOS writes beside each
file on foreign disks and in zip archives carry a data file's extension but hold no image or sound.

Symbolic links are followed (datasets are often farms of links to files or folders elsewhere), except a link
to a folder that contains it (``ln -s .. train/cat/up``): torchvision's ``ImageFolder`` walks with
``os.walk(followlinks=True)``, which does not notice loops, so every image of the split would be read again
under the looping class, about 40 times over, until the path grows too long. :func:`split_classes` walks each
class folder first and refuses such a loop, a sub-folder that cannot be read, and an entry that is not a regular
file (a FIFO would block the reader, ``/dev/zero`` never ends, a broken link fails mid-run), in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from aip.errors import AipError
from aip.files import describe


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
        classes = class_names(split_dir)
    else:
        classes = class_names(train)
        extra = sorted(set(class_names(split_dir)) - set(classes))
        if extra:
            raise AipError(f"{what}: class folders {', '.join(extra[:5])} in {split_dir} are not in {train}; "
                           "both splits need the same class folders")
    check_links(Path(split_dir), classes, what)
    return classes


def check_links(split_dir: Path, classes: list[str], what: str) -> None:
    """Walk the class folders ``classes`` of ``split_dir`` as a dataset reader does (following symbolic links,
    hidden sub-folders too) and refuse what would make it read wrong: two class folders that are one folder (or
    one inside the other) through a link, a linked folder that resolves to itself or to a folder above it (a
    loop), a folder that cannot be listed (``os.walk`` skips it without a word), or an entry that is not a
    regular file.

    Raises:
        AipError: one line naming the link (or the folder) and the fix.
    """
    top = os.path.realpath(split_dir)
    present = [c for c in classes if (split_dir / c).is_dir()]  # a test split may lack a class
    real = {c: os.path.realpath(split_dir / c) for c in present}
    looping = [c for c in present if top == real[c] or top.startswith(real[c].rstrip(os.sep) + os.sep)]
    present = looping + [c for c in present if c not in looping]  # a class that is the split: named as a loop
    for c in (c for c in present if c not in looping):  # two classes on one folder: the same images, two labels
        other = next((o for o in present if o != c and o not in looping
                      and (real[c] == real[o] or real[c].startswith(real[o] + os.sep))), None)
        if other is not None:
            link = other if (split_dir / other).is_symlink() and not (split_dir / c).is_symlink() else c
            raise AipError(f"{what}: class folders {c} and {other} in {split_dir} lead to the same images ({link} "
                           f"leads to {real[link]}); each class needs a folder of its own: remove the link")
    stack = [(split_dir / c, (top,)) for c in reversed(present)]
    while stack:  # depth first, without recursion (a deep tree must not hit Python's recursion limit)
        folder, above = stack.pop()
        real = os.path.realpath(folder)
        if any(a == real or a.startswith(real.rstrip(os.sep) + os.sep) for a in above):  # itself or an ancestor
            raise AipError(f"{what}: {folder} is a symbolic link to {real}, a folder that contains it (a loop): "
                           "its class would read every file below it again and again; remove the link")
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as e:
            raise AipError(f"{what}: cannot list the folder {folder} ({e.strerror}); its images would be left out "
                           "without a word: fix its permissions, or remove it") from None
        subs = [Path(e.path) for e in listed if e.is_dir()]  # follows links, as the readers do
        odd = next((e for e in listed if visible(e.name) and not e.is_dir() and not e.is_file()), None)
        if odd is not None:  # a FIFO would block the reader, a device never ends, a broken link fails mid-run
            raise AipError(f"{what}: {odd.path} is not a regular file but {describe(Path(odd.path))}; remove it "
                           "from the dataset folder")
        stack += [(sub, (*above, real)) for sub in sorted(subs, reverse=True)]


def empty_classes_error(what: str, split_dir: Path, empty: list[str], kinds: str) -> AipError:
    """The error for training class folders that hold no item (a class the teacher could never learn)."""
    shown = ", ".join(empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
    return AipError(f"{what}: class folders {shown} in {split_dir} hold no {kinds}; add some, or remove "
                    "the folders")
