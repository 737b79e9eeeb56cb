"""A fixed-seed evaluation set that looks like what people feed a digit recognizer.

Three groups, each image named `<group>/<index>_label<digit>.<ext>` and listed in `labels.csv`:

- mnist_paper: MNIST test digits re-rendered as pen on paper: a page of random size and tint,
  the digit at a random size and place, a random pen colour, texture, noise, blur, contrast,
  and some saved as JPEG;
- printed: the digits 0-9 typeset with the fonts matplotlib ships (so every machine has the
  same ones) at random sizes, positions, slants and colours; some as transparent PNGs (like a
  drawing canvas exports), some light on dark (like chalk on a board); training may see these
  fonts (configs/lenet.yml trains on them, train/synth.py);
- printed_unseen: the same, in font families training never sees (`EVAL_FONTS`: Gentium,
  Inter, Hack, JetBrains Mono, Comic Neue).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mnist_paddle.bench import figures
from mnist_paddle.bench.numbers import evaluate as number_scores
from mnist_paddle.bench.numbers import long_length, random_number
from mnist_paddle.bench.numbers import number_on_paper as number_paper
from mnist_paddle.bench.numbers import to_markdown as numbers_table
from mnist_paddle.bench.pages import (
    CROP_GROUPS,
    DIGIT_GROUPS,
    NUMBER_GROUPS,
    make_crops,
    make_pages,
)
from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path, write_json, write_text
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.serving.numbers import NumberReader
from mnist_paddle.train import calibrate, synth
from mnist_paddle.train.data import read_mnist
from mnist_paddle.train.fonts import EVAL_FONTS, VALIDATION_FONTS, debian_fonts, matplotlib_fonts
from mnist_paddle.train.loader import split_validation
from mnist_paddle.train.rundir import Progress
from mnist_paddle.train.synth import number_length

GROUPS = ("mnist_paper", "printed", "printed_unseen") + DIGIT_GROUPS + CROP_GROUPS
TUNING_DIGITS = 5000  # the training digits the quick start's runs hold out (data.val_size)


def make_realworld(
    out: Path,
    data_root: Path,
    count: int = 1000,
    seed: int = 0,
    numbers: int = 1000,
    pages: int = 1000,
    tuning: bool = False,
) -> tuple[Path, int]:
    """Write `count` images per digit group, `numbers` per number group (bench/numbers.py) and
    `pages` per real-page group (bench/pages.py) under `out`, and `out/labels.csv`; returns the
    CSV path and the number of images written. The evaluation set is made of MNIST's test
    digits and the evaluation fonts; with `tuning`, the same groups are made of the 5,000
    training digits the quick start's runs hold out and of the validation fonts: a set to
    choose on, which training never sees either."""
    rng = np.random.default_rng(seed)
    if tuning:
        images, labels = read_mnist(data_root, "train")
        _, (images, labels) = split_validation(images, labels, TUNING_DIGITS)
        fonts = {
            "printed": debian_fonts(VALIDATION_FONTS),
            "unseen": debian_fonts(VALIDATION_FONTS),
        }
    else:
        images, labels = read_mnist(data_root, "test")
        fonts = {"printed": matplotlib_fonts(), "unseen": debian_fonts(EVAL_FONTS)}
    rows = []
    pages_made = len(DIGIT_GROUPS + NUMBER_GROUPS + CROP_GROUPS) * pages
    progress = Progress(3 * count + 3 * numbers + pages_made, "  ", "image")

    def keep(row: list) -> None:
        rows.append(row)
        progress.step()

    picks = rng.choice(len(images), size=count, replace=False)
    for i, index in enumerate(picks):
        page, ext = _pen_on_paper(images[index], rng)
        where = "" if tuning else index  # the test image it is, to compare with as stored
        keep(_save(out, "mnist_paper", i, int(labels[index]), page, ext, rng) + [where])
    # matplotlib's fonts (training may see them), then fonts training never sees
    for group, font_files in (
        ("printed", fonts["printed"]),
        ("printed_unseen", fonts["unseen"]),
    ):
        for i in range(count):
            digit = i % 10
            page, ext = _printed(str(digit), font_files[rng.integers(len(font_files))], rng)
            keep(_save(out, group, i, digit, page, ext, rng) + [""])
    unseen = fonts["unseen"]
    for i in range(numbers):  # handwritten: MNIST test digits; printed: evaluation fonts
        keep(_handwritten_number(out, "numbers_paper", i, number_length(rng), images, labels, rng))
    for i in range(numbers):
        text = random_number(rng)
        page, ext = _printed(text, unseen[rng.integers(len(unseen))], rng)
        keep(_save(out, "numbers_printed", i, text, page, ext, rng) + [""])
    for i in range(numbers):
        keep(_handwritten_number(out, "numbers_long", i, long_length(rng), images, labels, rng))
    counters: dict[str, int] = {}
    for group, label, page in make_pages(pages, images, labels, unseen, rng):
        i = counters[group] = counters.get(group, -1) + 1
        ext = ".jpg" if group.startswith("photo") or rng.random() < 0.3 else ".png"
        keep(_save(out, group, i, label, page, ext, rng) + [""])
    crop_rng = np.random.default_rng([seed, 1])  # draws of their own: the groups above stay
    for i, (group, label, page) in enumerate(make_crops(pages, unseen, crop_rng)):
        keep(_save(out, group, i, label, page, ".jpg", crop_rng) + [""])
    with atomic_path(out / "labels.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "group", "label", "mnist_index"])  # index: in the test set
        writer.writerows(rows)
    return out / "labels.csv", len(rows)


def _handwritten_number(out: Path, group: str, i: int, length: int, images, labels, rng) -> list:
    """A number of `length` MNIST test digits written on paper, saved as image `i` of `group`."""
    picks = rng.choice(len(images), size=length)
    text = "".join(str(labels[k]) for k in picks)
    page = number_paper(list(images[picks]), rng)
    ext = ".jpg" if rng.random() < 0.4 else ".png"
    return _save(out, group, i, text, page, ext, rng) + [""]


def _save(out: Path, group: str, i: int, label, page: np.ndarray, ext: str, rng) -> list:
    name = f"{group}/{i:04d}_label{label}{ext}"
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 95))] if ext == ".jpg" else []
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), page, params):
            raise OSError(f"cannot write {path}")
    return [name, group, label]


def _pen_on_paper(digit: np.ndarray, rng) -> tuple[np.ndarray, str]:
    """One 28x28 MNIST digit as a BGR photo of pen on paper."""
    page = synth.pen_on_paper(digit, rng)
    return page, (".jpg" if rng.random() < 0.4 else ".png")


def _printed(text: str, font_file: Path, rng) -> tuple[np.ndarray, str]:
    """A typeset digit: BGR on a coloured page, or BGRA with a transparent background."""
    size = int(rng.integers(18, 160))
    coverage = synth.glyph(text, font_file, size, shear=rng.uniform(-0.3, 0.3))  # either way
    height = int(coverage.shape[0] * rng.uniform(1.3, 3.0))
    width = int(max(coverage.shape[1], coverage.shape[0]) * rng.uniform(1.3, 3.0))
    alpha = np.zeros((height, width), np.float32)
    top = rng.integers(0, height - coverage.shape[0] + 1)
    left = rng.integers(0, width - coverage.shape[1] + 1)
    alpha[top : top + coverage.shape[0], left : left + coverage.shape[1]] = coverage
    style = rng.random()
    if style < 0.25:  # transparent PNG with dark or light strokes, like a canvas export
        color = rng.uniform(0, 80, size=3) if rng.random() < 0.7 else rng.uniform(180, 255, size=3)
        page = np.dstack([np.broadcast_to(color, (height, width, 3)), alpha * 255])
        return np.clip(page, 0, 255).astype(np.uint8), ".png"
    if style < 0.45:  # light on dark: chalk on a board, a white-on-black screen
        background, color = rng.uniform(0, 90, size=3), rng.uniform(170, 255, size=3)
    else:  # dark on light
        background, color = rng.uniform(160, 255, size=3), rng.uniform(0, 100, size=3)
    return synth.compose(alpha, background, color, rng), (".jpg" if rng.random() < 0.3 else ".png")


def _rows(set_dir: Path) -> list[dict]:
    """The set's labels.csv: one {"path", "group", "label", "mnist_index"} per image."""
    with open(set_dir / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def naive_input(path: Path, mean: float, std: float) -> np.ndarray:
    """The naive way: gray, resized to 28x28, normalized; no polarity, no cropping, no centering."""
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L"), np.float32)
    return normalize(cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA), mean, std)[None]


