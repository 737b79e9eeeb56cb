"""The candidate digits of a whole number: the pieces of ink an image holds, grouped, cut where
digits may touch, and every run of neighbouring pieces that may be one digit (numbers.py reads
them; train/numbers.py labels them to teach the number model).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mnist_paddle.serving.preprocess import digit_mask, ink_strength, ink_to_mnist

OVERLAP = 0.4  # pieces overlapping horizontally by this share of the narrower one: one digit,
STACKED = 0.5  # ... if they share fewer rows than this share of the shorter one
MAYBE_WIDE = 0.6  # a group wider than this times the digit height may be touching digits;
MAYBE_WIDE_ALONE = 0.85  # ... read by the digit model alone, which has no 'not one digit'
MIN_PART = 0.15  # cuts are at least this share of the group's height apart
MAX_DIGIT = 1.3  # no digit is wider than this times the height
CUTS = 8  # candidate cuts per group, besides its two ends
PAD = 2  # pixels around a digit's crop
NOISE = 0.25  # marks smaller than this share of the tallest piece in both directions are specks
FRAGMENT = 0.55  # pieces shorter than this share of the tallest one are fragments of a digit
ATTACH = 0.35  # ... joined to the nearest digit within this share of the tallest piece
WORK_HEIGHT = 48  # px: a digit's height the reader works at (larger images are shrunk)
HYSTERESIS = 0.6  # faint ink down to this share of the strong threshold joins strong strokes


@dataclass
class Segment:
    """Pixels of one digit, or of a candidate: their bounding box (x, y, w, h) in the image and
    the mask inside it, (h, w) uint8."""

    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass
class Candidates:
    """What may be the digits of a number: the image's ink (with PAD pixels of margin), the
    atoms (pieces no reading splits: whole groups, or the parts of a wide group between two of
    its cuts), left to right, and the spans: {(i, j): atoms i to j - 1 as one Segment}."""

    ink: np.ndarray
    atoms: list[Segment]
    spans: dict[tuple[int, int], Segment]
    height: float  # a digit's height in this number, px
    scale: float  # the image was shrunk by this much first

    def box(self, key: tuple[int, int]) -> list[int]:
        """The span's box [x, y, w, h] in the pixels of the image as given."""
        return [round(v / self.scale) for v in self.spans[key].box]

    def images(self, keys=None) -> list[np.ndarray]:
        """The spans of `keys` (default: all, in the order of `spans`) as 28x28 MNIST-like
        digits."""
        return [_digit_image(self.ink, self.spans[key]) for key in (keys or self.spans)]


def candidates(gray: np.ndarray, maybe_wide: float = MAYBE_WIDE) -> Candidates | None:
    """The candidate digits of the number in `gray`, or None when the image has no ink. Groups
    wider than `maybe_wide` times the digit height are cut. Boxes are in the image shrunk by
    `Candidates.scale` (see `_working_scale`)."""
    scale = _working_scale(gray)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ink = ink_strength(gray)
    mask = _number_mask(ink) if ink is not None else None
    if mask is None:
        return None
    groups = sorted(_groups(mask), key=lambda g: g.box[0])
    height = float(np.median([g.box[3] for g in groups]))  # a digit's height in this number
    atoms, whole = [], []  # whole: the (first, end) atoms of each group
    for group in groups:
        parts = _split(group, height, maybe_wide)
        whole.append((len(atoms), len(atoms) + len(parts)))
        atoms.extend(parts)
    spans = {}
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms) + 1):
            part = atoms[i] if j == i + 1 else union(atoms[i:j])
            if j == i + 1 or (i, j) in whole or part.box[2] <= MAX_DIGIT * height:
                spans[(i, j)] = part
            else:
                break
    return Candidates(np.pad(ink, PAD), atoms, spans, height, scale)


