"""Whole numbers for the real-looking set, and how well `deploy/infer.py --number` reads them.

- numbers_paper: 2-6 MNIST *test* digits composed as a person writes a number (each digit at its
  own size and baseline, spacing that varies, a fifth of neighbouring pairs touching or
  overlapping slightly), then put on paper like the `mnist_paper` group;
- numbers_printed: 2-6 digit numbers typeset in the evaluation fonts (never seen in training),
  rendered like the `printed_unseen` group;
- numbers_long: 7-12 MNIST *test* digits written as numbers_paper's are (a phone number, an ID).

Each image is `<group>/<index>_label<number>.<ext>`, listed in labels.csv with its number as the
label (a string: leading zeros are kept).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.bench.pages import NUMBER_GROUPS
from mnist_paddle.serving.images import read_gray
from mnist_paddle.serving.numbers import NumberReader
from mnist_paddle.train import synth
from mnist_paddle.train.calibrate import calibration_error
from mnist_paddle.train.rundir import Progress

GROUPS = ("numbers_paper", "numbers_printed", "numbers_long") + NUMBER_GROUPS
LONG = (7, 12)  # digits of a numbers_long number


def number_on_paper(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST digits (uint8) as a number handwritten on paper (BGR), as the number stage's check
    composes validation digits (train/number_check.py)."""
    return synth.number_on_paper(digits, rng)[0]


def random_number(rng: np.random.Generator) -> str:
    return "".join(str(d) for d in synth.random_digits(rng))


def long_length(rng: np.random.Generator) -> int:
    return int(rng.integers(LONG[0], LONG[1] + 1))


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


def evaluate(reader: NumberReader, set_dir: Path, rows: list[dict]) -> dict:
    """Per number group of the set: exact match, per-digit accuracy, the share of numbers read
    surely and their exact match, the calibration error of the numbers' probability, exact
    match by number length; and the median time to read one."""
    results = {}
    progress = Progress(sum(r["group"] in GROUPS for r in rows), "  ", "number")
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        read, sure, prob, seconds = [], [], [], []
        for row in members:
            gray = read_gray(set_dir / row["path"])
            start = time.perf_counter()
            answer = reader.read(gray)
            seconds.append(time.perf_counter() - start)
            progress.step()
            read.append(answer["number"] if answer else None)
            sure.append(bool(answer and answer["sure"]))
            prob.append(answer["prob"] if answer else 0.0)
        truth = [r["label"] for r in members]
        right = np.array([t == r for t, r in zip(truth, read)])
        sure = np.array(sure)
        results[group] = {
            **scores(truth, read),
            "sure_share": float(sure.mean()),
            "sure_exact_match": float(right[sure].mean()) if sure.any() else None,  # none sure
            "ece": calibration_error(np.array(prob), right),
            "median_ms": 1000 * float(np.median(seconds)),
            "by_length": {
                n: float(right[[len(t) == n for t in truth]].mean())
                for n in sorted({len(t) for t in truth})
            },
        }
    return results


def to_markdown(results: dict) -> str:
    lines = [
        "| group | numbers | exact match | per-digit accuracy | wrong length | sure "
        "| exact among sure | ECE of prob | median time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group, r in results.items():
        exact = r["sure_exact_match"]
        lines.append(
            f"| {group} | {r['numbers']:,} | {r['exact_match']:.2%} | {r['digit_accuracy']:.2%} "
            f"| {r['wrong_length']} | {r['sure_share']:.1%} "
            f"| {'none sure' if exact is None else format(exact, '.2%')} "
            f"| {r['ece']:.2%} | {r['median_ms']:.1f} ms |"
        )
    return "\n".join(lines) + "\n"


def time_number(reader: NumberReader, data_root: Path, calls: int = 50) -> dict:
    """Reading a 6-digit handwritten number (MNIST test digits) on plain paper (as numbers_paper)
    and on ruled paper (as ruled_numbers): median and p99 milliseconds per image, the page's
    cleaning and every predictor call included."""
    from mnist_paddle.bench.benchmark import latencies
    from mnist_paddle.train.data import read_mnist
    from mnist_paddle.train.pages import handwritten

    images = read_mnist(data_root, "test")[0]
    rng = np.random.default_rng(6)
    digits = list(images[rng.choice(len(images), 6)])
    results = {"digits": 6}
    for kind, page in (
        ("paper", number_on_paper(digits, rng)),
        ("ruled", handwritten("ruled", digits, rng)),
    ):
        gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)
        results[kind] = {
            "pixels": list(gray.shape),
            **latencies(lambda g=gray: reader.read(g), calls),
        }
    return results
