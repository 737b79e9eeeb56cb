"""The pages people bring: digits written on ruled or squared paper, one digit per printed box of a
form, and printed numbers photographed at an angle with a shadow across the page.

Each function takes ink already composed (a digit or a number: (H, W) coverage 0..1, and for
boxes the digits apart) and returns a BGR page; `handwritten` writes MNIST digits on a page of
one kind. bench/pages.py makes the evaluation groups with them from MNIST *test* digits and the
evaluation fonts, the number stage's check (number_check.py) its boxed numbers from validation
digits; the reader's page cleaning (serving/page.py) was tuned on pages made from training
digits and training fonts.
"""

from __future__ import annotations

import cv2
import numpy as np

from mnist_paddle.train.synth import compose, handwritten_number

SCALE = (1.5, 5.0)  # MNIST's 28-px digits are written this many times larger
MNIST_HEIGHT = 20  # px: an MNIST digit's ink is about this tall in its 28x28 frame
PAPER = (200, 255)  # gray levels of paper, per channel
LINE_COLOURS = [  # BGR: pale blue, grey, red (a margin), dark blue, black
    (230, 190, 150), (170, 170, 170), (90, 90, 220), (160, 90, 40), (40, 40, 40),
]  # fmt: skip


def handwritten(kind: str, digits: list[np.ndarray], rng) -> np.ndarray:
    """MNIST digits written on a page of `kind` (ruled, squared, boxes)."""
    scale = rng.uniform(*SCALE)
    height = MNIST_HEIGHT * scale
    if kind == "boxes":
        return boxes([_enlarged(_cropped(d), scale) for d in digits], height, rng)
    if len(digits) == 1:
        ink = _cropped(digits[0])
    else:
        ink, _ = handwritten_number(digits, rng)
    page = ruled if kind == "ruled" else squared
    return page(_enlarged(ink, scale), height, rng)


def ruled(ink: np.ndarray, digit_height: float, rng) -> np.ndarray:
    """`ink` written on ruled paper: horizontal rules every 1-1.6 digit heights across the whole
    page, the writing sitting on a rule or crossing one, and on a third of the pages a vertical
    margin rule, which may cross the writing."""
    spacing = digit_height * rng.uniform(1.0, 1.6)
    page, (top, left) = _page_around(ink, digit_height, rng)
    # the rule the writing sits on lies near its bottom, a little above or below
    base = top + ink.shape[0] - rng.uniform(-0.25, 0.35) * digit_height
    rows = np.arange(base % spacing, page.shape[0], spacing)
    lines = _rules(page.shape, rows, [], _thickness(digit_height, rng))
    if rng.random() < 1 / 3:
        x = left + rng.uniform(-0.3, 1.0) * ink.shape[1]  # before the writing, or through it
        lines = np.maximum(lines, _rules(page.shape, [], [x], _thickness(digit_height, rng)))
    return _draw(page, lines, rng)


def squared(ink: np.ndarray, digit_height: float, rng) -> np.ndarray:
    """`ink` written on squared paper: a grid of squares 0.5-0.9 digit heights a side."""
    spacing = digit_height * rng.uniform(0.5, 0.9)
    page, _ = _page_around(ink, digit_height, rng)
    offset = rng.uniform(0, spacing, 2)
    rows = np.arange(offset[0], page.shape[0], spacing)
    cols = np.arange(offset[1], page.shape[1], spacing)
    lines = _rules(page.shape, rows, cols, _thickness(digit_height, rng, thin=True))
    return _draw(page, lines, rng)


def boxes(digits: list[np.ndarray], digit_height: float, rng, apart: bool | None = None):
    """Each ink of `digits` (all `digit_height` tall) in its own printed box of a form: touching
    boxes (a comb, each wall shared) or boxes `apart` (None: either, even odds). BGR."""
    box_h = round(digit_height * rng.uniform(1.3, 1.7))
    box_w = round(max(d.shape[1] for d in digits) * rng.uniform(1.15, 1.5) + 0.2 * digit_height)
    box_w = max(box_w, round(0.8 * box_h))
    apart = rng.random() >= 0.5 if apart is None else apart
    gap = round(box_w * rng.uniform(0.1, 0.4)) if apart else 0
    width = len(digits) * box_w + (len(digits) - 1) * gap
    margin = round(digit_height * rng.uniform(0.3, 1.0))
    alpha = np.zeros((box_h + 2 * margin, width + 2 * margin), np.float32)
    frame = np.zeros_like(alpha)
    thickness = _thickness(digit_height, rng)
    for k, digit in enumerate(digits):
        x0, y0 = margin + k * (box_w + gap), margin
        cv2.rectangle(frame, (x0, y0), (x0 + box_w, y0 + box_h), 1.0, thickness)
        # the digit inside its box, off centre a little (and sometimes touching a wall)
        h, w = digit.shape
        dy = int(np.clip((box_h - h) / 2 + rng.normal(0, 0.12) * box_h, 0, box_h - h))
        dx = int(np.clip((box_w - w) / 2 + rng.normal(0, 0.12) * box_w, 0, box_w - w))
        region = alpha[y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w]
        np.maximum(region, digit[: region.shape[0], : region.shape[1]], out=region)
    colour = np.array(LINE_COLOURS[rng.integers(len(LINE_COLOURS))], np.float32)
    return _layers(alpha, frame, colour, rng)


