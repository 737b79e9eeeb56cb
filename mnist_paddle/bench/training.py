"""Training speed: seconds per epoch of the tutorial's LeNet recipe (configs/lenet_tutorial.yml:
batch 64, Adam 1e-3, all 60,000 images), three ways, each in its own process so that none
inherits another's threads or caches:

    project   this project's training path (engine.train: paddle.Model.fit over batches of images
              decoded and normalized once)
    tutorial  the tutorial's code: Model.fit over paddle.vision.datasets.MNIST + T.Normalize
    pytorch   the same network and optimizer in PyTorch over pre-normalized tensors (if installed)

A case runs as `python -m mnist_paddle.bench.training --case NAME ...` and prints its result as
its last line of JSON; `run_case` starts it and reads it back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mnist_paddle.digits import normalize

TRAIN_IMAGES = 60_000


def train_project(epochs: int, data_root: str, config: str) -> dict:
    from mnist_paddle.train import engine
    from mnist_paddle.train.config import load_config

    with tempfile.TemporaryDirectory() as out:
        overrides = [
            f"output_dir={out}",
            f"train.epochs={epochs}",
            "train.verbose=0",
            f"data.root={data_root}",
        ]
        metrics = engine.train(load_config(config, overrides))
    return {
        "epoch_seconds": [e["seconds"] for e in metrics["epochs"]],
        "test_acc": metrics["final"]["eval_acc"],
    }


def train_tutorial(epochs: int, data_root: str, config: str) -> dict:
    """The tutorial's code, with the project's copy of the IDX files instead of the download."""
    import paddle
    import paddle.vision.transforms as T
    from paddle.vision.datasets import MNIST

    from mnist_paddle.train.data import FILES

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
    seconds = []

    class EpochTimer(paddle.callbacks.Callback):
        """Training wall time of each epoch (evaluation excluded)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(train, epochs=epochs, batch_size=64, verbose=0, callbacks=[EpochTimer()])
    return {
        "epoch_seconds": seconds,
        "test_acc": model.evaluate(test, batch_size=1000, verbose=0)["acc"],
    }


def train_pytorch(epochs: int, data_root: str, config: str) -> dict:
    """The same LeNet (3x3 conv, 6 and 16 channels, 120-84-10, no activation between the fully
    connected layers), Adam 1e-3 and batch 64 in PyTorch, over pre-normalized tensors."""
    import torch
    from torch import nn

    from mnist_paddle.train.data import mnist_files, read_idx

    torch.manual_seed(1)

    def tensors(split: str):
        images, labels = (read_idx(path) for path in mnist_files(data_root, split))
        x = torch.from_numpy(normalize(images, 127.5, 127.5))
        return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))

    x, y = tensors("train")
    tx, ty = tensors("test")
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),  # (N, 6, 28, 28)
        nn.ReLU(),
        nn.MaxPool2d(2, 2),  # (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5),  # (N, 16, 10, 10)
        nn.ReLU(),
        nn.MaxPool2d(2, 2),  # (N, 16, 5, 5)
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
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


CASES = {"project": train_project, "tutorial": train_tutorial, "pytorch": train_pytorch}


def run_case(case: str, epochs: int, data_root: str, config: str) -> dict:
    """Run one training case in a fresh Python; {"error": ...} if it failed."""
    cmd = [sys.executable, "-m", __name__, "--case", case, "--epochs", str(epochs)]
    cmd += ["--data-root", data_root, "--config", config]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["seconds_per_epoch"] = statistics.median(result["epoch_seconds"])
    result["images_per_second"] = TRAIN_IMAGES / result["seconds_per_epoch"]
    return result


def _main() -> None:
    from mnist_paddle.cli import quiet_paddle

    p = argparse.ArgumentParser(description="one training case of the benchmark")
    p.add_argument("--case", choices=CASES, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--config", required=True)
    args = p.parse_args()
    quiet_paddle()
    print(json.dumps(CASES[args.case](args.epochs, args.data_root, args.config)))


if __name__ == "__main__":
    _main()
