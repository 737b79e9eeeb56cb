"""Training logs for VisualDL (`-o train.visualdl=true`): `visualdl --logdir output/<run>/visualdl`.

Per logged step (`train.log_freq`): the training loss, accuracy and learning rate; per epoch:
the evaluation loss and accuracy; at the end: the sample grid and the confusion matrix as images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
from PIL import Image

FOLDER = "visualdl"


class VisualDLLogger(paddle.callbacks.Callback):
    """Writes the scalars of a run to `log_dir` as hapi's `fit` reports them (main process only:
    the caller adds it there). `done`: epochs finished before this fit (a resumed run)."""

    def __init__(self, log_dir: Path, metrics: dict, log_freq: int, steps_per_epoch: int):
        super().__init__()
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=str(log_dir))
        self.metrics = metrics  # RunRecorder's: it runs first and records each epoch's evaluation
        self.log_freq, self.steps_per_epoch = log_freq, steps_per_epoch
        self.epoch = len(metrics["epochs"])  # epochs done before this fit (a resumed run)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch += 1

    def on_train_batch_end(self, step, logs=None):
        if (step + 1) % self.log_freq:
            return
        global_step = (self.epoch - 1) * self.steps_per_epoch + step + 1
        self.writer.add_scalar("train/loss", float(logs["loss"][0]), global_step)
        self.writer.add_scalar("train/acc", float(logs["acc"]), global_step)
        self.writer.add_scalar("train/lr", float(self.model._optimizer.get_lr()), global_step)

    def on_eval_end(self, logs=None):
        record = self.metrics["epochs"][-1]  # the mean loss over the whole evaluation
        self.writer.add_scalar("eval/loss", record["eval_loss"], record["epoch"])
        self.writer.add_scalar("eval/acc", record["eval_acc"], record["epoch"])
        self.writer.flush()

    def add_images(self, pngs: dict[str, Path]) -> None:
        """The run's figures (tag -> PNG file) as images, then close the log."""
        for tag, path in pngs.items():
            with Image.open(path) as image:
                self.writer.add_image(tag, np.asarray(image.convert("RGB")), self.epoch)
        self.writer.close()
