"""The data a run trains and evaluates on: images decoded and normalized once, split, batched.

`load_data(cfg)` gives the training batches, what each epoch is evaluated on, and the test set.

`paddle.Model.fit` takes any iterable of (images, labels) batches with a length. `TrainLoader` is
one: the whole training set lives in one float32 array (60,000 x 784 floats, 188 MB), each epoch
is a permutation drawn from (seed, epoch), and the random affine augmentation of a batch is one
`affine_grid` + `grid_sample` call. So a seed fixes the order, the augmentation and, through
`paddle.seed`, the initial weights: two runs with the same config give the same numbers.

In a data-parallel run (`python -m paddle.distributed.launch --nproc_per_node N ...`) every
process draws the same permutation and takes its own share of each batch; `batch_size` stays the
global batch, so a recipe means the same on one process or several.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle.io import Dataset

from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError
from mnist_paddle.train import synth
from mnist_paddle.train.config import AugmentConfig, Config
from mnist_paddle.train.data import mnist_arrays
from mnist_paddle.train.rundir import say

# The validation images are the same ones whatever the training seed, so runs compare fairly.
VAL_SPLIT_SEED = 0


@dataclasses.dataclass
class Data:
    train: TrainLoader  # shuffled (augmented) batches
    eval: ArrayDataset  # what each epoch is evaluated on: validation images, or the test images
    test: ArrayDataset
    eval_split: str  # "validation" or "test"


def load_data(cfg: Config) -> Data:
    """MNIST decoded and normalized once (`Normalize` of the tutorial), split as `cfg` says;
    the training images joined by `data.typeset` digits typeset in the training fonts (synth.py,
    never the validation or test images)."""
    train_images, train_labels = mnist_arrays(cfg.data, "train")
    test = ArrayDataset(*mnist_arrays(cfg.data, "test"))
    if cfg.data.val_size:
        (train_images, train_labels), val = split_validation(
            train_images, train_labels, cfg.data.val_size
        )
        evaluate_on, split = ArrayDataset(*val), "validation"
    else:
        evaluate_on, split = test, "test"
    if cfg.data.typeset:
        typeset, typeset_labels = typeset_digits(cfg.data.typeset, cfg.train.seed)
        train_images = np.concatenate(
            [train_images, normalize(typeset, cfg.data.mean, cfg.data.std)[:, None]]
        )
        train_labels = np.concatenate([train_labels, typeset_labels])
    loader = TrainLoader(
        train_images,
        train_labels,
        cfg.train.batch_size,
        cfg.train.seed,
        cfg.augment,
        background=float(normalize(0, cfg.data.mean, cfg.data.std)),  # a black MNIST pixel
    )
    return Data(loader, evaluate_on, test, split)


def typeset_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """synth.typeset_digits(count, seed). In a data-parallel run each process typesets its
    share and gathers the others', so the digits take 1/n of the time."""
    say(f"typesetting {count:,} digits in the training fonts")  # 10-20 s on two cores
    env = paddle.distributed.ParallelEnv()
    if env.nranks == 1:
        return synth.typeset_digits(count, seed)
    images, _ = synth.typeset_digits(count, seed, (env.rank, env.nranks))
    padded = np.zeros((-(-count // env.nranks), 28, 28), np.float32)  # all_gather: equal shapes
    padded[: len(images)] = images
    shares = []
    paddle.distributed.all_gather(shares, paddle.to_tensor(padded))
    whole = np.empty((count, 28, 28), np.float32)
    for rank, share in enumerate(shares):
        whole[rank :: env.nranks] = share.numpy()[: len(range(rank, count, env.nranks))]
    return whole, synth.typeset_labels(count)


def split_validation(
    images: np.ndarray, labels: np.ndarray, val_size: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, labels), (validation images, labels)): `val_size` images held out."""
    if val_size >= len(images):
        raise UserError(
            f"data.val_size is {val_size}, but there are only {len(images)} training images"
        )
    order = np.random.default_rng(VAL_SPLIT_SEED).permutation(len(images))
    train, val = np.sort(order[val_size:]), np.sort(order[:val_size])
    return (images[train], labels[train]), (images[val], labels[val])


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for Paddle's generator in `epoch`, drawn from (seed, epoch) like the shuffle."""
    return int(np.random.default_rng([seed, epoch, 0]).integers(2**31))


class ArrayDataset(Dataset):
    """(N, 1, 28, 28) float32 images and (N,) int64 labels as a Dataset of (image, (1,) label),
    for evaluation and prediction."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index : index + 1]

    def __len__(self) -> int:
        return len(self.images)


class TrainLoader:
    """Shuffled, optionally augmented batches of (N, 1, 28, 28) images and (N, 1) labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        augment: AugmentConfig,
        background: float,
    ):
        self.images, self.labels = images, labels
        self.seed, self.augment, self.background = seed, augment, background
        self.epoch = 0
        env = paddle.distributed.ParallelEnv()
        self.rank, self.nranks = env.rank, env.nranks
        if batch_size < self.nranks:
            raise UserError(
                f"train.batch_size {batch_size} is smaller than the {self.nranks} processes"
            )
        self.batch_size = batch_size // self.nranks  # this process's share of a batch
        # Every process takes the same number of images, so all take the same number of steps.
        self.per_rank = len(images) // self.nranks

    def set_epoch(self, epoch: int) -> None:
        """Draw the next `__iter__`'s order and augmentation from (seed, epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.images))[self.rank :: self.nranks][: self.per_rank]
        augment_rng = np.random.default_rng([self.seed, self.epoch, self.rank + 1])
        for start in range(0, self.per_rank, self.batch_size):
            index = np.sort(order[start : start + self.batch_size])  # sorted: faster gather
            images = paddle.to_tensor(self.images[index])
            if self.augmented:
                images = self._augment(images, augment_rng)
            yield images, paddle.to_tensor(self.labels[index, None])

    @property
    def augmented(self) -> bool:
        a = self.augment
        return any((a.rotate, a.scale, a.shift, a.shear, a.elastic, a.stroke))

    def _augment(self, images: paddle.Tensor, rng: np.random.Generator) -> paddle.Tensor:
        """Rotate, scale, shift and slant each image by its own random amount, bend it
        (elastic) and change its stroke weight; the background is kept."""
        a = self.augment
        n, _, height, width = images.shape
        theta = affine_theta(a, n, width, rng)
        grid = F.affine_grid(paddle.to_tensor(theta), [n, 1, height, width], False)
        if a.elastic:  # (N, H, W, 2): a smooth random displacement of up to ~elastic pixels
            coarse = rng.normal(0, a.elastic * 2 / width, (n, 2, 4, 4)).astype(np.float32)
            field = F.interpolate(paddle.to_tensor(coarse), [height, width], mode="bicubic")
            grid = grid + field.transpose([0, 2, 3, 1])
        # grid_sample fills the outside with 0; shift so that 0 is the background
        moved = F.grid_sample(images - self.background, grid, align_corners=False)
        if a.stroke:  # blend towards the 3x3 dilation (bolder) or erosion (lighter) of each image
            weight = paddle.to_tensor(rng.uniform(-a.stroke, a.stroke, (n, 1, 1, 1)), "float32")
            bolder = F.max_pool2d(moved, 3, stride=1, padding=1)
            lighter = -F.max_pool2d(-moved, 3, stride=1, padding=1)
            moved = moved + paddle.where(weight > 0, bolder - moved, moved - lighter) * weight
        return moved + self.background


def affine_theta(a: AugmentConfig, n: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 2, 3) float32 affine_grid matrices: where each output pixel samples the input, for a
    random rotation, scale, shift and slant (shear moves x along y) of each of n images."""
    angle = np.deg2rad(rng.uniform(-a.rotate, a.rotate, n))
    scale = rng.uniform(1 - a.scale, 1 + a.scale, n)
    # grid coordinates run from -1 to 1 across the image: one pixel is 2 / width of them
    shift = rng.uniform(-a.shift, a.shift, (n, 2)) * 2 / width
    shear = rng.uniform(-a.shear, a.shear, n) if a.shear else np.zeros(n)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    rows = [np.stack([cos, shear - sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)]
    return np.stack(rows, 1).astype(np.float32)
