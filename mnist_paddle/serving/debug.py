"""What the readers saw, as pictures for --debug-dir and the service's page: the input beside
the cleaned page, and for a number its strip, its digits' cuts and their boxes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving.page import Page


def picture(gray: np.ndarray, page: Page) -> np.ndarray:
    """A BGR picture of the cleaning, for --debug-dir: the input with what was removed in red,
    beside the cleaned page with the boxes' cells outlined."""
    before = cv2.cvtColor(np.clip(gray, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if page.removed is not None:
        before[page.removed > 0] = (0, 0, 255)
    after = cv2.cvtColor(np.clip(page.gray, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    for x, y, w, h in page.cells:
        cv2.rectangle(after, (x, y), (x + w - 1, y + h - 1), (0, 160, 0), 1)
    gap = np.full((gray.shape[0], 8, 3), 128, np.uint8)
    return np.hstack([before, gap, after])


def write_debug(debug_dir: Path, index: int, name: str, gray: np.ndarray, result: dict) -> None:
    """What the reader saw, into `debug_dir`: the input beside the cleaned page (`_page`), the
    strip the line model read (`_strip`), each digit as the digit model saw it (`_digitK`), and
    the input with the digits' boxes drawn (`_boxes`)."""
    stem = Path(debug_dir) / f"{index:04d}_{name}"
    reading = result["reading"]
    pictures = {"page": picture(gray, reading.page)}
    if reading.strip is not None:
        pictures["strip"] = (255 * reading.strip.pixels).round().astype(np.uint8)
    for k, cut in enumerate(reading.cuts):
        pictures[f"digit{k}"] = cut.round().astype(np.uint8)
    overview = cv2.cvtColor(np.clip(gray, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(gray.shape) / 300))
    for d in result["digits"]:
        x, y, w, h = d["box"]
        color = (0, 160, 0) if d["sure"] else (0, 0, 220)
        cv2.rectangle(overview, (x, y), (x + w - 1, y + h - 1), color, thickness)
        font = max(0.4, h / 60)
        place = (x, max(0, y - 3))
        cv2.putText(
            overview, str(d["digit"]), place, cv2.FONT_HERSHEY_SIMPLEX, font, color, thickness
        )
    pictures["boxes"] = overview
    for suffix, image in pictures.items():
        with atomic_path(stem.with_name(f"{stem.name}_{suffix}.png")) as tmp:
            cv2.imwrite(str(tmp), image)
