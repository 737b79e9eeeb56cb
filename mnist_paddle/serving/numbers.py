"""Whole numbers: the digits of one image, read left to right (`deploy/infer.py --number`).

Steps 1-3 are segment.py's:

1. A large image is shrunk until its digits are about WORK_HEIGHT pixels tall. The ink and its
   mask are found as for a single digit (preprocess.py: either polarity, paper texture smoothed,
   specks dropped).
2. Faint ink that joins strong strokes counts (hysteresis), pieces much shorter than the digits
   join the nearest digit, and pieces stacked one above the other are one group: a stroke broken
   by a light pen, a 5 whose top stroke stands apart, or a 4 with a gap stays together.
3. A group wider than a narrow digit may be several touching digits: it is cut at the columns
   where the least ink crosses. The pieces, left to right, are the atoms; every run of
   neighbouring atoms no wider than a digit is a candidate digit (a span).
4. Every span is made 28x28 the MNIST way and scored in one batch by the export's number model
   (train/numbers.py): the digit model taught an eleventh class, "not one digit", on the spans
   of numbers composed from training digits. The reading is the run of spans covering all the
   atoms with the best total of log-probabilities of their best digit and a prior on each
   digit's shape (a 1 is narrow, the others are not, none is much shorter than the others),
   found by dynamic programming. A piece of a digit, or two digits, is "not one digit" and scores
   low, so touching digits are split and broken ones kept whole by recognition.
5. With the export's line model (train/lines.py), the number's whole strip of ink is read
   again without cuts (CTC, serving/lines.py). Its BEAM likeliest readings and the spans' best
   one are weighed: each scores its CTC log-likelihood plus SPANS_WEIGHT times the best total of
   the spans that read it, so each reader vetoes what the other finds implausible. One thing
   the spans cannot judge: when the line model's likeliest reading has one digit more than the
   spans' (and some run of spans reads it), only readings of its length are weighed. Digits that
   overlap have no vertical cut between them, so every run of spans that reads them both holds a
   piece of the other digit and scores low; the line model needs no cut.
6. Each digit's reported probability is the deployed digit model's calibrated one. The number's
   is the chance that the whole reading is right, fitted on numbers of validation digits and
   training fonts from the models' probability of the reading (train/numbers.py).

An export without a number model is read with the digit model's own probabilities (groups are cut
less eagerly: MAYBE_WIDE_ALONE); it splits touching digits less well (docs/numbers.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving import lines
from mnist_paddle.serving.inference import softmax
from mnist_paddle.serving.preprocess import read_gray
from mnist_paddle.serving.segment import (
    MAYBE_WIDE,
    MAYBE_WIDE_ALONE,
    Candidates,
    Segment,
    candidates,
)

# widths (share of the digit height) usual for a 1 and for the other digits; these and the
# other constants here were chosen on numbers made of MNIST *training* digits (the validation
# ones) and training fonts, never on the evaluation set
ONE_WIDTH, DIGIT_WIDTH = (0.0, 0.7), (0.35, 1.15)
MIN_HEIGHT = 0.6  # a digit is at least this share of the number's digit height
BEAM = 5  # readings the line model proposes
SPANS_WEIGHT = 1.0  # a reading's spans total counts this much against its CTC log-likelihood
DOUBT_FLOOR = 1e-4  # -log P(reading) below this is no doubt at all (see `doubt`)


def read_number(recognizer, gray: np.ndarray) -> dict | None:
    """{"number", "prob", "sure", "digits": [{"digit", "prob", "sure", "box"}]} for the number
    in `gray`, or None when the image has no ink. `recognizer`: serving.inference.Recognizer.

    With a calibrated number model, the number's `prob` is the chance that the whole reading is
    right, from the `doubt` of the reading (its Reading.log_prob), as fitted on numbers of
    validation digits and training fonts (train/numbers.py), and `sure` is that prob reaching
    the export's number threshold. Otherwise it is the product of the digits' calibrated
    probabilities, sure when every digit is."""
    reading = read(recognizer, gray)
    if reading is None:
        return None
    # each digit's probability: the deployed digit model's, calibrated, for the digit read
    calibrated = recognizer.digit_probabilities(reading.images)
    answers = [
        {"digit": d, "prob": round(float(p[d]), 4), "sure": bool(p[d] >= recognizer.min_prob)}
        for d, p in zip(reading.digits, calibrated)
    ]
    fit = recognizer.number_calibration
    if fit and reading.log_prob is not None:
        prob = fitted_prob(fit, reading.log_prob)
        sure = bool(prob >= fit["min_prob"])
    else:
        prob = np.prod([a["prob"] for a in answers])
        sure = all(a["sure"] for a in answers)
    return {
        "number": "".join(str(d) for d in reading.digits),
        "prob": round(float(prob), 4),
        "sure": sure,
        "digits": [{**a, "box": box} for a, box in zip(answers, reading.boxes)],
        "images": reading.images,  # for --debug-dir; the caller removes it
    }


def doubt(log_prob):
    """What a number's probability of being right is fitted on (a logistic in it): the log of
    -log P(reading), from about -9 for a reading without doubt upwards. The log spreads out the
    confident readings, so a near-certain one can be near 1 (a logistic in log P itself cannot
    pass sigmoid(intercept)). A float or an array of them."""
    return np.log(DOUBT_FLOOR - np.asarray(log_prob, np.float64))


def fitted_prob(fit: dict, log_prob):
    """The probability that a reading of log-probability `log_prob` (or an array of them) is
    right, under `fit` {"slope", "intercept"}: the law train/numbers.py fits and chooses the
    sure threshold with, and read_number answers with."""
    return 1.0 / (1.0 + np.exp(-(fit["slope"] * doubt(log_prob) + fit["intercept"])))


class Reading(NamedTuple):
    """The digits read in an image, left to right, before an answer is made of them."""

    digits: list[int]
    boxes: list[list[int]]  # [x, y, w, h] of each, in the image's pixels
    images: list[np.ndarray]  # each as the 28x28 digit the models saw
    # the number model's log-probability of the reading, plus with a line model its log-share
    # among the readings weighed (None: no number model)
    log_prob: float | None


def read(recognizer, gray: np.ndarray) -> Reading | None:
    """The reading of the number in `gray`, or None when the image has no ink."""
    number_model = recognizer.has_number_model
    found = candidates(gray, MAYBE_WIDE if number_model else MAYBE_WIDE_ALONE)
    if found is None:
        return None
    images = found.images()
    keys = list(found.spans)
    if number_model:
        # "not one digit" is the eleventh class: a piece of a digit, or two, scores low
        probs = softmax(recognizer.number_logits(images))
    else:
        # The digit model's own probabilities, not the calibrated ones: the export's temperature
        # (about 0.5) sharpens a confident-looking reading of a stroke fragment towards p = 1,
        # which makes cutting a digit into pieces cheap.
        probs = softmax(recognizer.digit_logits(images))
    span_probs = dict(zip(keys, probs))
    scores = _span_scores(found, span_probs)
    chosen = _spans_for(found, scores)[1]
    digits = [scores[key][1] for key in chosen]
    among = 0.0  # log-probability of the reading among the ones weighed (none: certain)
    if number_model and recognizer.has_line_model:
        chosen, digits, among = _weighed_reading(recognizer, found, scores, digits)
    index = {key: k for k, key in enumerate(keys)}
    rows = [index[key] for key in chosen]
    log_prob = None  # without a number model there is nothing to calibrate it with
    if number_model:
        log_prob = among + sum(float(np.log(max(probs[k, d], 1e-30))) for k, d in zip(rows, digits))
    return Reading(digits, [found.box(key) for key in chosen], [images[k] for k in rows], log_prob)


def _weighed_reading(recognizer, found: Candidates, scores: dict, digits: list[int]):
    """The line model's say: the spans' best reading `digits` and the line model's likeliest
    readings, each scored by its CTC log-likelihood plus SPANS_WEIGHT times the best total of the
    spans that read it (a reading no run of spans gives is out); when the line model's likeliest
    reading is one digit longer than `digits`, only readings of its length. Returns the best
    one's spans and digits, and its log-probability among those weighed (a softmax of the
    scores)."""
    steps = lines.log_softmax(recognizer.line_logits(lines.line_image(found)).T)  # (T, 11)
    readings = lines.best_readings(steps, BEAM)
    weighed = []
    for text in dict.fromkeys(["".join(str(d) for d in digits), *readings]):
        spans_score, spans = _spans_for(found, scores, text)
        if spans:
            score = lines.log_likelihood(steps, text) + SPANS_WEIGHT * spans_score
            weighed.append((score, spans, [int(c) for c in text]))
    # the line model's first reading one digit longer: overlapping digits, which no cut
    # isolates, so the line model says how many there are (the module's step 5)
    first = [int(c) for c in readings[0]]
    if len(first) == len(digits) + 1 and any(d == first for _, _, d in weighed):
        weighed = [reading for reading in weighed if len(reading[2]) == len(first)]
    totals = np.array([total for total, _, _ in weighed])
    _, spans, digits = weighed[int(totals.argmax())]
    return spans, digits, float(totals.max() - np.logaddexp.reduce(totals))


def _span_scores(found: Candidates, probs: dict) -> dict:
    """{span: ((10,) log-probability plus shape prior of each digit, its likeliest digit)}."""
    scores = {}
    for key, p in probs.items():
        prior = [_shape_prior(d, found.spans[key], found.height) for d in (0, 1)]
        digit_prior = np.where(np.arange(10) == 1, prior[1], prior[0])
        scores[key] = ((np.log(p[:10] + 1e-9) + digit_prior).tolist(), int(p[:10].argmax()))
    return scores


def _spans_for(found: Candidates, scores: dict, text: str | None = None) -> tuple[float, list]:
    """The run of spans covering all the atoms, left to right, with the best total of
    log-probability and shape prior (`scores`, from _span_scores), and that total: each span
    read as its likeliest digit, or the run reading `text` ((-inf, []) when none does). A
    dynamic program over the atoms (and the digits of `text`)."""
    n = len(found.atoms)
    # best[j][m]: the best run over atoms 0..j-1 that reads m digits
    best: list[dict] = [{0: (0.0, [])}] + [{} for _ in range(n)]
    for j in range(1, n + 1):
        for i in range(j):
            if (i, j) not in scores:
                continue
            row, likeliest = scores[i, j]
            for m, (total, spans) in best[i].items():
                if text is not None and m >= len(text):
                    continue
                total += row[likeliest if text is None else int(text[m])]
                if total > best[j].get(m + 1, (-np.inf,))[0]:
                    best[j][m + 1] = (total, spans + [(i, j)])
    if text is not None:
        return best[n].get(len(text), (-np.inf, []))
    return max(best[n].values(), key=lambda o: o[0], default=(-np.inf, []))


def _shape_prior(digit: int, part: Segment, height: float) -> float:
    """Log-prior of a part's shape for the digit read in it: -1 for every tenth of the digit
    height that its width lies outside the usual range for that digit (a 1 is narrow, the others
    are not), or that it is shorter than a digit is."""
    lo, hi = ONE_WIDTH if digit == 1 else DIGIT_WIDTH
    width, tall = part.box[2] / height, part.box[3] / height
    return -10.0 * (max(0.0, lo - width, width - hi) + max(0.0, MIN_HEIGHT - tall))


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


def read_numbers(recognizer, items: list, debug_dir: Path | None = None) -> list[dict]:
    """`read_number` for image paths, with error dicts (infer.collect_images) passed through:
    one result per item, in order, {"path", "number", ...} or {"path", "error"}."""
    results = []
    for i, item in enumerate(items):
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