def evaluate(recognizer: Recognizer, set_dir: Path, data_root: Path) -> dict:
    """Per group of the set in `set_dir`: accuracy with this project's preprocessing and with the
    naive one, per digit too, the calibration error of the reported probabilities, and the share
    of sure answers with the error rate among them; for mnist_paper also the model's accuracy on
    the same digits as MNIST stores them ("plain_accuracy"). Plus, for the evaluation set (not
    a tuning set), "mnist_test": the whole MNIST test set as stored."""
    rows = _rows(set_dir)
    norm = recognizer.normalize
    results = {}
    progress = Progress(sum(r["group"] in GROUPS for r in rows), "  ", "image")
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        paths = [set_dir / r["path"] for r in members]
        labels = np.array([int(r["label"]) for r in members])
        answers = recognizer.recognize(paths)
        got = np.array([a.get("digit", -1) for a in answers])  # -1: no digit found
        prob = np.array([a.get("prob", 0.0) for a in answers])
        naive = np.stack([naive_input(p, norm["mean"], norm["std"]) for p in paths])
        naive_got = recognizer.logits(naive).argmax(axis=1)
        results[group] = {
            **_scores(prob, got == labels, recognizer.min_prob),
            "naive_accuracy": float((naive_got == labels).mean()),
            "no_digit": int((got == -1).sum()),
            "per_digit": {
                d: float((got == labels)[labels == d].mean()) for d in range(10) if d in labels
            },
        }
        if group == "mnist_paper" and all(r["mnist_index"] for r in members):
            index = np.array([int(r["mnist_index"]) for r in members])
            plain = read_mnist(data_root, "test")[0][index]
            plain = normalize(plain, norm["mean"], norm["std"])[:, None]
            results[group]["plain_accuracy"] = float(
                (recognizer.logits(plain).argmax(1) == labels).mean()
            )
        progress.step(done=len(members))
    if not any(r["mnist_index"] for r in rows):  # a tuning set: the test set stays unread
        return results
    images, labels = read_mnist(data_root, "test")
    probs = recognizer.probabilities(normalize(images, norm["mean"], norm["std"])[:, None])
    results["mnist_test"] = _scores(
        probs.max(axis=1), probs.argmax(axis=1) == labels, recognizer.min_prob
    )
    return results


