"""The line reader's side of whole numbers: the strip of ink it reads, and what its per-step
probabilities say about a reading (CTC: each step is blank or a digit; a reading is what remains
of a path of steps once repeats are merged and blanks dropped).

The strip is made from segment.py's Candidates, so the line reader sees the same ink as the
cut-and-classify reader: the number's pieces (specks dropped), cropped, scaled to LINE_HEIGHT.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from mnist_paddle.serving.segment import PAD, Candidates, union

# the line model's input (models/line.py; serving may not import models, so repeated here and
# checked against it by tests/test_numbers.py)
LINE_HEIGHT, STRIDE = 32, 4
MARGIN = 4  # px of blank strip on each side
MAX_WIDTH = 1024  # px: a longer strip is squeezed to this (about 30 digits)
BLANK = 0
UNLIKELY = math.log(1e-4)  # a digit this unlikely at a step starts no reading there


def line_image(found: Candidates) -> np.ndarray:
    """The number's ink as one (LINE_HEIGHT, W) float32 strip, 0..1, W a multiple of STRIDE."""
    whole = union(found.atoms)
    x, y, w, h = whole.box
    ink = found.ink[y + PAD : y + PAD + h, x + PAD : x + PAD + w] * whole.mask
    ink = ink / max(float(ink.max()), 1e-6)
    width = int(np.clip(round(w * LINE_HEIGHT / h), 1, MAX_WIDTH - 2 * MARGIN))
    strip = cv2.resize(ink.astype(np.float32), (width, LINE_HEIGHT), interpolation=cv2.INTER_AREA)
    right = MARGIN + (-(width + 2 * MARGIN)) % STRIDE
    return np.pad(strip, ((0, 0), (MARGIN, right)))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """(T, C) logits -> (T, C) log-probabilities of each step."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def log_likelihood(log_probs: np.ndarray, text: str) -> float:
    """log P(text) under CTC: the sum over every path of steps that reads `text`. `log_probs`:
    (T, 11), class 0 blank, digit d class d + 1. The forward algorithm over `text` with a blank
    before, between and after its digits."""
    if not text:
        return float(log_probs[:, BLANK].sum())
    labels = np.zeros(2 * len(text) + 1, np.int64)
    labels[1::2] = [int(c) + 1 for c in text]
    # a path may skip the blank between two different digits, never between two equal ones
    skip = np.zeros(len(labels), bool)
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    alpha = np.full(len(labels), -np.inf)
    alpha[:2] = log_probs[0, labels[:2]]
    for step in log_probs[1:]:
        stay, advance = alpha, np.concatenate([[-np.inf], alpha[:-1]])
        jump = np.where(skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        alpha = np.logaddexp(np.logaddexp(stay, advance), jump) + step[labels]
    return float(np.logaddexp(alpha[-1], alpha[-2]))


def best_readings(log_probs: np.ndarray, width: int = 5) -> list[str]:
    """The `width` most probable readings (prefix beam search), best first; never empty."""
    # each prefix's probability of the paths so far that end in a blank, and in its last digit
    beams = {"": (0.0, -math.inf)}
    for step in log_probs.tolist():
        grown: dict[str, tuple[float, float]] = {}
        likeliest = sorted(range(1, 11), key=lambda c: -step[c])[:width]
        likeliest = [c for c in likeliest if step[c] > UNLIKELY]
        for prefix, (blank, digit) in beams.items():
            either = _log_add(blank, digit)
            _extend(grown, prefix, either + step[BLANK], -math.inf)
            last = int(prefix[-1]) + 1 if prefix else None
            for c in likeliest:
                if c == last:  # a repeat merges; a repeated digit needs a blank between
                    _extend(grown, prefix, -math.inf, digit + step[c])
                    _extend(grown, prefix + str(c - 1), -math.inf, blank + step[c])
                else:
                    _extend(grown, prefix + str(c - 1), -math.inf, either + step[c])
        beams = dict(sorted(grown.items(), key=lambda kv: -_log_add(*kv[1]))[:width])
    return list(beams)


def _extend(beams: dict, prefix: str, blank: float, digit: float) -> None:
    old_blank, old_digit = beams.get(prefix, (-math.inf, -math.inf))
    beams[prefix] = (_log_add(old_blank, blank), _log_add(old_digit, digit))


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) of two floats (plain floats: this runs in the beam's inner loop)."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))
