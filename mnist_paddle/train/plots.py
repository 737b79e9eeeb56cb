"""The PNGs a training run writes: sample digits, learning curves, predictions, confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mnist_paddle.fileio import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path, tight: bool = True) -> None:
    """`tight`: cropped to what is drawn (a grid of many axes is laid out by hand instead:
    measuring it took most of a run's plotting time)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight" if tight else None)
    plt.close(fig)


def _digit_grid(
    images: np.ndarray, titles: list[str], colors: list[str], path: Path, cols: int = 8
):
    """images: (N, 28, 28), any range (each is shown from its own min to max)."""
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, color in zip(axes.flat, images, titles, colors):
        ax.imshow(image, cmap="gray")
        ax.set_title(title, fontsize=8, color=color)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.25 / fig.get_figheight())
    _save(fig, path, tight=False)


def plot_samples(images: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """A grid of training images with their labels."""
    _digit_grid(images, [f"label {y}" for y in labels], ["black"] * len(labels), path)


def plot_predictions(
    images: np.ndarray, labels: np.ndarray, preds: np.ndarray, path: Path, per_kind: int = 16
) -> None:
    """The first `per_kind` correct test predictions (green), then the first mistakes (red)."""
    right = np.flatnonzero(preds == labels)[:per_kind]
    wrong = np.flatnonzero(preds != labels)[:per_kind]
    picks = np.concatenate([right, wrong])
    titles = [f"{preds[i]} (true {labels[i]})" for i in picks]
    colors = ["green"] * len(right) + ["red"] * len(wrong)
    _digit_grid(images[picks], titles, colors, path)


def plot_curves(metrics: dict, path: Path) -> None:
    """Loss (per step and per epoch) and accuracy (per epoch), training beside evaluation."""
    epochs = [e["epoch"] for e in metrics["epochs"]]
    steps = np.asarray(metrics["step_losses"])
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    if len(steps):
        x = np.arange(1, len(steps) + 1) / len(steps) * len(epochs)  # in epochs
        loss_ax.plot(x, steps, color="#bbbbbb", lw=0.6, label="train (per step)")
    loss_ax.plot(epochs, [e["loss"] for e in metrics["epochs"]], "o-", label="train (epoch mean)")
    evaluated = metrics.get("eval_split", "test")  # "validation" or "test"
    loss_ax.plot(epochs, [e["eval_loss"] for e in metrics["epochs"]], "s-", label=evaluated)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log", title="Loss")
    loss_ax.legend()
    acc_ax.plot(epochs, [100 * e["acc"] for e in metrics["epochs"]], "o-", label="train")
    acc_ax.plot(epochs, [100 * e["eval_acc"] for e in metrics["epochs"]], "s-", label=evaluated)
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    acc_ax.legend()
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    _save(fig, path)


def plot_confusion(labels: np.ndarray, preds: np.ndarray, path: Path, num_classes: int = 10):
    """Counts of (true label, prediction) pairs; the diagonal holds the correct ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    shown = ax.imshow(np.log1p(matrix), cmap="Blues")  # log: the mistakes stay visible
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            dark = shown.norm(np.log1p(count)) > 0.6
            ax.text(
                j,
                i,
                count,
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    ticks = range(num_classes)
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true label")
    ax.set_title(f"Confusion matrix ({(preds == labels).mean():.2%} correct)")
    _save(fig, path)


def plot_reliability(curves: dict[str, list[dict]], path: Path, title: str = "") -> None:
    """Reliability diagram: accuracy against the reported top probability, per bin, for each
    named curve (`calibrate.reliability` rows); the diagonal is a perfectly calibrated model."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="calibrated")
    for (name, rows), marker in zip(curves.items(), "os^d"):
        kept = [r for r in rows if r["count"]]
        ax.plot(
            [r["confidence"] for r in kept],
            [r["accuracy"] for r in kept],
            marker=marker,
            label=name,
        )
    ax.set_xlabel("reported probability of the answer (bin mean)")
    ax.set_ylabel("share of answers right")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    _save(fig, path)
