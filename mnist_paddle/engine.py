"""Training, evaluation and fine-tuning with Paddle's high-level API (`paddle.Model`).

    train(cfg)     build the configured model, fit it, write the run folder
    finetune(cfg)  load the checkpoint `cfg.train.init_from` and keep training it

A run folder (`output/<run_name>/`) gets the resolved config, a checkpoint per epoch and a final
one, `metrics.json`, and four PNGs (samples, curves, predictions, confusion matrix).
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from pathlib import Path

import numpy as np
import paddle
from paddle.static import InputSpec

from mnist_paddle import plots
from mnist_paddle.checkpoint import load_weights, read_meta, resolve_checkpoint, save_checkpoint
from mnist_paddle.config import Config, ModelConfig, save_config
from mnist_paddle.data import IMAGE_SHAPE, NUM_CLASSES, arrays, load_mnist
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import write_json
from mnist_paddle.models import build_model

# The exported model's input: a batch of any size of normalized 1x28x28 images.
IMAGE_SPEC = InputSpec([None, *IMAGE_SHAPE], "float32", "image")
LABEL_SPEC = InputSpec([None, 1], "int64", "label")
PREDICT_BATCH = 1000  # batch size for whole-test-set predictions (memory is no concern at 28x28)


def train(cfg: Config) -> dict:
    """Train `cfg.model` from scratch; returns the run's metrics (also written to metrics.json)."""
    if not cfg.model.name:
        raise UserError("model.name is not set: name a model in the config or with -o model.name=")
    setup(cfg)
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    model = prepare(new_model(network), cfg.train.lr)
    train_data, test_data = load_mnist(cfg.data, "train"), load_mnist(cfg.data, "test")
    return run(model, cfg, train_data, test_data, init_meta={})


def finetune(cfg: Config) -> dict:
    """Load the checkpoint `cfg.train.init_from` into a new `paddle.Model`; keep training it."""
    if not cfg.train.init_from:
        raise UserError("train.init_from is not set: name the checkpoint to fine-tune")
    prefix = resolve_checkpoint(cfg.train.init_from)
    meta = read_meta(prefix)
    cfg = _adopt_checkpoint(cfg, meta, prefix)
    setup(cfg)
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    model = new_model(network)
    load_weights(model, prefix)  # before prepare(): the new optimizer starts fresh at the new lr
    prepare(model, cfg.train.lr)

    train_data, test_data = load_mnist(cfg.data, "train"), load_mnist(cfg.data, "test")
    before = model.evaluate(test_data, batch_size=PREDICT_BATCH, verbose=0)["acc"]
    print(f"fine-tuning {prefix} ({cfg.model.name}): test accuracy {before:.2%} before")
    init_meta = {"init_from": str(prefix), "acc_before": before}
    metrics = run(model, cfg, train_data, test_data, init_meta)
    print(
        f"test accuracy: {before:.2%} before fine-tuning, {metrics['final']['eval_acc']:.2%} after"
    )
    return metrics


def print_summary(cfg: Config) -> dict:
    """`paddle.summary` of the configured model for one 1x28x28 image."""
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    return paddle.summary(network, (1, *IMAGE_SHAPE))


def setup(cfg: Config) -> str:
    """Pick the device and seed every generator; returns 'cpu' or 'gpu'."""
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if cfg.train.device == "gpu" and not has_gpu:
        raise UserError(
            "train.device is gpu, but this Paddle has no CUDA or sees no GPU "
            "(install Paddle's GPU wheel, or use -o train.device=cpu)"
        )
    device = (
        "gpu" if cfg.train.device == "gpu" or (cfg.train.device == "auto" and has_gpu) else "cpu"
    )
    paddle.set_device(device)
    paddle.seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    random.seed(cfg.train.seed)
    return device


def new_model(network: paddle.nn.Layer) -> paddle.Model:
    return paddle.Model(network, inputs=[IMAGE_SPEC], labels=[LABEL_SPEC])


def prepare(model: paddle.Model, lr: float) -> paddle.Model:
    """`model.prepare(Adam, CrossEntropyLoss, Accuracy)`, as in the tutorial."""
    model.prepare(
        paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters()),
        paddle.nn.CrossEntropyLoss(),
        paddle.metric.Accuracy(),
    )
    return model


