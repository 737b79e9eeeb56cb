"""Training, evaluation and fine-tuning with Paddle's high-level API (`paddle.Model`).

    train(cfg)     build the configured model, fit it, write the run folder
    finetune(cfg)  load the checkpoint `cfg.train.init_from` and keep training it
    resume(cfg)    continue an interrupted run after its last complete epoch

A run folder (`output/<run_name>/`) gets the resolved config, a checkpoint per epoch and a final
one, `metrics.json`, and four PNGs (samples, curves, predictions, confusion matrix).

After each epoch the model is evaluated on the validation images (`data.val_size > 0`), or on the
test images as in the tutorial. With a validation split the final checkpoint is the epoch with the
best validation accuracy and the test images are used once, for the final number.

Under `python -m paddle.distributed.launch` every process trains its share of each batch; only the
first process writes files.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import paddle
from paddle.static import InputSpec

from mnist_paddle import plots
from mnist_paddle.checkpoint import (
    LATEST,
    META,
    load_weights,
    read_latest,
    read_meta,
    read_params,
    resolve_checkpoint,
    save_checkpoint,
    write_latest,
)
from mnist_paddle.config import Config, ModelConfig, TrainConfig, load_config, save_config, to_dict
from mnist_paddle.data import IMAGE_SHAPE, NUM_CLASSES, arrays, load_mnist
from mnist_paddle.errors import Interrupted, UserError
from mnist_paddle.fileio import write_json
from mnist_paddle.loader import ArrayDataset, TrainLoader, epoch_seed, split_validation
from mnist_paddle.models import build_model
from mnist_paddle.optim import build_loss, build_optimizer

# The exported model's input: a batch of any size of normalized 1x28x28 images.
IMAGE_SPEC = InputSpec([None, *IMAGE_SHAPE], "float32", "image")
LABEL_SPEC = InputSpec([None, 1], "int64", "label")
PREDICT_BATCH = 1000  # batch size for whole-test-set predictions (memory is no concern at 28x28)


def train(cfg: Config, overwrite: bool = False) -> dict:
    """Train `cfg.model` from scratch; returns the run's metrics (also written to metrics.json)."""
    if not cfg.model.name:
        raise UserError("model.name is not set: name a model in the config or with -o model.name=")
    claim_run_dir(cfg.run_dir, overwrite)
    setup(cfg)
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    data = load_data(cfg)
    model = prepare(new_model(network), cfg.train, steps_per_epoch=len(data.train))
    return run(model, cfg, data, init_meta={})


def finetune(cfg: Config, overwrite: bool = False) -> dict:
    """Load the checkpoint `cfg.train.init_from` into a new `paddle.Model`; keep training it."""
    if not cfg.train.init_from:
        raise UserError("train.init_from is not set: name the checkpoint to fine-tune")
    prefix = resolve_checkpoint(cfg.train.init_from)
    meta = read_meta(prefix)
    cfg = _adopt_checkpoint(cfg, meta, prefix)
    claim_run_dir(cfg.run_dir, overwrite)
    setup(cfg)
    network = build_model(cfg.model.name, num_classes=NUM_CLASSES, **cfg.model.args)
    model = new_model(network)
    load_weights(model, prefix, cfg.model.name)  # before prepare(): a fresh optimizer at the new lr
    data = load_data(cfg)
    prepare(model, cfg.train, steps_per_epoch=len(data.train))

    before = model.evaluate(data.test, batch_size=PREDICT_BATCH, verbose=0)["acc"]
    _say(f"fine-tuning {prefix} ({cfg.model.name}): test accuracy {before:.2%} before")
    init_meta = {"init_from": str(prefix), "acc_before": before}
    metrics = run(model, cfg, data, init_meta)
    _say(
        f"test accuracy: {before:.2%} before fine-tuning, {metrics['final']['eval_acc']:.2%} after"
    )
    return metrics


def adopted_config(cfg: Config) -> Config:
    """A fine-tuning config with its checkpoint's model filled in, as its run folder keeps it."""
    prefix = resolve_checkpoint(cfg.train.init_from)
    return _adopt_checkpoint(cfg, read_meta(prefix), prefix)


