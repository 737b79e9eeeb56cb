"""Training speed of a LeNet recipe (default configs/lenet_tutorial.yml: batch 64, Adam 1e-3, all
60,000 images), three ways, each in its own process so that none inherits another's threads or
caches:

    project   this project's training path (engine.train: paddle.Model.fit over batches of images
              decoded and normalized once)
    tutorial  the tutorial's code: Model.fit over paddle.vision.datasets.MNIST + T.Normalize
              (the tutorial's recipe only)
    pytorch   the same network and recipe in PyTorch (if installed), on the same training images
              (the project's own data loading: normalized once, typeset digits included)

Each reports its training seconds per epoch (evaluation excluded) and the test accuracy after each
epoch, from which `time_to_accuracy` gives the DAWNBench figure: training time until the test
accuracy first reaches a target.

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
            "data.val_size=0",  # all training images; each epoch evaluated on the test set
        ]
        metrics = engine.train(load_config(config, overrides))
    return {
        "epoch_seconds": [e["seconds"] for e in metrics["epochs"]],
        "epoch_test_acc": [e["eval_acc"] for e in metrics["epochs"]],
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
    seconds, accuracies = [], []

    class EpochTimer(paddle.callbacks.Callback):
        """Training wall time of each epoch (evaluation excluded), then the test accuracy."""

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)
            accuracies.append(model.evaluate(test, batch_size=1000, verbose=0)["acc"])

    model.fit(train, epochs=epochs, batch_size=64, verbose=0, callbacks=[EpochTimer()])
    return {"epoch_seconds": seconds, "epoch_test_acc": accuracies, "test_acc": accuracies[-1]}


def train_pytorch(epochs: int, data_root: str, config: str) -> dict:
    """The same LeNet (3x3 conv, 6 and 16 channels, 120-84-10, no activation between the fully
    connected layers) and the same recipe `config` in PyTorch: the training images the project
    trains on (its own `load_data`: normalized once, typeset digits included, nothing held
    out), the optimizer, weight decay, label smoothing, batch size, learning rate, schedule
    (constant or one-cycle) and augmentation (affine and stroke weight; not elastic)."""
    import torch
    from torch import nn

    from mnist_paddle.train.config import load_config
    from mnist_paddle.train.loader import load_data

    cfg = load_config(config, [f"data.root={data_root}", "data.val_size=0"])
    recipe = cfg.train
    if recipe.schedule not in ("constant", "onecycle"):
        raise ValueError(f"{config}: the PyTorch case runs a constant or one-cycle schedule")
    if cfg.augment.elastic:
        raise ValueError(f"{config}: the PyTorch case has no elastic augmentation")
    data = load_data(cfg)
    x, y = (torch.from_numpy(a) for a in (data.train.images, data.train.labels.astype(np.int64)))
    tx, ty = (torch.from_numpy(a) for a in (data.test.images, data.test.labels.astype(np.int64)))
    torch.manual_seed(recipe.seed)
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
    batch = recipe.batch_size
    # as train/optim.py: Adam's weight decay is an L2 term in the gradient, AdamW's is decoupled
    optimizer = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    opt = optimizer(net.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = None
    if recipe.schedule == "onecycle":
        schedule = torch_schedule(opt, recipe, total_steps=epochs * -(-len(x) // batch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    seconds, accuracies = [], []
    black = float(normalize(0, cfg.data.mean, cfg.data.std))  # MNIST's background
    augment = _torch_augmenter(cfg.augment, background=black)
    rng = np.random.default_rng(recipe.seed)
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            loss = loss_fn(net(augment(x[idx], rng)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
        seconds.append(time.perf_counter() - start)
        with torch.no_grad():
            accuracies.append((net(tx).argmax(1) == ty).float().mean().item())
    return {"epoch_seconds": seconds, "epoch_test_acc": accuracies, "test_acc": accuracies[-1]}


def _torch_augmenter(a, background: float):
    """train/loader.py's rotation, scaling, shift, slant (the same random matrices, one
    affine_grid + grid_sample per batch, the background kept) and stroke weight in PyTorch; the
    identity when the recipe has none."""
    import torch
    import torch.nn.functional as F

    from mnist_paddle.train.loader import affine_theta

    if not any((a.rotate, a.scale, a.shift, a.shear, a.stroke)):
        return lambda images, rng: images

    def augment(images, rng):
        n, _, height, width = images.shape
        theta = torch.from_numpy(affine_theta(a, n, width, rng))
        grid = F.affine_grid(theta, [n, 1, height, width], align_corners=False)
        moved = F.grid_sample(images - background, grid, align_corners=False)
        if a.stroke:  # towards the 3x3 dilation (bolder) or erosion (lighter), as the loader
            weight = torch.from_numpy(rng.uniform(-a.stroke, a.stroke, (n, 1, 1, 1))).float()
            bolder = F.max_pool2d(moved, 3, stride=1, padding=1)
            lighter = -F.max_pool2d(-moved, 3, stride=1, padding=1)
            moved = moved + torch.where(weight > 0, bolder - moved, moved - lighter) * weight
        return moved + background

    return augment


def torch_schedule(optimizer, recipe, total_steps: int):
    """PyTorch's one-cycle schedule set to give paddle.optimizer.lr.OneCycleLR's learning rates as
    train/optim.py builds it (30% warm-up from lr / 25, cosine down to lr * 1e-4)."""
    import torch

    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=recipe.lr,
        total_steps=total_steps,
        pct_start=0.3,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=(recipe.lr / 25.0) / (recipe.lr * 1e-4),
        cycle_momentum=False,  # Paddle's keeps Adam's betas fixed
    )


CASES = {"project": train_project, "tutorial": train_tutorial, "pytorch": train_pytorch}


def time_to_accuracy(result: dict, target: float) -> float | None:
    """Training seconds until the test accuracy after an epoch first reaches `target` (None if it
    never does)."""
    elapsed = 0.0
    for seconds, accuracy in zip(result["epoch_seconds"], result["epoch_test_acc"]):
        elapsed += seconds
        if accuracy >= target:
            return elapsed
    return None


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