def run(model: paddle.Model, cfg: Config, train_data, test_data, init_meta: dict) -> dict:
    """Fit `model` as `cfg` says and write everything into the run folder."""
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yml")
    images, labels = arrays(train_data, 32)
    plots.plot_samples(images[:, 0], labels, run_dir / "samples.png")

    meta = checkpoint_meta(cfg) | init_meta
    metrics = {"run": cfg.run_name, "model": cfg.model.name, "epochs": [], "step_losses": []}
    recorder = RunRecorder(run_dir, meta, metrics)
    print(
        f"training {cfg.model.name} on {len(train_data)} images for {cfg.train.epochs} epochs "
        f"(batch {cfg.train.batch_size}, lr {cfg.train.lr:g}) -> {run_dir}"
    )
    # hapi redraws its progress bar with backspaces even into a file; logs get one line per update.
    verbose = 2 if cfg.train.verbose == 1 and not sys.stdout.isatty() else cfg.train.verbose
    model.fit(
        train_data,
        test_data,
        batch_size=cfg.train.batch_size,
        epochs=cfg.train.epochs,
        log_freq=cfg.train.log_freq,
        verbose=verbose,
        num_workers=cfg.data.num_workers,
        shuffle=True,
        callbacks=[recorder],
    )

    last = metrics["epochs"][-1]
    save_checkpoint(
        model, run_dir / "final", meta | {"epoch": last["epoch"], "eval_acc": last["eval_acc"]}
    )
    logits = model.predict(test_data, batch_size=PREDICT_BATCH, stack_outputs=True, verbose=0)[0]
    preds = logits.argmax(axis=1)
    images, labels = arrays(test_data)
    metrics["final"] = {"eval_acc": float((preds == labels).mean()), "eval_loss": last["eval_loss"]}
    write_json(run_dir / "metrics.json", metrics)

    plots.plot_curves(metrics, run_dir / "curves.png")
    plots.plot_predictions(images[:, 0], labels, preds, run_dir / "predictions.png")
    plots.plot_confusion(labels, preds, run_dir / "confusion.png")
    print(
        f"test accuracy {metrics['final']['eval_acc']:.2%}; wrote {run_dir}/: final checkpoint, "
        "metrics.json, config.yml, samples/curves/predictions/confusion PNGs"
    )
    return metrics


def checkpoint_meta(cfg: Config) -> dict:
    """What a checkpoint needs to be rebuilt and fed without the training config."""
    return {
        "run": cfg.run_name,
        "model": {"name": cfg.model.name, "args": cfg.model.args},
        "num_classes": NUM_CLASSES,
        "input_shape": list(IMAGE_SHAPE),
        "normalize": {"mean": cfg.data.mean, "std": cfg.data.std},
    }


def _adopt_checkpoint(cfg: Config, meta: dict, prefix: Path) -> Config:
    """`cfg` with the checkpoint's model; a config that names another model is refused."""
    model = meta["model"]
    if cfg.model.name and cfg.model.name != model["name"]:
        raise UserError(
            f"checkpoint {prefix} holds a {model['name']!r} model, "
            f"but the config asks for {cfg.model.name!r}"
        )
    norm = meta["normalize"]
    if (cfg.data.mean, cfg.data.std) != (norm["mean"], norm["std"]):
        raise UserError(
            f"checkpoint {prefix} was trained with data.mean={norm['mean']}, "
            f"data.std={norm['std']}; "
            f"the config has {cfg.data.mean}, {cfg.data.std}"
        )
    return dataclasses.replace(cfg, model=ModelConfig(name=model["name"], args=model["args"]))


class RunRecorder(paddle.callbacks.Callback):
    """Records each epoch (mean training loss, test loss and accuracy, training seconds) and saves
    a checkpoint and metrics.json after it, so an interrupted run keeps every finished epoch."""

    def __init__(self, run_dir: Path, meta: dict, metrics: dict):
        super().__init__()
        self.run_dir, self.meta, self.metrics = run_dir, meta, metrics

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._train = _Mean()

    def on_train_batch_end(self, step, logs=None):
        loss = float(logs["loss"][0])
        self._train.add(loss, logs["batch_size"])
        self.metrics["step_losses"].append(loss)

    def on_epoch_end(self, epoch, logs=None):
        self.metrics["epochs"].append(
            {
                "epoch": epoch + 1,
                "loss": self._train.value,
                "acc": float(logs["acc"]),
                "seconds": time.perf_counter() - self._start,
            }
        )

    def on_eval_begin(self, logs=None):
        self._eval = _Mean()

    def on_eval_batch_end(self, step, logs=None):
        self._eval.add(float(logs["loss"][0]), logs["batch_size"])

    def on_eval_end(self, logs=None):
        record = self.metrics["epochs"][-1]
        record.update(eval_loss=self._eval.value, eval_acc=float(logs["acc"]))
        epoch = record["epoch"]
        save_checkpoint(
            self.model,
            self.run_dir / f"epoch_{epoch}",
            self.meta | {"epoch": epoch, "eval_acc": record["eval_acc"]},
        )
        write_json(self.run_dir / "metrics.json", self.metrics)


class _Mean:
    """A running mean weighted by batch size."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, value: float, weight: int) -> None:
        self.total += value * weight
        self.count += weight

    @property
    def value(self) -> float:
        return self.total / max(self.count, 1)