def photographed(page: np.ndarray, rng, tilt: float = 0.1) -> np.ndarray:
    """A page (BGR) as a phone photographs it: seen at an angle (each corner moved by up to
    `tilt` of the page), lit unevenly, a shadow's edge across it, blurred, noisy."""
    border = tuple(float(v) for v in np.median(page.reshape(-1, 3), axis=0))
    warped, _ = at_an_angle(page, rng, tilt, border)
    warped = warped.astype(np.float32)
    size = warped.shape[1], warped.shape[0]
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    # light falling off across the page, and a shadow: a soft-edged half-plane, darker
    angle = rng.uniform(0, 2 * np.pi)
    along = (xs - size[0] / 2) * np.cos(angle) + (ys - size[1] / 2) * np.sin(angle)
    light = 1 - rng.uniform(0, 0.3) * (along / max(np.abs(along).max(), 1) + 1) / 2
    edge = rng.uniform(-0.3, 0.3) * max(size)
    softness = rng.uniform(0.01, 0.08) * max(size)
    shadow = 1 - rng.uniform(0.25, 0.55) / (1 + np.exp(-(along - edge) / softness))
    lit = warped * (light * shadow)[..., None]
    lit = cv2.GaussianBlur(lit, (0, 0), rng.uniform(0.3, 1.2))
    lit += rng.normal(0, rng.uniform(2, 8), lit.shape)
    return np.clip(lit, 0, 255).astype(np.uint8)


def at_an_angle(page: np.ndarray, rng, tilt: float = 0.1, border=0.0):
    """`page` seen at an angle: each of its corners moved by up to `tilt` of the page's width
    and height, at random. The warped page (its `border` where the page does not reach) and
    the 3x3 perspective matrix that took it there."""
    h, w = page.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = corners + rng.uniform(-tilt, tilt, (4, 2)) * [w, h]
    moved = (moved - moved.min(axis=0)).astype(np.float32)
    size = tuple(int(v) + 1 for v in moved.max(axis=0))
    matrix = cv2.getPerspectiveTransform(corners, moved)
    return cv2.warpPerspective(page, matrix, size, borderValue=border), matrix


def _page_around(ink: np.ndarray, digit_height: float, rng):
    """A blank alpha page with room around `ink` (0.5-2 digit heights each side), `ink` on it,
    and where it lies (top, left)."""
    pad = (digit_height * rng.uniform(0.5, 2.0, 4)).astype(int)
    page = np.pad(ink, ((pad[0], pad[1]), (pad[2], pad[3])))
    return page, (pad[0], pad[2])


def _thickness(digit_height: float, rng, thin: bool = False) -> int:
    """A printed rule's thickness in pixels: a thin pen's at this writing's size."""
    top = 0.05 if thin else 0.08
    return max(1, round(digit_height * rng.uniform(0.02, top)))


def _rules(shape, rows, cols, thickness: int) -> np.ndarray:
    """Coverage (0..1) of straight rules across the page at `rows` and `cols`."""
    lines = np.zeros(shape, np.float32)
    for y in rows:
        cv2.line(lines, (0, round(y)), (shape[1] - 1, round(y)), 1.0, thickness)
    for x in cols:
        cv2.line(lines, (round(x), 0), (round(x), shape[0] - 1), 1.0, thickness)
    return lines


def _draw(ink_page: np.ndarray, lines: np.ndarray, rng) -> np.ndarray:
    colour = np.array(LINE_COLOURS[rng.integers(len(LINE_COLOURS))], np.float32)
    return _layers(ink_page, lines, colour, rng)


def _layers(ink: np.ndarray, lines: np.ndarray, line_colour, rng) -> np.ndarray:
    """Printed `lines` in `line_colour` on paper, the handwriting `ink` over them in a pen's
    colour, then the paper's texture, blur and noise (synth.compose)."""
    paper = rng.uniform(*PAPER, size=3)
    pen = rng.uniform(0, 90, size=3)
    printed = (
        paper[None, None] * (1 - lines[..., None]) + line_colour[None, None] * lines[..., None]
    )
    return compose(ink, printed, pen, rng)  # the pen writes on the printed page


def _cropped(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit (uint8) as ink 0..1, cropped to it."""
    ink = digit.astype(np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _enlarged(ink: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
