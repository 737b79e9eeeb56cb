"""Whole numbers: the digits of one image, read left to right (`deploy/infer.py --number`).

1. The ink and its mask are found as for a single digit (preprocess.py: either polarity, paper
   texture smoothed, specks dropped).
2. Faint ink that joins strong strokes counts (hysteresis), pieces much shorter than the digits
   join the nearest digit, and pieces stacked one above the other are one digit: a stroke broken
   by a light pen, a 5 whose top stroke stands apart, or a 4 with a gap stays one digit.
3. A group wider than a digit may be several touching digits. Candidate cuts are the columns
   where the least ink crosses; every span between two cuts is read by the model, and the
   reading with the best total of log-probabilities (the model's own, before the export's
   temperature) and a prior on each digit's shape (a 1 is narrow, the others are not, and none
   is much shorter than the others) wins.
4. Every digit is made 28x28 the MNIST way and all of them go through the model in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving.inference import softmax
from mnist_paddle.serving.preprocess import digit_mask, ink_strength, ink_to_mnist, read_gray

OVERLAP = 0.4  # pieces overlapping horizontally by this share of the narrower one: one digit,
STACKED = 0.5  # ... if they share fewer rows than this share of the shorter one
MAYBE_WIDE = 0.85  # a group wider than this times the digit height may be touching digits
MIN_PART = 0.15  # cuts are at least this share of the group's height apart
MAX_DIGIT = 1.3  # no digit is wider than this times the height
CUTS = 8  # candidate cuts per group, besides its two ends
# widths (share of the digit height) usual for a 1 and for the other digits; these and the
# other constants here were chosen on numbers made of MNIST *training* digits (the validation
# ones) and training fonts, never on the evaluation set
ONE_WIDTH, DIGIT_WIDTH = (0.0, 0.7), (0.35, 1.15)
MIN_HEIGHT = 0.6  # a digit is at least this share of the number's digit height
PAD = 2  # pixels around a digit's crop
NOISE = 0.25  # marks smaller than this share of the tallest piece in both directions are specks
FRAGMENT = 0.55  # pieces shorter than this share of the tallest one are fragments of a digit
ATTACH = 0.35  # ... joined to the nearest digit within this share of the tallest piece
HYSTERESIS = 0.6  # faint ink down to this share of the strong threshold joins strong strokes


@dataclass
class Segment:
    """Pixels of one digit, or of a candidate: their bounding box (x, y, w, h) in the image and
    the mask inside it, (h, w) uint8."""

    box: tuple[int, int, int, int]
    mask: np.ndarray


def read_number(recognizer, gray: np.ndarray) -> dict | None:
    """{"number", "prob", "sure", "digits": [{"digit", "prob", "sure", "box"}]} for the number
    in `gray`, or None when the image has no ink. `recognizer`: serving.inference.Recognizer."""
    ink = ink_strength(gray)
    mask = _number_mask(ink) if ink is not None else None
    if mask is None:
        return None
    groups = sorted(_groups(mask), key=lambda g: g.box[0])
    ink = np.pad(ink, PAD)
    height = float(np.median([g.box[3] for g in groups]))  # a digit's height in this number
    # every group's candidate spans, read in one batch; then each group's best reading
    candidates = [_candidates(g, height) for g in groups]
    images = [_digit_image(ink, part) for spans, _ in candidates for part in spans.values()]
    logits = recognizer.digit_logits(images)
    # The reading is chosen on the model's own probabilities; the answers report the calibrated
    # ones. The export's temperature (about 0.5) sharpens a confident-looking reading of a stroke
    # fragment towards p = 1, which made cutting a digit into pieces cheap: on the tuning numbers
    # the raw probabilities read 80.0% of the handwritten ones where the calibrated ones read 77.4%.
    read = iter(zip(images, softmax(logits), softmax(logits, recognizer.temperature)))
    segments, answers, digits = [], [], []
    for (spans, cuts), group in zip(candidates, groups):
        scored = {key: next(read) for key in spans}  # key -> (28x28 image, raw, calibrated)
        probs = {key: raw for key, (_, raw, _) in scored.items()}
        for key in _best_reading(spans, probs, cuts, max(group.box[3], height)):
            segments.append(spans[key])
            digits.append(scored[key][0])
            answers.append(recognizer.answer(scored[key][2]))
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


def _candidates(segment: Segment, height: float) -> tuple[dict, int]:
    """The spans of `segment` that may be digits: {(i, j): Segment between cuts i and j}, and
    the number of cuts. A group no wider than a digit has one span, itself; a wider one is cut
    at the columns where the least ink crosses (no two cuts closer than a thin digit)."""
    x, y, w, box_h = segment.box
    h = max(box_h, height)  # a short wide digit (a flat 2) is not two digits
    lo, hi = max(1, round(MIN_PART * h)), w - max(1, round(MIN_PART * h))
    if w <= MAYBE_WIDE * h or hi <= lo:
        return {(0, 1): segment}, 2
    columns = segment.mask.sum(axis=0)  # ink crossing each column
    cuts = [0, w]
    for c in lo + np.argsort(columns[lo:hi], kind="stable"):
        if all(abs(int(c) - k) >= MIN_PART * h for k in cuts):
            cuts.append(int(c))
        if len(cuts) == CUTS + 2:
            break
    cuts.sort()
    spans = {}
    for i in range(len(cuts)):
        for j in range(i + 1, len(cuts)):
            if cuts[j] - cuts[i] <= MAX_DIGIT * h or (i, j) == (0, len(cuts) - 1):
                part = _columns(segment, cuts[i], cuts[j])
                if part is not None:
                    spans[(i, j)] = part
    return spans, len(cuts)


def _best_reading(spans: dict, probs: dict, cuts: int, height: float) -> list:
    """The spans that cover the group from its first cut to its last with the best total of
    log-probability and shape prior (a dynamic program over the cuts)."""
    score = {
        k: float(np.log(p.max() + 1e-9)) + _shape_prior(int(p.argmax()), spans[k], height)
        for k, p in probs.items()
    }
    best: list[tuple[float, list] | None] = [(0.0, [])] + [None] * (cuts - 1)
    for j in range(1, cuts):
        options = [
            (best[i][0] + score[(i, j)], best[i][1] + [(i, j)])
            for i in range(j)
            if best[i] is not None and (i, j) in score
        ]
        best[j] = max(options, key=lambda o: o[0]) if options else None
    return best[-1][1] if best[-1] is not None else [(0, cuts - 1)]


def _columns(segment: Segment, left: int, right: int) -> Segment | None:
    """The part of `segment` between its columns left and right, cropped to its ink."""
    part = segment.mask[:, left:right]
    rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
    if not len(rows):
        return None
    x, y = segment.box[0] + left + cols[0], segment.box[1] + rows[0]
    crop = part[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return Segment((int(x), int(y), crop.shape[1], crop.shape[0]), crop)


def _shape_prior(digit: int, part: Segment, height: float) -> float:
    """Log-prior of a part's shape for the digit read in it: -1 for every tenth of the digit
    height that its width lies outside the usual range for that digit (a 1 is narrow, the others
    are not), or that it is shorter than a digit is."""
    lo, hi = ONE_WIDTH if digit == 1 else DIGIT_WIDTH
    width, tall = part.box[2] / height, part.box[3] / height
    return -10.0 * (max(0.0, lo - width, width - hi) + max(0.0, MIN_HEIGHT - tall))


def _digit_image(padded_ink: np.ndarray, segment: Segment) -> np.ndarray:
    """The segment as a (28, 28) MNIST-like digit, made from its own pixels only. `padded_ink`:
    the image's ink with PAD pixels of margin, room for ink_to_mnist's dilation of the mask."""
    x, y, w, h = segment.box
    crop = padded_ink[y : y + h + 2 * PAD, x : x + w + 2 * PAD]
    return ink_to_mnist(crop, np.pad(segment.mask, PAD))


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
