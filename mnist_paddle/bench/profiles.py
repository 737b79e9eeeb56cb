"""Where the time goes, layer by layer, for the speed gaps the benchmark reports.

    predictor_profile  the exported model at batch 1024: Paddle Inference's oneDNN primitives
                       (ONEDNN_VERBOSE, in a child process: oneDNN reads it once) against
                       ONNX Runtime's nodes (its own profiler), in ms per call
    batch1_profile     the exported model at batch 1 on Paddle Inference's plain CPU kernels
                       (the single-image predictor): microseconds per image of each kind of op
                       (its own profiler, Config.enable_profile)
    training_profile   one LeNet training step in dygraph (paddle.profiler): the share of each
                       op, forward and backward

Each returns plain numbers (dicts and lists) for results.json.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np

RUNS = 20  # profiled calls after a warm-up


def predictor_profile(model_dir: Path, batch: int = 1024) -> dict:
    """{"paddle": [...], "onnxruntime": [...]}: (layer, ms per call) rows, slowest first."""
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    cmd = [sys.executable, "-m", __name__, "paddle", str(model_dir), str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"skipped": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    times = defaultdict(list)
    for line in done.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose,") and len(fields) > 6 and fields[3] == "exec":
            times[f"{fields[5]} {fields[-2]}"].append(float(fields[-1]))
    # each primitive's median: the first call's one-off weight reorders do not count
    paddle = [(name, statistics.median(ms)) for name, ms in times.items() if len(ms) >= RUNS]
    result = {"batch": batch, "paddle": sorted(paddle, key=lambda r: -r[1])}
    result["onnxruntime"] = _onnxruntime_profile(model_dir, batch)
    return result


def _onnxruntime_profile(model_dir: Path, batch: int) -> list | str:
    try:
        import onnxruntime as ort

        from mnist_paddle.serving.inference import read_metadata
        from mnist_paddle.train.onnx import export_onnx
    except ImportError as e:
        return f"skipped: {e}"
    meta = read_metadata(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_file = Path(tmp) / "model.onnx"
        if "onnx" in meta["files"]:
            onnx_file = model_dir / meta["files"]["onnx"]
        else:
            files = meta["files"]
            export_onnx(model_dir / files["model"], model_dir / files["params"], onnx_file)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((batch, 1, 28, 28)).astype(np.float32)
        name = session.get_inputs()[0].name
        for _ in range(RUNS + 5):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    times = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "")
            times[f"{op} {event['name'].removesuffix('_kernel_time')}"].append(event["dur"] / 1000)
    rows = [(layer, statistics.median(ms)) for layer, ms in times.items()]
    return sorted(rows, key=lambda r: -r[1])


def batch1_profile(model_dir: Path, calls: int = 2000) -> list | dict:
    """(op, microseconds per predictor call, all ops of that kind together) of the single-image
    predictor, slowest first."""
    cmd = [sys.executable, "-m", __name__, "batch1", str(model_dir), str(calls)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"skipped": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    rows, seen = [], set()
    # "pd_op.conv2d   4000   126.839 ..." (name, calls, total ms); the first table is the merged one
    for match in re.finditer(r"^((?:pd_op|onednn_op)\.\w+)\s+(\d+)\s+([\d.]+)", done.stdout, re.M):
        name, total_ms = match[1], float(match[3])
        if name not in seen and int(match[2]) >= calls:
            seen.add(name)
            rows.append((name, 1000 * total_ms / calls))
    return sorted(rows, key=lambda r: -r[1])


def training_profile(batch: int = 64, steps: int = 20) -> list:
    """(op, share of the step's CPU time) of a LeNet training step in dygraph, largest first."""
    import paddle
    import paddle.profiler as profiler

    paddle.seed(1)
    net = paddle.vision.models.LeNet(num_classes=10)
    optimizer = paddle.optimizer.Adam(1e-3, parameters=net.parameters())
    loss_fn = paddle.nn.CrossEntropyLoss()
    x = paddle.randn([batch, 1, 28, 28])
    y = paddle.randint(0, 10, [batch])

    def step():
        loss = loss_fn(net(x), y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    for _ in range(5):
        step()
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for _ in range(steps):
        step()
        prof.step()
    text = StringIO()
    with redirect_stdout(text):  # stop() prints a "Perf Summary" of its own
        prof.stop()
        prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, time_unit="ms")
    summary = text.getvalue().split("Operator Summary", 1)[-1]
    # "Global_AddGradNode   100   312.67 / 3.13 / 14.10 / 0.02 / 23.49   ..." (ratio in %)
    rows = re.findall(
        r"^(\S+(?: dygraph)?)\s+\d+\s+[\d.]+ / [\d.]+ / [\d.]+ / [\d.]+ / ([\d.]+)", summary, re.M
    )
    return [(name, float(share) / 100) for name, share in rows]


def _child(kind: str, model_dir: str, count: str) -> None:
    """The profiled runs of predictor_profile ("paddle") and batch1_profile ("batch1")."""
    from mnist_paddle.cli import quiet_paddle

    quiet_paddle()
    import paddle.inference as paddle_infer

    from mnist_paddle.serving.inference import Recognizer

    recognizer = Recognizer(model_dir)
    if kind == "paddle":
        x = np.random.default_rng(0).standard_normal((int(count), 1, 28, 28)).astype(np.float32)
        for _ in range(RUNS + 5):
            recognizer.logits(x)
        return
    files = (
        recognizer.model_dir / recognizer.meta["files"]["model"],
        recognizer.model_dir / (recognizer.meta["files"]["params"]),
    )
    config = paddle_infer.Config(*map(str, files))  # as the Recognizer's single-image predictor
    config.disable_gpu()
    config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(1)
    config.disable_glog_info()
    config.enable_profile()  # its tables go to stdout when the predictor is destroyed
    predictor = paddle_infer.create_predictor(config)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    x = np.zeros((1, 1, 28, 28), np.float32)
    for _ in range(int(count)):
        handle.reshape([1, 1, 28, 28])
        handle.copy_from_cpu(x)
        predictor.run()


if __name__ == "__main__":
    _child(*sys.argv[1:4])
