"""Probabilities that mean what they say, and when to be sure: fitted at export on held-out
images (the run's validation split, never the test set).

    fit_temperature    the T that makes softmax(logits / T) fit held-out labels best (NLL)
    calibration_error  expected calibration error, 15 equal-width bins
    sure_threshold     the lowest top probability at which answers at or above it are wrong at
                       most 0.2% of the time
    fit_logistic       a probability of being right from one score (a whole number's: the
                       doubt of its reading, serving/numbers.py), by logistic regression
"""

from __future__ import annotations

import math

import numpy as np

BINS = 15
MAX_SURE_ERROR = 0.002  # error rate allowed among "sure" answers
LOG_T_RANGE = (math.log(0.05), math.log(20.0))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimizes the NLL: golden-section search over log T (the NLL is
    convex in 1/T, so it has one minimum)."""
    lo, hi = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def calibration_error(top: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of answers with probability `top`, right where `correct`:
    over equal-width bins of the probability, the mean gap between it and the share of answers
    right, weighted by the share of answers in the bin."""
    which = np.minimum((top * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(top[members].mean() - correct[members].mean())
    return float(gap)


def reliability(top: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per bin of the answers' probability: {"low", "high", "count", "confidence", "accuracy"}."""
    which = np.minimum((top * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        rows.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "count": int(members.sum()),
                "confidence": float(top[members].mean()) if members.any() else None,
                "accuracy": float(correct[members].mean()) if members.any() else None,
            }
        )
    return rows


def sure_threshold(
    top: np.ndarray, correct: np.ndarray, max_error: float = MAX_SURE_ERROR, margin: float = 0.0
) -> float:
    """The lowest top probability t such that the answers with top >= t are wrong at most
    `max_error` of the time; 1.0 when even the most confident answers are wrong more often.
    With a `margin`, their error rate is first raised by that many standard errors (Wilson's
    upper bound): chosen on a few hundred answers, the lowest threshold that just meets
    `max_error` there misses it on the next answers about half the time."""
    order = np.argsort(-top, kind="stable")
    top, wrong = top[order], ~correct[order]
    counts = np.arange(1, len(top) + 1)
    error_rate = _upper_bound(np.cumsum(wrong) / counts, counts, margin)  # among the most sure
    # a threshold keeps every answer tied with it, so look at the last answer of each value
    last_of_value = np.append(top[1:] != top[:-1], True)
    ok = np.flatnonzero(last_of_value & (error_rate <= max_error))
    return float(top[ok[-1]]) if len(ok) else 1.0


def _upper_bound(rate: np.ndarray, counts: np.ndarray, z: float) -> np.ndarray:
    """Wilson's upper bound, `z` standard errors up, of error rates measured on `counts`
    answers (the rates themselves at z = 0)."""
    spread = np.sqrt(rate * (1 - rate) / counts + z * z / (4 * counts * counts))
    return (rate + z * z / (2 * counts) + z * spread) / (1 + z * z / counts)


def risk_coverage(top: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    """The share of answers that are sure (top >= threshold) and the error rate among them."""
    sure = top >= threshold
    return {
        "sure_share": float(sure.mean()) if len(top) else 0.0,
        "sure_error": float((~correct[sure]).mean()) if sure.any() else 0.0,
    }


def risk_coverage_curve(top: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coverage, error among the covered) as the threshold goes down through every answer."""
    order = np.argsort(-top, kind="stable")
    wrong = ~correct[order]
    counts = np.arange(1, len(top) + 1)
    return counts / len(top), np.cumsum(wrong) / counts


def fit_logistic(
    score: np.ndarray, correct: np.ndarray, ridge: float = 1e-3
) -> tuple[float, float]:
    """(slope, intercept) of P(right) = sigmoid(slope * score + intercept) that fit `correct`
    best (NLL), by Newton's method. The small ridge keeps them finite when every answer is right
    (or wrong)."""
    x = np.stack([np.asarray(score, np.float64), np.ones(len(score))], axis=1)
    y = np.asarray(correct, np.float64)
    w = np.zeros(2)
    for _ in range(50):
        p = sigmoid(x @ w)
        gradient = x.T @ (p - y) / len(y) + ridge * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x / len(y) + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
