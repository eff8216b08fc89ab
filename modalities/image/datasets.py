"""Labelled image datasets the student is evaluated on (and a teacher may be trained on).

Each name in :data:`DATASETS` pairs a :class:`DatasetInfo` (class count, native size, channels, normalisation
statistics) with a reader that parses the files with torchvision's own dataset classes. Every dataset lives in
its own subfolder of a shared ``root``, laid out as torchvision lays it out (``imagefolder`` and ``imagenet``
read ``root/train`` and ``root/val`` class folders instead). Where torchvision verifies md5 sums of the
extracted files, a subclass checks only that they are present, so hand-prepared or tiny test data loads too;
real downloads still go through torchvision and keep its archive checks. Small datasets (Fashion-MNIST, CIFAR,
STL-10) are held in memory as uint8 tensors and turned into float tensors per item without PIL; photo
datasets are decoded with PIL and resized/cropped per item. Every failure a user can fix (missing or corrupt
files, a failed download, an empty folder) is raised as a one-line :class:`~aip.errors.AipError`.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets as tvd
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from aip.errors import AipError, UsageError
from aip.files import atomic_path
from aip.folders import empty_classes_error, split_classes, visible
from aip.modality import LabelledData
from aip.registry import Registry
from modalities.image.inputs import open_image

#: Where Debian's ``dataset-fashion-mnist`` package installs the idx files (copied into ``root`` when found).
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

Split = Literal["train", "test"]
T = TypeVar("T")

_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                  "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a dataset that are known without reading it.

    Attributes:
        num_classes: number of classes; 0 for ``imagefolder``, whose classes are its folders.
        native_size: side of the (square) images in pixels, or None for photos of varying size.
        channels: native channel count (1 for Fashion-MNIST, else 3).
        mean: per-channel normalisation mean (``len == channels``).
        std: per-channel normalisation standard deviation (``len == channels``).
        description: one line for ``aip list``.
    """

    num_classes: int
    native_size: int | None
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    description: str


@dataclass(frozen=True)
class _InMemory:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: list[int]
    classes: list[str]


@dataclass(frozen=True)
class _OnDisk:
    files: list[str]
    labels: list[int]
    classes: list[str]