def _working_scale(gray: np.ndarray) -> float:
    """How much to shrink the image so that its digits are about WORK_HEIGHT pixels tall: the
    28x28 digits need no more, and every step is faster. The digits' height is estimated on a
    quarter-size copy: the median height of its larger pieces of ink."""
    if min(gray.shape) < 4 * WORK_HEIGHT:
        return 1.0
    small = cv2.resize(gray, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    ink = ink_strength(small)
    mask = digit_mask(ink) if ink is not None else None
    if mask is None:
        return 1.0
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    height = 4.0 * float(np.median(heights[heights >= 0.5 * heights.max()]))
    return min(1.0, WORK_HEIGHT / height)


def _number_mask(ink: np.ndarray) -> np.ndarray | None:
    """The ink's mask, with hysteresis: faint pixels count where they join strong ones, so that a
    thin or light stroke does not break a digit into pieces."""
    strong = digit_mask(ink)
    if strong is None:
        return None
    level = (ink[strong > 0]).min()  # the strong mask's threshold, as digit_mask chose it
    weak = (ink >= HYSTERESIS * level).astype(np.uint8)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.unique(labels[strong > 0])
    return np.isin(labels, keep[keep > 0]).astype(np.uint8)


def _groups(mask: np.ndarray) -> list[Segment]:
    """Connected pieces grouped into digits: pieces far shorter than the digits are fragments
    of the nearest digit (a stroke broken by a faint pen); pieces that overlap horizontally are
    one digit (a 5 whose top stroke stands apart); specks go."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    boxes = {i: tuple(int(v) for v in stats[i, :4]) for i in range(1, count)}  # x, y, w, h
    tallest = max(h for _, _, _, h in boxes.values())
    bodies = [i for i, b in boxes.items() if b[3] >= FRAGMENT * tallest]
    members = {i: [i] for i in bodies}
    for i, box in boxes.items():
        if i in members:
            continue
        nearest = min(bodies, key=lambda j: _gap(box, boxes[j]))
        if _gap(box, boxes[nearest]) <= ATTACH * tallest:
            members[nearest].append(i)
        elif max(box[2], box[3]) >= NOISE * tallest:  # a small mark on its own, kept
            members[i] = [i]
    groups: list[list[int]] = []
    spans: list[list[int]] = []  # [left, right, top, bottom) of each group
    for i in sorted(members, key=lambda i: boxes[i][0]):
        parts = [boxes[k] for k in members[i]]
        left, top = min(b[0] for b in parts), min(b[1] for b in parts)
        right, bottom = max(b[0] + b[2] for b in parts), max(b[1] + b[3] for b in parts)
        for group, span in zip(groups, spans):
            across = min(right, span[1]) - max(left, span[0])  # columns both cover
            along = min(bottom, span[3]) - max(top, span[2])  # rows both cover
            # one above the other (a 5's top stroke), not side by side (two slanted digits)
            stacked = along < STACKED * min(bottom - top, span[3] - span[2])
            if stacked and across >= OVERLAP * min(right - left, span[1] - span[0]):
                group.extend(members[i])
                span[:] = [
                    min(left, span[0]),
                    max(right, span[1]),
                    min(top, span[2]),
                    max(bottom, span[3]),
                ]
                break
        else:
            groups.append(list(members[i]))
            spans.append([left, right, top, bottom])
    segments = []
    for group, (left, right, top, bottom) in zip(groups, spans):
        crop = np.isin(labels[top:bottom, left:right], group).astype(np.uint8)
        segments.append(Segment((left, top, right - left, bottom - top), crop))
    return segments


def _gap(a: tuple, b: tuple) -> float:
    """Distance between two boxes (x, y, w, h): 0 when they touch or overlap."""
    dx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return float(np.hypot(dx, dy))


def _split(segment: Segment, height: float, maybe_wide: float) -> list[Segment]:
    """A group no wider than a digit as it is; a wider one, which may be touching digits, cut
    into parts at the columns where the least ink crosses (no two cuts closer than a thin digit)."""
    w, box_h = segment.box[2], segment.box[3]
    h = max(box_h, height)  # a short wide digit (a flat 2) is not two digits
    lo, hi = max(1, round(MIN_PART * h)), w - max(1, round(MIN_PART * h))
    if w <= maybe_wide * h or hi <= lo:
        return [segment]
    columns = segment.mask.sum(axis=0)  # ink crossing each column
    cuts = [0, w]
    for c in lo + np.argsort(columns[lo:hi], kind="stable"):
        if all(abs(int(c) - k) >= MIN_PART * h for k in cuts):
            cuts.append(int(c))
        if len(cuts) == CUTS + 2:
            break
    cuts.sort()
    parts = [_columns(segment, a, b) for a, b in zip(cuts, cuts[1:])]
    return [p for p in parts if p is not None]


def union(parts: list[Segment]) -> Segment:
    """Segments as one: the box around them all and their masks in it."""
    left = min(p.box[0] for p in parts)
    top = min(p.box[1] for p in parts)
    right = max(p.box[0] + p.box[2] for p in parts)
    bottom = max(p.box[1] + p.box[3] for p in parts)
    mask = np.zeros((bottom - top, right - left), np.uint8)
    for p in parts:
        x, y, w, h = p.box
        mask[y - top : y - top + h, x - left : x - left + w] |= p.mask
    return Segment((left, top, right - left, bottom - top), mask)


def _columns(segment: Segment, left: int, right: int) -> Segment | None:
    """The part of `segment` between its columns left and right, cropped to its ink."""
    part = segment.mask[:, left:right]
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    if not len(rows):
        return None
    x, y = segment.box[0] + left + cols[0], segment.box[1] + rows[0]
    crop = part[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return Segment((int(x), int(y), crop.shape[1], crop.shape[0]), crop)


def _digit_image(padded_ink: np.ndarray, segment: Segment) -> np.ndarray:
    """The segment as a (28, 28) MNIST-like digit, made from its own pixels only. `padded_ink`:
    the image's ink with PAD pixels of margin, room for ink_to_mnist's dilation of the mask."""
    x, y, w, h = segment.box
    crop = padded_ink[y : y + h + 2 * PAD, x : x + w + 2 * PAD]
    return ink_to_mnist(crop, cv2.copyMakeBorder(segment.mask, *[PAD] * 4, cv2.BORDER_CONSTANT))
