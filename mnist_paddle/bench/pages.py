"""The evaluation set's real pages (bench/realworld.py writes them): digits and numbers written on
ruled and on squared paper and in a form's boxes, and printed ones photographed at an angle
with a shadow across the page (train/pages.py draws them).

    ruled_digits, squared_digits, boxes_digits     one handwritten digit a page
    photo_digits                                   one printed digit a page
    ruled_numbers, squared_numbers, boxes_numbers  a number of 2-6 handwritten digits a page
    photo_numbers                                  a printed number of 2-6 digits a page

Handwritten digits are MNIST digits (the test digits for the evaluation set), printed ones are
set in the fonts given (the evaluation fonts for it).
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_paddle.train import pages, synth

DIGIT_GROUPS = ("ruled_digits", "squared_digits", "boxes_digits", "photo_digits")
NUMBER_GROUPS = ("ruled_numbers", "squared_numbers", "boxes_numbers", "photo_numbers")
SCALE = (1.5, 5.0)  # MNIST's 28-px digits are written this many times larger
MNIST_HEIGHT = 20  # px: an MNIST digit's ink is about this tall in its 28x28 frame


def make_pages(count: int, images, labels, fonts, rng) -> list[tuple[str, str, np.ndarray]]:
    """`count` pages of each group: (group, label, BGR page), in the order of the groups."""
    made = []
    for group in DIGIT_GROUPS + NUMBER_GROUPS:
        kind = group.split("_")[0]
        length = 1 if group in DIGIT_GROUPS else None
        for _ in range(count):
            n = length or synth.number_length(rng)
            if kind == "photo":
                text = "".join(str(d) for d in rng.integers(0, 10, n))
                made.append((group, text, _photographed_print(text, fonts, rng)))
                continue
            picks = rng.choice(len(images), n)
            label = "".join(str(labels[k]) for k in picks)
            made.append((group, label, handwritten(kind, list(images[picks]), rng)))
    return made


def handwritten(kind: str, digits: list[np.ndarray], rng) -> np.ndarray:
    """MNIST digits written on a page of `kind` (ruled, squared, boxes)."""
    scale = rng.uniform(*SCALE)
    height = MNIST_HEIGHT * scale
    if kind == "boxes":
        return pages.boxes([_enlarged(_cropped(d), scale) for d in digits], height, rng)
    if len(digits) == 1:
        ink = _cropped(digits[0])
    else:
        ink, _ = synth.handwritten_number(digits, rng)
    page = pages.ruled if kind == "ruled" else pages.squared
    return page(_enlarged(ink, scale), height, rng)


def _photographed_print(text: str, fonts, rng) -> np.ndarray:
    """`text` printed in one of `fonts` on paper, photographed (pages.photographed)."""
    size = int(rng.integers(24, 120))
    coverage = synth.glyph(text, fonts[rng.integers(len(fonts))], size, rng.uniform(-0.2, 0.2))
    margins = tuple((int(s * rng.uniform(0.3, 1.0)) + 4,) * 2 for s in coverage.shape)
    paper, ink = rng.uniform(190, 255, size=3), rng.uniform(0, 80, size=3)
    page = synth.compose(np.pad(coverage, margins), paper, ink, rng)
    return pages.photographed(page, rng)


def _cropped(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit (uint8) as ink 0..1, cropped to it."""
    ink = digit.astype(np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _enlarged(ink: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
