"""ONNX export of the static model with paddle2onnx, checked through ONNX Runtime.

`tools/export.py --onnx` writes `inference.onnx` beside the Paddle program; serving/onnx.py runs
it (`--runtime onnxruntime`), PaddleClas's `use_onnx` way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mnist_paddle.errors import UserError, first_line

OPSET = 13


def export_onnx(model_file: Path, params_file: Path, onnx_file: Path) -> None:
    """Convert the PIR program to ONNX with paddle2onnx (its chatter hidden)."""
    try:
        import paddle2onnx
    except ImportError:
        raise UserError("--onnx needs paddle2onnx (pip install -r requirements.txt)") from None
    try:
        with quiet_fds():  # paddle2onnx and polygraphy print a dozen lines from C++ and Python
            paddle2onnx.export(
                str(model_file), str(params_file), save_file=str(onnx_file), opset_version=OPSET
            )
    except Exception as e:  # paddle2onnx raises plain Exceptions for unsupported programs
        raise UserError(f"paddle2onnx could not convert the model ({first_line(e)})") from None
    if not onnx_file.is_file():
        raise UserError("paddle2onnx wrote no model")


def check_onnx(
    onnx_file: Path, images: np.ndarray, expected: np.ndarray, tolerance: float
) -> float:
    """Max |logit difference| between ONNX Runtime and `expected` on `images`; a `UserError`
    above `tolerance`."""
    from mnist_paddle.serving.onnx import OnnxPredictor

    got = OnnxPredictor(onnx_file).run(images)
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        raise UserError(
            f"the ONNX model disagrees with Paddle Inference: max logit difference {diff:.2e} > "
            f"{tolerance:g}; nothing was written"
        )
    return diff


@contextmanager
def quiet_fds() -> Iterator[None]:
    """Send what this process writes to stdout and stderr, C++ included, to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
