"""Image datasets: each format is written as tiny data in its real on-disk layout, then loaded through
``modalities.image.datasets.load``. No test touches the network."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from aip.errors import AipError
from modalities.image import datasets

RNG = np.random.default_rng(0)
FASHION_SPLITS = {"train": 6, "t10k": 4}


def noise(n: int, *shape: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def save_photo(path: Path, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(1, height, width, 3)[0]).save(path)


def load(name: str, root: Path, *, split: str = "test", train: bool = False, size: int = 32,
         channels: int = 3):
    return datasets.load(name, root=root, split=split, train=train, download=False, size=size,
                         channels=channels)


def check_items(data, *, count: int, channels: int, size: int, labels: list[int] | None = None) -> None:
    ds = data.dataset
    assert len(ds) == count
    got = []
    for i in range(count):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (channels, size, size)
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert isinstance(y, int) and 0 <= y < data.num_classes
        got.append(y)
    if labels is not None:
        assert got == labels


def check_augments(data) -> None:
    torch.manual_seed(0)
    x0 = data.dataset[0][0]
    assert any(not torch.equal(x0, data.dataset[0][0]) for _ in range(5))


# --- writers for each real format ------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file (gzip-compressed): magic (ubyte, ndim), big-endian dims, data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for prefix, n in FASHION_SPLITS.items():
        images, labels = noise(n, 28, 28), np.arange(n, dtype=np.uint8) % 3
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[prefix] = images, labels
    return out


def write_cifar10(root: Path) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = {"data": noise(2, 3072), "labels": [0, 1], "batch_label": f"training batch {i} of 5"}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = noise(3, 3072)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": test, "labels": [2, 0, 1]}))
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}))
    return test


def write_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, labels in {"train": [5, 99, 0, 5], "test": [99, 1]}.items():
        batch = {"data": noise(len(labels), 3072), "fine_labels": labels, "coarse_labels": [0] * len(labels)}
        (folder / split).write_bytes(pickle.dumps(batch))
    meta = {"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": ["a"] * 20}
    (folder / "meta").write_bytes(pickle.dumps(meta))


def write_stl10(root: Path) -> np.ndarray:
    """STL-10 binaries: uint8 images stored channel by channel, each channel column-major; labels 1..10."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = {"train": noise(3, 3, 96, 96), "test": noise(2, 3, 96, 96)}
    labels = {"train": [1, 2, 10], "test": [3, 1]}
    for split in ("train", "test"):
        (folder / f"{split}_X.bin").write_bytes(images[split].transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes(bytes(labels[split]))
    (folder / "class_names.txt").write_text("\n".join(datasets._STL10_CLASSES) + "\n")
    return images["test"]


def write_pets(root: Path) -> None:
    folder = root / "oxford-iiit-pet"
    rows = {"trainval": ["Abyssinian_1 1 1 1", "beagle_2 2 2 1", "Abyssinian_3 1 1 1"],
            "test": ["Abyssinian_4 1 1 1", "beagle_5 2 2 1"]}
    for split, lines in rows.items():
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for line in lines:
            save_photo(folder / "images" / f"{line.split()[0]}.jpg")


def write_flowers(root: Path) -> None:
    from scipy.io import savemat

    folder = root / "flowers-102"
    for i in range(1, 9):
        save_photo(folder / "jpg" / f"image_{i:05d}.jpg", 50, 40)
    savemat(folder / "imagelabels.mat", {"labels": np.array([[1, 2, 3, 1, 2, 3, 102, 1]], dtype=np.uint8)})
    ids = {"trnid": [1, 2], "valid": [3, 4], "tstid": [5, 6, 7, 8]}
    savemat(folder / "setid.mat", {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})


def write_places(root: Path) -> None:
    """Places365-Standard small layout: category list, file lists, val_256/ and data_256_standard/."""
    (root / "categories_places365.txt").write_text("/a/airfield 0\n/b/bakery/shop 1\n/c/canyon 2\n")
    val = ["Places365_val_00000001.jpg 2", "Places365_val_00000002.jpg 0"]
    (root / "places365_val.txt").write_text("\n".join(val) + "\n")
    train = ["/a/airfield/00000001.jpg 0", "/b/bakery/shop/00000001.jpg 1", "/c/canyon/00000001.jpg 2"]
    (root / "places365_train_standard.txt").write_text("\n".join(train) + "\n")
    for line in val:
        save_photo(root / "val_256" / line.split()[0], 64, 64)
    for line in train:
        save_photo(root / "data_256_standard" / line.split()[0].lstrip("/"), 64, 64)


def write_tree(root: Path, split: str, classes: list[str], per_class: int = 2) -> None:
    for c in classes:
        for i in range(per_class):
            save_photo(root / split / c / f"{i}.{'png' if i % 2 else 'jpg'}")


# --- each dataset --------------------------------------------------------------------------------------


def test_fashion_mnist_reads_gz_idx_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    written = write_fashion(tmp_path / "FashionMNIST" / "raw")
    test = load("fashion-mnist", tmp_path, size=28, channels=1)
    check_items(test, count=4, channels=1, size=28, labels=[0, 1, 2, 0])
    assert test.num_classes == 10 and test.classes[0] == "T-shirt/top"
    assert torch.equal(test.dataset[1][0][0], torch.from_numpy(written["t10k"][0][1]).float() / 255)
    train = load("fashion-mnist", tmp_path, split="train", train=True, size=28, channels=1)
    check_items(train, count=6, channels=1, size=28)
    check_augments(train)


def test_fashion_mnist_copies_the_debian_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian = tmp_path / "debian"
    write_fashion(debian)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", debian)
    data = load("fashion-mnist", tmp_path / "root", split="train", size=28, channels=1)
    check_items(data, count=6, channels=1, size=28)
    assert (tmp_path / "root" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_cifar10_batches(tmp_path: Path) -> None:
    test_images = write_cifar10(tmp_path)
    test = load("cifar10", tmp_path)
    check_items(test, count=3, channels=3, size=32, labels=[2, 0, 1])
    assert test.classes[2] == "bird"
    first = torch.from_numpy(test_images[0].reshape(3, 32, 32)).float() / 255
    assert torch.equal(test.dataset[0][0], first)
    train = load("cifar10", tmp_path, split="train", train=True)
    check_items(train, count=10, channels=3, size=32, labels=[0, 1] * 5)
    check_augments(train)


def test_cifar100_pickles(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    data = load("cifar100", tmp_path, split="train")
    check_items(data, count=4, channels=3, size=32, labels=[5, 99, 0, 5])
    assert data.num_classes == 100 and len(data.classes) == 100
    check_augments(load("cifar100", tmp_path, split="test", train=True))


def test_stl10_binaries(tmp_path: Path) -> None:
    test_images = write_stl10(tmp_path)
    test = load("stl10", tmp_path, size=96)
    check_items(test, count=2, channels=3, size=96, labels=[2, 0])
    assert torch.equal(test.dataset[0][0], torch.from_numpy(test_images[0]).float() / 255)
    assert test.classes[2] == "car"
    small = load("stl10", tmp_path, split="train", size=32)  # resized from 96
    check_items(small, count=3, channels=3, size=32, labels=[0, 1, 9])
    check_augments(load("stl10", tmp_path, split="train", train=True, size=48))


def test_pets_annotations_and_images(tmp_path: Path) -> None:
    write_pets(tmp_path)
    data = load("pets", tmp_path, split="train", size=24)
    check_items(data, count=3, channels=3, size=24, labels=[0, 1, 0])
    assert data.num_classes == 37 and data.classes == ["Abyssinian", "Beagle"]
    test = load("pets", tmp_path, train=True, size=24)
    check_items(test, count=2, channels=3, size=24, labels=[0, 1])
    check_augments(test)


def test_flowers102_mat_files(tmp_path: Path) -> None:
    write_flowers(tmp_path)
    train = load("flowers102", tmp_path, split="train", size=16)  # train + val ids
    check_items(train, count=4, channels=3, size=16, labels=[0, 1, 2, 0])
    test = load("flowers102", tmp_path, size=16)
    check_items(test, count=4, channels=3, size=16, labels=[1, 2, 101, 0])
    assert test.num_classes == 102 and test.classes[0] == "pink primrose"
    check_augments(load("flowers102", tmp_path, train=True, size=16))


def test_places365_small_layout(tmp_path: Path) -> None:
    write_places(tmp_path)
    val = load("places365", tmp_path)
    check_items(val, count=2, channels=3, size=32, labels=[2, 0])
    assert val.num_classes == 365 and val.classes == ["/a/airfield", "/b/bakery/shop", "/c/canyon"]
    train = load("places365", tmp_path, split="train", train=True)
    check_items(train, count=3, channels=3, size=32, labels=[0, 1, 2])
    check_augments(train)


def test_imagefolder_png_and_jpeg(tmp_path: Path) -> None:
    write_tree(tmp_path, "train", ["cat", "dog", "emu"])
    write_tree(tmp_path, "val", ["cat", "emu"])  # a class missing from val keeps train's indices
    train = load("imagefolder", tmp_path, split="train", train=True, size=20)
    check_items(train, count=6, channels=3, size=20, labels=[0, 0, 1, 1, 2, 2])
    assert train.num_classes == 3 and train.classes == ["cat", "dog", "emu"]
    check_augments(train)
    val = load("imagefolder", tmp_path, size=20, channels=1)
    check_items(val, count=4, channels=1, size=20, labels=[0, 0, 2, 2])
    assert val.num_classes == 3


def test_imagefolder_test_folder_when_no_val(tmp_path: Path) -> None:
    write_tree(tmp_path, "test", ["a", "b"], per_class=1)
    check_items(load("imagefolder", tmp_path, size=8), count=2, channels=3, size=8, labels=[0, 1])


def test_imagenet_needs_1000_classes(tmp_path: Path) -> None:
    write_tree(tmp_path, "val", ["n01", "n02", "n03"], per_class=1)
    with pytest.raises(AipError, match="1000 class folders.*found 3"):
        load("imagenet", tmp_path)
    jpeg = (tmp_path / "val" / "n01" / "0.jpg").read_bytes()
    for i in range(3, 1000):
        (tmp_path / "val" / f"n{i:03d}").mkdir()
        (tmp_path / "val" / f"n{i:03d}" / "0.jpg").write_bytes(jpeg)
    data = load("imagenet", tmp_path, size=8)
    assert data.num_classes == 1000 and len(data.dataset) == 1000


# --- conversions and errors ---------------------------------------------------------------------------


def test_channel_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    write_fashion(tmp_path / "FashionMNIST" / "raw")
    x, _ = load("fashion-mnist", tmp_path, size=32, channels=3).dataset[0]
    assert x.shape == (3, 32, 32) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    write_cifar10(tmp_path)
    colour, _ = load("cifar10", tmp_path).dataset[0]
    grey, _ = load("cifar10", tmp_path, channels=1).dataset[0]
    luma = (torch.tensor([0.299, 0.587, 0.114])[:, None, None] * colour).sum(0, keepdim=True)
    assert grey.shape == (1, 32, 32) and torch.allclose(grey, luma, atol=1e-3)


def test_eval_is_deterministic(tmp_path: Path) -> None:
    write_tree(tmp_path, "val", ["a", "b"], per_class=1)
    ds = load("imagefolder", tmp_path, size=16).dataset
    assert torch.equal(ds[0][0], ds[0][0])


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "cifar100", "stl10", "pets", "flowers102",
                                  "places365"])
def test_missing_data_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian")
    with pytest.raises(AipError, match="not found.*download") as err:
        load(name, tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(AipError, match="no folder .*train"):
        load("imagefolder", tmp_path, split="train")
    with pytest.raises(AipError, match="cannot be downloaded"):
        datasets.load("imagenet", root=tmp_path, split="test", train=False, download=True, size=8, channels=3)


def test_failed_download_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.cifar.download_and_extract_archive", offline)
    with pytest.raises(AipError, match="could not download CIFAR-10.*no network.*put them under") as err:
        datasets.load("cifar10", root=tmp_path, split="test", train=False, download=True, size=32, channels=3)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value)


def test_corrupt_files(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(AipError, match="could not read CIFAR-10.*corrupt"):
        load("cifar10", tmp_path)
    write_tree(tmp_path / "tree", "val", ["a", "b"], per_class=1)
    (tmp_path / "tree" / "val" / "a" / "0.jpg").write_bytes(b"garbage")
    data = load("imagefolder", tmp_path / "tree")
    with pytest.raises(AipError, match="cannot read image .*0.jpg"):
        data.dataset[0]


def test_empty_imagefolder(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(AipError, match="no class folders"):
        load("imagefolder", tmp_path, split="train")
    (tmp_path / "train" / "cat").mkdir()
    (tmp_path / "train" / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(AipError, match="imagefolder: no images in .*train"):
        load("imagefolder", tmp_path, split="train")


def test_hidden_entries_are_skipped_and_gifs_read(tmp_path: Path) -> None:
    """A Jupyter checkpoint folder is no class, macOS's ``._NAME.jpg`` companions are no images, and a GIF is
    read like any other photo."""
    write_tree(tmp_path, "train", ["cat", "dog"])
    write_tree(tmp_path, "val", ["cat", "dog"], per_class=1)
    for split in ("train", "val"):
        (tmp_path / split / ".ipynb_checkpoints").mkdir()
        (tmp_path / split / "cat" / "._0.jpg").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
    Image.fromarray(noise(1, 30, 40, 3)[0]).save(tmp_path / "val" / "dog" / "2.gif")
    train = load("imagefolder", tmp_path, split="train", train=True, size=16)
    assert train.classes == ["cat", "dog"] and len(train.dataset) == 4
    val = load("imagefolder", tmp_path, size=16)
    check_items(val, count=3, channels=3, size=16, labels=[0, 1, 1])


def test_a_training_class_folder_without_images_is_named(tmp_path: Path) -> None:
    write_tree(tmp_path, "train", ["cat", "dog"])
    (tmp_path / "train" / "emu").mkdir()
    (tmp_path / "train" / "emu" / "notes.txt").write_text("no images here")
    with pytest.raises(AipError, match=r"imagefolder: class folders emu in .*train hold no images \(.*\.gif\); "
                                       r"add some, or remove the folders") as err:
        load("imagefolder", tmp_path, split="train")
    assert "\n" not in str(err.value)
    write_tree(tmp_path, "val", ["cat"], per_class=1)  # a test split may lack a class
    assert load("imagefolder", tmp_path, size=8).classes == ["cat", "dog", "emu"]


def test_a_colour_dataset_read_in_grey_is_normalised_by_its_luma() -> None:
    mean, std = datasets.norm_stats("imagefolder", channels=1)
    assert mean == pytest.approx([0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406])
    assert std == pytest.approx([0.299 * 0.229 + 0.587 * 0.224 + 0.114 * 0.225])
    assert datasets.norm_stats("imagefolder", channels=3) == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert datasets.norm_stats("fashion-mnist", channels=1) == datasets.norm_stats("fashion-mnist", channels=3)


def test_unknown_name_lists_known(tmp_path: Path) -> None:
    with pytest.raises(AipError, match="did you mean 'cifar10'.*fashion-mnist.*imagenet.*places365"):
        load("cifar-10", tmp_path)
    with pytest.raises(AipError, match="known: .*stl10"):
        datasets.info("mnist")


def test_info_table() -> None:
    names = {"fashion-mnist", "cifar10", "cifar100", "imagefolder", "imagenet", "imagenet100", "stl10", "pets",
             "flowers102", "places365"}
    assert set(datasets.DATASETS.names()) == names
    for name in datasets.DATASETS:
        i = datasets.info(name)
        assert len(i.mean) == len(i.std) == i.channels and i.description
    assert datasets.info("fashion-mnist").native_size == 28 and datasets.info("stl10").native_size == 96
    assert datasets.info("places365").native_size is None and datasets.info("cifar100").num_classes == 100


@pytest.mark.skipif(not (datasets.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist(tmp_path: Path) -> None:
    data = load("fashion-mnist", tmp_path, size=28, channels=1)
    labels = [data.dataset[i][1] for i in range(len(data.dataset))]
    assert len(data.dataset) == 10_000 and data.num_classes == 10 and sorted(set(labels)) == list(range(10))
    x, _ = data.dataset[0]
    assert x.shape == (1, 28, 28) and 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
