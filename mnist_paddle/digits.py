"""What a digit is to every part of the project: its shape, its classes, its normalization.

Training, export, serving and measuring all read these, so a model and the images fed to it
always agree. Imports only NumPy.
"""

from __future__ import annotations

import numpy as np

IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of one MNIST image
NUM_CLASSES = 10
INPUT_NAME = "image"  # the exported model's input


def normalize(pixels: np.ndarray | float, mean: float, std: float) -> np.ndarray:
    """Gray levels 0..255 -> model input, as the tutorial's `T.Normalize(mean, std)` does.

    Works on anything from one pixel value to an (N, 1, 28, 28) batch; returns float32.
    """
    return ((np.asarray(pixels, np.float32) - mean) / std).astype(np.float32)
