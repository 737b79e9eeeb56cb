import gzip
import shutil

import numpy as np
import pytest
from conftest import DATA

from mnist_paddle.errors import UserError
from mnist_paddle.train.config import DataConfig
from mnist_paddle.train.data import FILES, arrays, load_mnist, mnist_arrays, read_idx


@pytest.mark.parametrize(
    ("split", "size", "first_label"), [("train", 60000, 5), ("test", 10000, 7)]
)
def test_idx_files_parse_to_normalized_images(split, size, first_label):
    data = load_mnist(DataConfig(root=str(DATA)), split)
    assert len(data) == size
    image, label = data[0]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    assert label.shape == (1,) and label.dtype == np.int64
    assert int(label[0]) == first_label
    # Normalize(127.5, 127.5) maps the 0..255 pixels exactly onto -1..1
    assert image.min() == -1.0 and image.max() == 1.0


def test_limits_take_the_first_images():
    full = load_mnist(DataConfig(root=str(DATA)), "test")
    part = load_mnist(DataConfig(root=str(DATA), test_limit=30), "test")
    assert len(part) == 30
    assert np.array_equal(part[29][0], full[29][0])


@pytest.mark.parametrize(
    "cfg",
    [DataConfig(root=str(DATA), test_limit=2000), DataConfig(root=str(DATA), mean=30, std=70)],
    ids=["tutorial", "other-normalize"],
)
def test_training_reads_the_arrays_paddles_mnist_gives_to_the_bit(cfg):
    # mnist_arrays reads the IDX files itself; the images and labels must be those of
    # paddle.vision.datasets.MNIST with T.Normalize, or training would change
    images, labels = mnist_arrays(cfg, "test")
    paddles_images, paddles_labels = arrays(load_mnist(cfg, "test"))
    assert images.dtype == paddles_images.dtype and labels.dtype == paddles_labels.dtype
    np.testing.assert_array_equal(images, paddles_images)
    np.testing.assert_array_equal(labels, paddles_labels)


def copy_data(tmp_path):
    root = tmp_path / "mnist"
    shutil.copytree(DATA, root)
    return root


def test_changed_file_fails_its_md5_check(tmp_path):
    root = copy_data(tmp_path)
    labels = root / FILES["test"][1]
    content = bytearray(gzip.decompress(labels.read_bytes()))
    content[100] = (content[100] + 1) % 10  # one label changed
    labels.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz: MD5 .* damaged or not MNIST"):
        load_mnist(DataConfig(root=str(root)), "test")


def test_regzipped_file_passes_the_md5_check(tmp_path):
    root = copy_data(tmp_path)
    labels = root / FILES["test"][1]
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()), compresslevel=1))
    assert len(load_mnist(DataConfig(root=str(root)), "test")) == 10000


def test_missing_file_is_named(tmp_path):
    root = copy_data(tmp_path)
    (root / FILES["train"][0]).unlink()
    with pytest.raises(UserError, match="train-images-idx3-ubyte.gz: MNIST file missing"):
        load_mnist(DataConfig(root=str(root)), "train")


def test_missing_folder_falls_back_to_the_download_and_names_the_folder(tmp_path, monkeypatch):
    """Without data/mnist, Paddle's download is tried; where it fails (no network, as on the
    development machine) the error names the folder to fill."""
    import mnist_paddle.train.data as data

    def offline(**kwargs):
        assert kwargs["download"] is True
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(data, "MNIST", offline)
    with pytest.raises(UserError) as err:
        load_mnist(DataConfig(root=str(tmp_path / "nope")), "train")
    assert str(err.value) == (
        f"data folder {tmp_path / 'nope'} not found and Paddle's MNIST download failed "
        f"(ConnectionError: Network is unreachable); put the four MNIST IDX .gz files in "
        f"{tmp_path / 'nope'}"
    )


def test_file_that_is_not_gzip_is_named(tmp_path):
    root = copy_data(tmp_path)
    (root / FILES["test"][0]).write_text("not gzip")
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz: not a readable gzip file"):
        load_mnist(DataConfig(root=str(root)), "test")


def test_idx_reader_matches_mnist():
    images = read_idx(DATA / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(DATA / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels[0] == 7 and set(labels) == set(range(10))
