import cv2
import numpy as np
import pytest

from mnist_paddle.errors import UserError
from mnist_paddle.preprocess import load_input, read_gray, to_mnist


def digit(size: int = 28) -> np.ndarray:
    """A white vertical bar (a '1') on black, like MNIST."""
    image = np.zeros((size, size), np.uint8)
    image[size // 5 : -size // 5, size * 2 // 5 : size * 3 // 5] = 255
    return image


def test_mnist_polarity_is_kept(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), digit())
    x = load_input(tmp_path / "a.png", 127.5, 127.5)
    assert x.shape == (1, 28, 28) and x.dtype == np.float32
    assert x[0, 0, 0] == -1.0 and x[0, 14, 14] == 1.0


def test_dark_ink_on_paper_is_inverted_and_resized(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), 255 - digit(112))
    image = to_mnist(read_gray(tmp_path / "a.png"))
    assert image.shape == (28, 28)
    assert image[0, 0] == 0 and image[14, 14] == pytest.approx(255, abs=0.01)


def test_color_and_16_bit_images_become_gray(tmp_path):
    color = cv2.cvtColor(255 - digit(56), cv2.COLOR_GRAY2BGR)
    color[:, :, 0] = np.maximum(color[:, :, 0], 80)  # bluish ink
    cv2.imwrite(str(tmp_path / "c.png"), color)
    cv2.imwrite(str(tmp_path / "w.png"), digit().astype(np.uint16) * 257)
    assert to_mnist(read_gray(tmp_path / "c.png"))[14, 14] > 200
    wide = read_gray(tmp_path / "w.png")
    assert wide.max() == pytest.approx(255.0)


def test_transparent_canvas_with_black_strokes(tmp_path):
    rgba = np.zeros((100, 100, 4), np.uint8)  # fully transparent black
    rgba[20:80, 45:55, 3] = 255  # opaque black stroke
    cv2.imwrite(str(tmp_path / "t.png"), rgba)
    image = to_mnist(read_gray(tmp_path / "t.png"))
    assert image[0, 0] == 0 and image[14, 14] == pytest.approx(
        255, abs=0.01
    )  # light stroke on dark


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello, not an image", "not an image"),
        (b"\x89PNG\r\n\x1a\n\0\0", "not an image"),
    ],
)
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_gray(path)
