"""Where the training data comes from.

Online, Keras' own loaders download into its cache (`$KERAS_HOME/datasets`, default
`~/.keras`) exactly as they would for any Keras user. Offline, the same files placed in that
cache, or passed explicitly with `--data PATH`, are read directly: Keras' `load_data()` checks
archive hashes and would try to re-download anything that is not byte-identical.

Every loader fails with `DataUnavailable` naming the missing file, its download URL and where
to put it, because that is what an air-gapped user needs to fix it.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ACLIMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_WORD_INDEX_URL = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json"
)
IMAGENET_CLASS_INDEX_URL = (
    "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
)
IMAGENET_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


class DataUnavailable(RuntimeError):
    """A dataset could be neither found locally nor downloaded."""


def keras_home() -> Path:
    """Keras' cache folder, resolved the way Keras resolves it."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()


def datasets_dir() -> Path:
    return keras_home() / "datasets"


def _missing(what: str, fname: str, url: str, reason: str = "") -> DataUnavailable:
    where = datasets_dir() / fname
    detail = f" ({reason})" if reason else ""
    return DataUnavailable(
        f"{what} is not available{detail}. Download {url} and put it at {where} "
        f"(set KERAS_HOME to choose the cache folder), or pass its path with --data."
    )


def _explicit(path: Path, what: str, expected: str, url: str) -> Path:
    if not path.exists():
        raise DataUnavailable(
            f"{what}: {path} does not exist. Expected {expected} (downloadable from {url})."
        )
    return path


# MNIST ------------------------------------------------------------------------------------

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def load_mnist(data: Path | None = None) -> Arrays:
    """MNIST as `((x_train, y_train), (x_test, y_test))`, uint8 28x28 images, as Keras gives it."""
    if data is not None:
        path = _explicit(data, "MNIST", "mnist.npz in Keras' layout", MNIST_URL)
    else:
        path = datasets_dir() / "mnist.npz"
        if not path.exists():
            return _download_mnist()
    try:
        with np.load(path) as npz:
            return (npz["x_train"], npz["y_train"]), (npz["x_test"], npz["y_test"])
    except (OSError, ValueError, KeyError) as err:
        raise DataUnavailable(
            f"MNIST: {path} is not a Keras mnist.npz (x_train, y_train, x_test, y_test): {err}"
        ) from err


def _download_mnist() -> Arrays:
    import keras

    try:
        return keras.datasets.mnist.load_data()
    except Exception as err:  # Keras raises bare Exception on network errors
        raise _missing("MNIST", "mnist.npz", MNIST_URL, str(err)) from err


# CIFAR-10 ---------------------------------------------------------------------------------


def cifar10_folder(data: Path | None = None) -> Path | None:
    """The CIFAR-10 image-folder root (`train/<class>/*.png`, `test/<class>/*.png`).

    None means no local copy exists and the caller should use Keras' online loader.
    """
    if data is not None:
        root = _explicit(data, "CIFAR-10", "a folder with train/<class>/ and test/<class>/",
                         CIFAR10_URL)
        if not (root / "train").is_dir() or not (root / "test").is_dir():
            raise DataUnavailable(
                f"CIFAR-10: {root} has no train/ and test/ class folders "
                f"(expected train/<class>/*.png, test/<class>/*.png)."
            )
        return root
    root = datasets_dir() / "cifar10"
    archive = datasets_dir() / "cifar10_png.tar.gz"
    if archive.exists():
        _extract(archive, datasets_dir())
        return root
    return root if (root / "train").is_dir() else None


def load_cifar10(classes: Sequence[str], train_per_class: int | None,
                 test_per_class: int | None, data: Path | None = None) -> Arrays:
    """Images of `classes` as uint8 [N,32,32,3] with labels 0..len(classes)-1, in class order.

    Reads the PNG class folders when a local copy exists, else Keras' `cifar10.load_data()`.
    """
    root = cifar10_folder(data)
    if root is None:
        return _cifar10_from_keras(classes, train_per_class, test_per_class)
    return (_read_class_folders(root / "train", classes, train_per_class),
            _read_class_folders(root / "test", classes, test_per_class))


