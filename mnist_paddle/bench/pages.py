"""The evaluation set's real pages (bench/realworld.py writes them): digits and numbers written on
ruled and on squared paper and in a form's boxes, and printed ones photographed at an angle
with a shadow across the page (train/pages.py draws them).

    ruled_digits, squared_digits, boxes_digits     one handwritten digit a page
    photo_digits                                   one printed digit a page
    ruled_numbers, squared_numbers, boxes_numbers  a number of 2-6 handwritten digits a page
    photo_numbers                                  a printed number of 2-6 digits a page
    photo_crops                                    one printed digit, the photo cropped close

Handwritten digits are MNIST digits (the test digits for the evaluation set), printed ones are
set in the fonts given (the evaluation fonts for it).
"""

from __future__ import annotations

import numpy as np

from mnist_paddle.train import pages, synth

DIGIT_GROUPS = ("ruled_digits", "squared_digits", "boxes_digits", "photo_digits")
NUMBER_GROUPS = ("ruled_numbers", "squared_numbers", "boxes_numbers", "photo_numbers")
CROP_GROUPS = ("photo_crops",)  # made apart (make_crops), so that the groups above stay as made


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
            made.append((group, label, pages.handwritten(kind, list(images[picks]), rng)))
    return made


def make_crops(count: int, fonts, rng) -> list[tuple[str, str, np.ndarray]]:
    """`count` photographed printed digits, each photo cropped close around its digit (people
    crop their photos): (group, label, BGR page)."""
    made = []
    for _ in range(count):
        text = str(rng.integers(0, 10))
        made.append(("photo_crops", text, _photographed_print(text, fonts, rng, (0.0, 0.1), 0)))
    return made


def _photographed_print(text: str, fonts, rng, margin=(0.3, 1.0), least=4) -> np.ndarray:
    """`text` printed in one of `fonts` on paper, photographed (pages.photographed); around the
    print (its glyph's 4 px), `least` px and a share of its size drawn from `margin`."""
    size = int(rng.integers(24, 120))
    coverage = synth.glyph(text, fonts[rng.integers(len(fonts))], size, rng.uniform(-0.2, 0.2))
    margins = tuple((int(s * rng.uniform(*margin)) + least,) * 2 for s in coverage.shape)
    paper, ink = rng.uniform(190, 255, size=3), rng.uniform(0, 80, size=3)
    page = synth.compose(np.pad(coverage, margins), paper, ink, rng)
    return pages.photographed(page, rng)
