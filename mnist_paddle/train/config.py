"""Run configuration: a YAML file plus `-o section.key=value` overrides, typed once at the edge.

Every key has a default here, next to a comment that says what it does, so a config file only
states what differs. An unknown key, a value of the wrong type or out of range is a `UserError`
that names the key and where it came from (the file or the `-o` argument).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import write_text


@dataclass
class ModelConfig:
    name: str = (
        ""  # a registered model (mnist_paddle.models); fine-tuning defaults to the checkpoint's
    )
    args: dict = field(default_factory=dict)  # extra constructor arguments, e.g. {hidden_size: 64}


@dataclass
class DataConfig:
    root: str = (
        "data/mnist"  # folder with the four IDX .gz files; if it is missing, Paddle downloads
    )
    mean: float = 127.5  # Normalize: (pixel - mean) / std maps 0..255 onto -1..1
    std: float = 127.5
    train_limit: int = 0  # train on the first N training images only (0: all 60,000)
    test_limit: int = 0  # evaluate on the first N test images only (0: all 10,000)
    num_workers: int = 0  # evaluation DataLoader workers (training batches are made in-process)
    # Add this many digits typeset in the training fonts (train/synth.py) to the training images.
    typeset: int = 0
    # Hold out this many training images (a fixed random choice) to pick the best epoch and to
    # stop early; 0 evaluates on the test set after each epoch, as the tutorial does.
    val_size: int = 0


@dataclass
class AugmentConfig:
    """Random affine changes of each training batch (all 0: off). No flips: a flipped 2 is no 2."""

    rotate: float = 0.0  # degrees, uniform in -rotate..rotate
    scale: float = 0.0  # relative size change, uniform in 1-scale..1+scale
    shift: float = 0.0  # pixels, uniform in -shift..shift along each axis
    shear: float = 0.0  # slant: x moves by up to shear * y, either way (italics, slanted hands)
    elastic: float = 0.0  # pixels: a smooth random bending of each image by about this much
    stroke: float = 0.0  # 0..1: blend of up to this much towards a bolder or lighter stroke


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.001  # the learning rate (the peak of a schedule)
    optimizer: str = "adam"  # adam, or adamw (weight decay decoupled from the gradient)
    weight_decay: float = 0.0  # adam: L2 penalty on the loss; adamw: decoupled decay per step
    # constant; cosine (decay to 0, after warmup_epochs of linear warm-up); onecycle (warm-up
    # over the first 30% of the steps to lr, cosine down to ~0). All are stepped every batch.
    schedule: str = "constant"
    warmup_epochs: float = 0.0  # cosine only
    label_smoothing: float = 0.0  # share of each target spread evenly over all classes
    early_stop: int = 0  # stop after this many epochs without a better validation accuracy (0: off)
    seed: int = 2024  # seeds Paddle's and NumPy's generators (weight init, shuffling)
    device: str = "auto"  # auto (GPU when Paddle has CUDA and sees one), cpu or gpu
    processes: int = 1  # data-parallel processes, each with its share of a batch (0: per core/GPU)
    log_freq: int = 100  # steps between progress-bar updates
    verbose: int = 1  # hapi's progress output: 0 none, 1 progress bar, 2 one line per update
    init_from: str = ""  # checkpoint to start from, e.g. output/lenet/final (fine-tuning)
    visualdl: bool = False  # also log to <run>/visualdl/ for `visualdl --logdir`


@dataclass
class Config:
    run_name: str = "lenet"  # the run writes into <output_dir>/<run_name>/
    output_dir: str = "output"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.run_name

    def checks(self) -> list[tuple[str, bool, str]]:
        """(key, its value is in range, the range) for every key with a range."""
        return _training_checks(self)


DEVICES = ("auto", "cpu", "gpu")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "onecycle")


def load_config(path: str | Path, overrides: list[str] = (), schema: type = None):
    """Read `path`, apply `key.sub=value` overrides (values parsed as YAML), check every value.
    `schema`: the config's dataclass (default `Config`, a training run's; `NumbersConfig` for the
    number stage's), whose `checks()` lists the ranges its values must lie in."""
    schema = schema or Config
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(raw).__name__}")

    sources: dict[str, str] = {}  # dotted key -> the -o argument that set it
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(schema, raw, key, value, item)
        sources[key] = f"-o {item}"

    cfg = _build(schema, raw, "", lambda key: sources.get(key, str(path)))
    _check_ranges(cfg, lambda key: sources.get(key, str(path)))
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg, path: str | Path) -> None:
    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise UserError(f"-o {item}: expected key.sub=value, e.g. -o train.epochs=3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text  # not YAML: take it as a plain string, the type check decides
    return key.strip(), value


def _set_dotted(schema: Any, raw: dict, key: str, value: Any, item: str) -> None:
    """Set raw[a][b] = value for key 'a.b', refusing keys `schema` does not have."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if schema is not dict:  # dict: a free-form mapping (model.args), any key below
            if not dataclasses.is_dataclass(schema):
                raise UserError(f"-o {item}: '{'.'.join(parts[:depth])}' is not a section")
            hints = typing.get_type_hints(schema)
            if part not in hints:
                prefix = ".".join(parts[:depth])
                raise UserError(f"-o {item}: unknown key '{key}'{_valid_keys(schema, prefix)}")
            schema = hints[part]
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"-o {item}: '{'.'.join(parts[: depth + 1])}' is not a section")


def _valid_keys(schema: type, prefix: str) -> str:
    names = ", ".join(f.name for f in dataclasses.fields(schema))
    return f" (valid keys{' in ' + prefix if prefix else ''}: {names})"


def _build(schema: type, raw: dict, prefix: str, source_of) -> Any:
    hints = typing.get_type_hints(schema)
    values = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        if name not in hints:
            section = prefix.rstrip(".")
            raise UserError(f"{source_of(key)}: unknown key '{key}'{_valid_keys(schema, section)}")
        values[name] = _typed(value, hints[name], key, source_of)
    return schema(**values)


def _typed(value: Any, tp: Any, key: str, source_of) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise UserError(f"{source_of(key)}: '{key}' must be a section of keys, got {value!r}")
        return _build(tp, value, key + ".", source_of)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        dict: isinstance(value, dict),
        list: isinstance(value, list),
    }[tp]
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
        kind[list] = "a list, e.g. [8, 16, 32]"
        want = kind.get(tp, "a mapping")
        raise UserError(f"{source_of(key)}: '{key}' must be {want}, got {value!r}")
    return float(value) if tp is float else value


def _check_ranges(cfg, source_of) -> None:
    for key, ok, want in cfg.checks():
        if not ok:
            value = cfg
            for part in key.split("."):
                value = getattr(value, part)
            raise UserError(f"{source_of(key)}: '{key}' must be {want}, got {value!r}")


def _training_checks(cfg: Config) -> list[tuple[str, bool, str]]:
    return [
        ("run_name", cfg.run_name and "/" not in cfg.run_name, "a non-empty name without '/'"),
        ("data.std", cfg.data.std > 0, "> 0"),
        ("data.train_limit", cfg.data.train_limit >= 0, ">= 0 (0: all images)"),
        ("data.test_limit", cfg.data.test_limit >= 0, ">= 0 (0: all images)"),
        ("data.num_workers", cfg.data.num_workers >= 0, ">= 0"),
        ("data.val_size", 0 <= cfg.data.val_size < 60000, ">= 0 and < 60000"),
        ("train.epochs", cfg.train.epochs >= 1, ">= 1"),
        ("train.batch_size", cfg.train.batch_size >= 1, ">= 1"),
        ("train.lr", cfg.train.lr > 0, "> 0"),
        ("train.device", cfg.train.device in DEVICES, "one of " + ", ".join(DEVICES)),
        ("train.processes", cfg.train.processes >= 0, ">= 0 (0: one per core, or per GPU)"),
        ("train.optimizer", cfg.train.optimizer in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
        ("train.weight_decay", cfg.train.weight_decay >= 0, ">= 0"),
        ("train.schedule", cfg.train.schedule in SCHEDULES, "one of " + ", ".join(SCHEDULES)),
        (
            "train.warmup_epochs",
            0 <= cfg.train.warmup_epochs < cfg.train.epochs,
            ">= 0 and < train.epochs",
        ),
        ("train.label_smoothing", 0 <= cfg.train.label_smoothing < 1, ">= 0 and < 1"),
        ("train.early_stop", cfg.train.early_stop >= 0, ">= 0 (0: off)"),
        (
            "train.early_stop",
            cfg.train.early_stop == 0 or cfg.data.val_size > 0,
            "0 unless data.val_size > 0 (stopping on the test set would tune on it)",
        ),
        ("augment.rotate", 0 <= cfg.augment.rotate <= 45, "between 0 and 45 degrees"),
        ("augment.scale", 0 <= cfg.augment.scale < 0.5, ">= 0 and < 0.5"),
        ("augment.shift", 0 <= cfg.augment.shift <= 6, "between 0 and 6 pixels"),
        ("augment.shear", 0 <= cfg.augment.shear <= 1, "between 0 and 1"),
        ("augment.elastic", 0 <= cfg.augment.elastic <= 4, "between 0 and 4 pixels"),
        ("augment.stroke", 0 <= cfg.augment.stroke <= 1, "between 0 and 1"),
        ("data.typeset", cfg.data.typeset >= 0, ">= 0 (0: MNIST only)"),
        ("train.log_freq", cfg.train.log_freq >= 1, ">= 1"),
        ("train.verbose", cfg.train.verbose in (0, 1, 2), "0, 1 or 2"),
    ]
