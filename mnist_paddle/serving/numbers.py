"""Whole numbers: the digits of one image, read left to right (`deploy/infer.py --number`).

The page is cleaned first (page.py: even light, no printed rules); on a form, each box holds
a digit, made an MNIST frame and read by both models as in step 5, the line model over the
frames side by side (unless ink lies outside the boxes found). Else the two models read so:

1. find the ink (strip.find_ink): whatever differs from the background, specks dropped;
2. make its strip (strip.make_strip): the ink scaled so that a digit is 20 pixels tall, as in
   MNIST, and WIDEN times as wide: one row of digits;
3. the line model (models/line.py) gives, every STRIDE columns of the strip, the probability of
   each digit and of "blank"; CTC decoding gives the candidate readings, each with its steps:
   the digits likeliest over all their paths, in the strip and in two views of it (shifted,
   enlarged: strip.views) together, and the few close behind (ctc.candidates); a piece of
   ink as tall as a digit under none of a reading's digits is a digit it missed (mostly a
   thin 1 pressed against its neighbour: ctc.missed_digits);
4. each digit of a candidate is cut out of the ink (`cut_digits`: the pieces of ink that lie
   in its columns, whole; a piece across two digits' columns is cut where they meet) and the
   digit model gives its verdict on that cut, as it would on a digit alone;
5. each digit is the likeliest under both readers (the product of their probabilities, the
   line model's from all three readings: ctc.digit_probs; the verdict counts less on a cut
   from a piece shared with a neighbour), with that probability; its box is its ink. Of the
   candidates, the one the two models like best together wins: its likelihood under the
   line model plus the digit model's log-probability of each digit and PER_DIGIT. The
   number's probability of being read right is fitted on numbers of validation digits and
   fonts (train/number_check.py); it is `sure` above the threshold chosen there, unless it
   has LONG digits or more, or the line model saw a digit it did not read, or the digit model
   doubts one of the cuts (`Reading.clear`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from mnist_paddle.errors import UserError
from mnist_paddle.serving.ctc import (
    Candidate,
    candidates,
    digit_columns,
    digit_probs,
    missed_digits,
    placed,
    span_probs,
    unread,
)
from mnist_paddle.serving.inference import (
    Recognizer,
    read_metadata,
    softmax,
)
from mnist_paddle.serving.page import Page, clean
from mnist_paddle.serving.preprocess import ink_to_mnist, to_mnist
from mnist_paddle.serving.strip import (
    Strip,
    check_widened,
    find_ink,
    frame_spans,
    frames_strip,
    ink_outside,
    make_strip,
    views,
)

WHOLE = 0.75  # a piece of ink with this share of its width in one digit's columns is that digit's
# the digit model's verdict on a cut from a piece shared with a neighbour counts this much (a
# power): such cuts read far worse than the line model reads touching digits (docs/numbers.md)
TOUCHING = 0.5
# -log P(reading) below this is no doubt at all: a number's probability is a logistic in the log
# of its doubt, which spreads out the confident readings (train/number_check.py fits it; 1e-6
# fitted the check's numbers best, docs/numbers.md)
DOUBT_FLOOR = 1e-6
# a number is never sure when the digit model gives no digit this much on one of its cuts (on
# the tuning sets: fewer sure numbers wrong, and more sure; docs/numbers.md)
VERDICT = 0.9
# a candidate reading's score adds, for each of its digits, the log of the digit model's verdict
# and this many nats (else the verdicts, all under 1, would favour fewer digits; docs/numbers.md)
PER_DIGIT = 1.0
# what a check's fit must be of (an older check's is refused)
DOUBT = {"doubt_floor": DOUBT_FLOOR, "beam_share": True, "views": 3, "digit_views": 3}
DOUBT |= {"touching_verdict": TOUCHING, "verdict": VERDICT, "per_digit": PER_DIGIT}
NOTHING_READ = -100.0  # log-probability of a reading of no digit at all
# a number is never sure when the line model gives a digit this much at a step away from every
# digit read (most sure numbers read wrong lost a digit pressed into its neighbour this way)
UNREAD = 0.01
# numbers read with this many digits or more are never sure: on the checks' long numbers, no
# threshold on their doubt kept the sure ones to 1% wrong (docs/numbers.md)
LONG = 7


class Reading(NamedTuple):
    """What the reader read in an image, before an answer is made of it."""

    digits: list[int]
    probs: list[float]  # each digit's probability under both models
    boxes: list[list[int]]  # each digit's [x, y, w, h] in the image
    cuts: list[np.ndarray]  # each digit as the digit model saw it, (28, 28)
    page: Page  # the page cleaned
    strip: Strip | None  # what the line model read (None: the digits were in a form's boxes)
    unread: float = 0.0  # the most the line model gave a digit at a step away from those read
    share: float = 1.0  # the beam's share of these digits: the line model's doubt about them
    verdict: float = 1.0  # the least of the digit model's top probabilities on the cuts

    @property
    def clear(self) -> bool:
        """Whether both models saw these digits without doubt: no digit left unread, and the
        digit model sure enough of each cut (never sure otherwise, whatever the number's prob)."""
        return self.unread < UNREAD and self.verdict >= VERDICT


class NumberReader:
    """The export's line model, through Paddle Inference, reading whole numbers."""

    def __init__(self, model_dir: str | Path = "output/inference", device: str = "cpu"):
        self.model_dir = Path(model_dir)
        self.meta = read_metadata(self.model_dir)
        if "line_model" not in self.meta["files"]:
            raise UserError(
                f"{self.model_dir}: this export reads no whole numbers; add the line model with "
                "`python tools/train_numbers.py -c configs/numbers/quick.yml`"
            )
        # fitted by the number stage's check (None only during that check)
        self.calibration = self.meta.get("line_model", {}).get("calibration")
        self.digit_model = Recognizer(self.model_dir, device)  # with the line model

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """A strip's pixels (HEIGHT, W) -> (W / STRIDE, 11) logits: blank and the ten digits."""
        pixels = np.ascontiguousarray(pixels[None, None], np.float32)
        return self.digit_model.line.run(pixels)[0]

    def reading(self, gray: np.ndarray) -> Reading | None:
        """The digits of the number in the gray image `gray`, or None when it has no ink: in
        a form's boxes, each box's content read by the digit model; else steps 1-5 above."""
        page = clean(gray)
        found = find_ink(page.gray, page.shaded)
        if page.cells and (found is None or not ink_outside(found[1], found[2], page.cells)):
            return self._boxes(page)
        strip = None if found is None else make_strip(*found)
        if strip is None:
            return None
        steps = softmax(self.logits(strip.pixels))  # (T, 11)
        readings = [steps, *(softmax(self.logits(v)) for v in views(strip.pixels))]
        weighed = [
            self._weigh(c, readings, found, page, strip) for c in candidates(steps, readings[1:])
        ]
        return max(weighed, key=lambda scored: scored[0])[1]  # the likeliest first on a tie

    def _weigh(
        self, candidate: Candidate, readings: list, found: tuple, page: Page, strip: Strip
    ) -> tuple[float, Reading]:
        """Steps 4-5 for a candidate reading of the strip (`readings`: the step probabilities of
        the strip and of its views; `found`: find_ink's ink, mask and scale), and its score: the
        candidate's, plus for each digit the log of the digit model's verdict on it and
        PER_DIGIT."""
        steps = readings[0]
        read = missed_digits(placed(steps, candidate.digits), steps, strip)
        columns = digit_columns(read, strip.pixels.shape[1])
        cuts, touching = cut_digits(found[0], found[1], [strip.columns(*c) for c in columns])
        verdicts = self.digit_model.digit_probabilities(cuts) if cuts else np.ones((0, 10))
        digits, probs = both(digit_probs(readings, read), verdicts, touching)
        boxes = [strip.box(*c) for c in columns]
        verdict = float(verdicts.max(axis=1).min()) if len(verdicts) else 1.0
        seen = unread(read, steps)
        reading = Reading(digits, probs, boxes, cuts, page, strip, seen, candidate.share, verdict)
        weights = [math.log(max(float(v[d]), 1e-30)) + PER_DIGIT for v, d in zip(verdicts, digits)]
        return candidate.score + sum(weights), reading

    def _boxes(self, page: Page) -> Reading | None:
        """A form: each box with ink in it holds one digit, made an MNIST frame; each digit is
        the likeliest under both models, as in step 5: the digit model's verdict on its frame
        and the line model's reading of the frames set side by side."""
        cuts, boxes = [], []
        for x, y, w, h in page.cells:
            digit = to_mnist(page.gray[y : y + h, x : x + w])
            if digit is not None:
                cuts.append(digit)
                boxes.append([x, y, w, h])
        if not cuts:
            return None
        steps = softmax(self.logits(frames_strip(cuts)))
        verdicts = self.digit_model.digit_probabilities(cuts)
        digits, probs = both(span_probs(steps, frame_spans(len(cuts))), verdicts)
        return Reading(digits, probs, boxes, cuts, page, None)

    def read(self, gray: np.ndarray) -> dict | None:
        """{"number", "prob", "sure", "digits": [{"digit", "prob", "sure", "box"}], "reading"}
        for the number in the gray image `gray` (`reading`: what the models saw, for
        --debug-dir), or None when it has no ink."""
        check_widened(self.meta.get("line_model"), self.model_dir)
        fit = self.calibration or {}
        if any(fit.get(key) != value for key, value in DOUBT.items()):  # none, or an older check
            raise UserError(
                f"{self.model_dir}: the line model is not calibrated as this version reads; "
                "check it again (python tools/train_numbers.py --check-only "
                f"-o model_dir={self.model_dir}: about a minute)"
            )
        reading = self.reading(gray)
        if reading is None:
            return None
        digit_min = fit["digit_min_prob"]
        if reading.strip is None:  # a form's boxes: their digits' probabilities together
            prob = float(np.prod(reading.probs))
            sure = prob >= fit["box_min_prob"]
        else:
            prob = number_prob(fit, log_prob(reading.probs, reading.share))
            short = len(reading.digits) < LONG
            sure = short and prob >= fit["min_prob"] and reading.clear
        return {
            "number": "".join(str(d) for d in reading.digits),
            "prob": round(prob, 4),
            "sure": bool(sure),
            "digits": [
                {"digit": d, "prob": round(p, 4), "sure": bool(p >= digit_min), "box": box}
                for d, p, box in zip(reading.digits, reading.probs, reading.boxes)
            ],
            "reading": reading,
        }


def cut_digits(
    ink: np.ndarray, mask: np.ndarray, columns: list[tuple[int, int]]
) -> tuple[list, np.ndarray]:
    """Each digit's cut, as a (28, 28) MNIST-like image: the pieces of `mask` (the working
    image's) that lie in its `columns` [lo, hi), whole when at least WHOLE of a piece's width is
    there, else the part of the piece in its columns (touching digits); and whether each cut
    holds such a part (bool array)."""
    if not columns:
        return [], np.zeros(0, bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    own = [np.zeros_like(mask) for _ in columns]
    touching = np.zeros(len(columns), bool)
    for piece in range(1, count):
        x, _, w, _ = stats[piece, :4]
        inside = np.array([max(0, min(x + w, hi) - max(x, lo)) for lo, hi in columns]) / w
        pixels = (labels == piece).astype(np.uint8)
        if inside.max() >= WHOLE:
            own[int(inside.argmax())] |= pixels
        else:
            for k in np.flatnonzero(inside > 0):
                lo, hi = columns[k]
                own[k][:, lo:hi] |= pixels[:, lo:hi]
                touching[k] = True
    cuts = [ink_to_mnist(ink, m) if m.any() else np.zeros((28, 28), np.float32) for m in own]
    return cuts, touching


def both(lines: np.ndarray, verdicts: np.ndarray, touching=None) -> tuple[list, list]:
    """Each digit and its probability under both models: the line model's probabilities of the
    ten digits for it (a row of `lines`) times the digit model's verdict, raised to TOUCHING
    where `touching` says its cut is part of a piece it shares with a neighbour."""
    powers = np.ones(len(lines)) if touching is None else np.where(touching, TOUCHING, 1.0)
    read = [likeliest(line / line.sum() * v**w) for line, v, w in zip(lines, verdicts, powers)]
    return [digit for digit, _ in read], [prob for _, prob in read]


def likeliest(probs: np.ndarray) -> tuple[int, float]:
    """The likeliest class of the (classes,) `probs` (their sum need not be 1) and its
    probability, as 1 minus the others' share in float64: near 1, a float32's largest entry
    rounds to 1.0 whatever the others hold, and a reading's doubt is in the others."""
    probs = np.asarray(probs, np.float64)
    best = int(probs.argmax())
    rest = np.delete(probs, best).sum()
    return best, float(1.0 - rest / (rest + probs[best]))


def log_prob(probs: list[float], share: float = 1.0) -> float:
    """The log-probability of a reading: its digits' probabilities together, times the beam's
    `share` of it (how sure the line model is of how many digits there are and which; a digit's
    own probability does not hold that). No digit read in ink: as good as impossible."""
    logs = [math.log(max(p, 1e-30)) for p in [*probs, share]]
    return float(sum(logs)) if probs else NOTHING_READ


def doubt(log_p):
    """What a number's probability of being right is a logistic in: the log of -log P of its
    reading (a float or an array), from about -9 for a reading without doubt upwards. The log
    spreads out the confident readings, so a near-certain one can come near 1."""
    return np.log(DOUBT_FLOOR - np.asarray(log_p, np.float64))


def number_prob(fit: dict, log_p):
    """The probability that a reading of log-probability `log_p` (a float or an array) is right,
    under `fit` {"slope", "intercept"} (train/number_check.py fits it)."""
    prob = 1.0 / (1.0 + np.exp(-(fit["slope"] * doubt(log_p) + fit["intercept"])))
    return float(prob) if np.ndim(prob) == 0 else prob
