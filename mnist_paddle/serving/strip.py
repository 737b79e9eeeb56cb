"""A number's ink as the strip the line model reads: one row of digits, DIGIT_HEIGHT pixels tall.

The strip is made the same way from a photographed page (`find_ink`, then `make_strip`) and from a
number composed for training (train/strips.py calls `make_strip` on its ink), so the model is
taught on what it will be shown:

1. the ink and its mask: whatever differs from the background, faint strokes kept where they
   join strong ones, specks dropped, and so are a band along the top or bottom edge and a piece
   at the edge above or below the digits (a shadow's, left by the page's cleaning), and, on a
   page whose light was evened out, a faint piece on its left or right edge (a shadow's edge,
   or the noise in its dark part, which the division made larger); the image
   is first scaled so its digits are about WORK_HEIGHT pixels tall: a large photo shrunk (the
   strip needs no more), small print enlarged (its thin strokes found more whole);
2. a digit's height: the median height of the mask's larger pieces;
3. the ink scaled so that a digit is DIGIT_HEIGHT pixels tall (MNIST's 20-pixel box) and WIDEN
   times as wide, cropped to HEIGHT rows around it and MARGIN blank columns on each side.

`Strip` keeps the way back to the image, so that the digits read get boxes in the image's pixels.
The line model reads the strip as made and two `views` of it (shifted by half a step, enlarged):
a digit lost in one reading is sometimes plain in another (docs/numbers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.serving.preprocess import SIZE, digit_mask, edge_bands, ink_strength

DIGIT_HEIGHT = 20  # px: a digit in the strip, as tall as MNIST's digits in their 28x28 frame
HEIGHT = 36  # px: the strip; room for digits written 8 px above or below the others
MARGIN = 4  # px of blank strip on each side
STRIDE = 4  # strip columns per step of the line model (models/line.py checks the same)
WIDEN = 1.5  # the strip's columns per column of ink scaled to DIGIT_HEIGHT: a narrow digit
# (a 1 beside its neighbour) spans more of the line model's steps (docs/numbers.md, "Wider strips")
# the line model's steps under an MNIST frame (28 px) of a form's box, widened as the strip is
FRAME_STEPS = math.ceil(SIZE * WIDEN / STRIDE)
MAX_WIDTH = 2048  # px: a longer strip (about 100 digits) is squeezed to this
WORK_HEIGHT = 40  # px: an image is scaled until its digits are about this tall ...
MAX_ENLARGE = 3.0  # ... a small one enlarged at most this much
HYSTERESIS = 0.6  # faint ink down to this share of the strong threshold joins strong strokes
SPECK = 0.25  # a piece smaller than this share of a digit's height in both directions: a speck
TALL = 0.5  # pieces at least this share of the tallest one are digits (or touching digits)
ROW = 0.75  # pieces at least this share of a digit's height set the rows the digits lie in
SIDE_FAINT = 0.7  # on a shaded page, a piece on a side under this share of the strongest
# piece's ink (their 90th percentiles) is shade, not a digit (docs/pages.md, "Shade on a side")
SHIFT = STRIDE // 2  # px: a view of the strip half a step to the right
ENLARGE = (1.1, 1.265)  # a view of the strip this much taller and wider (its middle rows)


@dataclass
class Strip:
    """The strip, and how its columns lie in the image it was made from."""

    pixels: np.ndarray  # (HEIGHT, W) float32, ink 0..1, W a multiple of STRIDE
    mask: np.ndarray  # (h, w) uint8: the number's ink, cropped, in the working image's pixels
    origin: tuple[int, int]  # the mask's top-left corner (x, y) in the working image
    per_pixel: float  # strip columns per pixel of the working image
    scale: float  # the working image's pixels per pixel of the image as given

    def columns(self, start: float, end: float) -> tuple[int, int]:
        """The working image's columns [lo, hi) under strip columns `start` to `end`."""
        width = self.mask.shape[1]
        lo = int(np.clip(np.floor((start - MARGIN) / self.per_pixel), 0, width - 1))
        hi = int(np.clip(np.ceil((end - MARGIN) / self.per_pixel), lo + 1, width))
        return self.origin[0] + lo, self.origin[0] + hi

    def box(self, start: float, end: float) -> list[int]:
        """[x, y, w, h], in the image as given, of the ink under strip columns `start` to `end`
        (the whole columns where there is none)."""
        lo, hi = (c - self.origin[0] for c in self.columns(start, end))
        part = self.mask[:, lo:hi]
        rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
        if not len(rows):
            rows, cols = np.array([0, self.mask.shape[0] - 1]), np.array([0, hi - lo - 1])
        x, y = self.origin[0] + lo + cols[0], self.origin[1] + rows[0]
        w, h = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
        return [round(v / self.scale) for v in (x, y, w, h)]

    def digit_pieces(self) -> list[tuple[float, float]]:
        """The strip columns [start, end) of each piece of ink at least TALL of a digit's
        height: a digit, part of one, or touching digits."""
        count, _, stats, _ = cv2.connectedComponentsWithStats(self.mask, connectivity=8)
        height = digit_height(self.mask) or 1.0
        return [
            (MARGIN + x * self.per_pixel, MARGIN + (x + w) * self.per_pixel)
            for x, _, w, h, _ in stats[1:]
            if h >= TALL * height
        ]


