"""Training strips for the line model, composed at strip scale while it trains.

A number is made the way the evaluation set makes one (synth.handwritten_number: MNIST digits of
varying size, baseline and spacing, a share of neighbours touching), or typeset in a training
font (some of those seen at an angle, as on a photographed page), and its ink made a strip by
the reader's own code (serving/strip.make_strip). A strip takes well under a millisecond, so
every batch is new: no page is rendered, none stored. (Roughening the ink as a photo's might
come out, bolder or finer, blurred, uneven, read worse: 83.2% against 84.4% of handwritten
check numbers, docs/numbers.md.)

Each strip comes with its digits and the strip column of each digit's centre (for the framewise
part of the loss, train/numbers.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_paddle.serving.strip import HEIGHT, MARGIN, STRIDE, make_strip
from mnist_paddle.train import pages, synth

MASK_LEVEL = 0.2  # ink above this is the mask a composed number's strip is made with
TYPESET_SIZE = (24, 64)  # px: the font sizes typeset numbers are drawn at
SLANT = 0.3  # typeset numbers are sheared by up to this either way (italics)


@dataclass
class Batch:
    pixels: np.ndarray  # (N, 1, HEIGHT, W) float32, ink 0..1, W a multiple of STRIDE
    widths: np.ndarray  # (N,) int64: each strip's own width, the rest is padding
    labels: np.ndarray  # (N, length) int32: digit d as d + 1 (0 is the line model's blank)
    centres: np.ndarray  # (N, length) float32: the strip column of each digit's centre


def batch(
    images: np.ndarray,
    labels: np.ndarray,
    fonts: tuple[Path, ...],
    count: int,
    length: int,
    typeset_share: float,
    at_an_angle: float,
    rng: np.random.Generator,
) -> Batch:
    """`count` strips of `length`-digit numbers: handwritten from `images` (MNIST digits, uint8)
    with their `labels`, or, `typeset_share` of them, typeset in one of `fonts` (`at_an_angle`
    of those seen at an angle, as on a photographed page)."""
    made = []
    for _ in range(count):
        if rng.random() < typeset_share:
            made.append(typeset(fonts, length, rng, at_an_angle))
        else:
            made.append(handwritten(images, labels, length, rng))
    width = max(pixels.shape[1] for pixels, _, _ in made)
    out = Batch(
        np.zeros((count, 1, HEIGHT, width), np.float32),
        np.array([pixels.shape[1] for pixels, _, _ in made], np.int64),
        np.array([digits for _, digits, _ in made], np.int32) + 1,
        np.array([centres for _, _, centres in made], np.float32),
    )
    for k, (pixels, _, _) in enumerate(made):
        out.pixels[k, 0, :, : pixels.shape[1]] = pixels
    return out


def handwritten(images, labels, length: int, rng) -> tuple[np.ndarray, list[int], list[float]]:
    """A strip of `length` MNIST digits written as a number: (pixels, digits, centres)."""
    picks = rng.choice(len(images), length)
    ink, owners = synth.handwritten_number(list(images[picks]), rng)
    columns = [np.flatnonzero((owners == k + 1).any(axis=0)) for k in range(length)]
    centres = [(c[0] + c[-1] + 1) / 2 if len(c) else 0.0 for c in columns]
    pixels, centres = _strip(ink, centres)
    return pixels, [int(d) for d in labels[picks]], centres


def typeset(
    fonts, length: int, rng, at_an_angle: float
) -> tuple[np.ndarray, list[int], list[float]]:
    """A strip of a random `length`-digit number typeset in one of `fonts`, seen at an angle
    with the odds `at_an_angle`."""
    digits = [int(d) for d in rng.integers(0, 10, length)]
    text = "".join(str(d) for d in digits)
    font = _font(fonts[rng.integers(len(fonts))], int(rng.integers(*TYPESET_SIZE)))
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(image).text((4 - left, 4 - top), text, fill=255, font=font)
    ink = np.asarray(image, np.float32) / 255.0
    ends = [font.getlength(text[:k]) for k in range(length + 1)]
    shear = rng.uniform(-SLANT, SLANT)
    # the shear moves each column by shear * (rows below it); the centre row moves by half
    shift = shear * ink.shape[0] / 2 + max(0.0, -shear * ink.shape[0])
    centres = [4 - left + (a + b) / 2 + shift for a, b in zip(ends, ends[1:])]
    ink = synth.slant(ink, shear)
    if rng.random() < at_an_angle:
        ink, centres = _at_an_angle(ink, centres, rng)
    pixels, centres = _strip(ink, centres)
    return pixels, digits, centres


def _at_an_angle(ink: np.ndarray, centres: list[float], rng) -> tuple[np.ndarray, list[float]]:
    """Typeset `ink` on a page with a photo's margins (bench/pages.py), seen at an angle as a
    photographed page is (pages.at_an_angle), and the ink columns of its digits' `centres`
    (taken at mid-height) there."""
    top, left = (int(s * rng.uniform(0.3, 1.0)) + 4 for s in ink.shape)
    warped, matrix = pages.at_an_angle(np.pad(ink, ((top, top), (left, left))), rng)
    points = np.float32([[[left + c, top + ink.shape[0] / 2] for c in centres]])
    return warped, [float(x) for x, _ in cv2.perspectiveTransform(points, matrix)[0]]


@functools.cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _strip(ink: np.ndarray, centres: list[float]) -> tuple[np.ndarray, list[float]]:
    """The strip of composed ink (serving/strip.make_strip, as a page's), and the strip columns
    of the ink columns `centres`."""
    mask = (ink > MASK_LEVEL).astype(np.uint8)
    strip = make_strip(ink, mask)
    left = int(np.flatnonzero(mask.any(axis=0))[0])
    return strip.pixels, [MARGIN + (c - left) * strip.per_pixel for c in centres]


def frame_targets(batch: Batch, steps: int) -> np.ndarray:
    """(N, steps) int64 targets for the framewise loss: each digit's label at the step holding
    its centre, blank elsewhere in the strip, and -100 (not counted) beside a centre, where the
    digit may as well still be read, and in the padding."""
    targets = np.full((len(batch.widths), steps), -100, np.int64)
    for k, width in enumerate(batch.widths):
        targets[k, : width // STRIDE] = 0
        at = np.minimum((batch.centres[k] // STRIDE).astype(int), steps - 1)
        for beside in (at - 1, at + 1):
            ok = (beside >= 0) & (beside < steps)
            beside = beside[ok]
            targets[k, beside[targets[k, beside] == 0]] = -100
        targets[k, at] = batch.labels[k]
    return targets
