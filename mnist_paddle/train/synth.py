"""Synthetic digit images: digits typeset in fonts, and MNIST digits re-rendered as pen on paper;
whole numbers made of either, each pixel knowing whose digit it is (train/numbers.py learns from
them).

Training mixes them into MNIST so that the model reads what people feed it (bench/realworld.py
builds its evaluation set with the same renderers, from the MNIST *test* digits and from fonts
training never sees).

The fonts they are typeset in, and which may be used for what, are fonts.py's.
"""

from __future__ import annotations

import functools
import os
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_paddle.serving.preprocess import to_mnist
from mnist_paddle.train.fonts import training_fonts

LENGTHS = (2, 6)  # digits per composed number, inclusive
TOUCHING = 0.2  # share of neighbouring pairs of a handwritten number that touch or overlap


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def glyph(text: str, font_file: Path, size: int, shear: float = 0.0) -> np.ndarray:
    """`text` typeset in `font_file` at `size` px, slanted by `shear`: (H, W) coverage 0..1."""
    font = _font(font_file, size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, fill=255, font=font)
    return slant(np.asarray(image, np.float32) / 255.0, shear)


def slant(image: np.ndarray, shear: float, flags: int = cv2.INTER_LINEAR) -> np.ndarray:
    """`image` sheared by `shear` (the top moves right for a positive one), widened to fit."""
    h, w = image.shape
    matrix = np.float32([[1, shear, max(0.0, -shear * h)], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (w + int(abs(shear) * h) + 1, h), flags=flags)


def pen_on_paper(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 MNIST digit (uint8) as a BGR photo of pen on paper."""
    height, width = rng.integers(60, 400, size=2)
    size = int(rng.uniform(0.3, 0.9) * min(height, width))  # the 28x28 frame's side on the page
    ink = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    alpha = np.zeros((height, width), np.float32)
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    alpha[top : top + size, left : left + size] = np.clip(ink, 0, 1)
    paper = rng.uniform(170, 255, size=3)  # white to yellowish or grey paper
    pen = rng.uniform(0, 90, size=3)  # black, blue, dark grey ...
    return compose(alpha, paper, pen, rng)


def compose(alpha: np.ndarray, background, color, rng: np.random.Generator) -> np.ndarray:
    """Ink `alpha` in `color` over `background` (a colour, or a page of them: (H, W, 3)), with
    texture, blur, contrast and noise (BGR)."""
    height, width = alpha.shape
    background = np.asarray(background)
    if background.ndim == 1:  # one colour for the whole page
        background = background[None, None, :]
    page = background * (1 - alpha[..., None]) + np.asarray(color)[None, None, :] * alpha[..., None]
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3)
    page += texture[..., None] * rng.uniform(0, 40)  # uneven paper
    blur = rng.uniform(0, 1.5)
    if blur > 0.3:
        page = cv2.GaussianBlur(page, (0, 0), blur)
    contrast = rng.uniform(0.6, 1.0)
    page = (page - page.mean()) * contrast + page.mean()
    page += rng.normal(0, rng.uniform(0, 10), page.shape)  # sensor noise
    return np.clip(page, 0, 255).astype(np.uint8)


def typeset_digits(
    count: int, seed: int, share: tuple[int, int] = (0, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits typeset in the training fonts, as the deployed preprocessing makes them:
    ((N, 28, 28) float32 0..255, (N,) int64 labels). Each digit gets a random font, size, slant
    and stroke weight, so the bold and light cuts between those the fonts ship are covered too.

    `share` (k, n) typesets digits k, k + n, k + 2n, ... only, as they are among all `count`
    (each of n processes typesets its share; loader.py gathers them)."""
    rng = np.random.default_rng([seed, 1])
    fonts = training_fonts()
    draws = []  # every digit's size, font, slant and weight, whichever are typeset
    for _ in range(count):
        size = int(rng.integers(24, 96))
        font, shear = fonts[rng.integers(len(fonts))], rng.uniform(-0.3, 0.3)
        weight = int(rng.integers(-1, 3)) * max(1, size // 32)  # px: thinner, as is, bolder
        draws.append((size, font, shear, weight))
    first, step = share
    labels = typeset_labels(count)[first::step]
    images = np.empty((len(labels), 28, 28), np.float32)
    for i, (label, (size, font, shear, weight)) in enumerate(zip(labels, draws[first::step])):
        images[i] = _stroke_weight(glyph(str(label), font, size, shear), weight)
    return images, labels


def typeset_labels(count: int) -> np.ndarray:
    """The labels of `typeset_digits(count, ...)`: 0-9 in turn."""
    return np.arange(count, dtype=np.int64) % 10


def _stroke_weight(coverage: np.ndarray, weight: int) -> np.ndarray:
    """A glyph's coverage (0..1) made `weight` px bolder (> 0) or thinner (< 0), as a 28x28 digit.
    A thin face that thinning would erase (nothing left that the preprocessing finds ink in) is
    kept as it is: a digit of no ink would be NaN in the training images."""
    kernel = np.ones((abs(weight) + 1,) * 2, np.uint8)
    if weight > 0:
        coverage = cv2.dilate(np.pad(coverage, weight), kernel)
    elif weight < 0:
        thinner = cv2.erode(coverage, kernel)
        if thinner.max() > 0.5:  # not erased away
            image = to_mnist(np.pad(thinner, 4) * 255.0)
            if image is not None:
                return image
    image = to_mnist(np.pad(coverage, 4) * 255.0)
    if image is None:
        raise ValueError("a typeset glyph without ink")  # a font without the digit
    return image


def handwritten_number(digits: list[np.ndarray], rng: np.random.Generator):
    """MNIST digits (28x28 uint8) side by side as one handwritten number: (H, W) ink 0..1 and
    (H, W) uint8 owners (k + 1 where digit k's ink is the strongest, 0 on the background)."""
    pieces = []
    for digit in digits:
        ink = digit.astype(np.float32) / 255.0
        cols = np.flatnonzero(ink.max(axis=0) > 0.1)
        ink = ink[:, cols[0] : cols[-1] + 1]  # (28, w): the digit's own width
        scale = rng.uniform(0.85, 1.15)
        size = (max(1, round(ink.shape[1] * scale)), round(28 * scale))
        pieces.append(cv2.resize(ink, size, interpolation=cv2.INTER_LINEAR))
    height = max(p.shape[0] for p in pieces) + 10
    x, placed = 4, []
    for i, piece in enumerate(pieces):
        if i:
            touching = rng.random() < TOUCHING
            x += int(rng.uniform(-4, -1) if touching else rng.uniform(1, 9))
        top = int(rng.integers(0, height - piece.shape[0] + 1))  # baseline and size vary
        placed.append((x, top, piece))
        x += piece.shape[1]
    canvas = np.zeros((height, x + 4), np.float32)
    owners = np.zeros((height, x + 4), np.uint8)
    for k, (left, top, piece) in enumerate(placed):
        rows, cols = slice(top, top + piece.shape[0]), slice(left, left + piece.shape[1])
        owners[rows, cols][(piece > canvas[rows, cols]) & (piece > 0.05)] = k + 1
        np.maximum(canvas[rows, cols], piece, out=canvas[rows, cols])
    return canvas, owners


def number_on_paper(digits: list[np.ndarray], rng: np.random.Generator):
    """A handwritten number photographed on paper, as `pen_on_paper` does a digit: BGR page,
    and its owners (see `handwritten_number`)."""
    ink, owners = handwritten_number(digits, rng)
    scale = rng.uniform(1.5, 5.0)
    ink = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    owners = cv2.resize(owners, ink.shape[::-1], interpolation=cv2.INTER_NEAREST)
    margins = tuple((int(s * rng.uniform(0.1, 0.6)) + 4,) * 2 for s in ink.shape)
    paper, pen = rng.uniform(170, 255, size=3), rng.uniform(0, 90, size=3)
    return compose(np.pad(ink, margins), paper, pen, rng), np.pad(owners, margins)


def typeset_number(text: str, font_file: Path, rng: np.random.Generator):
    """`text` typeset in `font_file`, dark on light or light on dark (BGR), and its owners."""
    font = _font(font_file, int(rng.integers(20, 120)))
    left, top, right, bottom = font.getbbox(text)
    size = (right - left + 8, bottom - top + 8)
    coverage, owners = np.zeros(size[::-1], np.float32), np.zeros(size[::-1], np.uint8)
    for k, char in enumerate(text):
        image = Image.new("L", size, 0)
        ImageDraw.Draw(image).text((4 - left + font.getlength(text[:k]), 4 - top), char, 255, font)
        glyph = np.asarray(image, np.float32) / 255.0
        owners[(glyph > coverage) & (glyph > 0.05)] = k + 1
        np.maximum(coverage, glyph, out=coverage)
    shear = rng.uniform(-0.3, 0.3)
    coverage, owners = slant(coverage, shear), slant(owners, shear, cv2.INTER_NEAREST)
    margins = tuple((int(s * rng.uniform(0.15, 1.0)) + 4,) * 2 for s in coverage.shape)
    if rng.random() < 0.3:  # light on dark
        background, color = rng.uniform(0, 90, size=3), rng.uniform(170, 255, size=3)
    else:
        background, color = rng.uniform(160, 255, size=3), rng.uniform(0, 100, size=3)
    return compose(np.pad(coverage, margins), background, color, rng), np.pad(owners, margins)


def number_length(rng: np.random.Generator) -> int:
    return int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))


def random_digits(rng: np.random.Generator) -> np.ndarray:
    """The digits of a random number of `number_length` digits."""
    return rng.integers(0, 10, number_length(rng))


def random_number(handwritten: bool, images, labels, fonts, rng: np.random.Generator):
    """A random number's digits, and its page (BGR) and owners: handwritten from `images`
    (MNIST digits, uint8, with their `labels`) on paper, or typeset in one of `fonts`."""
    if handwritten:
        picks = rng.choice(len(images), size=number_length(rng))
        return labels[picks], *number_on_paper(list(images[picks]), rng)
    digits = random_digits(rng)
    text = "".join(str(d) for d in digits)
    return digits, *typeset_number(text, fonts[rng.integers(len(fonts))], rng)


def in_parallel(work, images, labels, handwritten: int, typeset: int, seed: int, parts: int = 8):
    """`work((images, labels, n_handwritten, n_typeset, seed))` for `parts` shares of the numbers
    to make, in one process per core, with a line of progress per part: the parts' results, in
    order (each part's seed is [seed, part])."""
    import paddle  # the workers must not report the pool's SIGTERM as a crash

    jobs = [
        (images, labels, n, t, [seed, k])
        for k, (n, t) in enumerate(zip(_share(handwritten, parts), _share(typeset, parts)))
    ]
    pool = Pool(min(parts, os.cpu_count() or 1), initializer=paddle.disable_signal_handler)
    try:
        done = []
        for part in pool.imap(work, jobs):
            done.append(part)
            print(f"  examples: {len(done)}/{parts} parts made", flush=True)
        pool.close()  # workers end on their own: no SIGTERM, which Paddle would report
    finally:
        pool.terminate()
        pool.join()
    return done


def _share(total: int, parts: int) -> list[int]:
    return [total // parts + (k < total % parts) for k in range(parts)]