def views(pixels: np.ndarray) -> list[np.ndarray]:
    """Two more ways to read a strip's (HEIGHT, W) `pixels`: shifted SHIFT columns to the right,
    and ENLARGE times as tall and as wide (the middle HEIGHT rows; W still a multiple of STRIDE)."""
    shifted = np.pad(pixels, ((0, 0), (SHIFT, STRIDE - SHIFT)))
    tall = round(HEIGHT * ENLARGE[0])
    wide = round(pixels.shape[1] * ENLARGE[1] / STRIDE) * STRIDE
    first = (tall - HEIGHT) // 2
    enlarged = cv2.resize(pixels, (wide, tall), interpolation=cv2.INTER_LINEAR)[first:][:HEIGHT]
    return [shifted, np.ascontiguousarray(enlarged)]


def find_ink(gray: np.ndarray, shaded: bool = False) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The ink strength (H', W') 0..1 of an image of gray levels, its mask (uint8) with faint
    strokes joined and specks dropped, and the factor the image was scaled by first;
    None when the image has no ink. `shaded`: the page's light was evened out (page.clean)."""
    scale = _working_scale(gray)
    if scale != 1:
        method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=method)
    ink = ink_strength(gray)
    strong = digit_mask(ink) if ink is not None else None
    if strong is None:
        return None
    # faint pixels count where they join strong ones (hysteresis): a light stroke stays whole
    level = float(ink[strong > 0].min())
    count, labels = cv2.connectedComponents((ink >= HYSTERESIS * level).astype(np.uint8), 8)
    keep = np.unique(labels[strong > 0])
    mask = np.isin(labels, keep[keep > 0]).astype(np.uint8)
    mask = _without_strays(_without_edge_bands(mask))
    return ink, _without_faint_sides(ink, mask) if shaded else mask, scale


def ink_outside(mask: np.ndarray, scale: float, cells: list[tuple[int, int, int, int]]) -> bool:
    """Whether `mask` (find_ink's, of an image scaled by `scale`) has ink at least TALL of a
    digit's height outside the boxes `cells` [(x, y, w, h)] of the image: a form some of whose
    boxes were not found."""
    height = digit_height(mask) or 1.0
    outside = mask.copy()
    for x, y, w, h in cells:
        top, left = int(y * scale), int(x * scale)
        outside[
            top : int(np.ceil((y + h) * scale)) + 1, left : int(np.ceil((x + w) * scale)) + 1
        ] = 0
    count, _, stats, _ = cv2.connectedComponentsWithStats(outside, connectivity=8)
    return bool((stats[1:, cv2.CC_STAT_HEIGHT] >= TALL * height).any())


def _working_scale(gray: np.ndarray) -> float:
    """How much to scale the image so that its digits are about WORK_HEIGHT pixels tall. A
    large image is only shrunk (every later step is faster on fewer pixels), its digits measured
    on a quarter-size copy; a small one (under 4 WORK_HEIGHT on its shorter side) only enlarged,
    at most MAX_ENLARGE times: small, thin print comes out more whole when its ink is found on
    more pixels (docs/pages.md, "Small print enlarged")."""
    large = min(gray.shape) >= 4 * WORK_HEIGHT
    sample = gray
    if large:
        sample = cv2.resize(gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    ink = ink_strength(sample)
    mask = digit_mask(ink) if ink is not None else None
    height = digit_height(mask) if mask is not None else None
    if not height:
        return 1.0
    if large:
        return min(1.0, WORK_HEIGHT / (4 * height))
    return float(np.clip(WORK_HEIGHT / height, 1.0, MAX_ENLARGE))


def digit_height(mask: np.ndarray) -> float | None:
    """A digit's height in pixels: the median height of the mask's larger pieces (a stroke
    broken by a light pen is joined across a pixel first)."""
    joined = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT] - 2  # less the dilation
    if not len(heights):
        return None
    return max(1.0, float(np.median(heights[heights >= TALL * heights.max()])))


def _without_edge_bands(mask: np.ndarray) -> np.ndarray:
    """`mask` without the pieces that run along its top or bottom edge (`edge_bands`). Digits
    touch an edge at a few strokes. (Not the sides: there one 1 may run along half the
    height.)"""
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    band = edge_bands(labels, count, sides=False)
    return np.where(band[labels], 0, mask).astype(np.uint8) if band.any() else mask


