"""Training, inference and service speed, measured side by side in one sitting.

Training: the three cases of training.py (this project, the tutorial's code, PyTorch), and the
race to 99% test accuracy (DAWNBench's figure) on configs/lenet_fast.yml, here and in PyTorch.
Inference of the exported model: Paddle Inference through the project's predictor, ONNX Runtime on
the paddle2onnx conversion of the same model (if installed), and the dygraph model of the
checkpoint it was exported from, at batch 1, 64 and 1024; and the `deploy/infer.py` command's
wall time (`python -m mnist_paddle.serving.infer`), process start included, for 1 and 1,000 PNGs.
Service: deploy/serve.py under wrk and tools/loadtest.py (loadtest.bench_service). Profiles
(profiles.py) of where the predictor's and a training step's time goes.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle import cpu
from mnist_paddle.bench import profiles, report, training
from mnist_paddle.bench.loadtest import bench_service
from mnist_paddle.bench.numbers import time_number
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import write_json, write_text
from mnist_paddle.serving.inference import Recognizer, read_metadata
from mnist_paddle.serving.numbers import NumberReader
from mnist_paddle.serving.onnx import OnnxPredictor
from mnist_paddle.train.checkpoint import load_network, resolve_checkpoint
from mnist_paddle.train.config import load_config
from mnist_paddle.train.data import read_mnist
from mnist_paddle.train.onnx import export_onnx

BATCHES = (1, 64, 1024)
TARGET = 0.99  # test accuracy of the time-to-accuracy race
# the service's load: JSON posts of one real-looking PNG (an MNIST test digit on paper, 112x112)
SERVICE_SAMPLE = Path(__file__).parents[2] / "deploy" / "samples" / "paper_0008_label5.png"
SERVICE_LABEL = 5
CALLS = {1: 2000, 64: 500, 1024: 30}  # timed predictor calls per batch size


# ---- inference -------------------------------------------------------------------------------


def latencies(fn, calls: int) -> dict:
    """{p50_ms, p99_ms} of `calls` timed calls of fn(), after a warm-up."""
    for _ in range(max(10, calls // 20)):  # warm-up
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
    }


def _by_batch(run) -> dict:
    """{batch: {p50_ms, p99_ms, images_per_second}} for run(batch_array)."""
    rng = np.random.default_rng(0)
    out = {}
    for batch in BATCHES:
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        stats = latencies(lambda x=x: run(x), CALLS[batch])
        stats["images_per_second"] = batch / (stats["p50_ms"] / 1000)
        out[str(batch)] = stats
    return out


def bench_inference(model_dir: Path, checkpoint: str | Path | None) -> dict:
    """Every runtime at every batch size; `checkpoint` is the one the export came from (the
    dygraph rows; skipped when None)."""
    recognizer = Recognizer(model_dir)
    meta = recognizer.meta
    results = {"paddle_inference": _by_batch(recognizer.logits)}
    results["onnxruntime"] = _onnxruntime(model_dir, meta)
    results["dygraph"] = _dygraph(checkpoint) if checkpoint else {"skipped": "no checkpoint given"}
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        results |= bench_gpu(model_dir)
    return results


def bench_gpu(model_dir: Path) -> dict:
    """Paddle Inference on the GPU, and through TensorRT in fp32 and fp16 (each skipped with
    its reason when it cannot run)."""
    rows = {}
    for name, options in (
        ("paddle_inference_gpu", {}),
        ("tensorrt_fp32", {"tensorrt": True, "precision": "fp32"}),
        ("tensorrt_fp16", {"tensorrt": True, "precision": "fp16"}),
    ):
        try:
            rows[name] = _by_batch(Recognizer(model_dir, device="gpu", **options).logits)
        except UserError as e:
            rows[name] = {"skipped": str(e)}
    return rows


def _onnxruntime(model_dir: Path, meta: dict) -> dict:
    """ONNX Runtime on the export's `inference.onnx` (tools/export.py --onnx), or on a
    paddle2onnx conversion made here when the export has none."""
    if "onnx" in meta["files"]:
        return _by_batch(OnnxPredictor(model_dir / meta["files"]["onnx"]).run)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        try:
            files = meta["files"]
            export_onnx(model_dir / files["model"], model_dir / files["params"], onnx_file)
            return _by_batch(OnnxPredictor(onnx_file).run)
        except UserError as e:  # paddle2onnx or onnxruntime missing, or the conversion failed
            return {"skipped": str(e)}


def _dygraph(checkpoint: str | Path) -> dict:
    """The checkpoint's network in dygraph mode, loaded with the project's checks."""
    try:
        network, _ = load_network(resolve_checkpoint(checkpoint))
    except UserError as e:
        return {"skipped": str(e)}

    def run(x):
        with paddle.no_grad():
            return network(paddle.to_tensor(x)).numpy()

    return _by_batch(run)


def bench_infer_cli(model_dir: Path, data_root: Path, files: int = 1000, repeats: int = 3) -> dict:
    """Wall time of the deploy/infer.py command for 1 file and for `files` files, start-up
    included."""
    images = read_mnist(data_root, "test")[0][:files]
    with tempfile.TemporaryDirectory() as tmp:
        for i, image in enumerate(images):
            cv2.imwrite(os.path.join(tmp, f"{i:04d}.png"), image)
        out = {}
        for label, target in (("1_file", os.path.join(tmp, "0000.png")), (f"{files}_files", tmp)):
            cmd = [sys.executable, "-m", "mnist_paddle.serving.infer"]
            cmd += ["--model-dir", str(model_dir), target]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=True)
                times.append(time.perf_counter() - start)
            out[label] = {"seconds": statistics.median(times), "runs": times}
    return out


# ---- the whole benchmark ---------------------------------------------------------------------


def environment() -> dict:
    versions = {
        "python": platform.python_version(),
        "paddlepaddle": paddle.__version__,
        "numpy": np.__version__,
    }
    for module in ("torch", "onnxruntime", "paddle2onnx"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    processor = cpu.describe(cpu.read_cpuinfo())
    name = processor.pop("name") or platform.processor()
    return {"cores": os.cpu_count(), "cpu": name, "processor": processor, "versions": versions}


def run(
    out_dir: Path,
    model_dir: Path,
    checkpoint: str | Path | None,
    data_root: Path,
    config: Path,
    epochs: int,
    inference_only: bool = False,
    race_config: Path = Path("configs/lenet_fast.yml"),
    service_seconds: int = 10,
) -> dict:
    """The whole benchmark: training cases of the recipe `config` and the race to 99% test accuracy
    on `race_config` (unless `inference_only`), then inference of the export in `model_dir` (and of
    `checkpoint`, its source, in dygraph), the service under load, and the profiles that explain
    the gaps; writes results.{json,md}."""
    results = {"environment": environment(), "training": {}, "time_to_accuracy": {}}
    for case in () if inference_only else training.CASES:
        print(f"training: {case} ({epochs} epochs) ...", flush=True)
        results["training"][case] = training.run_case(case, epochs, str(data_root), str(config))
    if not inference_only:
        results["time_to_accuracy"] = race(data_root, race_config)
        print("profile: one training step ...", flush=True)
        results["training_profile"] = profiles.training_profile()
    print("inference: predictor, ONNX Runtime, dygraph ...", flush=True)
    results["inference"] = bench_inference(model_dir, checkpoint)
    print("inference: profiles ...", flush=True)
    results["predictor_profile"] = profiles.predictor_profile(model_dir)
    results["batch1_profile"] = profiles.batch1_profile(model_dir)
    print("inference: deploy/infer.py ...", flush=True)
    results["infer_cli"] = bench_infer_cli(model_dir, data_root)
    if "line_model" in read_metadata(model_dir)["files"]:
        results["number"] = time_number(NumberReader(model_dir), data_root)
    print("service: wrk and tools/loadtest.py ...", flush=True)
    png = SERVICE_SAMPLE.read_bytes()
    results["service"] = bench_service(model_dir, png, SERVICE_LABEL, service_seconds)
    results["ratios"] = report.ratios(results)
    write_json(out_dir / "results.json", results)
    markdown = report.to_markdown(results)
    write_text(out_dir / "results.md", markdown)
    return results


def race(data_root: Path, config: Path, target: float = TARGET) -> dict:
    """The recipe `config` in this project and in PyTorch, each epoch followed by a test
    evaluation: training seconds until the test accuracy first reaches `target`."""
    epochs = load_config(config).train.epochs
    out = {"config": str(config), "target": target, "epochs": epochs}
    for case in ("project", "pytorch"):
        print(f"time to {target:.1%}: {case} ({config}, {epochs} epochs) ...", flush=True)
        result = training.run_case(case, epochs, str(data_root), str(config))
        if "error" not in result:
            result["seconds_to_target"] = training.time_to_accuracy(result, target)
        out[case] = result
    return out
