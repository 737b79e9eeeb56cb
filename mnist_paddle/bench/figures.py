"""The evaluation's figures (bench/realworld.py draws them): the risk-coverage curves of each
group, and examples of each group beside what the model saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving.preprocess import load_digit
from mnist_paddle.train import calibrate


def risk_coverage(results: dict, min_prob: float, path: Path) -> None:
    """Error rate among the answers kept against the share kept, per group, as the threshold
    goes down; a dot where the export's threshold is."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for group, r in results.items():
        prob, correct = np.array(r["prob"]), np.array(r["correct"], bool)
        coverage, error = calibrate.risk_coverage_curve(prob, correct)
        (line,) = ax.plot(coverage, 100 * error, label=group)
        ax.plot(r["sure_share"], 100 * r["sure_error"], "o", color=line.get_color())
    ax.set_xlabel("share of answers kept (sure)")
    ax.set_ylabel("wrong among those kept (%)")
    ax.set_title(f"risk-coverage; dots: the export's threshold p >= {min_prob:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def examples(set_dir: Path, rows: list[dict], groups, recognizer, path: Path, per_group: int):
    """A figure: a row per group, its first images each beside the 28x28 image the model saw."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(groups), 2 * per_group, figsize=(2.6 * per_group, 1.4 * len(groups)), squeeze=False
    )
    for line, group in zip(axes, groups):
        picks = [r for r in rows if r["group"] == group][:per_group]
        for k, row in enumerate(picks):
            file = set_dir / row["path"]
            with Image.open(file) as image:
                line[2 * k].imshow(image.convert("RGBA"))
            line[2 * k].set_title(f"label {row['label']}", fontsize=8)
            seen = load_digit(file)  # (28, 28): what the model is fed, before normalization
            probs = recognizer.digit_probabilities([seen])[0]
            digit = int(probs.argmax())
            line[2 * k + 1].imshow(seen, cmap="gray", vmin=0, vmax=255)
            color = "green" if digit == int(row["label"]) else "red"
            line[2 * k + 1].set_title(f"{digit} (p={probs[digit]:.2f})", fontsize=8, color=color)
        line[0].set_ylabel(group, fontsize=8)
        for ax in line:
            ax.set_xticks([])
            ax.set_yticks([])
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
