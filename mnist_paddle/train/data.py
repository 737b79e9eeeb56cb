"""MNIST through `paddle.vision.datasets.MNIST`, from the project's IDX files when they are there.

`data/mnist/` holds a copy of the four IDX files so that everything runs offline; each file is
checked against MNIST's published MD5 (of the uncompressed content, so any gzip of it is fine).
When the folder does not exist, Paddle downloads MNIST into its own cache.

Training and export take the images as arrays (`mnist_arrays`): read straight from the IDX files
and normalized as `T.Normalize` does, the same arrays to the bit as `arrays(load_mnist(...))`
(a test checks), without Paddle's reader unpacking the files 100 images at a time in Python
(4-8 s a process for the two splits, 0.65 s read so; docs/speed.md).
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np
import paddle.vision.transforms as T
from paddle.io import Dataset, Subset
from paddle.static import InputSpec
from paddle.vision.datasets import MNIST

from mnist_paddle.digits import IMAGE_SHAPE, INPUT_NAME, normalize
from mnist_paddle.errors import UserError, first_line
from mnist_paddle.train.config import DataConfig

SPLITS = ("train", "test")

# split -> (images file, labels file)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# MD5 of each file's uncompressed content, as published with MNIST.
CONTENT_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}

# What paddle.Model takes, and what the exported model's input is: a batch of any size of
# normalized 1x28x28 images; and the labels, one int64 class per image.
IMAGE_SPEC = InputSpec([None, *IMAGE_SHAPE], "float32", INPUT_NAME)
LABEL_SPEC = InputSpec([None, 1], "int64", "label")


def mnist_files(root: str | Path, split: str) -> tuple[Path, Path]:
    """The (images, labels) paths of `split` under `root`, each checked against its MD5."""
    paths = tuple(Path(root) / name for name in FILES[split])
    for path in paths:
        check_md5(path)
    return paths


def read_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The (images, labels) of `split` under `root` as uint8 arrays, (N, 28, 28) and (N,): each
    file checked against its MD5 and read from that one unpacking."""
    images, labels = (parse_idx(check_md5(Path(root) / name)) for name in FILES[split])
    return images, labels


def check_md5(path: Path) -> bytes:
    """`path`'s content, unpacked, once checked against MNIST's MD5."""
    if not path.is_file():
        raise UserError(f"{path}: MNIST file missing (restore it with `git checkout {path}`)")
    try:
        with gzip.open(path) as f:
            content = f.read()
        digest = hashlib.md5(content).hexdigest()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: not a readable gzip file ({e})") from None
    if digest != CONTENT_MD5[path.name]:
        raise UserError(
            f"{path}: MD5 of its content is {digest}, MNIST's is {CONTENT_MD5[path.name]}: "
            "the file is damaged or not MNIST"
        )
    return content


def load_mnist(cfg: DataConfig, split: str) -> Dataset:
    """The MNIST `split` ('train' or 'test') as a Dataset of ((1, 28, 28) float32, (1,) int64).

    Pixels are normalized with `Normalize(mean, std)` per sample, as in the tutorial.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    transform = T.Normalize(mean=[cfg.mean], std=[cfg.std])
    root = Path(cfg.root)
    if root.exists():
        images, labels = mnist_files(root, split)
        dataset = MNIST(
            image_path=str(images),
            label_path=str(labels),
            mode=split,
            transform=transform,
            download=False,
        )
    else:
        dataset = _download(split, transform, root)
    taken = images_taken(cfg, split, len(dataset))
    return dataset if taken == len(dataset) else Subset(dataset, list(range(taken)))


def images_taken(cfg: DataConfig, split: str, size: int) -> int:
    """How many of the split's `size` images a run takes: the first `data.train_limit` (or
    `test_limit`), all of them when the limit is 0 or beyond them."""
    limit = cfg.train_limit if split == "train" else cfg.test_limit
    return limit if 0 < limit < size else size


def _download(mode: str, transform, root: Path) -> Dataset:
    try:
        return MNIST(mode=mode, transform=transform, download=True)
    except Exception as e:  # network errors come in many types
        raise UserError(
            f"data folder {root} not found and Paddle's MNIST download failed "
            f"({type(e).__name__}: {first_line(e)}); put the four MNIST IDX .gz files in {root}"
        ) from None


def mnist_arrays(cfg: DataConfig, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`arrays(load_mnist(cfg, split))`: (N, 1, 28, 28) float32 images, (N,) int64 labels."""
    root = Path(cfg.root)
    if not root.exists():
        return arrays(load_mnist(cfg, split))
    images, labels = read_mnist(root, split)
    taken = images_taken(cfg, split, len(images))
    return normalize(images[:taken, None], cfg.mean, cfg.std), labels[:taken].astype(np.int64)


def arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """All items: (N, 1, 28, 28) float32 images, (N,) int64 labels."""
    items = [dataset[i] for i in range(len(dataset))]
    images = np.stack([image for image, _ in items])
    labels = np.array([int(label[0]) for _, label in items], dtype=np.int64)
    return images, labels


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a uint8 array: (N, 28, 28) images or (N,) labels."""
    return parse_idx(gzip.decompress(path.read_bytes()))


def parse_idx(data: bytes) -> np.ndarray:
    """An IDX file's unpacked content as a uint8 array: (N, 28, 28) images or (N,) labels."""
    dims = data[3]  # the magic number's last byte counts the dimensions
    shape = np.frombuffer(data, ">u4", count=dims, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)
