"""Image file -> the (1, 28, 28) input an MNIST model expects. Used by every deployment tool.

MNIST digits are light strokes on a dark background, 28x28, normalized like the training data.
Real images are often the opposite (dark ink on light paper), so the polarity is read off the
image's border, which is background in any sensible picture of one digit.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mnist_paddle.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SIZE = 28  # MNIST images are 28x28
BORDER = 2  # pixels of each edge that are taken as background


def read_gray(path: str | Path) -> np.ndarray:
    """The image at `path` as (H, W) float32 gray levels in 0..255; a `UserError` if unreadable.

    Transparent pixels (RGBA, e.g. a drawing canvas export) are laid over a background that
    contrasts with the strokes, so a transparent page is not read as ink.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None
    if data.size == 0:
        raise UserError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"{path}: not an image cv2 can decode")
    scale = 255.0 / np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 255.0
    image = image.astype(np.float32) * scale
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        color, alpha = image[:, :, :3], image[:, :, 3:] / 255.0
        gray = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)[:, :, None]
        ink = gray[alpha > 0.5]
        paper = 0.0 if ink.size and ink.mean() > 127 else 255.0  # contrast with the strokes
        return (gray * alpha + paper * (1 - alpha))[:, :, 0]
    return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray levels -> (28, 28) float32 in 0..255, light digit on dark like MNIST."""
    border = np.concatenate(
        [
            gray[:BORDER].ravel(),
            gray[-BORDER:].ravel(),
            gray[:, :BORDER].ravel(),
            gray[:, -BORDER:].ravel(),
        ]
    )
    if np.median(border) > 127:  # light background: dark ink on paper
        gray = 255.0 - gray
    return cv2.resize(gray, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def normalize(image: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(28, 28) gray levels -> the (1, 28, 28) float32 model input."""
    return ((image - mean) / std).astype(np.float32)[None]


def load_input(path: str | Path, mean: float, std: float) -> np.ndarray:
    """Image file -> (1, 28, 28) float32 model input, normalized with the model's mean and std."""
    return normalize(to_mnist(read_gray(path)), mean, std)
