"""Whole numbers: the digits of one image, read left to right (`deploy/infer.py --number`).

1. The ink and its mask are found as for a single digit (preprocess.py: either polarity, paper
   texture smoothed, specks dropped).
2. Faint ink that joins strong strokes counts (hysteresis), pieces much shorter than the digits
   join the nearest digit, and pieces that overlap horizontally are one digit: a stroke broken by
   a light pen, a 5 whose top stroke stands apart, or a 4 with a gap stays one digit.
3. A group wider than a digit may be several touching digits. Candidate cuts are the columns
   where the least ink crosses; every span between two cuts is read by the model, and the
   reading with the best total of log-probabilities, a prior on each digit's width (a 1 is
   narrow, the others are not) and a small price per digit wins.
4. Every digit is made 28x28 the MNIST way and all of them go through the model in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving.preprocess import digit_mask, ink_strength, ink_to_mnist, read_gray

OVERLAP = 0.4  # pieces overlapping horizontally by this share of the narrower one: one digit
MAYBE_WIDE = 0.85  # a group wider than this times its height may be touching digits
MIN_PART = 0.15  # cuts are at least this share of the group's height apart
MAX_DIGIT = 1.3  # no digit is wider than this times the height
CUTS = 8  # candidate cuts per group, besides its two ends
# widths (share of the height) usual for a 1 and for the other digits; and the price of reading
# one more digit, so that a digit is not cut in two where both halves read well
ONE_WIDTH, DIGIT_WIDTH = (0.0, 0.7), (0.35, 1.15)
PER_DIGIT = -0.3
MIN_HEIGHT = 0.6  # a digit is at least this share of the number's digit height
NOISE = 0.25  # marks smaller than this share of the tallest piece in both directions are specks
FRAGMENT = 0.55  # pieces shorter than this share of the tallest one are fragments of a digit
ATTACH = 0.35  # ... joined to the nearest digit within this share of the tallest piece
HYSTERESIS = 0.5  # faint ink down to this share of the strong threshold joins strong strokes


@dataclass
class Segment:
    """One digit's pixels: its mask (full image size) and bounding box (x, y, w, h)."""

    mask: np.ndarray
    box: tuple[int, int, int, int]


def read_number(recognizer, gray: np.ndarray) -> dict | None:
    """{"number", "prob", "sure", "digits": [{"digit", "prob", "sure", "box"}]} for the number
    in `gray`, or None when the image has no ink. `recognizer`: serving.inference.Recognizer."""
    ink = ink_strength(gray)
    mask = _number_mask(ink) if ink is not None else None
    if mask is None:
        return None
    groups = _groups(mask)
    height = float(np.median([g.box[3] for g in groups]))  # a digit's height in this number
    segments = [s for group in groups for s in _split(recognizer, ink, group, height)]
    segments.sort(key=lambda s: s.box[0] + s.box[2] / 2)  # left to right by their middle
    digits = [_digit_image(ink, s) for s in segments]
    probs = recognizer.digit_probabilities(digits)
    answers = [recognizer.answer(p) for p in probs]
    result = {
        "number": "".join(str(a["digit"]) for a in answers),
        "prob": round(float(np.prod([a["prob"] for a in answers])), 4),
        "sure": all(a["sure"] for a in answers),
        "digits": [
            {"digit": a["digit"], "prob": a["prob"], "sure": a["sure"], "box": list(s.box)}
            for a, s in zip(answers, segments)
        ],
    }
    result["images"] = digits  # for --debug-dir; the caller removes it
    return result


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
    spans: list[list[int]] = []  # [left, right) of each group
    for i in sorted(members, key=lambda i: boxes[i][0]):
        left = min(boxes[k][0] for k in members[i])
        right = max(boxes[k][0] + boxes[k][2] for k in members[i])
        for group, span in zip(groups, spans):
            overlap = min(right, span[1]) - max(left, span[0])
            if overlap >= OVERLAP * min(right - left, span[1] - span[0]):
                group.extend(members[i])
                span[0], span[1] = min(left, span[0]), max(right, span[1])
                break
        else:
            groups.append(list(members[i]))
            spans.append([left, right])
    return [_segment(np.isin(labels, group).astype(np.uint8)) for group in groups]


def _gap(a: tuple, b: tuple) -> float:
    """Distance between two boxes (x, y, w, h): 0 when they touch or overlap."""
    dx = max(0, max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[1] + a[3], b[1] + b[3]))
    return float(np.hypot(dx, dy))


def _segment(mask: np.ndarray) -> Segment:
    ys, xs = np.nonzero(mask)
    x, y = int(xs.min()), int(ys.min())
    return Segment(mask, (x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1))