def resume(cfg: Config) -> dict:
    """Continue the run in `cfg.run_dir` after its last complete epoch, as its own config.yml says.

    Weights, optimizer state (with the schedule's position), the epoch's shuffle and random state
    all come back, so the resumed run goes on as the uninterrupted one would have.
    """
    run_dir = cfg.run_dir
    saved = run_dir / "config.yml"
    if not saved.is_file():
        raise UserError(
            f"{run_dir}: no run to resume here (no config.yml); start it without --resume"
        )
    if (run_dir / f"final{META}").is_file():
        raise UserError(f"{run_dir}: this run has finished, there is nothing to resume")
    run_cfg = load_config(saved)
    _check_same_run(cfg, run_cfg, saved)
    for partial in run_dir.glob(".*"):  # temporary files of writes that a kill cut short
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink()
    latest = read_latest(run_dir)
    if latest is None and run_cfg.train.init_from:
        raise UserError(
            f"{run_dir}: the fine-tuning had not finished an epoch; start it again with "
            "--overwrite instead of --resume"
        )
    setup(run_cfg)
    network = build_model(run_cfg.model.name, num_classes=NUM_CLASSES, **run_cfg.model.args)
    data = load_data(run_cfg)
    model = prepare(new_model(network), run_cfg.train, steps_per_epoch=len(data.train))
    if latest is None:  # killed before its first epoch ended
        _say(f"{run_dir}: no epoch had finished; starting the run again")
        return run(model, run_cfg, data, init_meta={})
    meta = read_meta(latest)
    load_weights(model, latest, run_cfg.model.name)  # parameters and optimizer state
    history = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    done = meta["epoch"]
    history["epochs"] = history["epochs"][:done]
    history["step_losses"] = history["step_losses"][: done * len(data.train)]
    init_meta = {key: meta[key] for key in ("init_from", "acc_before") if key in meta}
    return run(model, run_cfg, data, init_meta, history)