def _read_class_folders(split: Path, classes: Sequence[str],
                        per_class: int | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(classes):
        folder = split / name
        if not folder.is_dir():
            raise DataUnavailable(f"CIFAR-10: class folder {folder} is missing.")
        files = sorted(folder.glob("*.png"))[:per_class]
        for file in files:
            with Image.open(file) as img:
                images.append(np.asarray(img.convert("RGB")))
        labels += [label] * len(files)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _cifar10_from_keras(classes: Sequence[str], train_per_class: int | None,
                        test_per_class: int | None) -> Arrays:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as err:
        raise _missing("CIFAR-10", "cifar10_png.tar.gz (or Keras' cifar-10-batches-py)",
                       CIFAR10_URL, str(err)) from err

    def select(x: np.ndarray, y: np.ndarray, per_class: int | None):
        y = y.reshape(-1)
        keep = [np.flatnonzero(y == CIFAR10_CLASSES.index(c))[:per_class] for c in classes]
        labels = np.concatenate([np.full(len(k), i) for i, k in enumerate(keep)])
        return x[np.concatenate(keep)], labels.astype(np.int64)

    return select(x_train, y_train, train_per_class), select(x_test, y_test, test_per_class)


# IMDB -------------------------------------------------------------------------------------


def aclimdb_folder(data: Path | None = None) -> Path:
    """The raw labelled reviews, `aclImdb/{train,test}/{pos,neg}/*.txt`."""
    if data is not None:
        root = _explicit(data, "IMDB reviews", "the aclImdb folder", ACLIMDB_URL)
        if not (root / "train" / "pos").is_dir():
            raise DataUnavailable(f"IMDB reviews: {root} has no train/pos/ folder "
                                  "(expected aclImdb/{train,test}/{pos,neg}/*.txt).")
        return root
    # Keras' get_file(..., extract=True) extracts next to the archive into `<stem>_extracted`.
    root = datasets_dir() / "aclImdb_v1_extracted" / "aclImdb"
    if (root / "train" / "pos").is_dir():
        return root
    import keras

    try:
        extracted = keras.utils.get_file("aclImdb_v1.tar.gz", ACLIMDB_URL, extract=True)
    except Exception as err:
        raise _missing("IMDB reviews", "aclImdb_v1.tar.gz", ACLIMDB_URL, str(err)) from err
    return Path(extracted) / "aclImdb"


def load_imdb_reviews(split: str, per_class: int | None,
                      data: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Raw reviews of one split and their labels (1 positive, 0 negative), interleaved."""
    root = aclimdb_folder(data) / split
    by_label = []
    for label in ("neg", "pos"):
        files = sorted((root / label).glob("*.txt"))[:per_class]
        by_label.append([f.read_text(encoding="utf-8") for f in files])
    neg, pos = by_label
    texts = [t for pair in zip(neg, pos, strict=False) for t in pair]
    labels = np.tile([0, 1], len(texts) // 2).astype(np.float32)
    return texts, labels


def imdb_word_index() -> dict[str, int]:
    """Keras' IMDB word index (word -> frequency rank), through Keras' own hash-checked loader."""
    import keras

    try:
        return keras.datasets.imdb.get_word_index()
    except Exception as err:
        raise _missing("IMDB word index", "imdb_word_index.json", IMDB_WORD_INDEX_URL,
                       str(err)) from err


# ImageNet ---------------------------------------------------------------------------------


def imagenet_class_names() -> list[str]:
    """The 1000 human-readable ImageNet class names in output order, from Keras' class index."""
    import keras

    try:
        path = keras.utils.get_file("imagenet_class_index.json", IMAGENET_CLASS_INDEX_URL,
                                    cache_subdir="models", file_hash=IMAGENET_CLASS_INDEX_MD5)
    except Exception as err:
        where = keras_home() / "models" / "imagenet_class_index.json"
        raise DataUnavailable(
            f"ImageNet class index is not available ({err}). Download "
            f"{IMAGENET_CLASS_INDEX_URL} and put it at {where}."
        ) from err
    index = json.loads(Path(path).read_text())
    return [index[str(i)][1] for i in range(len(index))]


# helpers ----------------------------------------------------------------------------------


def _extract(archive: Path, into: Path) -> None:
    """Extract once; a marker file makes a half-finished extraction restart cleanly."""
    marker = into / f".{archive.name}.extracted"
    if marker.exists():
        return
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe members
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)
    marker.touch()
