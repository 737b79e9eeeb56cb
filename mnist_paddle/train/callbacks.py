"""The callbacks `paddle.Model.fit` runs for every training run.

hapi's `fit` calls, for each epoch: `on_epoch_begin`, the training batches (`on_train_batch_end`
after each), `on_epoch_end` with the epoch's training logs, and only then the evaluation
(`on_eval_begin`, `on_eval_batch_end`, `on_eval_end`). So an epoch is complete, with its
evaluation, in `on_eval_end`: that is where `RunRecorder` saves it. Callbacks run in list order.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import paddle

from mnist_paddle.fileio import write_json
from mnist_paddle.train.checkpoint import read_params, save_checkpoint, write_latest
from mnist_paddle.train.loader import TrainLoader, epoch_seed
from mnist_paddle.train.rundir import duration, is_main_process, say


class NotFinite(Exception):
    """The loss or the weights stopped being finite numbers."""


class EpochRandomState(paddle.callbacks.Callback):
    """Draws each epoch's shuffle, augmentation and dropout from (seed, epoch), so a resumed run
    draws what the uninterrupted one would have. `done`: epochs finished before this fit()."""

    def __init__(self, loader: TrainLoader, seed: int, done: int):
        super().__init__()
        self.loader, self.seed, self.done = loader, seed, done

    def on_epoch_begin(self, epoch, logs=None):
        self.loader.set_epoch(epoch + self.done)
        paddle.seed(epoch_seed(self.seed, epoch + self.done))  # dropout, any other Paddle draw


class TimeLeft(paddle.callbacks.Callback):
    """A line with the time the run has left, every `seconds` (hapi's own lines give only the
    pace of the epoch at hand), at the pace so far, its evaluations included."""

    def __init__(self, epochs: int, steps_per_epoch: int, seconds: float = 20.0):
        super().__init__()
        self.total, self.seconds = epochs * steps_per_epoch, seconds

    def on_train_begin(self, logs=None):
        self.start = self.last = time.monotonic()
        self.done = 0

    def on_train_batch_end(self, step, logs=None):
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.last = now
            left = (now - self.start) / self.done * (self.total - self.done)
            say(f"  about {duration(left)} left")


class StopWhenNotFinite(paddle.callbacks.Callback):
    """Raises `NotFinite` on a NaN or infinite loss, or weights that became so."""

    def __init__(self, done: int):
        super().__init__()
        self.done = done
        self.epoch = done + 1  # counting from 1, over the whole run

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + self.done + 1

    def on_train_batch_end(self, step, logs=None):
        loss = float(logs["loss"][0])
        if not math.isfinite(loss):
            raise NotFinite(
                f"the training loss became {loss} in epoch {self.epoch}, step {step + 1}"
            )

    def on_epoch_end(self, epoch, logs=None):
        # ReLU turns NaN into 0: broken weights can hide behind a finite loss
        if not all(np.isfinite(p.numpy()).all() for p in self.model.network.parameters()):
            raise NotFinite(f"the weights became NaN or infinite in epoch {self.epoch}")


class RunRecorder(paddle.callbacks.Callback):
    """Owns the run's metrics and keeps the run folder up to date, so that an interrupted run
    loses at most the epoch it was in.

    After each epoch's evaluation: records the epoch, saves its checkpoint, points `latest` at it
    and rewrites metrics.json. With a validation split it also remembers the best epoch (its
    weights) and stops the run after `early_stop` epochs without a better one.
    """

    def __init__(self, run_dir: Path, meta: dict, metrics: dict, early_stop: int = 0):
        super().__init__()
        self.run_dir, self.meta, self.metrics = run_dir, meta, metrics
        self.early_stop = early_stop
        self.select_best = metrics["eval_split"] == "validation"
        self.best: dict | None = None  # the best epoch's record, with a validation split
        for record in metrics["epochs"]:  # epochs of an earlier fit (a resumed run)
            self._consider(record)
        self._best_state: dict | None = None  # the best epoch's weights, when it is this fit's

    @staticmethod
    def new_metrics(run: str, model: str, eval_split: str) -> dict:
        return {
            "run": run,
            "model": model,
            "eval_split": eval_split,
            "epochs": [],
            "step_losses": [],
        }

    @property
    def chosen(self) -> dict:
        """The epoch whose weights become `final`: the best on validation, else the last."""
        return self.best or self.metrics["epochs"][-1]

    def restore_best(self, network: paddle.nn.Layer) -> None:
        """Put the best epoch's weights back into `network` (from its checkpoint if an earlier
        fit's); nothing to do without a validation split."""
        if self.best is None:
            return
        state = self._best_state or read_params(
            self.run_dir / f"epoch_{self.best['epoch']}.pdparams"
        )
        network.set_state_dict(state)

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
                "epoch": len(self.metrics["epochs"]) + 1,
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
        if self._consider(record):
            self._best_state = {k: v.clone() for k, v in self.model.network.state_dict().items()}
        if self.early_stop and record["epoch"] - self.best["epoch"] >= self.early_stop:
            self.model.stop_training = True
            say(f"no better validation accuracy for {self.early_stop} epochs: stopping early")
        if not is_main_process():
            return
        name = f"epoch_{record['epoch']}"
        save_checkpoint(
            self.model,
            self.run_dir / name,
            self.meta | {"epoch": record["epoch"], "eval_acc": record["eval_acc"]},
        )
        write_json(self.run_dir / "metrics.json", self.metrics)
        write_latest(self.run_dir, name)  # last: it points at complete files only

    def _consider(self, record: dict) -> bool:
        """Whether `record` is the new best epoch (only with a validation split)."""
        if self.select_best and (self.best is None or record["eval_acc"] > self.best["eval_acc"]):
            self.best = record
            return True
        return False


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