def _check_same_run(cfg: Config, run_cfg: Config, saved: Path) -> None:
    """--resume continues a run as it was configured; a config that asks for more is refused."""
    ignore = {"train.verbose", "train.log_freq", "train.device", "data.num_workers"}
    wanted, have = _flat(to_dict(cfg)), _flat(to_dict(run_cfg))
    differ = [k for k in sorted(wanted) if k not in ignore and wanted[k] != have.get(k)]
    if differ:
        key = differ[0]
        raise UserError(
            f"--resume continues the run as {saved} says, but the config has {key}="
            f"{wanted[key]!r} where the run has {have.get(key)!r}"
            + (f" (and {len(differ) - 1} more)" if len(differ) > 1 else "")
        )


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "args":
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Make sure a new run may write into `run_dir`: refuse one that holds a run, unless
    `overwrite`, in which case that run is deleted."""
    finished = (run_dir / f"final{META}").is_file()
    started = (run_dir / "config.yml").is_file() or (run_dir / LATEST).is_file()
    if not (finished or started) or not is_main_process():
        return
    if not overwrite:
        name = run_dir.name
        free = next(
            f"{name}_{n}"
            for n in itertools.count(2)
            if not (run_dir.parent / f"{name}_{n}").exists()
        )
        what = "a finished run" if finished else "an unfinished run (add --resume to continue it)"
        raise UserError(
            f"{run_dir} holds {what}; add --overwrite to replace it, or keep it and name the new "
            f"run, e.g. -o run_name={free} (the new run then goes to {run_dir.parent / free})"
        )
    shutil.rmtree(run_dir)


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


def prepare(model: paddle.Model, train: TrainConfig, steps_per_epoch: int) -> paddle.Model:
    """`model.prepare(Adam, CrossEntropyLoss, Accuracy)` as in the tutorial, with the config's
    optimizer, schedule and label smoothing (mnist_paddle/optim.py; all off by default)."""
    optimizer = build_optimizer(train, model.parameters(), steps_per_epoch)
    model.prepare(optimizer, build_loss(train), paddle.metric.Accuracy())
    return model


@dataclasses.dataclass
class Data:
    train: TrainLoader  # shuffled (augmented) batches
    eval: ArrayDataset  # what each epoch is evaluated on: validation images, or the test images
    test: ArrayDataset
    eval_split: str  # "validation" or "test"


def load_data(cfg: Config) -> Data:
    """MNIST decoded and normalized once (`Normalize` of the tutorial), split as `cfg` says."""
    train_images, train_labels = arrays(load_mnist(cfg.data, "train"))
    test = ArrayDataset(*arrays(load_mnist(cfg.data, "test")))
    if cfg.data.val_size:
        (train_images, train_labels), val = split_validation(
            train_images, train_labels, cfg.data.val_size
        )
        evaluate_on, split = ArrayDataset(*val), "validation"
    else:
        evaluate_on, split = test, "test"
    background = (0 - cfg.data.mean) / cfg.data.std  # a black MNIST pixel, normalized
    loader = TrainLoader(
        train_images,
        train_labels,
        cfg.train.batch_size,
        cfg.train.seed,
        cfg.augment,
        background,
    )
    return Data(loader, evaluate_on, test, split)


def run(
    model: paddle.Model,
    cfg: Config,
    data: Data,
    init_meta: dict,
    history: dict | None = None,
) -> dict:
    """Fit `model` as `cfg` says and write everything into the run folder.

    `history` is the metrics of a resumed run: its epochs are done, training goes on after them.
    """
    run_dir = cfg.run_dir
    done = len(history["epochs"]) if history else 0
    if is_main_process() and not done:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yml")
        images, labels = data.test.images[:32], data.test.labels[:32]
        plots.plot_samples(images[:, 0], labels, run_dir / "samples.png")

    meta = checkpoint_meta(cfg) | init_meta
    metrics = history or {
        "run": cfg.run_name,
        "model": cfg.model.name,
        "eval_split": data.eval_split,
        "epochs": [],
        "step_losses": [],
    }
    recorder = RunRecorder(run_dir, meta, metrics, data.train, cfg.train)
    _say(
        f"training {cfg.model.name} on {len(data.train.images)} images for {cfg.train.epochs} "
        f"epochs (batch {cfg.train.batch_size}, lr {cfg.train.lr:g}, {cfg.train.schedule}), "
        f"evaluating on the {data.eval_split} images -> {run_dir}"
        + (f"; {_epochs(done)} done, continuing with epoch {done + 1}" if done else "")
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
            callbacks=[recorder],
        )
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {_saved(run_dir, metrics)}") from None
    except NotFinite as e:
        raise UserError(
            f"{e}: training stopped (a lower train.lr may help); {_saved(run_dir, metrics)}"
        ) from None

    chosen = recorder.best or metrics["epochs"][-1]
    if recorder.best:  # back to the weights of the best validation epoch
        model.network.set_state_dict(recorder.best_state())
    preds = predict_logits(model.network, data.test.images).argmax(axis=1)
    labels = data.test.labels
    test_acc = float((preds == labels).mean())
    metrics["final"] = {"epoch": chosen["epoch"], "eval_acc": test_acc}
    if not is_main_process():
        return metrics
    final_meta = meta | {"epoch": chosen["epoch"], "eval_acc": test_acc}
    if data.eval_split == "validation":
        final_meta["val_acc"] = chosen["eval_acc"]
    write_json(run_dir / "metrics.json", metrics)
    plots.plot_curves(metrics, run_dir / "curves.png")
    plots.plot_predictions(data.test.images[:, 0], labels, preds, run_dir / "predictions.png")
    plots.plot_confusion(labels, preds, run_dir / "confusion.png")
    save_checkpoint(model, run_dir / "final", final_meta)  # last: final.json marks a finished run
    picked = f" (epoch {chosen['epoch']}, best on validation)" if recorder.best else ""
    _say(
        f"test accuracy {test_acc:.2%}{picked}; wrote {run_dir}/: final checkpoint, "
        "metrics.json, config.yml, samples/curves/predictions/confusion PNGs"
    )
    return metrics


def _saved(run_dir: Path, metrics: dict) -> str:
    """What an interrupted run left on disk, and how to go on."""
    done = len(metrics["epochs"])
    if not done:
        return f"no epoch had finished, nothing is saved in {run_dir}"
    return (
        f"{_epochs(done)} saved in {run_dir} (latest: epoch_{done}); "
        "continue with the same command and --resume"
    )


def _epochs(done: int) -> str:
    return "epoch 1 is" if done == 1 else f"epochs 1-{done} are"


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


def is_main_process() -> bool:
    """False in the second and later processes of a data-parallel run: they write nothing."""
    return paddle.distributed.ParallelEnv().rank == 0


def _say(message: str) -> None:
    if is_main_process():
        print(message, flush=True)


def checkpoint_meta(cfg: Config) -> dict:
    """What a checkpoint needs to be rebuilt and fed without the training config, and the config
    itself (its seed and the epoch give the random state of the next epoch)."""
    return {
        "run": cfg.run_name,
        "model": {"name": cfg.model.name, "args": cfg.model.args},
        "num_classes": NUM_CLASSES,
        "input_shape": list(IMAGE_SHAPE),
        "normalize": {"mean": cfg.data.mean, "std": cfg.data.std},
        "config": to_dict(cfg),
    }


def _adopt_checkpoint(cfg: Config, meta: dict, prefix: Path) -> Config:
    """`cfg` with the checkpoint's model; a config that names another model is refused."""
    model = meta["model"]
    if cfg.model.name and cfg.model.name != model["name"]:
        raise UserError(
            f"checkpoint {prefix} holds a {model['name']!r} model, "
            f"but the config asks for {cfg.model.name!r}"
        )
    if cfg.model.args and cfg.model.args != model["args"]:
        raise UserError(
            f"checkpoint {prefix} holds a {model['name']!r} model with arguments {model['args']}, "
            f"but the config asks for {cfg.model.args}"
        )
    norm = meta["normalize"]
    if (cfg.data.mean, cfg.data.std) != (norm["mean"], norm["std"]):
        raise UserError(
            f"checkpoint {prefix} was trained with data.mean={norm['mean']}, "
            f"data.std={norm['std']}; "
            f"the config has {cfg.data.mean}, {cfg.data.std}"
        )
    return dataclasses.replace(cfg, model=ModelConfig(name=model["name"], args=model["args"]))


