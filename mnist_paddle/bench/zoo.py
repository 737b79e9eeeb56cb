"""The model-zoo table: every recipe in `configs/`, trained (or its finished run reused), measured.

For each config: parameters, FLOPs (`paddle.flops`, one 1x28x28 image), test accuracy of the final
checkpoint, training wall time, and Paddle Inference images/s at batch 64 on the exported model.
Training runs in a child process per config, the train command of tools/train.py (or the fine-tune
command of tools/finetune.py for a config with `train.init_from`) as
`python -m mnist_paddle.train.commands`, so every run is what a user gets from the command line.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import paddle

from mnist_paddle.bench.benchmark import latencies
from mnist_paddle.digits import IMAGE_SHAPE
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import write_json, write_text
from mnist_paddle.models import build_model, count_parameters
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train.checkpoint import META, read_meta
from mnist_paddle.train.config import Config, load_config
from mnist_paddle.train.export import export
from mnist_paddle.train.rundir import launcher

INFER_BATCH = 64
INFER_CALLS = 300

# What the source tutorials (shared/seeds/) report for the same network, where they report it.
TUTORIAL_RESULTS = {
    "lenet": "98.57% (tutorial 003, 5 epochs)",
    "lenet_tutorial": "98.57% (tutorial 003, 5 epochs)",
    "lenet_finetune": "98.92% (tutorial 003, +2 epochs)",
    "conv_bn": "98.69% (tutorial 000, 10 epochs, PyTorch)",
}


def zoo(
    configs: list[Path],
    output_dir: str,
    out_dir: Path,
    retrain: bool = False,
    jobs: int = 1,
    nproc: int = 1,
    visualdl: bool = False,
) -> list[dict]:
    """Train what has no finished run (every config with `retrain`), then measure every run;
    with `visualdl`, every training also logs for VisualDL."""
    cfgs = [load_config(path, [f"output_dir={output_dir}"]) for path in configs]
    pairs = list(zip(configs, cfgs))
    plain = [(p, c) for p, c in pairs if not c.train.init_from and (retrain or not _finished(c))]
    # Fine-tuning starts from another run's checkpoint: after that run, and again when it changes.
    changed = {c.run_dir.resolve() for _, c in plain}
    tuned = [
        (p, c)
        for p, c in pairs
        if c.train.init_from and (retrain or not _finished(c) or _starts_from(c, changed))
    ]
    for group in (plain, tuned):
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(lambda job: _train(*job, output_dir, nproc, visualdl), group))

    rows = []
    for cfg in cfgs:
        print(f"measuring {cfg.run_dir}", flush=True)
        rows.append(measure(cfg))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "zoo.json", rows)
    write_text(out_dir / "zoo.md", to_markdown(rows))
    print(to_markdown(rows))
    print(f"wrote {out_dir}/zoo.json and zoo.md")
    return rows


def _finished(cfg: Config) -> bool:
    return (cfg.run_dir / f"final{META}").is_file() and (cfg.run_dir / "metrics.json").is_file()


def _starts_from(cfg: Config, run_dirs: set[Path]) -> bool:
    """Whether the fine-tuning `cfg` starts from a checkpoint in one of `run_dirs`."""
    start = Path(cfg.train.init_from).resolve()
    return any(start == d or d in start.parents for d in run_dirs)


def _train(path: Path, cfg: Config, output_dir: str, nproc: int, visualdl: bool) -> None:
    command_name = "finetune" if cfg.train.init_from else "train"
    log = Path(output_dir) / f"{cfg.run_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"training {path} -> {cfg.run_dir} (log: {log})", flush=True)
    command = [sys.executable]
    if nproc > 1:  # data-parallel: one process per core (see mnist_paddle/train/loader.py)
        command = launcher(nproc, Path(output_dir) / f"{cfg.run_name}.launch")
    command += ["-m", "mnist_paddle.train.commands", command_name, "-c", str(path), "--overwrite"]
    command += ["-o", f"output_dir={output_dir}", "-o", "train.verbose=2"]
    command += ["-o", f"train.processes={nproc}"]  # started here, not again by the command
    command += ["-o", "train.visualdl=true"] if visualdl else []
    with open(log, "w") as f:
        done = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise UserError(f"training {path} failed (exit {done.returncode}); see {log}")


def measure(cfg: Config) -> dict:
    final = cfg.run_dir / "final"
    meta = read_meta(final)
    metrics = json.loads((cfg.run_dir / "metrics.json").read_text())
    model = meta["model"]
    network = build_model(model["name"], num_classes=meta["num_classes"], **model["args"])
    with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints a line per layer type
        flops = paddle.flops(network, [1, *IMAGE_SHAPE], print_detail=False)
    with tempfile.TemporaryDirectory() as tmp:
        recognizer = Recognizer(export(final, out=Path(tmp) / "inference", data_root=cfg.data.root))
        images_per_second = _images_per_second(recognizer)
    epochs = metrics["epochs"]
    return {
        "run": cfg.run_name,
        "model": model["name"],
        "parameters": count_parameters(network),
        "flops": int(flops),  # multiply-adds, as paddle.flops counts them
        "epochs": len(epochs),
        "test_acc": meta["eval_acc"],
        "val_acc": meta.get("val_acc"),
        "train_minutes": sum(e["seconds"] for e in epochs) / 60,
        "images_per_second": images_per_second,
        "tutorial_result": TUTORIAL_RESULTS.get(cfg.run_name, ""),
    }


def _images_per_second(recognizer) -> float:
    x = np.random.default_rng(0).standard_normal((INFER_BATCH, *IMAGE_SHAPE)).astype(np.float32)
    return INFER_BATCH / (latencies(lambda: recognizer.logits(x), INFER_CALLS)["p50_ms"] / 1000)


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| run | model | parameters | FLOPs (paddle.flops) | epochs | test accuracy | training | "
        "images/s (batch 64) | the tutorials' own |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['model']} | {r['parameters']:,} | {r['flops'] / 1e6:.2f} M | "
            f"{r['epochs']} | {100 * r['test_acc']:.2f}% | {r['train_minutes']:.1f} min | "
            f"{r['images_per_second']:,.0f} | {r['tutorial_result'] or '-'} |"
        )
    return "\n".join(lines) + "\n"
