"""Image file -> the (1, 28, 28) input an MNIST model expects, built the way MNIST itself was.

MNIST's digits were scanned, cropped to their ink, scaled so the longer side is 20 pixels (keeping
the aspect ratio) and placed in a 28x28 frame with their center of mass in the middle; the ink is
light on a black background. Real images (a phone photo of a pen digit on paper, chalk on a board,
the transparent PNG a drawing canvas exports, a small digit in a large scan) get the same
treatment here:

1. decode any common file (images.py: gray levels from any common format; images above a pixel
   limit refused before they are decoded; transparency over a contrasting background);
2. clean the page (page.py): uneven light evened out, printed rules and a form's box taken away;
3. find the background level from the image border and the ink as whatever differs from it;
   paper texture and noise are smoothed away, specks far smaller than the digit dropped, and
   so is a shadow's band along the image's edge;
4. crop to the ink, scale the longer side to 20 px, center by mass in 28x28.

An image with no ink is "no digit found", not a guess.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.serving.images import read_gray
from mnist_paddle.serving.light import border, quantiles
from mnist_paddle.serving.page import Page, clean

SIZE = 28  # MNIST's frame
BOX = 20  # MNIST's digits fit a 20x20 box inside the frame
MIN_CONTRAST = 24.0  # gray levels between ink and background below which there is no digit
# MNIST's stroke width (2 * area / perimeter of pixels >= 128) in its 28x28 frame: median 2.25 px,
# a quarter of the digits under 1.9 px. Thinner strokes are thickened to the median.
STROKE, THIN_STROKE = 2.25, 1.9
SATURATED = 0.55  # in MNIST, 56% of the pixels at half strength or more are at full (>= 250)
SPECK = 0.05  # ink blobs smaller than this fraction of the largest are dropped
EDGE_BAND = 0.5  # a piece along an edge of the image for this share of it: a shadow's band
APART = 0.5  # a lone digit's pieces lie closer to its largest than this share of that one's size
NO_DIGIT = "no digit found (the image has no ink)"


def page_digit(gray: np.ndarray) -> tuple[np.ndarray | None, Page]:
    """The digit on a page, (28, 28) float32 0..255 like MNIST's (None when there is no ink),
    and the page cleaned (page.py: even light, no rules, no boxes): the digit is made from its
    one box's content when it has one box, else from the whole cleaned page."""
    page = clean(gray, one_digit=True)
    region = page.gray
    if len(page.cells) == 1:
        x, y, w, h = page.cells[0]
        region = page.gray[y : y + h, x : x + w]
    return to_mnist(region), page


def to_mnist(gray: np.ndarray) -> np.ndarray | None:
    """(H, W) gray levels -> (28, 28) float32 0..255 like an MNIST digit, or None if no ink."""
    ink = ink_strength(gray)
    if ink is None:
        return None
    mask = digit_mask(ink, alone=True)
    if mask is None:
        return None
    return ink_to_mnist(ink, mask)


def ink_to_mnist(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Ink strength (H, W) 0..1 and the uint8 mask of one digit's pixels -> (28, 28) 0..255:
    MNIST's construction (crop, longer side to 20 px, center of mass in the middle)."""
    x, y, w, h = cv2.boundingRect(mask)  # the digit's box: every step below needs only it
    mask = mask[y : y + h, x : x + w]
    # the ink at and next to the digit's pixels (the dilated mask is 0 or 1)
    digit = ink[y : y + h, x : x + w] * cv2.dilate(mask, np.ones((3, 3), np.uint8))
    # MNIST's strokes are saturated: scale so the strongest part of the ink is full white.
    (strongest,) = quantiles(digit[mask > 0], [1 - SATURATED])
    digit /= strongest
    np.clip(digit, 0.0, 1.0, out=digit)
    return _center(_fit_box(_thicken(digit)))


def ink_strength(gray: np.ndarray) -> np.ndarray | None:
    """Ink strength 0..1 per pixel (1: as strong as the digit's strokes), or None if flat."""
    height, width = gray.shape
    # Smooth paper texture and sensor noise at a scale well below a stroke's width.
    sigma = max(min(height, width) / 200.0, 0.5)
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma) if min(height, width) > 40 else gray
    (background,) = quantiles(border(smooth), [0.5])  # the outer 5% of each side
    # Extremes after a 3x3 median, so that single noisy pixels do not count as ink.
    despeckled = cv2.medianBlur(np.clip(smooth, 0, 255).astype(np.uint8), 3)
    low, high, _, _ = cv2.minMaxLoc(despeckled)
    # The ink lies on the side of the background where the image reaches further.
    contrast = max(background - low, high - background)
    if contrast < MIN_CONTRAST:
        return None
    ink = background - smooth if background - low >= high - background else smooth - background
    ink /= contrast
    return np.clip(ink, 0.0, 1.0, out=ink)


