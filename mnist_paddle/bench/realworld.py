"""A fixed-seed evaluation set that looks like what people feed a digit recognizer.

Two groups, each image named `<group>/<index>_label<digit>.<ext>` and listed in `labels.csv`:

- mnist_paper: MNIST test digits re-rendered as pen on paper: a page of random size and tint,
  the digit at a random size and place, a random pen colour, texture, noise, blur, contrast,
  and some saved as JPEG;
- printed: the digits 0-9 typeset with the fonts matplotlib ships (so every machine has the
  same ones) at random sizes, positions, slants and colours; some as transparent PNGs (like a
  drawing canvas exports), some light on dark (like chalk on a board).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path, write_json, write_text
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.serving.preprocess import load_digit
from mnist_paddle.train.data import mnist_files, read_idx

GROUPS = ("mnist_paper", "printed")
# The fonts in matplotlib's own folder that have ordinary digits (the STIX size variants and
# the TeX symbol fonts do not).
FONT_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral", "cmr10", "cmss10", "cmtt10")


def fonts() -> list[Path]:
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return sorted(
        p
        for p in folder.glob("*.ttf")
        if p.stem.startswith(FONT_PREFIXES) and "Display" not in p.stem
    )


def make_realworld(out: Path, data_root: Path, count: int = 1000, seed: int = 0) -> Path:
    """Write `count` images per group under `out` and `out/labels.csv`; returns the CSV path."""
    rng = np.random.default_rng(seed)
    images, labels = (read_idx(path) for path in mnist_files(data_root, "test"))
    rows = []
    picks = rng.choice(len(images), size=count, replace=False)
    for i, index in enumerate(picks):
        page, ext = _pen_on_paper(images[index], rng)
        rows.append(_save(out, "mnist_paper", i, int(labels[index]), page, ext, rng) + [index])
    font_files = fonts()
    for i in range(count):
        digit = i % 10
        page, ext = _printed(str(digit), font_files[rng.integers(len(font_files))], rng)
        rows.append(_save(out, "printed", i, digit, page, ext, rng) + [""])
    with atomic_path(out / "labels.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "group", "label", "mnist_index"])  # index: in the test set
        writer.writerows(rows)
    return out / "labels.csv"


def _save(out: Path, group: str, i: int, label: int, page: np.ndarray, ext: str, rng) -> list:
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
    height, width = rng.integers(60, 400, size=2)
    size = int(rng.uniform(0.3, 0.9) * min(height, width))  # the 28x28 frame's side on the page
    ink = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    alpha = np.zeros((height, width), np.float32)
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    alpha[top : top + size, left : left + size] = np.clip(ink, 0, 1)
    paper = rng.uniform(170, 255, size=3)  # white to yellowish or grey paper
    pen = rng.uniform(0, 90, size=3)  # black, blue, dark grey ...
    page = _compose(alpha, paper, pen, rng)
    return page, (".jpg" if rng.random() < 0.4 else ".png")


def _printed(text: str, font_file: Path, rng) -> tuple[np.ndarray, str]:
    """A typeset digit: BGR on a coloured page, or BGRA with a transparent background."""
    font = ImageFont.truetype(str(font_file), int(rng.integers(18, 160)))
    left, top, right, bottom = font.getbbox(text)
    glyph = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(glyph).text((4 - left, 4 - top), text, fill=255, font=font)
    coverage = np.asarray(glyph, np.float32) / 255.0
    shear = rng.uniform(-0.3, 0.3)  # slant, like italics either way
    h, w = coverage.shape
    matrix = np.float32([[1, shear, max(0.0, -shear * h)], [0, 1, 0]])
    coverage = cv2.warpAffine(coverage, matrix, (w + int(abs(shear) * h) + 1, h))
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
    return _compose(alpha, background, color, rng), (".jpg" if rng.random() < 0.3 else ".png")


def _compose(alpha: np.ndarray, background, color, rng) -> np.ndarray:
    """Ink `alpha` in `color` over `background`, with texture, blur, contrast and noise (BGR)."""
    height, width = alpha.shape
    page = (
        background[None, None, :] * (1 - alpha[..., None]) + color[None, None, :] * alpha[..., None]
    )
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3)
    page += texture[..., None] * rng.uniform(0, 40)  # uneven paper
    blur = rng.uniform(0, 1.5)
    if blur > 0.3:
        page = cv2.GaussianBlur(page, (0, 0), blur)
    contrast = rng.uniform(0.6, 1.0)
    page = (page - page.mean()) * contrast + page.mean()
    page += rng.normal(0, rng.uniform(0, 10), page.shape)  # sensor noise
    return np.clip(page, 0, 255).astype(np.uint8)


def _rows(set_dir: Path) -> list[dict]:
    """The set's labels.csv: one {"path", "group", "label", "mnist_index"} per image."""
    with open(set_dir / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def naive_input(path: Path, mean: float, std: float) -> np.ndarray:
    """The naive way: gray, resized to 28x28, normalized; no polarity, no cropping, no centering."""
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L"), np.float32)
    return normalize(cv2.resize(gray, (28, 28), interpolation=cv2.INTER_AREA), mean, std)[None]


def evaluate(recognizer, set_dir: Path, data_root: Path) -> dict:
    """Accuracy per group of `recognizer` on the set in `set_dir`, with this project's
    preprocessing and the naive one, per digit too; for mnist_paper also the model's accuracy on
    the same digits as MNIST stores them ("plain_accuracy")."""
    rows = _rows(set_dir)
    norm = recognizer.normalize
    results = {}
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        paths = [set_dir / r["path"] for r in members]
        labels = np.array([int(r["label"]) for r in members])
        got = np.array([r.get("digit", -1) for r in recognizer.recognize(paths)])  # -1: none found
        naive = np.stack([naive_input(p, norm["mean"], norm["std"]) for p in paths])
        naive_got = recognizer.logits(naive).argmax(axis=1)
        results[group] = {
            "images": len(members),
            "accuracy": float((got == labels).mean()),
            "naive_accuracy": float((naive_got == labels).mean()),
            "no_digit": int((got == -1).sum()),
            "per_digit": {d: float((got == labels)[labels == d].mean()) for d in range(10)},
        }
        if group == "mnist_paper":
            index = np.array([int(r["mnist_index"]) for r in members])
            plain = read_idx(mnist_files(data_root, "test")[0])[index]
            plain = normalize(plain, norm["mean"], norm["std"])[:, None]
            results[group]["plain_accuracy"] = float(
                (recognizer.logits(plain).argmax(1) == labels).mean()
            )
    return results


def report(set_dir: Path, model_dir: Path, out: Path, data_root: Path, examples: int = 6) -> str:
    """Evaluate, write `out/realworld.json`, `.md` and an examples figure; return the Markdown."""

    if not (set_dir / "labels.csv").is_file():
        raise UserError(f"no evaluation set in {set_dir} (write one with tools/make_realworld.py)")
    recognizer = Recognizer(model_dir)
    results = evaluate(recognizer, set_dir, data_root)
    meta = recognizer.meta
    paper = results["mnist_paper"]
    lines = [
        f"Model: {meta['model']['name']} from {meta['checkpoint']}: {meta['test_acc']:.2%} on "
        f"the MNIST test set, {paper['plain_accuracy']:.2%} on the {paper['images']} test digits "
        "of mnist_paper as MNIST stores them.",
        "",
        "| group | images | our preprocessing | naive (gray + resize) | no digit found "
        "| worst digits |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for group, r in results.items():
        worst = sorted(r["per_digit"].items(), key=lambda item: item[1])[:3]
        lines.append(
            f"| {group} | {r['images']} | {r['accuracy']:.2%} | {r['naive_accuracy']:.2%} "
            f"| {r['no_digit']} | {', '.join(f'{d}: {a:.0%}' for d, a in worst)} |"
        )
    markdown = "\n".join(lines) + "\n"
    write_json(out / "realworld.json", {"model": meta, "set": str(set_dir), "groups": results})
    write_text(out / "realworld.md", markdown)
    plot_examples(set_dir, recognizer, out / "realworld_examples.png", examples)
    return markdown


def plot_examples(set_dir: Path, recognizer, path: Path, per_group: int) -> None:
    """A figure: the first images of each group above the 28x28 image the model saw."""
    import matplotlib.pyplot as plt

    rows = _rows(set_dir)
    picks = [r for g in GROUPS for r in [r for r in rows if r["group"] == g][:per_group]]
    fig, axes = plt.subplots(2, len(picks), figsize=(1.3 * len(picks), 3.0), squeeze=False)
    for column, row in enumerate(picks):
        file = set_dir / row["path"]
        with Image.open(file) as image:
            axes[0, column].imshow(image.convert("RGBA"))
        axes[0, column].set_title(f"label {row['label']}", fontsize=8)
        seen = load_digit(file)  # (28, 28): what the model is fed, before normalization
        probs = recognizer.digit_probabilities([seen])[0]
        digit = int(probs.argmax())
        axes[1, column].imshow(seen, cmap="gray", vmin=0, vmax=255)
        color = "green" if digit == int(row["label"]) else "red"
        axes[1, column].set_title(f"{digit} (p={probs[digit]:.2f})", fontsize=8, color=color)
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("model saw", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
