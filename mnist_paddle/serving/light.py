"""The page's light evened out (page.clean's first step): where light falls unevenly on a page,
a shadow across it or light falling off, the paper's local brightness is estimated and divided
out, so that a shadow's edge is no stroke.

The paper is the page with its strokes closed over, on a coarse copy: a closing as wide as a
quarter of the copy's shorter side, or, for a single digit, a wider one where that hollows out
strokes wider than it (a bold digit cropped close). A page lit evenly is left as it is, and so
is one whose paper, under dark ink, looks darker only inside it (uneven light reaches the
page's edge; a bold digit's filled loop does not). Light ink on a dark ground (chalk on a
board) is turned over; a single digit's ink is taken for light only if it also lies beyond its
border, which is its ground, lit or shaded (a bold dark digit cropped close is not chalk).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

COARSE = 64  # px: the shorter side of the copy the paper's brightness is estimated on
CLOSE = 0.25  # the closing's size, a share of that side: wider than a stroke, as a rule;
WIDE = 0.45  # this share where a closing this wide finds the paper brighter by HOLLOW of its
HOLLOW = 0.05  # brightness on 1% of the page: strokes the narrow one hollowed (a bold digit
# in a close crop; docs/pages.md, "Single digits cropped")
UNEVEN = 0.12  # paper whose brightness varies by less than this share is left as it is
BORDER = 0.05  # the outer 5% of each side of an image: where a lone digit's ground shows


def flatten(gray: np.ndarray, wide: bool = False) -> tuple[np.ndarray, bool]:
    """`gray` as dark ink on a light ground (light ink on a dark ground turned over) and, when
    the light falls unevenly, with the paper's local brightness divided out; and whether it
    was (the page is `shaded`). With `wide` (a single digit, which may fill a close crop),
    strokes wider than the usual closing are looked for (not for numbers: their printed ones
    read a little worse so, docs/pages.md, "Single digits cropped")."""
    gray = gray.astype(np.float32)
    scale = min(1.0, COARSE / min(gray.shape))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # the ground with the strokes closed over, were they dark (and below, were they light)
    size, wide_size = (max(3, int(share * min(small.shape)) | 1) for share in (CLOSE, WIDE))
    dark_ink, edge = _closing(small, size), False
    # a filled loop is no shade (below); on a page smaller than the coarse copy a small print's
    # blurred strokes are as wide as the closing and are not closed over: not there
    inside_only = min(gray.shape) >= COARSE
    even = _even(dark_ink, inside_only)
    if wide and not even:  # uneven light, or strokes wider than the closing left in its ground
        # on a copy half as large: at full size a wide disc costs 14 times a narrow one's work
        half = cv2.resize(small, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        closed = _closing(half, wide_size // 2 | 1, edge=True)
        closed = cv2.resize(closed, small.shape[::-1], interpolation=cv2.INTER_LINEAR)
        (bright,) = quantiles(closed, [0.98])
        (hollowed,) = quantiles(closed - dark_ink, [0.99])
        edge = hollowed > HOLLOW * bright
        if edge:
            size, dark_ink = wide_size, closed
            even = _even(dark_ink, inside_only)
    light_ink = None if even else _closing(small, size, cv2.MORPH_OPEN, edge)
    if light_ink is None or _even(255.0 - light_ink):  # evenly lit: ink the far side of the ground
        # the ground is the page's median, not its border's: a grid's lines may run along it
        low, ground, high = quantiles(small, [0.01, 0.5, 0.99])
        return (255.0 - gray if high - ground > ground - low else gray), False
    if _light_ink(small, size, alone=wide):  # chalk on a board in uneven light: turned over
        gray, paper = 255.0 - gray, 255.0 - light_ink
    else:
        paper = dark_ink
    paper = cv2.GaussianBlur(paper, (0, 0), 1.0)  # closing keeps a shadow's edge: blur little
    (high,) = quantiles(paper, [0.98])
    paper = cv2.resize(paper, gray.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return np.clip(gray / np.maximum(paper, 1.0) * high, 0, 255).astype(np.float32), True


def _closing(
    image: np.ndarray, size: int, op: int = cv2.MORPH_CLOSE, edge: bool = False
) -> np.ndarray:
    """`image` closed (or opened: `op`) by a disc `size` px across. With `edge`, the image's
    edge is carried outward first, so that a shadow along it stays shade however narrow it is
    (with cv2's own border, a closing fills it in from the page's side)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    if not edge:
        return cv2.morphologyEx(image, op, kernel)
    big = cv2.copyMakeBorder(image, size, size, size, size, cv2.BORDER_REPLICATE)
    return cv2.morphologyEx(big, op, kernel)[size:-size, size:-size]


def quantiles(values: np.ndarray, qs: list[float]) -> list[float]:
    """np.quantile(values, qs) (linear interpolation) by one partial sort: several times faster
    on a page's few thousand pixels, equal within float32 rounding."""
    values = values.ravel()
    positions = [q * (values.size - 1) for q in qs]
    below = [math.floor(p) for p in positions]
    above = [min(b + 1, values.size - 1) for b in below]
    ordered = np.partition(values, sorted(set(below + above)))
    return [
        float(ordered[b]) + (float(ordered[a]) - float(ordered[b])) * (p - b)
        for p, b, a in zip(positions, below, above)
    ]


def _even(paper: np.ndarray, inside_only: bool = False) -> bool:
    """Whether the paper's brightness varies by less than UNEVEN of itself, or, with
    `inside_only`, is that much darker only inside the page: uneven light reaches the page's
    edge, where a bold digit's filled loop, which the closing could not open up, does not. (Not
    for the ground under light ink: there the page's lit middle would pass for a loop.)"""
    low, high = quantiles(paper, [0.02, 0.98])
    if high <= 0 or (high - low) / high < UNEVEN:
        return True
    if not inside_only:
        return False
    edge = min(paper[0].min(), paper[-1].min(), paper[:, 0].min(), paper[:, -1].min())
    return bool(edge >= (1 - UNEVEN) * high)


def _light_ink(small: np.ndarray, size: int, alone: bool = False) -> bool:
    """Whether the strokes are lighter than what is around them: the pixels far from their
    neighbourhood's median are more often lighter than it (a shadow's edge, or a page's overall
    brightness, is no stroke and says nothing). With `alone` (a single digit), the page must
    also reach further above its border's light end than below its dark end: a bold digit
    filling a close crop is most of its neighbourhoods, so the paper in its loops and around
    it looks like light strokes; its border, shaded or lit, is paper all the same."""
    around = cv2.medianBlur(np.clip(small, 0, 255).astype(np.uint8), min(size, 255))
    off = small - around
    (spread,) = quantiles(np.abs(off), [0.99])
    strokes = np.abs(off) > 0.5 * spread
    lighter = np.count_nonzero(strokes & (off > 0)) > np.count_nonzero(strokes & (off < 0))
    if lighter and alone:
        ground_low, ground_high = quantiles(border(small), [0.05, 0.95])
        low, high = quantiles(small, [0.01, 0.99])
        lighter = high - ground_high > ground_low - low
    return bool(lighter)


def border(image: np.ndarray) -> np.ndarray:
    """The pixels of the outer BORDER of each side of `image`, as one array."""
    height, width = image.shape
    edge_h, edge_w = max(1, round(height * BORDER)), max(1, round(width * BORDER))
    return np.concatenate(
        [
            image[:edge_h].ravel(),
            image[-edge_h:].ravel(),
            image[:, :edge_w].ravel(),
            image[:, -edge_w:].ravel(),
        ]
    )