def digit_mask(ink: np.ndarray, alone: bool = False) -> np.ndarray | None:
    """uint8 mask of the digits' pixels: strong ink, without specks far smaller than a digit;
    `alone` (one digit): without a band along the image's edge (`edge_bands`) when other ink
    is there, and without pieces APART from the largest (a shadow's edge, a rule's end)."""
    strength = ink * 255
    level, _ = cv2.threshold(strength.astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (strength > max(level, 255 * 0.25)).astype(np.uint8)
    height, width = mask.shape
    # 16-bit labels (twice as fast) when even isolated pixels on a grid could not overflow them
    few = ((height + 1) // 2) * ((width + 1) // 2) < 65535
    ltype = cv2.CV_16U if few else cv2.CV_32S
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=ltype)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.ones(len(areas), bool)
    if alone and count > 2:
        # a band along an edge is no digit when more than a speck beside it lies off the edges
        band = edge_bands(labels, count, sides=True)[1:]
        if band.any() and not band.all() and areas[~band].max() >= SPECK * areas[band].max():
            keep, areas = ~band, np.where(band, 0, areas)
    keep &= areas >= SPECK * areas.max()
    if alone:
        x, y, w, h = stats[1 + int(areas.argmax()), :4]  # the largest piece's box
        px, py, pw, ph = stats[1:, :4].T  # every piece's
        # how far each piece's box lies from the largest's, across or down (< 0: they overlap)
        gap = np.maximum.reduce([x - (px + pw), px - (x + w), y - (py + ph), py - (y + h)])
        keep &= gap <= APART * max(w, h)
    if keep.all():
        return mask
    return np.concatenate([[0], keep]).astype(np.uint8)[labels]


def edge_bands(labels: np.ndarray, count: int, sides: bool) -> np.ndarray:
    """Per label of `labels` (0 to count - 1, 0 the background), whether its piece runs along
    the image's top or bottom edge for EDGE_BAND of its width or more, or with `sides` along
    its left or right edge for EDGE_BAND of its height: a shadow's band that the page's
    cleaning took for a stroke (thinner than its closing), or the page's own edge."""
    height, width = labels.shape
    edges = [(labels[0], width), (labels[-1], width)]
    if sides:
        edges += [(labels[:, 0], height), (labels[:, -1], height)]
    band = np.zeros(count, bool)
    for line, length in edges:
        band |= np.bincount(line, minlength=count) >= EDGE_BAND * length
    band[0] = False  # the background
    return band


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Scale so the longer side is BOX pixels, keeping the aspect ratio."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(digit, size, interpolation=interpolation)


def _stroke_width(digit: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the ink's area over its perimeter (at half strength)."""
    mask = (digit >= 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * mask.sum() / perimeter if perimeter else 0.0


def _thicken(digit: np.ndarray) -> np.ndarray:
    """Dilate strokes thinner than MNIST's (a fine pen, a light font) to MNIST's typical width."""
    scale = BOX / max(digit.shape)  # from this crop to the 20-pixel box
    width = _stroke_width(digit) * scale
    if width >= THIN_STROKE:
        return digit
    size = round((STROKE - width) / scale) + 1  # a k-pixel kernel adds k - 1 to the width
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    thick = cv2.dilate(np.pad(digit, size), kernel)
    ys, xs = np.nonzero(thick)
    return thick[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _center(digit: np.ndarray) -> np.ndarray:
    """Place `digit` in a 28x28 frame with its center of mass at the frame's center."""
    height, width = digit.shape
    frame = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - height) // 2, (SIZE - width) // 2
    frame[top : top + height, left : left + width] = digit
    total = frame.sum()
    cy, cx = (_ROWS * frame).sum() / total, (_COLS * frame).sum() / total
    # MNIST digits have their center of mass at (14, 14) in pixel-index coordinates.
    shift = np.float32([[1, 0, SIZE / 2 - cx], [0, 1, SIZE / 2 - cy]])
    frame = cv2.warpAffine(frame, shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    return np.clip(frame * 255.0, 0, 255)


_ROWS, _COLS = np.indices((SIZE, SIZE))


def load_digit(path: str | Path) -> np.ndarray:
    """Image file -> (28, 28) float32 0..255 MNIST-like digit; a `UserError` if none is found."""
    digit, _ = page_digit(read_gray(path))
    if digit is None:
        raise NoDigit(f"{path}: {NO_DIGIT}")
    return digit


class NoDigit(UserError):
    """A readable image with nothing on it."""
