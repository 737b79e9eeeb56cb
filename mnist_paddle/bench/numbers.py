"""Whole numbers for the real-looking set, and how well `deploy/infer.py --number` reads them.

- numbers_paper: 2-6 MNIST *test* digits composed as a person writes a number (each digit at its
  own size and baseline, spacing that varies, a fifth of neighbouring pairs touching or
  overlapping slightly), then put on paper like the `mnist_paper` group;
- numbers_printed: 2-6 digit numbers typeset in the evaluation fonts (never seen in training),
  rendered like the `printed_unseen` group.

Each image is `<group>/<index>_label<number>.<ext>`, listed in labels.csv with its number as the
label (a string: leading zeros are kept).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.serving.numbers import read_number
from mnist_paddle.serving.preprocess import read_gray
from mnist_paddle.train import synth

GROUPS = ("numbers_paper", "numbers_printed")
LENGTHS = (2, 6)  # digits per number, inclusive
TOUCHING = 0.2  # share of neighbouring pairs that touch or overlap


def compose(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """28x28 MNIST digits (uint8) side by side as one handwritten number: (H, W) ink 0..1."""
    pieces = []
    for digit in digits:
        ink = digit.astype(np.float32) / 255.0
        cols = np.flatnonzero(ink.max(axis=0) > 0.1)
        ink = ink[:, cols[0] : cols[-1] + 1]  # (28, w): the digit's own width
        scale = rng.uniform(0.85, 1.15)
        size = (max(1, round(ink.shape[1] * scale)), round(28 * scale))
        pieces.append(cv2.resize(ink, size, interpolation=cv2.INTER_LINEAR))
    height = max(p.shape[0] for p in pieces) + 10
    x, placed = 4, []
    for i, piece in enumerate(pieces):
        if i:
            touching = rng.random() < TOUCHING
            x += int(rng.uniform(-4, -1) if touching else rng.uniform(1, 9))
        top = int(rng.integers(0, height - piece.shape[0] + 1))  # baseline and size vary
        placed.append((x, top, piece))
        x += piece.shape[1]
    canvas = np.zeros((height, x + 4), np.float32)
    for left, top, piece in placed:
        region = canvas[top : top + piece.shape[0], left : left + piece.shape[1]]
        np.maximum(region, piece, out=region)
    return canvas


def number_on_paper(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A handwritten number photographed on paper (BGR), as `synth.pen_on_paper` does a digit."""
    ink = compose(digits, rng)
    scale = rng.uniform(1.5, 5.0)
    ink = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    margin_y, margin_x = (int(s * rng.uniform(0.1, 0.6)) + 4 for s in ink.shape)
    alpha = np.pad(ink, ((margin_y, margin_y), (margin_x, margin_x)))
    paper, pen = rng.uniform(170, 255, size=3), rng.uniform(0, 90, size=3)
    return synth.compose(alpha, paper, pen, rng)


def number_length(rng: np.random.Generator) -> int:
    return int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))


def random_number(rng: np.random.Generator) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, number_length(rng)))


def scores(truth: list[str], read: list[str | None]) -> dict:
    """Whole-number exact match, and per-digit accuracy: the share of the true digits read right,
    counting edit operations (a missed, extra or wrong digit) against them."""
    exact = np.mean([t == r for t, r in zip(truth, read)])
    errors = sum(_edit_distance(t, r or "") for t, r in zip(truth, read))
    digits = sum(len(t) for t in truth)
    return {
        "numbers": len(truth),
        "exact_match": float(exact),
        "digit_accuracy": float(max(0.0, 1 - errors / digits)),
        "wrong_length": int(sum(len(t) != len(r or "") for t, r in zip(truth, read))),
    }


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def evaluate(recognizer, set_dir: Path, rows: list[dict]) -> dict:
    """Per number group of the set: exact match, per-digit accuracy, the share of numbers read
    surely and their exact match; and the median time to read one."""
    results = {}
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        read, sure, seconds = [], [], []
        for row in members:
            gray = read_gray(set_dir / row["path"])
            start = time.perf_counter()
            answer = read_number(recognizer, gray)
            seconds.append(time.perf_counter() - start)
            read.append(answer["number"] if answer else None)
            sure.append(bool(answer and answer["sure"]))
        truth = [r["label"] for r in members]
        right = np.array([t == r for t, r in zip(truth, read)])
        sure = np.array(sure)
        results[group] = {
            **scores(truth, read),
            "sure_share": float(sure.mean()),
            "sure_exact_match": float(right[sure].mean()) if sure.any() else 0.0,
            "median_ms": 1000 * float(np.median(seconds)),
        }
    return results


def to_markdown(results: dict) -> str:
    lines = [
        "| group | numbers | exact match | per-digit accuracy | wrong length | sure "
        "| exact among sure | median time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group, r in results.items():
        lines.append(
            f"| {group} | {r['numbers']:,} | {r['exact_match']:.2%} | {r['digit_accuracy']:.2%} "
            f"| {r['wrong_length']} | {r['sure_share']:.1%} | {r['sure_exact_match']:.2%} "
            f"| {r['median_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


def time_number(recognizer, data_root: Path, calls: int = 50) -> dict:
    """Reading a 6-digit handwritten number (MNIST test digits on paper, as numbers_paper):
    median and p99 milliseconds per image, preprocessing and every predictor call included."""
    from mnist_paddle.bench.benchmark import latencies
    from mnist_paddle.train.data import mnist_files, read_idx

    images = read_idx(mnist_files(data_root, "test")[0])
    rng = np.random.default_rng(6)
    page = number_on_paper(list(images[rng.choice(len(images), 6)]), rng)
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)
    stats = latencies(lambda: read_number(recognizer, gray), calls)
    return {"digits": 6, "pixels": list(gray.shape), **stats}
