"""Training, evaluation and fine-tuning with Paddle's high-level API (`paddle.Model`).

    train(cfg)     build the configured model, fit it, write the run folder
    finetune(cfg)  load the checkpoint `cfg.train.init_from` and keep training it
    resume(cfg)    continue an interrupted run after its last complete epoch

All three take the same path: `start` (device and seeds, network, data, `Model.prepare`), then
`run` (`Model.fit` with the callbacks of callbacks.py, then the final checkpoint). A run folder
(`output/<run_name>/`) gets the resolved config, a checkpoint per epoch and a final one,
`metrics.json`, and four PNGs (samples, curves, predictions, confusion matrix).

After each epoch the model is evaluated on the validation images (`data.val_size > 0`), or on the
test images as in the tutorial. With a validation split the final checkpoint is the epoch with the
best validation accuracy and the test images are used once, for the final number.
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import paddle

from mnist_paddle.digits import IMAGE_SHAPE, NUM_CLASSES
from mnist_paddle.errors import Interrupted, UserError
from mnist_paddle.fileio import write_json
from mnist_paddle.models import build_model
from mnist_paddle.train import plots
from mnist_paddle.train.callbacks import (
    EpochRandomState,
    NotFinite,
    RunRecorder,
    StopWhenNotFinite,
    TimeLeft,
)
from mnist_paddle.train.checkpoint import (
    adopt_checkpoint,
    checkpoint_meta,
    load_weights,
    read_latest,
    read_meta,
    resolve_checkpoint,
    save_checkpoint,
)
from mnist_paddle.train.config import Config, TrainConfig, load_config, save_config
from mnist_paddle.train.data import IMAGE_SPEC, LABEL_SPEC
from mnist_paddle.train.loader import Data, load_data
from mnist_paddle.train.optim import build_loss, build_optimizer
from mnist_paddle.train.rundir import (
    check_resumable,
    claim_run_dir,
    epochs_phrase,
    is_main_process,
    remove_partial_files,
    say,
    what_was_saved,
)
from mnist_paddle.train.visualdl import FOLDER as VISUALDL
from mnist_paddle.train.visualdl import VisualDLLogger

PREDICT_BATCH = 1000  # batch size for whole-test-set predictions (memory is no concern at 28x28)


def train(cfg: Config, overwrite: bool = False) -> dict:
    """Train `cfg.model` from scratch; returns the run's metrics (also written to metrics.json)."""
    if not cfg.model.name:
        raise UserError("model.name is not set: name a model in the config or with -o model.name=")
    claim_run_dir(cfg.run_dir, overwrite)
    model, data = start(cfg)
    return run(model, cfg, data, init_meta={})


def finetune(cfg: Config, overwrite: bool = False) -> dict:
    """Load the checkpoint `cfg.train.init_from` into a new `paddle.Model`; keep training it with
    a fresh optimizer at the config's learning rate."""
    if not cfg.train.init_from:
        raise UserError("train.init_from is not set: name the checkpoint to fine-tune")
    prefix = resolve_checkpoint(cfg.train.init_from)
    cfg = adopt_checkpoint(cfg, prefix)
    claim_run_dir(cfg.run_dir, overwrite)
    model, data = start(cfg)
    load_weights(model, prefix, cfg.model.name, with_optimizer=False)

    before = model.evaluate(data.test, batch_size=PREDICT_BATCH, verbose=0)["acc"]
    say(f"fine-tuning {prefix} ({cfg.model.name}): test accuracy {before:.2%} before")
    metrics = run(model, cfg, data, {"init_from": str(prefix), "acc_before": before})
    say(f"test accuracy: {before:.2%} before fine-tuning, {metrics['final']['eval_acc']:.2%} after")
    return metrics


def adopted_config(cfg: Config) -> Config:
    """A fine-tuning config with its checkpoint's model filled in, as its run folder keeps it."""
    return adopt_checkpoint(cfg, resolve_checkpoint(cfg.train.init_from))


def resume(cfg: Config) -> dict:
    """Continue the run in `cfg.run_dir` after its last complete epoch, as its own config.yml says.

    Weights, optimizer state (with the schedule's position), the epoch's shuffle and random state
    all come back, so the resumed run goes on step for step as the uninterrupted one would have.
    """
    run_dir = cfg.run_dir
    check_resumable(cfg, run_dir)
    run_cfg = load_config(run_dir / "config.yml")
    remove_partial_files(run_dir)
    latest = read_latest(run_dir)
    if latest is None and run_cfg.train.init_from:
        raise UserError(
            f"{run_dir}: the fine-tuning had not finished an epoch; start it again with "
            "--overwrite instead of --resume"
        )
    model, data = start(run_cfg)
    if latest is None:  # killed before its first epoch ended
        say(f"{run_dir}: no epoch had finished; starting the run again")
        return run(model, run_cfg, data, init_meta={})
    meta = read_meta(latest)
    load_weights(model, latest, run_cfg.model.name)  # parameters and optimizer state
    history = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    done = meta["epoch"]
    history["epochs"] = history["epochs"][:done]
    history["step_losses"] = history["step_losses"][: done * len(data.train)]
    init_meta = {key: meta[key] for key in ("init_from", "acc_before") if key in meta}
    return run(model, run_cfg, data, init_meta, history)


def start(cfg: Config) -> tuple[paddle.Model, Data]:
    """Device and seeds, the network, the data, `Model.prepare`: where every run begins."""
    setup(cfg)
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    model = paddle.Model(network, inputs=[IMAGE_SPEC], labels=[LABEL_SPEC])
    data = load_data(cfg)
    return prepare(model, cfg.train, steps_per_epoch=len(data.train)), data


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


