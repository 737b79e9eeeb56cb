"""The number stage (tools/train_numbers.py): the line model taught to read whole numbers with
CTC, added to an export, checked, and its answers calibrated.

    python tools/train_numbers.py -c configs/numbers/quick.yml [-o train.steps=3000 ...]

The strips it learns from are composed while it trains (train/strips.py) from the export's run's
MNIST *training* digits (its validation digits stay out) and the training fonts. Training is
data-parallel: one process per core here (`python -m paddle.distributed.launch`), each making
and learning from its share of every batch. The model starts from the export's digit model
(models/line.py) and learns with CTC plus, at each digit's centre, the digit itself (framewise
cross-entropy), which the composed strips know for free.

At the end the export's NumberReader reads numbers of validation digits and fonts
(train/number_check.py): how many it reads whole, what its probabilities mean, when it is sure.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import paddle

from mnist_paddle.cli import quiet_paddle
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import atomic_path
from mnist_paddle.models.line import STRIDE, LineModel
from mnist_paddle.serving.inference import read_metadata
from mnist_paddle.serving.strip import WIDEN, check_widened
from mnist_paddle.train import strips
from mnist_paddle.train.checkpoint import load_network
from mnist_paddle.train.config import load_config, save_config, to_dict
from mnist_paddle.train.data import read_mnist
from mnist_paddle.train.fonts import training_fonts
from mnist_paddle.train.loader import split_validation
from mnist_paddle.train.rundir import Progress, is_main_process, processes_for, run_launched

PARAMS = "line.pdparams"  # the trained weights, as the first training process saves them
PROGRESS = "  line model: "  # how the training's progress lines start


@dataclass
class NumbersData:
    root: str = "data/mnist"  # the MNIST files; the export's run says which digits it held out
    typeset: float = 0.2  # share of strips typeset in the training fonts, the rest handwritten
    # share of the typeset strips seen at an angle, as on a photographed page: 98.6% of the
    # tuning sets' photographed numbers read whole instead of 97.7% (docs/pages.md)
    at_an_angle: float = 0.5
    min_length: int = 1  # digits in a training number: min_length to max_length, even odds
    max_length: int = 12


@dataclass
class NumbersModel:
    channels: list = field(default_factory=lambda: [8, 16, 32])  # the three convolutions
    hidden: int = 64  # the bidirectional LSTM along the line (both directions together)
    window: int = 11  # features of each 28x28 window the LSTM sees (the first 11: the logits)
    # start from the export's digit model (three_conv; the channels at least 8, 16, 32)
    from_digit_model: bool = True


@dataclass
class NumbersTrain:
    steps: int = 2000  # batches
    batch_size: int = 32  # strips per batch, over all processes
    lr: float = 0.01  # the peak of a one-cycle schedule (Adam)
    framewise: float = 1.0  # the per-step loss at the digits' centres, weighed against CTC
    processes: int = 0  # data-parallel training processes (0: one per core, or per GPU)
    seed: int = 0


@dataclass
class NumbersCheck:
    numbers: int = 300  # numbers of each kind read at the end, to check and calibrate on
    handwritten: int = 3000  # ... but of handwritten ones of 2-6 digits on paper
    boxes: int = 1000  # ... and in a form's boxes
    max_sure_error: float = 0.01  # at most this share of the numbers answered sure are wrong
    margin: float = 1.0  # ... their error counted this many standard errors high (docs/numbers.md)


@dataclass
class NumbersConfig:
    model_dir: str = "output/inference"  # the export the line model joins
    run_dir: str = "output/line_model"  # the trained weights and this config, kept here too
    data: NumbersData = field(default_factory=NumbersData)
    model: NumbersModel = field(default_factory=NumbersModel)
    train: NumbersTrain = field(default_factory=NumbersTrain)
    check: NumbersCheck = field(default_factory=NumbersCheck)

    def checks(self) -> list[tuple[str, bool, str]]:
        """(key, its value is in range, the range): load_config refuses a value out of range."""
        channels = self.model.channels
        counts = [c for c in channels if isinstance(c, int) and not isinstance(c, bool)]
        return [
            ("data.typeset", 0 <= self.data.typeset <= 1, "between 0 and 1"),
            ("data.at_an_angle", 0 <= self.data.at_an_angle <= 1, "between 0 and 1"),
            ("data.min_length", self.data.min_length >= 1, ">= 1"),
            ("data.max_length", self.data.min_length <= self.data.max_length <= 40,
             "between data.min_length and 40"),
            ("model.channels", len(counts) == len(channels) == 3 and min(counts) >= 1,
             "three channel counts, e.g. [8, 16, 32]"),
            ("model.hidden", self.model.hidden > 0 and self.model.hidden % 2 == 0, "even and > 0"),
            ("train.steps", self.train.steps >= 1, ">= 1"),
            ("train.batch_size", self.train.batch_size >= 1, ">= 1"),
            ("train.lr", self.train.lr > 0, "> 0"),
            ("train.framewise", self.train.framewise >= 0, ">= 0"),
            ("train.processes", self.train.processes >= 0, ">= 0 (0: one per core, or per GPU)"),
            *((f"check.{k}", getattr(self.check, k) >= 10, ">= 10")
              for k in ("numbers", "handwritten", "boxes")),
            ("check.max_sure_error", 0 < self.check.max_sure_error < 1, "between 0 and 1"),
            ("check.margin", self.check.margin >= 0, ">= 0"),
        ]  # fmt: skip


def load_numbers_config(path: str | Path, overrides: list[str] = ()) -> NumbersConfig:
    return load_config(path, overrides, NumbersConfig)


def train_numbers(cfg: NumbersConfig, verbose: bool = False) -> dict:
    """Train the line model as `cfg` says, add it to the export in `cfg.model_dir` (line.json,
    line.pdiparams; the folder is replaced whole, and only once everything is checked), and
    return what it records in the export's metadata under "line_model"."""
    model_dir = Path(cfg.model_dir)
    inputs = _inputs(cfg)  # fails early on an export it cannot use
    processes = processes_for(cfg.train.processes)
    print(
        f"line model: {cfg.train.steps:,} batches of {cfg.train.batch_size} strips "
        f"({cfg.data.min_length}-{cfg.data.max_length} digits, {cfg.data.typeset:.0%} typeset) "
        f"on {processes} process(es), from {inputs.checkpoint}",
        flush=True,
    )
    start = time.monotonic()
    network = _train_in(processes, cfg, verbose) if processes > 1 else _train(cfg, inputs)
    seconds = time.monotonic() - start
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yml")
    with atomic_path(run_dir / PARAMS) as tmp:
        paddle.save(network.state_dict(), str(tmp))
    from mnist_paddle.train.number_check import install_checked, staged_export, summary

    staging = staged_export(model_dir, network, inputs.images, inputs.labels)
    record = {"config": to_dict(cfg), "training_seconds": round(seconds, 1), "strip_widen": WIDEN}
    record = install_checked(staging, model_dir, inputs, cfg, record)
    print(
        f"wrote {model_dir}/ (line.json, line.pdiparams) after {seconds / 60:.1f} min of "
        f"training: {summary(record, cfg.check)}"
    )
    return record


