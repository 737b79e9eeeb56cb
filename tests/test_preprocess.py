"""Image files -> MNIST-like 28x28 digits (serving/images.py, then serving/preprocess.py)."""

import cv2
import numpy as np
import pytest
from conftest import png_header
from PIL import Image

from mnist_paddle.errors import UserError
from mnist_paddle.serving.images import MAX_PIXELS, read_gray
from mnist_paddle.serving.preprocess import load_digit, to_mnist


def bar(height: int = 60, width: int = 60, top: int = 10, left: int = 25) -> np.ndarray:
    """A float mask (0..1) with one thick vertical stroke, like a '1'."""
    mask = np.zeros((height, width), np.float32)
    mask[top : top + 40, left : left + 8] = 1.0
    return mask


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(image.shape)
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def ink_box(image: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(image > 0.1 * image.max())
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_mnist_construction_box_20_and_center_of_mass():
    # an off-center digit in a large page comes out 20 px tall, centered by mass at (14, 14)
    page = np.zeros((300, 400), np.float32)
    page[200:280, 20:50] = 255  # an 80x30 stroke near a corner
    digit = to_mnist(page)
    assert digit.shape == (28, 28)
    assert 20 <= ink_box(digit)[0] <= 21  # 20, and a faint row from the sub-pixel shift
    assert center_of_mass(digit) == pytest.approx((14, 14), abs=0.2)
    assert digit.max() == pytest.approx(255, abs=1)


@pytest.mark.parametrize("light_ink", [True, False])
def test_either_polarity_gives_light_ink_on_black(light_ink):
    mask = bar()
    paper, ink = (30.0, 220.0) if light_ink else (230.0, 40.0)
    page = paper + (ink - paper) * mask
    digit = to_mnist(page)
    assert digit[0, 0] == 0 and digit[14, 14] > 200


def test_texture_noise_and_specks_are_ignored():
    rng = np.random.default_rng(0)
    page = 220 + rng.normal(0, 6, (200, 200))  # grainy paper
    page[40:160, 90:106] = 40  # the digit
    page[5:8, 5:8] = 40  # a speck of dirt in the corner
    digit = to_mnist(page)
    assert center_of_mass(digit) == pytest.approx((14, 14), abs=0.3)
    assert 20 <= ink_box(digit)[0] <= 21  # the speck did not stretch the crop


def test_a_lone_digits_pieces_lie_together():
    """Beside one digit, a stroke far from it (what a shadow's edge or a rule's end leaves) is
    not part of it; a piece of the digit a little apart from the rest (a 5's bar) is."""
    page = np.full((120, 160), 230.0, np.float32)
    page[30:90, 70:78] = 20.0  # the digit's stem
    alone = to_mnist(page.copy())
    page[10:110, 150:153] = 20.0  # far: a thin bar at the page's edge
    assert np.abs(to_mnist(page.copy()) - alone).max() < 1
    page[22:27, 70:100] = 20.0  # near: a bar just above the stem, not touching it
    assert ink_box(to_mnist(page)) != ink_box(alone)


def test_a_band_along_an_edge_is_no_digit():
    """A shadow's band along the image's side (what the page's cleaning leaves of a shadow
    thinner than its closing) is larger than the digit beside it, and no digit; a 1 cropped
    tightly, along the edge itself with nothing else there, still is."""
    page = np.full((120, 160), 230.0, np.float32)
    page[40:80, 70:76] = page[40:80, 94:100] = 20.0  # a small 0 in the middle
    page[40:46, 70:100] = page[74:80, 70:100] = 20.0
    alone = to_mnist(page.copy())
    page[:, :14] = 70.0  # the band, down the whole left side
    assert np.abs(to_mnist(page) - alone).max() < 1
    tight = np.full((60, 30), 230.0, np.float32)
    tight[:, :8] = 20.0  # a 1 along the left edge
    assert ink_box(to_mnist(tight))[0] >= 20


def test_blank_page_has_no_digit():
    rng = np.random.default_rng(0)
    assert to_mnist(np.full((100, 100), 240.0)) is None
    assert to_mnist(235 + rng.normal(0, 3, (100, 100))) is None


def test_thin_strokes_are_thickened():
    page = np.zeros((400, 400), np.float32)
    page[40:360, 198:202] = 255  # 4 px wide on a 320 px digit: 0.25 px after scaling
    digit = to_mnist(page) / 255
    rows = digit.sum(axis=1)
    width = rows[rows > 0.5].mean()  # ink per row of the stroke: its width in pixels
    assert 1.5 <= width <= 3.0  # about MNIST's 2.25 px (0.97 px if it were not thickened)


def save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_formats(tmp_path, suffix):
    page = (230 - 190 * bar()).astype(np.uint8)
    digit = load_digit(save(tmp_path / f"d{suffix}", page))
    assert digit[14, 14] > 150 and digit[0, 0] < 10


def test_rgb_palette_and_16_bit(tmp_path):
    mask = bar()
    rgb = np.dstack([240 - 200 * mask, 230 - 150 * mask, 200 - 60 * mask]).astype(np.uint8)
    palette = Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8)
    wide = (65535 * mask).astype(np.uint16)
    for image, name in ((Image.fromarray(rgb), "rgb.png"), (palette, "p.png")):
        image.save(tmp_path / name)
        assert load_digit(tmp_path / name)[14, 14] > 150
    cv2.imwrite(str(tmp_path / "w.png"), wide)
    assert read_gray(tmp_path / "w.png").max() == pytest.approx(255.0)
    assert load_digit(tmp_path / "w.png")[14, 14] > 150


@pytest.mark.parametrize("stroke", [0, 255])
def test_transparent_canvas(tmp_path, stroke):
    # a drawing canvas export: transparent everywhere but the strokes, which are black (or white)
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[..., :3] = stroke
    rgba[..., 3] = (255 * bar(100, 100, 30, 45)).astype(np.uint8)
    digit = load_digit(save(tmp_path / "t.png", rgba))
    assert digit[0, 0] == 0 and digit[14, 14] > 200


def test_unusable_files(tmp_path):
    good = save(tmp_path / "good.png", (255 * bar()).astype(np.uint8))
    cases = {
        "empty.png": (b"", "empty file"),
        "text.png": (b"hello, not an image", "not an image"),
        "truncated.png": (good.read_bytes()[:60], "damaged image"),
        "huge.png": (
            png_header(100_000, 100_000),
            f"10,000,000,000 pixels, more than the limit of {MAX_PIXELS:,}",
        ),
        "huge2.png": (png_header(10_000, 5_000), "10000x5000 pixels"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UserError, match=message):
            load_digit(tmp_path / name)
    blank = save(tmp_path / "blank.png", np.full((50, 50), 250, np.uint8))
    with pytest.raises(UserError, match="no digit found"):
        load_digit(blank)
    with pytest.raises(UserError, match="no such file"):
        load_digit(tmp_path / "missing.png")


def test_a_large_image_is_reduced_as_it_is_decoded_and_thin_strokes_stay(tmp_path):
    page = np.full((2400, 2400), 250, np.uint8)
    page[1000:1400, 1200] = 10  # a 1-pixel dark stroke
    big = save(tmp_path / "big.png", page)
    gray = read_gray(big)
    assert gray.shape[0] * gray.shape[1] <= 1_000_000 < 2400 * 2400
    assert gray.min() < 20  # the darkest pixel of each block: the stroke keeps its contrast
    light = save(tmp_path / "chalk.png", 255 - page)  # light ink on a dark board
    assert read_gray(light).max() > 235