def _scores(prob: np.ndarray, correct: np.ndarray, min_prob: float) -> dict:
    return {
        "images": len(prob),
        "accuracy": float(correct.mean()),
        "calibration_error": calibrate.calibration_error(prob, correct),
        **calibrate.risk_coverage(prob, correct, min_prob),
        "prob": prob.tolist(),  # for the risk-coverage plot; dropped from the JSON
        "correct": correct.tolist(),
    }


def report(set_dir: Path, model_dir: Path, out: Path, data_root: Path, examples: int = 4) -> str:
    """Evaluate, write `out/realworld.json`, `.md`, an examples figure and a risk-coverage plot;
    return the Markdown."""
    if not (set_dir / "labels.csv").is_file():
        raise UserError(f"no evaluation set in {set_dir} (write one with tools/make_realworld.py)")
    recognizer = Recognizer(model_dir)
    results = evaluate(recognizer, set_dir, data_root)
    numbers = {}
    if "line_model" in recognizer.meta["files"]:
        numbers = number_scores(NumberReader(model_dir), set_dir, _rows(set_dir))
    figures.risk_coverage(results, recognizer.min_prob, out / "risk_coverage.png")
    for r in results.values():
        del r["prob"], r["correct"]
    meta = recognizer.meta
    lines = [
        f"Model: {meta['model']['name']} from {meta['checkpoint']}; temperature "
        f"{recognizer.temperature:.2f}, sure at p >= {recognizer.min_prob:.3f} (both chosen at "
        "export on held-out training images).",
        "",
        "| group | images | accuracy | MNIST as stored | naive (gray + resize) | calibration error "
        "| sure | wrong among sure | worst digits |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for group, r in results.items():
        worst = sorted(r.get("per_digit", {}).items(), key=lambda item: item[1])[:3]
        plain = f"{r['plain_accuracy']:.2%}" if "plain_accuracy" in r else ""
        naive = f"{r['naive_accuracy']:.2%}" if "naive_accuracy" in r else ""
        lines.append(
            f"| {group} | {r['images']:,} | {r['accuracy']:.2%} | {plain} | {naive} "
            f"| {r['calibration_error']:.2%} | {r['sure_share']:.1%} | {r['sure_error']:.2%} "
            f"| {', '.join(f'{d}: {a:.0%}' for d, a in worst)} |"
        )
    markdown = "\n".join(lines) + "\n"
    if numbers:
        markdown += "\nWhole numbers (`deploy/infer.py --number`):\n\n" + numbers_table(numbers)
    summary = {"model": meta, "set": str(set_dir), "groups": results, "numbers": numbers}
    write_json(out / "realworld.json", summary)
    write_text(out / "realworld.md", markdown)
    figures.examples(
        set_dir, _rows(set_dir), GROUPS, recognizer, out / "realworld_examples.png", examples
    )
    return markdown