def _without_strays(mask: np.ndarray) -> np.ndarray:
    """`mask` without specks (pieces far smaller than a digit in both directions) and without
    the pieces on the image's edge that lie wholly above or below the digits' rows (those of the
    pieces at least ROW of a digit's height): a shadow's corner, which would set the strip's
    rows and press the digits against one side. (Not every piece out of the row: a digit
    written higher than the others may come in two.)"""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    height = digit_height(mask) or 1.0
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    wide, tall = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    drop = np.maximum(wide, tall) < SPECK * height
    drop[0] = True  # the background
    digits = ~drop & (tall >= ROW * height)
    if digits.any():
        first, end = top[digits].min(), (top + tall)[digits].max()
        rows, columns = mask.shape
        edge = (top == 0) | (top + tall == rows) | (left == 0) | (left + wide == columns)
        drop |= edge & ((top + tall <= first) | (top >= end))
    return np.where(drop[labels], 0, mask).astype(np.uint8)


def _without_faint_sides(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`mask` without the pieces on its left or right edge whose ink is fainter than SIDE_FAINT
    of the strongest piece's (90th percentiles): on a page photographed in a shadow, its edge
    or the noise in its dark part, made larger by the division, which read as digits. (Not
    on an evenly lit page: a number cropped close may have a paler digit at its end.)"""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    left, wide = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_WIDTH]
    side = (left == 0) | (left + wide == mask.shape[1])
    side[0] = False  # the background
    if count <= 2 or not side.any():
        return mask
    strength = np.zeros(count)
    for k, (x, y, w, h, _) in enumerate(stats[1:], 1):
        box = (slice(y, y + h), slice(x, x + w))
        strength[k] = np.quantile(ink[box][labels[box] == k], 0.9)
    drop = side & (strength < SIDE_FAINT * strength.max())
    drop[0] = True
    return np.where(drop[labels], 0, mask).astype(np.uint8)


def make_strip(ink: np.ndarray, mask: np.ndarray, scale: float = 1.0) -> Strip | None:
    """The strip of the number whose ink strength (0..1) and mask are given (`find_ink`'s, or a
    composed number's); None without ink. `scale`: the working image's pixels per pixel of the
    image the boxes are wanted in."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height = digit_height(mask) if len(rows) else None
    if height is None:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = mask[top:bottom, left:right]
    # the ink at and next to the mask (its soft edges), the strongest strokes at 1
    near = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    ink = ink[top:bottom, left:right] * near
    ink = np.clip(ink / max(float(np.percentile(ink[mask > 0], 90)), 1e-6), 0, 1)
    factor = DIGIT_HEIGHT / height
    width = int(np.clip(round(ink.shape[1] * factor * WIDEN), 1, MAX_WIDTH - 2 * MARGIN))
    tall = max(1, round(ink.shape[0] * factor))
    shrink_ink = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    pixels = cv2.resize(ink.astype(np.float32), (width, tall), interpolation=shrink_ink)
    if tall > HEIGHT:  # the rows around the ink's centre of mass
        weight = pixels.sum(axis=1)
        centre = float((weight * np.arange(tall)).sum() / max(float(weight.sum()), 1e-6))
        first = int(np.clip(round(centre - HEIGHT / 2), 0, tall - HEIGHT))
        pixels = pixels[first : first + HEIGHT]
    else:
        above = (HEIGHT - tall) // 2
        pixels = np.pad(pixels, ((above, HEIGHT - tall - above), (0, 0)))
    right_pad = MARGIN + (-(width + 2 * MARGIN)) % STRIDE
    pixels = np.pad(pixels, ((0, 0), (MARGIN, right_pad)))
    return Strip(pixels, mask, (int(left), int(top)), width / mask.shape[1], scale)


def check_widened(record: dict | None, model_dir) -> None:
    """A `UserError` unless the export's line model (its metadata `record`) learned on strips
    WIDEN times as wide as their height's scale, as this version makes them."""
    if (record or {}).get("strip_widen") != WIDEN:
        raise UserError(
            f"{model_dir}: its line model learned on strips of another width than this version "
            "makes; train it again (python tools/train_numbers.py -c configs/numbers/quick.yml "
            f"-o model_dir={model_dir})"
        )


def frames_strip(frames: list[np.ndarray]) -> np.ndarray:
    """(HEIGHT, W) strip pixels of MNIST-like (SIZE, SIZE) frames (0..255), each widened to
    FRAME_STEPS steps, set side by side after MARGIN blank columns (a form's boxes, each box's
    content a digit's frame)."""
    above = (HEIGHT - SIZE) // 2
    rows, columns = (above, HEIGHT - SIZE - above), (MARGIN, MARGIN)
    size = (FRAME_STEPS * STRIDE, SIZE)
    wide = [cv2.resize(f.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) for f in frames]
    return np.pad(np.hstack(wide) / 255.0, (rows, columns))


def frame_spans(count: int) -> list[tuple[int, int]]:
    """The line model's steps [first, end) under each of `count` frames of `frames_strip`."""
    first = MARGIN // STRIDE
    return [(first + FRAME_STEPS * k, first + FRAME_STEPS * (k + 1)) for k in range(count)]