def check_again(cfg: NumbersConfig) -> dict:
    """The export's line model checked and calibrated again (`cfg.check`), untrained: its record."""
    model_dir = Path(cfg.model_dir)
    record = read_metadata(model_dir).get("line_model")
    if record is None or not (model_dir / "line.json").is_file():
        hint = "train one (python tools/train_numbers.py -c configs/numbers/quick.yml)"
        raise UserError(f"{model_dir} has no line model to check: {hint}")
    check_widened(record, model_dir)  # checking one of other strips again would not mend it
    inputs = _inputs(cfg, digit_state=False)
    from mnist_paddle.train.number_check import install_checked, staged_copy, summary

    print(f"line model: checking the one in {model_dir}/ again, without training it", flush=True)
    record |= {"config": record.get("config", {}) | {"check": to_dict(cfg.check)}}
    staging = staged_copy(model_dir, line_model=True)
    record = install_checked(staging, model_dir, inputs, cfg, record)
    print(f"checked {model_dir}/ again: {summary(record, cfg.check)}")
    return record


@dataclass
class _Inputs:
    images: np.ndarray  # the run's training digits (uint8) and their labels
    labels: np.ndarray
    val_images: np.ndarray  # the digits it held out
    val_labels: np.ndarray
    checkpoint: Path  # the digit model behind the export
    digit_state: dict | None  # its weights, when the line model starts from them


def _inputs(cfg: NumbersConfig, digit_state: bool = True) -> _Inputs:
    """The export's run's training and validation digits, and its digit model's weights (when
    `digit_state` and the line model starts from them)."""
    meta = read_metadata(cfg.model_dir)
    prefix = Path(meta["checkpoint"])
    network, checkpoint = load_network(prefix)
    data = checkpoint["config"]["data"]
    if not data.get("val_size"):
        raise UserError(
            f"{prefix}: its run held out no validation digits (data.val_size is 0): nothing to "
            "check the line model on without the test set; train with data.val_size > 0"
        )
    state = None
    if digit_state and cfg.model.from_digit_model:
        name = checkpoint["model"]["name"]
        if name != "three_conv" or any(a < b for a, b in zip(cfg.model.channels, (8, 16, 32))):
            raise UserError(
                f"model.from_digit_model needs a three_conv digit model and model.channels of "
                f"at least [8, 16, 32]; {prefix} is {name!r} and the channels "
                f"{cfg.model.channels} (set -o model.from_digit_model=false to start from "
                "random weights)"
            )
        state = {key: value.numpy() for key, value in network.state_dict().items()}
    images, labels = read_mnist(cfg.data.root, "train")
    limit = data.get("train_limit") or len(images)
    (images, labels), (val_images, val_labels) = split_validation(
        images[:limit], labels[:limit], data["val_size"]
    )
    return _Inputs(images, labels, val_images, val_labels, prefix, state)