def _split(recognizer, ink: np.ndarray, segment: Segment, height: float) -> list[Segment]:
    """`segment` as the digits it most likely holds: one, or several touching ones.

    The group is cut only at candidate columns (where the least ink crosses); every span between
    two of them that could be a digit is read, all in one batch, and the partition with the best
    sum of log-probabilities and shape priors wins (a dynamic program over the cuts). `height`:
    a digit's height in this number (the groups' median), which widths are measured against."""
    x, y, w, box_h = segment.box
    h = max(box_h, height)  # a short wide digit (a flat 2) is not two digits
    if w <= MAYBE_WIDE * h:
        return [segment]
    columns = segment.mask[y : y + box_h, x : x + w].sum(axis=0)  # ink crossing each column
    lo, hi = max(1, round(MIN_PART * h)), w - max(1, round(MIN_PART * h))
    if hi <= lo:
        return [segment]
    order = lo + np.argsort(columns[lo:hi], kind="stable")
    cuts = [0, w]
    for c in order:  # the emptiest columns, not closer to each other than a thin digit
        if all(abs(int(c) - k) >= MIN_PART * h for k in cuts):
            cuts.append(int(c))
        if len(cuts) == CUTS + 2:
            break
    cuts.sort()
    spans = [
        (i, j)
        for i in range(len(cuts))
        for j in range(i + 1, len(cuts))
        if cuts[j] - cuts[i] <= MAX_DIGIT * h
    ]
    parts = {(i, j): _columns(segment, x + cuts[i], x + cuts[j]) for i, j in spans}
    parts = {k: v for k, v in parts.items() if v is not None}
    if (0, len(cuts) - 1) not in parts and not parts:
        return [segment]
    keys = list(parts)
    probs = recognizer.digit_probabilities([_digit_image(ink, parts[k]) for k in keys])
    score = {
        k: float(np.log(p.max() + 1e-9)) + _shape_prior(int(p.argmax()), parts[k], h) + PER_DIGIT
        for k, p in zip(keys, probs)
    }
    # best[j]: (score, spans) of the best reading of the columns up to cut j
    best: list[tuple[float, list] | None] = [(0.0, [])] + [None] * (len(cuts) - 1)
    for j in range(1, len(cuts)):
        options = [
            (best[i][0] + score[(i, j)], best[i][1] + [(i, j)])
            for i in range(j)
            if best[i] is not None and (i, j) in score
        ]
        best[j] = max(options, key=lambda o: o[0]) if options else None
    if best[-1] is None:
        return [segment]
    return [parts[k] for k in best[-1][1]]


def _columns(segment: Segment, left: int, right: int) -> Segment | None:
    """The part of `segment` between image columns left and right, or None if it has no ink."""
    mask = np.zeros_like(segment.mask)
    mask[:, left:right] = segment.mask[:, left:right]
    return _segment(mask) if mask.any() else None


def _shape_prior(digit: int, part: Segment, height: float) -> float:
    """Log-prior of a part's shape for the digit read in it: a 1 is narrow, the others are not,
    and every digit is about as tall as the others; -1 for every tenth of the height outside."""
    lo, hi = ONE_WIDTH if digit == 1 else DIGIT_WIDTH
    width, tall = part.box[2] / height, part.box[3] / height
    return -10.0 * (max(0.0, lo - width, width - hi) + max(0.0, MIN_HEIGHT - tall))


def _digit_image(ink: np.ndarray, segment: Segment) -> np.ndarray:
    """The segment as a (28, 28) MNIST-like digit, made from its own crop only."""
    x, y, w, h = segment.box
    pad = 2
    y0, x0 = max(0, y - pad), max(0, x - pad)
    y1, x1 = min(ink.shape[0], y + h + pad), min(ink.shape[1], x + w + pad)
    return ink_to_mnist(ink[y0:y1, x0:x1], segment.mask[y0:y1, x0:x1])


def write_debug(debug_dir: Path, index: int, name: str, gray: np.ndarray, result: dict) -> None:
    """Each digit's 28x28 image, and the input with the boxes drawn, into `debug_dir`."""
    stem = f"{index:04d}_{name}"
    for k, image in enumerate(result["images"]):
        with atomic_path(Path(debug_dir) / f"{stem}_digit{k}.png") as tmp:
            cv2.imwrite(str(tmp), image.round().astype(np.uint8))
    overview = cv2.cvtColor(np.clip(gray, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(gray.shape) / 300))
    for d in result["digits"]:
        x, y, w, h = d["box"]
        color = (0, 160, 0) if d["sure"] else (0, 0, 220)
        cv2.rectangle(overview, (x, y), (x + w - 1, y + h - 1), color, thickness)
        cv2.putText(
            overview,
            str(d["digit"]),
            (x, max(0, y - 3)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.4, h / 60),
            color,
            thickness,
        )
    with atomic_path(Path(debug_dir) / f"{stem}_boxes.png") as tmp:
        cv2.imwrite(str(tmp), overview)


def read_numbers(recognizer, args: list[str], debug_dir: Path | None = None) -> list[dict]:
    """`read_number` for command-line arguments (files, folders): one result per image, in order,
    {"path", "number", ...} or {"path", "error"}."""
    from mnist_paddle.serving.inference import collect_images

    results = []
    for i, item in enumerate(collect_images(args)):
        if isinstance(item, dict):  # a missing path, a folder without images
            results.append(item)
            continue
        try:
            gray = read_gray(item)
        except UserError as e:
            results.append({"path": str(item), "error": str(e)})
            continue
        result = read_number(recognizer, gray)
        if result is None:
            results.append({"path": str(item), "error": f"{item}: no digit found (no ink)"})
            continue
        if debug_dir is not None:
            write_debug(debug_dir, i, item.stem, gray, result)
        del result["images"]
        results.append({"path": str(item), **result})
    return results
