import numpy as np
import paddle
import pytest
from conftest import ROOT, run_tool

from mnist_paddle.errors import UserError
from mnist_paddle.train.config import AugmentConfig
from mnist_paddle.train.loader import ArrayDataset, TrainLoader, split_validation

BACKGROUND = -1.0
AUGMENT = AugmentConfig(rotate=10, scale=0.1, shift=2)


def images_and_labels(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Each image is a bright 8x8 square on the background; its label is its index."""
    images = np.full((n, 1, 28, 28), BACKGROUND, np.float32)
    images[:, :, 10:18, 10:18] = 1.0
    return images, np.arange(n, dtype=np.int64)


def epoch(loader: TrainLoader, number: int) -> tuple[np.ndarray, np.ndarray]:
    loader.set_epoch(number)
    batches = list(loader)
    assert len(batches) == len(loader)
    return (
        np.concatenate([x.numpy() for x, _ in batches]),
        np.concatenate([y.numpy()[:, 0] for _, y in batches]),
    )


def test_an_epoch_is_every_image_once_in_a_seeded_order():
    images, labels = images_and_labels()
    loader = TrainLoader(images, labels, 32, seed=7, augment=AugmentConfig(), background=BACKGROUND)
    x, y = epoch(loader, 0)
    assert len(loader) == 4  # 32 + 32 + 32 + 4
    assert sorted(y) == list(range(100))
    np.testing.assert_array_equal(x, images[y])  # no augmentation: the images themselves
    again = TrainLoader(images, labels, 32, seed=7, augment=AugmentConfig(), background=BACKGROUND)
    np.testing.assert_array_equal(epoch(again, 0)[1], y)  # same seed and epoch: same order
    assert not np.array_equal(epoch(loader, 1)[1], y)  # next epoch: another order
    other = TrainLoader(images, labels, 32, seed=8, augment=AugmentConfig(), background=BACKGROUND)
    assert not np.array_equal(epoch(other, 0)[1], y)  # another seed: another order


def test_augmentation_moves_the_digit_and_keeps_the_background():
    images, labels = images_and_labels()
    loader = TrainLoader(images, labels, 32, seed=0, augment=AUGMENT, background=BACKGROUND)
    x, y = epoch(loader, 0)
    changed = [not np.allclose(x[i], images[0]) for i in range(len(x))]
    assert np.mean(changed) > 0.9
    # the corners stay background, ink stays ink: nothing is padded with another value
    assert np.allclose(x[:, :, :3, :3], BACKGROUND) and np.allclose(x[:, :, -3:, -3:], BACKGROUND)
    assert x.min() >= BACKGROUND - 1e-5 and x.max() <= 1 + 1e-5
    ink = (x > 0).sum(axis=(1, 2, 3))
    assert 40 < ink.mean() < 90  # about the 64 pixels of the square, scaled by up to 10%
    # the same seed and epoch give the same augmented batches
    again = TrainLoader(images, labels, 32, seed=0, augment=AUGMENT, background=BACKGROUND)
    np.testing.assert_array_equal(epoch(again, 0)[0], x)


@pytest.mark.parametrize(
    ("augment", "ink_low", "ink_high"),
    [
        (AugmentConfig(shear=0.5), 50, 80),  # slanted: about the same ink, other pixels
        (AugmentConfig(elastic=2.0), 40, 90),  # bent
        (AugmentConfig(stroke=1.0), 30, 110),  # bolder (8x8 -> up to 10x10) or lighter
    ],
)
def test_shear_elastic_and_stroke_change_the_digit_not_the_background(augment, ink_low, ink_high):
    images, labels = images_and_labels()
    loader = TrainLoader(images, labels, 50, seed=0, augment=augment, background=BACKGROUND)
    x, _ = epoch(loader, 0)
    assert np.mean([not np.allclose(x[i], images[0], atol=1e-3) for i in range(len(x))]) > 0.9
    assert np.allclose(x[:, :, :3, :3], BACKGROUND) and np.allclose(x[:, :, -3:, -3:], BACKGROUND)
    ink = (x > 0).sum(axis=(1, 2, 3))
    assert ink_low < ink.mean() < ink_high
    if augment.stroke:  # both ways: some images bolder than the square, some lighter
        assert (ink > 64).any() and (ink < 64).any()


def test_data_parallel_processes_share_each_epoch(monkeypatch):
    images, labels = images_and_labels(101)
    shares = []
    for rank in (0, 1):
        monkeypatch.setenv("PADDLE_TRAINER_ID", str(rank))
        monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
        loader = TrainLoader(images, labels, 32, seed=3, augment=AugmentConfig(), background=-1)
        assert loader.batch_size == 16  # the global batch of 32 split in two
        shares.append(epoch(loader, 0)[1])
    assert len(shares[0]) == len(shares[1]) == 50  # equal steps; one image sits this epoch out
    assert not set(shares[0]) & set(shares[1])


def test_validation_split_is_fixed_and_disjoint():
    images, labels = images_and_labels()
    (train_x, train_y), (val_x, val_y) = split_validation(images, labels, 20)
    assert (len(train_y), len(val_y)) == (80, 20)
    assert sorted([*train_y, *val_y]) == list(range(100))
    np.testing.assert_array_equal(split_validation(images, labels, 20)[1][1], val_y)
    assert list(val_y) != list(range(80, 100))  # a random choice, not the last images
    with pytest.raises(UserError, match="data.val_size is 100, but there are only 100"):
        split_validation(images, labels, 100)


def test_array_dataset_items():
    images, labels = images_and_labels(5)
    data = ArrayDataset(images, labels)
    image, label = data[3]
    assert len(data) == 5 and image.shape == (1, 28, 28) and label.tolist() == [3]


@pytest.mark.skipif(
    paddle.device.is_compiled_with_cuda(), reason="two processes on a CUDA build need two GPUs"
)
def test_processes_typeset_their_shares_and_gather_the_whole(tmp_path):
    """A data-parallel run's processes each typeset every second digit and gather the rest
    (loader.typeset_digits): both end with the digits one process would typeset, in order."""
    script = tmp_path / "gather.py"
    script.write_text(
        "import numpy as np, paddle\n"
        "from mnist_paddle.train import loader, synth\n"
        "paddle.distributed.init_parallel_env()\n"
        "images, labels = loader.typeset_digits(25, 3)\n"  # 13 and 12 digits: uneven shares
        "alone, alone_labels = synth.typeset_digits(25, 3)\n"
        "assert (images == alone).all() and (labels == alone_labels).all()\n"
    )
    result = run_tool(
        "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
        "--log_dir", str(tmp_path / "log"), str(script),
        PYTHONPATH=str(ROOT),
    )  # fmt: skip
    logs = "".join(p.read_text() for p in (tmp_path / "log").glob("workerlog.*"))
    assert result.returncode == 0, logs