Reader = Callable[[Path, Split, bool], _InMemory | _OnDisk]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its facts and the reader that parses its files.

    Attributes:
        info: the dataset's :class:`DatasetInfo`.
        read: ``read(root, split, download)`` parses the split (downloading first if allowed and needed).
    """

    info: DatasetInfo
    read: Reader


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def info(name: str) -> DatasetInfo:
    """The facts about dataset ``name``.

    Raises:
        AipError: if ``name`` is unknown (the message lists the known names).
    """
    return DATASETS.get(name).info


def load(name: str, *, root: Path, split: Split, train: bool, download: bool, size: int,
         channels: int) -> LabelledData:
    """Load the labelled ``split`` of dataset ``name`` as ``(x, y)`` items.

    Args:
        name: a name in :data:`DATASETS`.
        root: base folder shared by all datasets (``imagefolder``/``imagenet``: the folder holding
            ``train/`` and ``val/``).
        split: ``"train"`` or ``"test"`` (the official test or validation split).
        train: add the light augmentation used to train a teacher (random crop or random resized crop, and
            a horizontal flip) instead of the deterministic evaluation transform.
        download: let torchvision download missing files.
        size: output side in pixels.
        channels: output channels, 1 or 3 (converted from the dataset's own).

    Returns:
        The split; ``x`` is a float32 ``(channels, size, size)`` tensor in ``[0, 1]`` and ``y`` an int label.

    Raises:
        AipError: unknown name, missing or corrupt files, failed download, empty folders, bad arguments.
    """
    spec = DATASETS.get(name)
    if split not in ("train", "test"):
        raise UsageError(f"unknown split {split!r} for dataset {name!r}; use 'train' or 'test'")
    if channels not in (1, 3) or size < 1:
        raise UsageError(f"cannot load {name!r} as {channels} x {size} px; channels must be 1 or 3, size >= 1")
    raw = spec.read(Path(root).expanduser(), split, download)
    num_classes = spec.info.num_classes or len(raw.classes)
    if raw.labels and not 0 <= min(raw.labels) <= max(raw.labels) < num_classes:
        raise AipError(f"{name} labels in {root} fall outside 0..{num_classes - 1}; "
                       "the label files are corrupt: replace them")
    if isinstance(raw, _InMemory):
        transform = _grid_transform(size, spec.info.native_size or size, train)
        dataset: Dataset = _TensorImages(raw.images, raw.labels, channels, transform)
    else:
        dataset = _FileImages(raw.files, raw.labels, channels, _photo_transform(size, train))
    return LabelledData(dataset=dataset, num_classes=num_classes, classes=list(raw.classes))


# --- items and transforms ------------------------------------------------------------------------------


class _TensorImages(Dataset):
    """uint8 images held in memory, converted to float per item (no PIL)."""

    def __init__(self, images: torch.Tensor, labels: list[int], channels: int,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        self.images, self.labels, self.channels, self.transform = images, labels, channels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index].float().div_(255)
        if x.shape[0] != self.channels:
            x = x.repeat(3, 1, 1) if self.channels == 3 else v2.functional.rgb_to_grayscale(x)
        if self.transform is not None:
            x = self.transform(x).clamp_(0, 1)
        return x, self.labels[index]


class _FileImages(Dataset):
    """Image files decoded with PIL per item."""

    def __init__(self, files: list[str], labels: list[int], channels: int,
                 transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.files, self.labels, self.transform = files, labels, transform
        self.mode = "L" if channels == 1 else "RGB"

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path = self.files[index]
        # as torchvision reads a dataset: no EXIF turn, so the evaluation protocol stays the standard one
        img = open_image(path, self.mode, upright=False, fix="replace or delete the file")
        return self.transform(img), self.labels[index]


#: ITU-R 601-2 luma weights: PIL's conversion of RGB to "L", which reads a colour dataset in one channel
_LUMA = (0.299, 0.587, 0.114)


def norm_stats(name: str, *, channels: int) -> tuple[list[float], list[float]]:
    """The normalisation mean and std of dataset ``name`` read with ``channels`` channels: a colour dataset
    read in grey (``source.channels = 1``, as PIL's ``convert("L")`` reads it) gets the luma-weighted mean of its
    RGB statistics, and the same weighting of the stds (an upper bound of the grey std, close for photos)."""
    spec = info(name)
    mean, std = list(spec.mean), list(spec.std)
    if channels == 1 and len(mean) == 3:
        mean = [sum(w * m for w, m in zip(_LUMA, mean, strict=True))]
        std = [sum(w * s for w, s in zip(_LUMA, std, strict=True))]
    return mean, std


def _grid_transform(size: int, native: int, train: bool) -> v2.Compose | None:
    steps: list[v2.Transform] = [v2.Resize((size, size), antialias=True)] if size != native else []
    if train:
        steps += [v2.RandomCrop(size, padding=size // 8), v2.RandomHorizontalFlip()]
    return v2.Compose(steps) if steps else None


def _photo_transform(size: int, train: bool) -> v2.Compose:
    if train:
        steps: list[v2.Transform] = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.Resize(round(size / 0.875), antialias=True), v2.CenterCrop(size)]
    return v2.Compose([*steps, v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


# --- opening torchvision datasets with one-line errors ---------------------------------------------------


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _open(name: str, folder: Path, required: list[Path], download: bool, build: Callable[[bool], T]) -> T:
    """Run ``build(download_needed)`` once ``required`` files exist or may be downloaded into ``folder``."""
    missing = [p for p in required if not p.exists()]
    if missing and not download:
        raise AipError(f"{name} not found: {missing[0]} is missing; put the {name} files under {folder} "
                       "(torchvision's layout) or set eval.download = true")
    try:
        return build(bool(missing))
    except AipError:
        raise
    except Exception as exc:  # torchvision raises many types for network, parse and format problems
        if missing:
            raise AipError(f"could not download {name} into {folder} ({_brief(exc)}); without network "
                           f"access, fetch the files elsewhere and put them under {folder}") from exc
        raise AipError(f"could not read {name} from {folder} ({_brief(exc)}); the files are corrupt or "
                       f"incomplete: delete {folder} and download them again") from exc


def _register(name: str, dataset_info: DatasetInfo) -> Callable[[Reader], Reader]:
    def add(read: Reader) -> Reader:
        DATASETS.register(name)(DatasetSpec(dataset_info, read))
        return read

    return add


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


# --- Fashion-MNIST ----------------------------------------------------------------------------------------


def _stage_fashion_mnist(raw: Path) -> None:
    """Decompress missing idx files into ``raw`` from ``raw/*.gz`` or the Debian package, where present."""
    for file in _FASHION_FILES:
        target = raw / file
        sources = [raw / f"{file}.gz", Path(DEBIAN_FASHION_MNIST) / f"{file}.gz"]
        source = next((s for s in sources if s.is_file()), None)
        if target.exists() or source is None:
            continue
        try:
            with atomic_path(target) as partial, gzip.open(source, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (OSError, EOFError) as exc:  # EOFError: a truncated .gz
            raise AipError(f"could not unpack {source} into {raw} ({_brief(exc)}); check that the file is a "
                           f"valid .gz and that {raw} is writable") from exc


@_register("fashion-mnist", DatasetInfo(
    num_classes=10, native_size=28, channels=1, mean=(0.2860,), std=(0.3530,),
    description="Fashion-MNIST: 10 clothing classes, 28 px grey, 60k train / 10k test"))
def _read_fashion_mnist(root: Path, split: Split, download: bool) -> _InMemory:
    raw = root / "FashionMNIST" / "raw"
    _stage_fashion_mnist(raw)
    ds = _open("Fashion-MNIST", raw, [raw / f for f in _FASHION_FILES], download,
               lambda dl: tvd.FashionMNIST(root, train=split == "train", download=dl))
    return _InMemory(ds.data.unsqueeze(1), ds.targets.tolist(), list(ds.classes))


# --- CIFAR ------------------------------------------------------------------------------------------------


class _CIFAR10(tvd.CIFAR10):
    """torchvision's CIFAR-10 with presence checks of the extracted files instead of md5 sums."""

    train_list = [[f, None] for f, _ in tvd.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in tvd.CIFAR10.test_list]
    meta = {**tvd.CIFAR10.meta, "md5": None}


class _CIFAR100(tvd.CIFAR100):
    """torchvision's CIFAR-100 with presence checks of the extracted files instead of md5 sums."""

    train_list = [[f, None] for f, _ in tvd.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in tvd.CIFAR100.test_list]
    meta = {**tvd.CIFAR100.meta, "md5": None}


def _read_cifar(cls: type[tvd.CIFAR10], name: str, root: Path, split: Split, download: bool) -> _InMemory:
    folder = root / cls.base_folder
    files = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    ds = _open(name, folder, [folder / f for f in files], download,
               lambda dl: cls(root, train=split == "train", download=dl))
    images = _as_tensor(ds.data.transpose(0, 3, 1, 2))  # stored (N, H, W, C)
    return _InMemory(images, [int(t) for t in ds.targets], list(ds.classes))


@_register("cifar10", DatasetInfo(
    num_classes=10, native_size=32, channels=3, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
    description="CIFAR-10: 10 classes, 32 px colour, 50k train / 10k test"))
def _read_cifar10(root: Path, split: Split, download: bool) -> _InMemory:
    return _read_cifar(_CIFAR10, "CIFAR-10", root, split, download)


@_register("cifar100", DatasetInfo(
    num_classes=100, native_size=32, channels=3, mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762),
    description="CIFAR-100: 100 classes, 32 px colour, 50k train / 10k test"))
def _read_cifar100(root: Path, split: Split, download: bool) -> _InMemory:
    return _read_cifar(_CIFAR100, "CIFAR-100", root, split, download)


# --- STL-10 -----------------------------------------------------------------------------------------------


class _STL10(tvd.STL10):
    """torchvision's STL-10 checking only that the split's own files are present (no md5 sums)."""

    def _check_integrity(self) -> bool:
        files = self.test_list if self.split == "test" else self.train_list[:2]
        return all(os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f, _ in files)


@_register("stl10", DatasetInfo(
    num_classes=10, native_size=96, channels=3, mean=(0.4467, 0.4398, 0.4066), std=(0.2603, 0.2566, 0.2713),
    description="STL-10: 10 classes, 96 px colour, 5k labelled train / 8k test"))
def _read_stl10(root: Path, split: Split, download: bool) -> _InMemory:
    folder = root / _STL10.base_folder
    files = ["test_X.bin", "test_y.bin"] if split == "test" else ["train_X.bin", "train_y.bin"]
    ds = _open("STL-10", folder, [folder / f for f in files], download,
               lambda dl: _STL10(root, split=split, download=dl))
    classes = list(getattr(ds, "classes", _STL10_CLASSES))
    return _InMemory(_as_tensor(ds.data), [int(t) for t in ds.labels], classes)


# --- photo datasets with torchvision classes -------------------------------------------------------------


@_register("pets", DatasetInfo(
    num_classes=37, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="Oxford-IIIT Pets: 37 cat and dog breeds, photos, 3.7k trainval / 3.7k test"))
def _read_pets(root: Path, split: Split, download: bool) -> _OnDisk:
    folder = root / "oxford-iiit-pet"
    tv_split = "trainval" if split == "train" else "test"
    required = [folder / "images", folder / "annotations" / f"{tv_split}.txt"]
    ds = _open("Oxford-IIIT Pets", folder, required, download,
               lambda dl: tvd.OxfordIIITPet(root, split=tv_split, download=dl))
    return _OnDisk([str(p) for p in ds._images], list(ds._labels), list(ds.classes))


class _Flowers102(tvd.Flowers102):
    """torchvision's Flowers102 with presence checks of the label files instead of md5 sums."""

    def _check_integrity(self) -> bool:
        names = [self._file_dict[k][0] for k in ("label", "setid")]
        return self._images_folder.is_dir() and all((self._base_folder / n).is_file() for n in names)


@_register("flowers102", DatasetInfo(
    num_classes=102, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="Oxford Flowers-102: 102 species, photos, 2k train+val / 6k test"))
def _read_flowers102(root: Path, split: Split, download: bool) -> _OnDisk:
    """The train split is torchvision's ``train`` plus ``val`` (the usual practice); test is ``test``."""
    folder = root / "flowers-102"
    required = [folder / "jpg", folder / "imagelabels.mat", folder / "setid.mat"]
    parts = ("train", "val") if split == "train" else ("test",)
    sets = _open("Flowers-102", folder, required, download,
                 lambda dl: [_Flowers102(root, split=p, download=dl) for p in parts])
    files = [str(f) for ds in sets for f in ds._image_files]
    return _OnDisk(files, [int(label) for ds in sets for label in ds._labels], list(tvd.Flowers102.classes))


class _Places365(tvd.Places365):
    """torchvision's Places365 with presence checks of the category and file lists instead of md5 sums."""

    def _check_integrity(self, file: str, md5: str, download: bool) -> bool:
        if not os.path.isfile(file) and not download:
            raise RuntimeError(f"{file} is missing")
        return os.path.isfile(file)


@_register("places365", DatasetInfo(
    num_classes=365, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="Places365-Standard, 256 px small images: 365 scenes, 1.8M train / 36k val"))
def _read_places365(root: Path, split: Split, download: bool) -> _OnDisk:
    tv_split = "train-standard" if split == "train" else "val"
    images = root / ("data_256_standard" if split == "train" else "val_256")
    required = [root / "categories_places365.txt", root / _Places365._FILE_LIST_META[tv_split][0], images]
    ds = _open("Places365", root, required, download,
               lambda dl: _Places365(root, split=tv_split, small=True, download=dl))
    return _OnDisk([f for f, _ in ds.imgs], [int(t) for t in ds.targets], list(ds.classes))


# --- class-folder trees ----------------------------------------------------------------------------------


class _ImageTree(tvd.ImageFolder):
    """ImageFolder over the given classes (those of the train folder, so labels match across splits), skipping
    hidden files (:func:`aip.folders.visible`) and reading GIFs too."""

    def __init__(self, root: Path, classes: list[str]) -> None:
        self._classes = classes
        super().__init__(str(root), is_valid_file=_is_image_file, allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._classes, {c: i for i, c in enumerate(self._classes)}


#: what a class-folder dataset reads: torchvision's image extensions, and GIF (its first frame), which PIL reads
IMAGE_EXTENSIONS = (*IMG_EXTENSIONS, ".gif")


def _is_image_file(path: str) -> bool:
    name = os.path.basename(path)
    return visible(name) and name.lower().endswith(IMAGE_EXTENSIONS)


def _read_tree(name: str, root: Path, split: Split) -> _OnDisk:
    layout = f"{name} expects {root}/train/<class>/<image> and {root}/val/<class>/<image>"
    folders = [root / "train"] if split == "train" else [root / "val", root / "test"]
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        raise AipError(f"no folder {folders[0]}; {layout} (set eval.root to the folder that holds them)")
    classes = split_classes(root, folder, name)
    if not classes:
        raise AipError(f"{name}: no class folders in {folder}; {layout}")
    ds = _ImageTree(folder, classes)
    if not ds.samples:
        raise AipError(f"{name}: no images in {folder}; {layout}, images ending in {' '.join(IMAGE_EXTENSIONS)}")
    if split == "train":
        counts = np.bincount([t for _, t in ds.samples], minlength=len(classes))
        if (counts == 0).any():
            raise empty_classes_error(name, folder, [c for c, n in zip(classes, counts, strict=True) if not n],
                                      f"images ({' '.join(IMAGE_EXTENSIONS)})")
    return _OnDisk([f for f, _ in ds.samples], [t for _, t in ds.samples], list(ds.classes))


@_register("imagefolder", DatasetInfo(
    num_classes=0, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="your own photos: eval.root/{train,val}/<class>/<image>"))
def _read_imagefolder(root: Path, split: Split, download: bool) -> _OnDisk:
    return _read_tree("imagefolder", root, split)


@_register("imagenet", DatasetInfo(
    num_classes=1000, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ImageNet-1k (ILSVRC2012): 1000 classes, eval.root/{train,val}/<wnid>/<image>"))
def _read_imagenet(root: Path, split: Split, download: bool) -> _OnDisk:
    if not (root / "train").is_dir() and not (root / "val").is_dir() and download:
        raise AipError(f"ImageNet cannot be downloaded automatically; get ILSVRC2012 from image-net.org and "
                       f"sort train/ and val/ into class folders under {root}")
    data = _read_tree("imagenet", root, split)
    if len(data.classes) != 1000:
        raise AipError(f"imagenet needs 1000 class folders under {root}, found {len(data.classes)}; "
                       "use dataset = 'imagefolder' for other class sets")
    return data


@_register("imagenet100", DatasetInfo(
    num_classes=100, native_size=None, channels=3, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
    description="ImageNet-100 (CMC's 100 classes of ImageNet-1k), read from eval.root/{train,val}/<wnid>/<image>"))
def _read_imagenet100(root: Path, split: Split, download: bool) -> _OnDisk:
    """The 100 classes of :data:`modalities.image.imagenet100.WNIDS` from an ImageNet (or ImageNet-100) folder;
    the other class folders are ignored."""
    from modalities.image.imagenet100 import WNIDS

    layout = f"imagenet100 expects {root}/train/<wnid>/<image> and {root}/val/<wnid>/<image>"
    folders = [root / "train"] if split == "train" else [root / "val", root / "test"]
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        hint = "ImageNet cannot be downloaded automatically; get ILSVRC2012 from image-net.org and sort it into " \
            "class folders" if download else "set eval.root to the folder that holds them"
        raise AipError(f"no folder {folders[0]}; {layout} ({hint})")
    classes = sorted(WNIDS)
    missing = [c for c in classes if not (folder / c).is_dir()]
    if missing:
        raise AipError(f"{folder} lacks {len(missing)} of the 100 ImageNet-100 class folders (first: "
                       f"{', '.join(missing[:3])}); {layout}")
    ds = _ImageTree(folder, classes)
    empty = sorted(set(classes) - {classes[t] for _, t in ds.samples})
    if empty:
        raise AipError(f"imagenet100: no images in {len(empty)} class folders of {folder} (first: {empty[0]}); "
                       f"{layout}, images ending in {' '.join(IMAGE_EXTENSIONS)}")
    return _OnDisk([f for f, _ in ds.samples], [t for _, t in ds.samples], classes)