def _train_in(processes: int, cfg: NumbersConfig, verbose: bool) -> LineModel:
    """`_train` in `processes` data-parallel processes (`python -m mnist_paddle.train.numbers`
    under paddle.distributed.launch); their progress lines are passed on (`verbose`: every line,
    the launcher's and Paddle's own too). Returns the trained network."""
    work = Path(tempfile.mkdtemp(prefix="line-model-"))
    save_config(cfg, work / "config.yml")
    args = ["-m", __name__, str(work)] + (["--verbose"] if verbose else [])
    code = run_launched(processes, args, work, verbose, lambda line: line.startswith(PROGRESS))
    if code != 0:  # its logs stay for a look
        raise UserError(
            f"training the line model failed (exit {code}); see {work}/launch.log and {work}/logs"
        )
    network = _network(cfg)
    network.set_state_dict(paddle.load(str(work / PARAMS)))
    shutil.rmtree(work, ignore_errors=True)
    network.eval()
    return network


def _network(cfg: NumbersConfig) -> LineModel:
    return LineModel(tuple(cfg.model.channels), cfg.model.hidden, cfg.model.window)


def _train(cfg: NumbersConfig, inputs: _Inputs) -> LineModel:
    """The training loop, alone or as one process of a data-parallel run: every process draws
    the same lengths and learns from its own share of each batch (the gradients are averaged), so
    the recipe means the same on one process or several."""
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    paddle.seed(cfg.train.seed)
    network = _network(cfg)
    if inputs.digit_state is not None:
        network.load_digit_model(inputs.digit_state)
    model = paddle.DataParallel(network) if world > 1 else network
    schedule = paddle.optimizer.lr.OneCycleLR(cfg.train.lr, cfg.train.steps)
    optimizer = paddle.optimizer.Adam(schedule, parameters=model.parameters())
    ctc = paddle.nn.CTCLoss(blank=0)
    fonts = training_fonts()
    rng = np.random.default_rng([cfg.train.seed, rank])
    share = cfg.train.batch_size // world + (rank < cfg.train.batch_size % world)
    lengths = np.random.default_rng(cfg.train.seed).integers(
        cfg.data.min_length, cfg.data.max_length + 1, cfg.train.steps
    )  # one length a batch (strips of a batch are about as wide), the same in every process
    progress = Progress(cfg.train.steps, PROGRESS)
    network.train()
    for length in lengths:
        numbers = (inputs.images, inputs.labels, fonts, max(share, 1), int(length))
        batch = strips.batch(*numbers, cfg.data.typeset, cfg.data.at_an_angle, rng)
        logits = model(paddle.to_tensor(batch.pixels))  # (N, T, 11)
        count = len(batch.widths)
        loss = ctc(
            logits.transpose([1, 0, 2]),
            paddle.to_tensor(batch.labels),
            paddle.to_tensor(batch.widths // STRIDE),
            paddle.to_tensor(np.full(count, int(length), np.int64)),
        )
        if cfg.train.framewise:
            targets = strips.frame_targets(batch, logits.shape[1])
            framewise = paddle.nn.functional.cross_entropy(
                logits, paddle.to_tensor(targets[..., None]), ignore_index=-100
            )
            loss = loss + cfg.train.framewise * framewise
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        schedule.step()
        progress.step(float(loss))
    network.eval()
    return network


def _main(argv: list[str]) -> None:
    """One process of a data-parallel run (`_train_in` starts them): the resolved config in
    `argv[0]`/config.yml; the first process saves the weights there as line.pdparams."""
    work = Path(argv[0])
    cfg = load_numbers_config(work / "config.yml")
    paddle.distributed.init_parallel_env()
    network = _train(cfg, _inputs(cfg))
    if is_main_process():
        paddle.save(network.state_dict(), str(work / PARAMS))


if __name__ == "__main__":
    quiet_paddle("--verbose" in sys.argv)
    _main([arg for arg in sys.argv[1:] if arg != "--verbose"])
