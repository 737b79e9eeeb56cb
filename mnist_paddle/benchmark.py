"""Training and inference speed, measured side by side in one sitting.

Training (seconds per epoch of 60,000 images, batch 64, Adam 1e-3: the LeNet recipe of
configs/lenet_tutorial.yml), each case in its own process so that none inherits another's
threads or caches:

    project  this project's training path (engine.train: paddle.Model.fit)
    seed     the tutorial's code: Model.fit over paddle.vision.datasets.MNIST + T.Normalize
    pytorch  the same network and optimizer in PyTorch over pre-normalized tensors (if installed)

Inference of the exported model: Paddle Inference through the project's predictor, ONNX Runtime on
the paddle2onnx conversion of the same model (if installed), and the dygraph model, at batch 1, 64
and 1024; and `deploy/infer.py` wall time, process start included, for 1 and 1,000 PNG files.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle.fileio import write_json, write_text

BATCHES = (1, 64, 1024)
CALLS = {1: 2000, 64: 500, 1024: 30}  # timed predictor calls per batch size
ROOT = Path(__file__).resolve().parents[1]


# ---- training cases, each run in a child process -------------------------------------------


def train_project(epochs: int, data_root: str) -> dict:
    from mnist_paddle import engine
    from mnist_paddle.config import load_config

    with tempfile.TemporaryDirectory() as out:
        overrides = [
            f"output_dir={out}",
            f"train.epochs={epochs}",
            "train.verbose=0",
            f"data.root={data_root}",
        ]
        metrics = engine.train(load_config(ROOT / "configs" / "lenet_tutorial.yml", overrides))
    return {
        "epoch_seconds": [e["seconds"] for e in metrics["epochs"]],
        "test_acc": metrics["final"]["eval_acc"],
    }


def train_seed(epochs: int, data_root: str) -> dict:
    """The tutorial's code, with the project's copy of the IDX files instead of the download."""
    import paddle.vision.transforms as T
    from paddle.vision.datasets import MNIST

    from mnist_paddle.data import FILES

    paddle.seed(1)
    transform = T.Normalize(mean=[127.5], std=[127.5])
    root = Path(data_root)
    train, test = (
        MNIST(
            image_path=str(root / FILES[s][0]),
            label_path=str(root / FILES[s][1]),
            mode=s,
            transform=transform,
            download=False,
        )
        for s in ("train", "test")
    )
    model = paddle.Model(paddle.vision.models.LeNet(num_classes=10))
    model.prepare(
        paddle.optimizer.Adam(learning_rate=0.001, parameters=model.parameters()),
        paddle.nn.CrossEntropyLoss(),
        paddle.metric.Accuracy(),
    )
    timer = EpochTimer()
    model.fit(train, epochs=epochs, batch_size=64, verbose=0, callbacks=[timer])
    return {
        "epoch_seconds": timer.seconds,
        "test_acc": model.evaluate(test, batch_size=1000, verbose=0)["acc"],
    }


class EpochTimer(paddle.callbacks.Callback):
    """Training wall time of each epoch (evaluation excluded)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def train_pytorch(epochs: int, data_root: str) -> dict:
    """The same LeNet (3x3 conv, 6 and 16 channels, 120-84-10, no activation between the fully
    connected layers), Adam 1e-3 and batch 64 in PyTorch, over pre-normalized tensors."""
    import torch
    from torch import nn

    from mnist_paddle.data import mnist_files, read_idx

    torch.manual_seed(1)

    def tensors(split: str):
        images, labels = (read_idx(path) for path in mnist_files(data_root, split))
        x = torch.from_numpy(images.astype(np.float32)).sub_(127.5).div_(127.5)
        return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    x, y = tensors("train")
    tx, ty = tensors("test")
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.Linear(120, 84),
        nn.Linear(84, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            loss = loss_fn(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        acc = (net(tx).argmax(1) == ty).float().mean().item()
    return {"epoch_seconds": seconds, "test_acc": acc}


CASES = {"project": train_project, "seed": train_seed, "pytorch": train_pytorch}


def _child(case: str, epochs: int, data_root: str) -> dict:
    """Run one training case in a fresh Python; its last stdout line is its JSON result."""
    cmd = [
        sys.executable,
        str(ROOT / "tools" / "benchmark.py"),
        "--case",
        case,
        "--epochs",
        str(epochs),
        "--data-root",
        data_root,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds_per_epoch"] = statistics.median(result["epoch_seconds"])
    result["images_per_second"] = 60000 / result["seconds_per_epoch"]
    return result


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


def bench_inference(model_dir: Path) -> dict:
    from mnist_paddle.inference import Recognizer

    recognizer = Recognizer(model_dir)
    meta = recognizer.meta
    results = {"paddle_inference": _by_batch(recognizer.logits)}
    try:
        import onnxruntime as ort
        import paddle2onnx
    except ImportError as e:
        results["onnxruntime"] = {
            "skipped": f"{e.name} not installed (pip install -r requirements-bench.txt)"
        }
    else:
        with tempfile.TemporaryDirectory() as tmp:
            onnx_file = str(Path(tmp) / "model.onnx")
            with _quiet_fds():  # paddle2onnx and polygraphy print a dozen lines from C++ and Python
                paddle2onnx.export(
                    str(model_dir / meta["files"]["model"]),
                    str(model_dir / meta["files"]["params"]),
                    save_file=onnx_file,
                    opset_version=13,
                )
            options = ort.SessionOptions()
            options.intra_op_num_threads = os.cpu_count() or 1
            session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            results["onnxruntime"] = _by_batch(lambda x: session.run(None, {name: x}))
    results["dygraph"] = _dygraph(model_dir, meta)
    return results


@contextmanager
def _quiet_fds():
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


def _dygraph(model_dir: Path, meta: dict) -> dict:
    from mnist_paddle.checkpoint import read_meta, resolve_checkpoint
    from mnist_paddle.errors import UserError
    from mnist_paddle.models import build_model

    # The checkpoint path is relative to where the export ran: the folder above output/.
    try:
        prefix = resolve_checkpoint(model_dir.resolve().parent.parent / meta["checkpoint"])
    except UserError as e:
        return {"skipped": str(e)}
    model = read_meta(prefix)["model"]
    network = build_model(model["name"], **model["args"])
    network.set_state_dict(paddle.load(str(prefix) + ".pdparams"))
    network.eval()

    def run(x):
        with paddle.no_grad():
            return network(paddle.to_tensor(x)).numpy()

    return _by_batch(run)


def bench_infer_cli(model_dir: Path, data_root: Path, files: int = 1000, repeats: int = 3) -> dict:
    """Wall time of `python deploy/infer.py` for 1 file and for `files` files, start-up included."""
    from mnist_paddle.data import mnist_files, read_idx

    images = read_idx(mnist_files(data_root, "test")[0])[:files]
    with tempfile.TemporaryDirectory() as tmp:
        for i, image in enumerate(images):
            cv2.imwrite(os.path.join(tmp, f"{i:04d}.png"), image)
        out = {}
        for label, target in (("1_file", os.path.join(tmp, "0000.png")), (f"{files}_files", tmp)):
            cmd = [
                sys.executable,
                str(ROOT / "deploy" / "infer.py"),
                "--model-dir",
                str(model_dir),
                target,
            ]
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=True, cwd=ROOT)
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
    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        names = [
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {"cores": os.cpu_count(), "cpu": cpu, "versions": versions}


def run(out_dir: Path, model_dir: Path, data_root: Path, epochs: int) -> dict:
    results = {"environment": environment(), "training": {}, "inference": {}}
    for case in CASES:
        print(f"training: {case} ({epochs} epochs) ...", flush=True)
        results["training"][case] = _child(case, epochs, str(data_root))
    print("inference: predictor, ONNX Runtime, dygraph ...", flush=True)
    results["inference"] = bench_inference(model_dir)
    print("inference: deploy/infer.py ...", flush=True)
    results["infer_cli"] = bench_infer_cli(model_dir, data_root)
    results["ratios"] = _ratios(results)
    write_json(out_dir / "results.json", results)
    markdown = to_markdown(results)
    write_text(out_dir / "results.md", markdown)
    return results


def _ratios(r: dict) -> dict:
    train, inf = r["training"], r["inference"]
    ratios = {}
    if "seconds_per_epoch" in train["project"]:
        for other in ("seed", "pytorch"):
            if "seconds_per_epoch" in train[other]:
                ratios[f"train_project_over_{other}"] = (
                    train["project"]["seconds_per_epoch"] / train[other]["seconds_per_epoch"]
                )
    for other in ("onnxruntime", "dygraph"):
        if "skipped" not in inf[other]:
            for batch in BATCHES:
                ratios[f"paddle_inference_over_{other}_images_per_second_b{batch}"] = (
                    inf["paddle_inference"][str(batch)]["images_per_second"]
                    / inf[other][str(batch)]["images_per_second"]
                )
    return ratios


def to_markdown(r: dict) -> str:
    env = r["environment"]
    lines = [
        f"{env['cores']} cores ({env['cpu']}); "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
        "",
        "| training path | s / epoch (median) | images/s | test accuracy | project time / this |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    project = r["training"]["project"].get("seconds_per_epoch")
    for case, t in r["training"].items():
        if "error" in t:
            lines.append(f"| {case} | skipped: {t['error']} | | | |")
            continue
        ratio = f"{project / t['seconds_per_epoch']:.2f}" if project else ""
        lines.append(
            f"| {case} | {t['seconds_per_epoch']:.1f} | {t['images_per_second']:,.0f} "
            f"| {t['test_acc']:.2%} | {ratio} |"
        )
    lines += [
        "",
        "| inference | batch 1 p50 / p99 (ms) | batch 64 images/s | batch 1024 images/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, res in r["inference"].items():
        if "skipped" in res:
            lines.append(f"| {name} | skipped: {res['skipped']} | | |")
            continue
        b1 = res["1"]
        lines.append(
            f"| {name} | {b1['p50_ms']:.3f} / {b1['p99_ms']:.3f} "
            f"| {res['64']['images_per_second']:,.0f} | {res['1024']['images_per_second']:,.0f} |"
        )
    cli = r["infer_cli"]
    lines += [
        "",
        "| deploy/infer.py, process start included | seconds (median of 3) |",
        "| --- | ---: |",
    ]
    lines += [f"| {k.replace('_', ' ')} | {v['seconds']:.2f} |" for k, v in cli.items()]
    return "\n".join(lines) + "\n"