def prepare(model: paddle.Model, train: TrainConfig, steps_per_epoch: int) -> paddle.Model:
    """`model.prepare(Adam, CrossEntropyLoss, Accuracy)` as in the tutorial, with the config's
    optimizer, schedule and label smoothing (optim.py; all off by default)."""
    optimizer = build_optimizer(train, model.parameters(), steps_per_epoch)
    model.prepare(optimizer, build_loss(train), paddle.metric.Accuracy())
    return model


def run(
    model: paddle.Model, cfg: Config, data: Data, init_meta: dict, history: dict | None = None
) -> dict:
    """Fit `model` as `cfg` says and write everything into the run folder.

    `history` is the metrics of a resumed run: its epochs are done, training goes on after them.
    """
    run_dir = cfg.run_dir
    done = len(history["epochs"]) if history else 0
    if is_main_process() and not done:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yml")
        plots.plot_samples(data.test.images[:32, 0], data.test.labels[:32], run_dir / "samples.png")

    meta = checkpoint_meta(cfg) | init_meta
    metrics = history or RunRecorder.new_metrics(cfg.run_name, cfg.model.name, data.eval_split)
    recorder = RunRecorder(run_dir, meta, metrics, cfg.train.early_stop)
    callbacks = [
        EpochRandomState(data.train, cfg.train.seed, done),
        StopWhenNotFinite(done),  # before the recorder: a NaN loss is never recorded
        recorder,
    ]
    if cfg.train.verbose:
        callbacks.append(TimeLeft(cfg.train.epochs - done, len(data.train)))
    visualdl = None
    if cfg.train.visualdl and is_main_process():  # after the recorder: it reads its records
        visualdl = VisualDLLogger(
            run_dir / VISUALDL, metrics, cfg.train.log_freq, steps_per_epoch=len(data.train)
        )
        callbacks.append(visualdl)
    say(
        f"training {cfg.model.name} on {len(data.train.images)} images for {cfg.train.epochs} "
        f"epochs (batch {cfg.train.batch_size}, lr {cfg.train.lr:g}, {cfg.train.schedule}), "
        f"evaluating on the {data.eval_split} images -> {run_dir}"
        + (f"; {epochs_phrase(done)} done, continuing with epoch {done + 1}" if done else "")
    )
    # hapi redraws its progress bar with backspaces even into a file; logs get one line per update.
    verbose = 2 if cfg.train.verbose == 1 and not sys.stdout.isatty() else cfg.train.verbose
    try:
        model.fit(
            data.train,
            data.eval,
            batch_size=PREDICT_BATCH,  # for the evaluation; training batches come from data.train
            epochs=cfg.train.epochs - done,
            log_freq=cfg.train.log_freq,
            verbose=verbose if is_main_process() else 0,
            num_workers=cfg.data.num_workers,
            callbacks=callbacks,
        )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: {what_was_saved(run_dir, len(metrics['epochs']))}"
        ) from None
    except NotFinite as e:
        saved = what_was_saved(run_dir, len(metrics["epochs"]))
        raise UserError(f"{e}: training stopped (a lower train.lr may help); {saved}") from None
    return finish(model, cfg, data, recorder, visualdl)


def finish(
    model: paddle.Model,
    cfg: Config,
    data: Data,
    recorder: RunRecorder,
    visualdl: VisualDLLogger | None = None,
) -> dict:
    """Test the chosen epoch's weights once; write the final checkpoint, metrics and plots."""
    chosen, metrics = recorder.chosen, recorder.metrics
    recorder.restore_best(model.network)
    preds = predict_logits(model.network, data.test.images).argmax(axis=1)
    labels = data.test.labels
    test_acc = float((preds == labels).mean())
    metrics["final"] = {"epoch": chosen["epoch"], "eval_acc": test_acc}
    if not is_main_process():
        return metrics
    run_dir = cfg.run_dir
    final_meta = recorder.meta | {"epoch": chosen["epoch"], "eval_acc": test_acc}
    if data.eval_split == "validation":
        final_meta["val_acc"] = chosen["eval_acc"]
    write_json(run_dir / "metrics.json", metrics)
    plots.plot_curves(metrics, run_dir / "curves.png")
    plots.plot_predictions(data.test.images[:, 0], labels, preds, run_dir / "predictions.png")
    plots.plot_confusion(labels, preds, run_dir / "confusion.png")
    if visualdl is not None:
        visualdl.add_images(
            {"samples": run_dir / "samples.png", "confusion": run_dir / "confusion.png"}
        )
    save_checkpoint(model, run_dir / "final", final_meta)  # last: final.json marks a finished run
    picked = f" (epoch {chosen['epoch']}, best on validation)" if recorder.best else ""
    say(
        f"test accuracy {test_acc:.2%}{picked}; wrote {run_dir}/: final checkpoint, "
        "metrics.json, config.yml, samples/curves/predictions/confusion PNGs"
    )
    return metrics


def predict_logits(network: paddle.nn.Layer, images: np.ndarray) -> np.ndarray:
    """(N, classes) logits of the network in eval mode. Every process of a data-parallel run
    computes them all: hapi's predict would give each process only its share."""
    network.eval()
    with paddle.no_grad():
        logits = [
            network(paddle.to_tensor(images[i : i + PREDICT_BATCH])).numpy()
            for i in range(0, len(images), PREDICT_BATCH)
        ]
    return np.concatenate(logits)


def print_summary(cfg: Config) -> dict:
    """`paddle.summary` of the configured model for one 1x28x28 image."""
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    return paddle.summary(network, (1, *IMAGE_SHAPE))
