"""Export a checkpoint as a static inference model and check it against the dygraph model.

The export folder holds the PIR program and parameters (`Model.save(..., training=False)`) and
`metadata.json`, everything `mnist_paddle.inference` needs. The model is written into a
temporary folder, run through Paddle Inference on MNIST test images, and moved into place only
when its logits match the dygraph model's; a failed export leaves the previous one untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import paddle

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import DIR_MODE, write_json
from mnist_paddle.serving.inference import FORMAT, METADATA, Recognizer, file_digest
from mnist_paddle.train.checkpoint import (
    find_checkpoints,
    load_network,
    read_meta,
    resolve_checkpoint,
)
from mnist_paddle.train.config import DataConfig
from mnist_paddle.train.data import IMAGE_SPEC, arrays, load_mnist

PREFIX = "inference"  # -> inference.json + inference.pdiparams
CHECK_IMAGES = 256  # test images run through both models
TOLERANCE = 1e-4  # max |logit difference| allowed between predictor and dygraph model


def default_checkpoint(output_dir: str | Path) -> Path:
    """The newest fine-tuned final checkpoint under `output_dir`, else the newest final one."""
    finals = find_checkpoints(output_dir)
    if not finals:
        raise UserError(
            f"no trained model under {output_dir}/ (train one with `python tools/train.py`)"
        )
    finetuned = [p for p in finals if "init_from" in read_meta(p)]
    return (finetuned or finals)[-1]


def export(
    checkpoint: str | Path | None = None,
    output_dir: str | Path = "output",
    out: str | Path | None = None,
    data_root: str = DataConfig.root,
) -> Path:
    """Export `checkpoint` (default: `default_checkpoint`) to `out` (default: output/inference)."""
    prefix = resolve_checkpoint(checkpoint) if checkpoint else default_checkpoint(output_dir)
    meta = read_meta(prefix)
    out = Path(out) if out else Path(output_dir) / "inference"
    kind = f"fine-tuned from {meta['init_from']}" if "init_from" in meta else "trained"
    acc = f", test accuracy {meta['eval_acc']:.2%}" if "eval_acc" in meta else ""
    print(f"exporting {prefix} ({meta['model']['name']}, {kind}{acc})")

    network, _ = load_network(prefix)
    model = paddle.Model(network, inputs=[IMAGE_SPEC])

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    staging.chmod(DIR_MODE)
    try:
        model.save(str(staging / PREFIX), training=False)
        write_json(staging / METADATA, _metadata(meta, prefix, staging))
        diff = _check(network, staging, meta, data_root)
        _replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(
        f"wrote {out}/ ({PREFIX}.json, {PREFIX}.pdiparams, {METADATA}); "
        f"Paddle Inference logits match the dygraph model's (max difference {diff:.1e})"
    )
    return out


def _metadata(meta: dict, prefix: Path, folder: Path) -> dict:
    files = {"model": f"{PREFIX}.json", "params": f"{PREFIX}.pdiparams"}
    return {
        "format": FORMAT,
        "model": meta["model"],
        "checkpoint": str(prefix),
        "files": files,
        "sha256": {name: file_digest(folder / name) for name in files.values()},
        "input_name": IMAGE_SPEC.name,
        "input_shape": meta["input_shape"],
        "normalize": meta["normalize"],
        "class_names": [str(k) for k in range(meta["num_classes"])],
        "test_acc": meta.get("eval_acc"),
        "paddle_version": paddle.__version__,
    }


def _check(network: paddle.nn.Layer, model_dir: Path, meta: dict, data_root: str) -> float:
    """Max |logit difference| between Paddle Inference and dygraph on MNIST test images."""
    norm = meta["normalize"]
    data = load_mnist(
        DataConfig(root=data_root, mean=norm["mean"], std=norm["std"], test_limit=CHECK_IMAGES),
        "test",
    )
    images, _ = arrays(data)
    with paddle.no_grad():
        expected = network(paddle.to_tensor(images)).numpy()
    got = Recognizer(model_dir).logits(images)
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:  # also catches NaN
        raise UserError(
            "exported model disagrees with the dygraph model: "
            f"max logit difference {diff:.2e} > {TOLERANCE:g}; "
            "nothing was written"
        )
    return diff


def _replace_dir(new: Path, target: Path) -> None:
    """Move folder `new` to `target`, replacing an old `target` only once `new` is complete."""
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-old-"))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)
