"""Checkpoints: `Model.save` files plus a JSON file that says how to rebuild and feed the model.

A checkpoint is a path prefix, e.g. `output/lenet/final`:

    final.pdparams   parameters (Model.save)
    final.pdopt      optimizer state (Model.save)
    final.json       model name and arguments, input shape, normalization, epoch, test accuracy

The JSON file is written last, so a checkpoint whose JSON file exists is complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import paddle

from mnist_paddle.errors import UserError, first_line
from mnist_paddle.fileio import write_json

FORMAT = "mnist-paddle-checkpoint/1"
PARAMS, OPTIMIZER, META = ".pdparams", ".pdopt", ".json"


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


def load_weights(model: paddle.Model, prefix: Path) -> None:
    """`model.load(prefix)`, with a damaged or foreign parameters file as a one-line error."""
    try:
        model.load(str(prefix))
    except Exception as e:  # pickle, shape and Paddle errors alike
        raise UserError(
            f"{prefix}{PARAMS}: cannot load it, the file is damaged or not this model's "
            f"({first_line(e)})"
        ) from None


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
