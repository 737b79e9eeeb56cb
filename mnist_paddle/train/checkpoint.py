"""Checkpoints: `Model.save` files plus a JSON file that says how to rebuild and feed the model.

A checkpoint is a path prefix, e.g. `output/lenet/final`:

    final.pdparams   parameters (Model.save)
    final.pdopt      optimizer state (Model.save)
    final.json       model name and arguments, input shape, normalization, epoch, test accuracy,
                     and the run's whole config (`checkpoint_meta`)

The JSON file is written last, so a checkpoint whose JSON file exists is complete. A run folder
also has `latest`, the name of its newest complete epoch checkpoint, rewritten after each epoch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import paddle

from mnist_paddle.digits import IMAGE_SHAPE, NUM_CLASSES
from mnist_paddle.errors import UserError, first_line
from mnist_paddle.fileio import write_json, write_text
from mnist_paddle.models import MODELS, build_model
from mnist_paddle.train.config import Config, ModelConfig, to_dict

FORMAT = "mnist-paddle-checkpoint/1"
PARAMS, OPTIMIZER, META = ".pdparams", ".pdopt", ".json"
LATEST = "latest"


def save_checkpoint(model: paddle.Model, prefix: str | Path, meta: dict) -> None:
    """Save `model` (parameters and optimizer) and `meta` under `prefix`, each file atomically."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=prefix.parent, prefix=".ckpt-") as tmp:
        model.save(os.path.join(tmp, "ckpt"))
        for suffix in (PARAMS, OPTIMIZER):
            written = Path(tmp) / f"ckpt{suffix}"
            if written.exists():
                os.replace(written, prefix.with_name(prefix.name + suffix))
    write_json(prefix.with_name(prefix.name + META), {"format": FORMAT, **meta})


def write_latest(run_dir: Path, name: str) -> None:
    write_text(run_dir / LATEST, name + "\n")


def read_latest(run_dir: Path) -> Path | None:
    """The prefix `latest` points to, or None when no epoch has finished."""
    pointer = run_dir / LATEST
    if not pointer.is_file():
        return None
    return resolve_checkpoint(run_dir / pointer.read_text(encoding="utf-8").strip())


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint prefix for `path`: a prefix, its .pdparams/.json file, or a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "final"
    if path.suffix in (PARAMS, OPTIMIZER, META):
        path = path.with_suffix("")
    for suffix in (PARAMS, META):
        if not path.with_name(path.name + suffix).is_file():
            raise UserError(
                f"no checkpoint at {path}: {path.name}{suffix} is missing "
                "(python tools/train.py writes output/<run>/final)"
            )
    return path


def load_weights(
    model: paddle.Model, prefix: Path, model_name: str, with_optimizer: bool = True
) -> None:
    """`model.load(prefix)`: the parameters, and the optimizer state when the model is prepared
    and `with_optimizer` (a resumed run; a fine-tune starts a fresh optimizer).

    A damaged file, or parameters of another architecture than `model_name`, is a one-line error.
    """
    params = prefix.with_name(prefix.name + PARAMS)
    state = read_params(params)
    if _shapes(state) != _shapes(model.network.state_dict()):
        owner = _which_model(state)
        holds = f"a {owner!r} model's parameters" if owner else "parameters of another model"
        raise UserError(
            f"{params} holds {holds}, not a {model_name!r} model's; "
            "the checkpoint's files do not belong together"
        )
    try:
        model.load(str(prefix), reset_optimizer=not with_optimizer)
    except Exception as e:  # the optimizer file: pickle and Paddle errors alike
        raise UserError(
            f"{prefix}{OPTIMIZER}: cannot load it, the file is damaged ({first_line(e)})"
        ) from None


def read_params(path: Path) -> dict:
    """A .pdparams file as {name: tensor}; a damaged file or another kind of file is a UserError."""
    try:
        state = paddle.load(str(path))
    except Exception as e:  # pickle, EOF and Paddle errors alike
        raise UserError(
            f"{path}: cannot load it, the file is damaged or not a checkpoint ({first_line(e)})"
        ) from None
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise UserError(f"{path}: not a parameters file (expected names and tensors)")
    return state


def _shapes(state: dict) -> dict:
    return {name: list(value.shape) for name, value in state.items()}


def _which_model(state: dict) -> str | None:
    """The registered model (with default arguments) whose parameters look like `state`."""
    shapes = _shapes(state)
    for name in sorted(MODELS):
        if _shapes(build_model(name).state_dict()) == shapes:
            return name
    return None


def read_meta(prefix: Path) -> dict:
    path = prefix.with_name(prefix.name + META)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable checkpoint description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: not an mnist-paddle checkpoint description (format {FORMAT})")
    return meta


def find_checkpoints(output_dir: str | Path) -> list[Path]:
    """Every run's final checkpoint under `output_dir`, oldest first."""
    metas = Path(output_dir).glob(f"*/final{META}")
    return sorted(
        (m.with_suffix("") for m in metas), key=lambda p: p.with_suffix(META).stat().st_mtime
    )


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


def adopt_checkpoint(cfg: Config, prefix: Path) -> Config:
    """`cfg` with the model of the checkpoint at `prefix` (fine-tuning); a config that names
    another model, other arguments or another normalization is refused."""
    meta = read_meta(prefix)
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
            f"data.std={norm['std']}; the config has {cfg.data.mean}, {cfg.data.std}"
        )
    return dataclasses.replace(cfg, model=ModelConfig(name=model["name"], args=model["args"]))


def load_network(prefix: Path) -> tuple[paddle.nn.Layer, dict]:
    """The network of the checkpoint at `prefix`, rebuilt from its description and loaded with
    the checks of `load_weights`, in eval mode; and the description."""
    meta = read_meta(prefix)
    name = meta["model"]["name"]
    network = build_model(name, num_classes=meta["num_classes"], **meta["model"]["args"])
    load_weights(paddle.Model(network), prefix, name)
    network.eval()
    return network, meta
