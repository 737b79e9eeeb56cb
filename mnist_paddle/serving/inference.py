"""Recognize digits with an exported model through Paddle Inference (`paddle.inference`).

Needs only the export folder (`tools/export.py` writes it), never the training code:

    metadata.json        model name, input name and shape, normalization, class names, accuracy
    inference.json       the PIR program (Model.save(..., training=False))
    inference.pdiparams  the parameters
    line.json, line.pdiparams
                         the line model, if tools/train_numbers.py has added it: it reads a
                         whole number's strip of ink with CTC (serving/numbers.py)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import paddle
import paddle.inference as paddle_infer

from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError, first_line
from mnist_paddle.fileio import atomic_path
from mnist_paddle.serving import gpu
from mnist_paddle.serving.ctc import alone
from mnist_paddle.serving.debug import picture
from mnist_paddle.serving.images import read_gray
from mnist_paddle.serving.onnx import OnnxPredictor
from mnist_paddle.serving.preprocess import NO_DIGIT, page_digit
from mnist_paddle.serving.strip import WIDEN, frames_strip

METADATA = "metadata.json"
# 2: the SHA-256 of each file; 3: temperature, min_prob; 4: the line model alone reads numbers
FORMAT = "mnist-paddle-inference/4"
TOP_K = 3
RUNTIMES = ("paddle", "onnxruntime")
# keys of metadata.json
REQUIRED = ("files", "sha256", "input_shape", "normalize", "class_names", "temperature", "min_prob")
# a lone digit the digit model gives less than SECOND_LOOK is the likeliest under both models,
# the line model's log-probabilities counting LINE_WEIGHT beside its own (docs/accuracy.md)
SECOND_LOOK = 0.85
LINE_WEIGHT = 0.5


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_metadata(model_dir: str | Path) -> dict:
    model_dir = Path(model_dir)
    path = model_dir / METADATA
    if not model_dir.is_dir():
        raise UserError(
            f"model folder {model_dir} not found (export one with `python tools/export.py`)"
        )
    if not path.is_file():
        raise UserError(f"{model_dir}: no exported model here ({METADATA} missing)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise UserError(f"{path}: format {found!r}, this version reads {FORMAT!r}; export again")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise UserError(f"{path}: {', '.join(missing)} missing; export the model again")
    return meta


def checked_file(model_dir: Path, meta: dict, kind: str) -> Path:
    """The export's `kind` file (a key of its metadata's "files"), checked against the SHA-256
    recorded at export."""
    path = model_dir / meta["files"][kind]
    if not path.is_file():
        raise UserError(f"{model_dir}: {path.name} is missing; export the model again")
    if file_digest(path) != meta["sha256"][path.name]:
        raise UserError(
            f"{path}: damaged or truncated (its SHA-256 is not the one {METADATA} "
            "recorded at export); export the model again"
        )
    return path


def create_predictor(config: paddle_infer.Config, model_dir: Path) -> _Predictor:
    """A Paddle Inference predictor, Paddle's log lines silenced; a model it cannot load is a
    one-line error naming the export folder."""
    config.disable_glog_info()
    # Paddle's executor hands each tensor it is done with to a collector thread, waking it every
    # time: for models this small that costs more than their kernels (docs/speed.md). Kept, the
    # tensors are reused by the next run. A value set in the environment stands.
    if "FLAGS_eager_delete_tensor_gb" not in os.environ:
        paddle.set_flags({"FLAGS_eager_delete_tensor_gb": -1.0})
    try:
        return _Predictor(paddle_infer.create_predictor(config))
    except Exception as e:  # Paddle raises its own error types for unreadable model files
        raise UserError(f"{model_dir}: cannot load the model ({first_line(e)})") from None


def cpu_config(
    model_file: Path, params_file: Path, onednn: bool, threads: int
) -> paddle_infer.Config:
    config = paddle_infer.Config(str(model_file), str(params_file))
    config.disable_gpu()
    if onednn:
        config.enable_mkldnn()  # Paddle's default on CPU; said here to be sure
    else:
        config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    return config


class Recognizer:
    """Paddle Inference predictors for an exported model, created once and reused.

    On CPU there are two: oneDNN kernels on all cores for batches, and Paddle's plain kernels
    on one core for single images, which they run about twice as fast (0.1 against 0.2 ms here;
    tools/benchmark.py). Both give the same logits within 1e-5. `runtime="onnxruntime"` runs the
    export's `inference.onnx` (tools/export.py --onnx) through ONNX Runtime instead.

    With Paddle Inference, an export with a line model (tools/train_numbers.py) has a third: the
    line model (`line`, on one core), which numbers.py reads with, and which gives its opinion
    on a lone digit the digit model doubts (`read_digits`).
    """

    def __init__(
        self,
        model_dir: str | Path = "output/inference",
        device: str = "cpu",
        threads: int | None = None,
        tensorrt: bool = False,
        min_prob: float | None = None,
        precision: str = "fp32",
        runtime: str = "paddle",
    ):
        self.model_dir = Path(model_dir)
        self.meta = read_metadata(self.model_dir)
        if runtime not in RUNTIMES:
            raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if runtime == "onnxruntime":
            if device != "cpu" or tensorrt:
                raise UserError("--runtime onnxruntime runs on the CPU (no --device gpu)")
            if "onnx" not in self.meta["files"]:
                raise UserError(
                    f"{self.model_dir}: no ONNX model in this export; export with "
                    "`python tools/export.py --onnx`"
                )
            self._batch = self._single = OnnxPredictor(
                checked_file(self.model_dir, self.meta, "onnx"), threads
            )
        else:
            self._create_paddle(device, threads, tensorrt, precision)
        self.line = None
        if runtime == "paddle" and "line_model" in self.meta["files"]:
            line = [  # the line model's program and parameters
                checked_file(self.model_dir, self.meta, f"line_{k}") for k in ("model", "params")
            ]
            # plain kernels on one thread: a strip is small, and the service runs a worker per core
            config = gpu.gpu_config(*line) if device == "gpu" else cpu_config(*line, False, 1)
            self.line = create_predictor(config, self.model_dir)
        self.normalize = self.meta["normalize"]
        self.class_names = self.meta["class_names"]
        # softmax(logits / temperature): probabilities fitted to held-out images at export
        self.temperature = float(self.meta["temperature"])
        # an answer is "sure" at this top probability or above (export's choice, or the caller's)
        self.min_prob = float(self.meta["min_prob"] if min_prob is None else min_prob)

    def _create_paddle(self, device: str, threads: int | None, tensorrt: bool, precision: str):
        files = tuple(checked_file(self.model_dir, self.meta, k) for k in ("model", "params"))
        if device == "gpu":
            if tensorrt:  # the TensorRT program and its parameters, converted once and cached
                files = gpu.tensorrt_model(files[0], self.meta, precision)
            self._batch = create_predictor(gpu.gpu_config(*files), self.model_dir)
            self._single = self._batch
        elif tensorrt:
            raise UserError("--tensorrt needs --device gpu")
        else:
            cores = threads or os.cpu_count() or 1
            self._batch = create_predictor(cpu_config(*files, True, cores), self.model_dir)
            self._single = create_predictor(cpu_config(*files, False, 1), self.model_dir)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 1, 28, 28) float32 normalized images -> (N, classes) logits."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return (self._single if len(batch) == 1 else self._batch).run(batch)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities: softmax of the logits over the export's temperature."""
        return softmax(self.logits(batch), self.temperature)

    def recognize(
        self, paths: list[Path], batch_size: int = 256, debug_dir: Path | None = None
    ) -> list[dict]:
        """One result per path, in order: {"path", "digit", "prob", "top"} or {"path", "error"}.

        With `debug_dir`, the 28x28 image the model saw for input i is written there as
        `<i>_<name>.png`, and the input beside the cleaned page (what was removed in red) as
        `<i>_<name>_page.png`.
        """
        results: list[dict] = [{} for _ in paths]
        found: list[tuple[int, np.ndarray]] = []  # (input index, its 28x28 digit)
        for i, path in enumerate(paths):
            try:
                gray = read_gray(path)
            except UserError as e:
                results[i] = {"path": str(path), "error": str(e)}
                continue
            digit, page = page_digit(gray)
            if digit is None:
                results[i] = {"path": str(path), "error": f"{path}: {NO_DIGIT}"}
                continue
            if debug_dir is not None:
                stem = Path(debug_dir) / f"{i:04d}_{Path(path).stem}"
                with atomic_path(stem.with_name(stem.name + ".png")) as tmp:
                    cv2.imwrite(str(tmp), digit.round().astype(np.uint8))
                with atomic_path(stem.with_name(stem.name + "_page.png")) as tmp:
                    cv2.imwrite(str(tmp), picture(gray, page))
            found.append((i, digit))
        if found:
            probs, choices = self.read_digits([digit for _, digit in found], batch_size)
            for (i, _), p, choice in zip(found, probs, choices):
                results[i] = {"path": str(paths[i]), **self.answer(p, choice)}
        return results

    def read_digits(
        self, digits: list[np.ndarray], batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """The digit model's calibrated probabilities of (28, 28) digits, (N, classes), and the
        class answered for each: its likeliest, or where it gives that less than SECOND_LOOK
        (and the line model reads strips as this version makes them), the likeliest under both
        models, the line model reading the digit as a one-frame strip (ctc.alone). The
        probabilities stay the digit model's: an answer changed is as unsure as it was of it."""
        probs = self.digit_probabilities(digits, batch_size)
        choice = probs.argmax(axis=1)
        if self.line is None or self.meta.get("line_model", {}).get("strip_widen") != WIDEN:
            return probs, choice
        for i in np.flatnonzero(probs.max(axis=1) < SECOND_LOOK):
            pixels = np.ascontiguousarray(frames_strip([digits[i]])[None, None], np.float32)
            line = alone(softmax(self.line.run(pixels)[0]))
            both = np.log(np.maximum(probs[i], 1e-30)) + LINE_WEIGHT * np.log(line + 1e-300)
            choice[i] = int(both.argmax())
        return probs, choice

    def digit_probabilities(self, digits: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """(28, 28) MNIST-like digits (`preprocess.load_digit`) -> (N, classes) calibrated
        probabilities, normalized as the export says and run `batch_size` at a time."""
        return softmax(self.digit_logits(digits, batch_size), self.temperature)

    def digit_logits(self, digits: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """(28, 28) MNIST-like digits -> (N, classes) logits, `batch_size` at a time."""
        return self._batched(self.logits, digits, batch_size)

    def _batched(self, run, digits: list[np.ndarray], batch_size: int) -> np.ndarray:
        """`run` (normalized (n, 1, 28, 28) -> logits) over `digits`, `batch_size` at a time."""
        mean, std = self.normalize["mean"], self.normalize["std"]
        logits = []
        for start in range(0, len(digits), batch_size):
            batch = normalize(np.stack(digits[start : start + batch_size])[:, None], mean, std)
            logits.append(run(np.ascontiguousarray(batch, dtype=np.float32)))
        return np.concatenate(logits)

    def answer(self, probs: np.ndarray, choice: int | None = None) -> dict:
        """{"digit", "prob", "sure", "top"} for one image's class probabilities: the likeliest
        class, or the `choice` of `read_digits`, then the likeliest others."""
        best = int(probs.argmax() if choice is None else choice)
        top = [best, *[k for k in np.argsort(-probs) if k != best][: TOP_K - 1]]
        return {
            "digit": int(self.class_names[best]),
            "prob": round(float(probs[best]), 4),
            "sure": bool(probs[best] >= self.min_prob),
            "top": [
                {"digit": int(self.class_names[k]), "prob": round(float(probs[k]), 4)} for k in top
            ],
        }


class _Predictor:
    """A Paddle Inference predictor with its input and output handles."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.input = predictor.get_input_handle(predictor.get_input_names()[0])
        self.output = predictor.get_output_handle(predictor.get_output_names()[0])

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.input.reshape(list(batch.shape))
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return self.output.copy_to_cpu()


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N, classes) logits -> probabilities of softmax(logits / temperature)."""
    z = logits / temperature
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
