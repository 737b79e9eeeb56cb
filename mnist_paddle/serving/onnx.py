"""Run the exported model's ONNX twin (`inference.onnx`, tools/export.py --onnx) through ONNX
Runtime, with the same preprocessing and answers as Paddle Inference (`--runtime onnxruntime`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mnist_paddle.errors import UserError, first_line


class OnnxPredictor:
    """An ONNX Runtime session on the CPU with the same `run(batch) -> logits` as Paddle's."""

    def __init__(self, onnx_file: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError(
                "--runtime onnxruntime needs onnxruntime (pip install -r requirements.txt)"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(
                str(onnx_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ONNX Runtime's own error types for unreadable models
            raise UserError(f"{onnx_file}: cannot load the ONNX model ({first_line(e)})") from None
        self.input = self.session.get_inputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: batch})[0]