class NotFinite(Exception):
    """The loss or the weights stopped being finite numbers."""


class RunRecorder(paddle.callbacks.Callback):
    """Keeps the run folder up to date after every epoch, so that an interrupted run loses at
    most the epoch it was in: records the epoch (mean training loss, evaluation loss and accuracy,
    training seconds), saves a checkpoint, points `latest` at it, rewrites metrics.json.

    Also: sets the epoch's random state from (seed, epoch), so a resumed run draws what the
    uninterrupted one would have; stops on a loss that is not finite; with a validation split,
    remembers the best epoch and stops early after `train.early_stop` epochs without a better one.
    """

    def __init__(
        self, run_dir: Path, meta: dict, metrics: dict, loader: TrainLoader, train: TrainConfig
    ):
        super().__init__()
        self.run_dir, self.meta, self.metrics = run_dir, meta, metrics
        self.loader, self.train = loader, train
        self.done = len(metrics["epochs"])  # epochs finished before this fit() (resumed runs)
        self.select_best = metrics["eval_split"] == "validation"
        self.best: dict | None = None
        for record in metrics["epochs"]:
            self._consider(record)
        self._best_state: dict | None = None  # the best epoch's weights, when it is this fit's

    def best_state(self) -> dict:
        """The weights of the best epoch (read back from its checkpoint if an earlier fit's)."""
        if self._best_state is not None:
            return self._best_state
        return read_params(self.run_dir / f"epoch_{self.best['epoch']}.pdparams")

    def on_epoch_begin(self, epoch, logs=None):
        epoch += self.done
        self.loader.set_epoch(epoch)
        paddle.seed(epoch_seed(self.train.seed, epoch))  # dropout and any other Paddle draws
        self._start = time.perf_counter()
        self._train = _Mean()

    def on_train_batch_end(self, step, logs=None):
        loss = float(logs["loss"][0])
        if not math.isfinite(loss):
            epoch = len(self.metrics["epochs"]) + 1
            raise NotFinite(f"the training loss became {loss} in epoch {epoch}, step {step + 1}")
        self._train.add(loss, logs["batch_size"])
        self.metrics["step_losses"].append(loss)

    def on_epoch_end(self, epoch, logs=None):
        # ReLU turns NaN into 0: broken weights can hide behind a finite loss
        if not all(np.isfinite(p.numpy()).all() for p in self.model.network.parameters()):
            raise NotFinite(f"the weights became NaN or infinite in epoch {epoch + self.done + 1}")
        self.metrics["epochs"].append(
            {
                "epoch": epoch + self.done + 1,
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
        patience = self.train.early_stop
        if patience and record["epoch"] - self.best["epoch"] >= patience:
            self.model.stop_training = True
            _say(f"no better validation accuracy for {patience} epochs: stopping early")
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
