"""Export a checkpoint as a static inference model and check it against the dygraph model.

The export folder holds the PIR program and parameters (`Model.save(..., training=False)`) and
`metadata.json`, everything `mnist_paddle.inference` needs. The model is written into a
temporary folder, run through Paddle Inference on MNIST test images, and moved into place only
when its logits match the dygraph model's; a failed export leaves the previous one untouched.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import numpy as np
import paddle

from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import DIR_MODE, write_json
from mnist_paddle.serving.inference import (
    FORMAT,
    METADATA,
    Recognizer,
    file_digest,
    read_metadata,
    softmax,
)
from mnist_paddle.train import calibrate, plots
from mnist_paddle.train.checkpoint import (
    find_checkpoints,
    load_network,
    read_meta,
    resolve_checkpoint,
)
from mnist_paddle.train.config import DataConfig
from mnist_paddle.train.data import IMAGE_SPEC, mnist_arrays, read_mnist
from mnist_paddle.train.loader import split_validation
from mnist_paddle.train.onnx import check_onnx, export_onnx

PREFIX = "inference"  # -> inference.json + inference.pdiparams
RELIABILITY = "reliability.png"
ONNX = f"{PREFIX}.onnx"
# A run that held out no images gives nothing to choose the threshold on: demand near-certainty.
UNCALIBRATED_MIN_PROB = 0.99
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
    onnx: bool = False,
) -> Path:
    """Export `checkpoint` (default: `default_checkpoint`) to `out` (default: output/inference);
    with `onnx`, also as `inference.onnx` (paddle2onnx), checked through ONNX Runtime."""
    prefix = resolve_checkpoint(checkpoint) if checkpoint else default_checkpoint(output_dir)
    meta = read_meta(prefix)
    out = Path(out) if out else Path(output_dir) / "inference"
    kind = f"fine-tuned from {meta['init_from']}" if "init_from" in meta else "trained"
    acc = f", test accuracy {meta['eval_acc']:.2%}" if "eval_acc" in meta else ""
    print(f"exporting {prefix} ({meta['model']['name']}, {kind}{acc})")
    with _on_cpu():  # the check's dygraph reference: exact on CPU, TF32 on a recent GPU is not
        return _export(prefix, meta, out, data_root, onnx)


@contextlib.contextmanager
def _on_cpu():
    previous = paddle.get_device()
    paddle.set_device("cpu")
    try:
        yield
    finally:
        paddle.set_device(previous)


def _export(prefix: Path, meta: dict, out: Path, data_root: str, onnx: bool) -> Path:
    network, _ = load_network(prefix)
    model = paddle.Model(network, inputs=[IMAGE_SPEC])

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    staging.chmod(DIR_MODE)
    try:
        model.save(str(staging / PREFIX), training=False)
        metadata = _metadata(meta, prefix, staging)
        write_json(staging / METADATA, metadata)
        recognizer = Recognizer(staging)  # the predictor the deployment uses, made once
        diff, images, logits = _check(network, recognizer, meta, data_root)
        if onnx:
            onnx_diff = _add_onnx(staging, metadata, images, logits)
        metadata |= calibrate_export(recognizer, meta, data_root)
        write_json(staging / METADATA, metadata)
        replace_dir(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [f"{PREFIX}.json", f"{PREFIX}.pdiparams", METADATA]
    files += [p for p in (ONNX, RELIABILITY) if (out / p).is_file()]
    print(
        f"wrote {out}/ ({', '.join(files)}); "
        f"Paddle Inference logits match the dygraph model's (max difference {diff:.1e})"
        + (f", ONNX Runtime's match Paddle Inference's ({onnx_diff:.1e})" if onnx else "")
    )
    print(_calibration_line(metadata))
    return out


def calibrate_export(recognizer: Recognizer, meta: dict, data_root: str) -> dict:
    """Temperature and sure-threshold for the exported model `recognizer` runs, fitted on the
    images its run held out (never the test set); the reliability diagram beside the model.
    Keys to add to its metadata."""
    data = meta["config"]["data"]
    if not data.get("val_size"):
        return {
            "temperature": 1.0,
            "min_prob": UNCALIBRATED_MIN_PROB,
            "calibration": {"split": None, "images": 0},
        }
    norm = meta["normalize"]
    images, labels = read_mnist(data_root, "train")
    if data.get("train_limit"):
        images, labels = images[: data["train_limit"]], labels[: data["train_limit"]]
    _, (images, labels) = split_validation(images, labels.astype(np.int64), data["val_size"])
    logits = recognizer.logits(normalize(images, norm["mean"], norm["std"])[:, None])
    temperature = calibrate.fit_temperature(logits, labels)
    before = softmax(logits).max(axis=1)
    after = softmax(logits, temperature).max(axis=1)
    correct = logits.argmax(axis=1) == labels
    min_prob = calibrate.sure_threshold(after, correct)
    plots.plot_reliability(
        {
            "as trained": calibrate.reliability(before, correct),
            f"temperature {temperature:.2f}": calibrate.reliability(after, correct),
        },
        recognizer.model_dir / RELIABILITY,
        f"{len(labels):,} held-out validation images",
    )
    return {
        "temperature": temperature,
        "min_prob": min_prob,
        "calibration": {
            "split": "validation",
            "images": len(labels),
            "nll_before": calibrate.nll(logits, labels),
            "nll_after": calibrate.nll(logits, labels, temperature),
            "ece_before": calibrate.calibration_error(before, correct),
            "ece_after": calibrate.calibration_error(after, correct),
            **calibrate.risk_coverage(after, correct, min_prob),
        },
    }


def _calibration_line(metadata: dict) -> str:
    c = metadata["calibration"]
    if not c["images"]:
        return (
            "not calibrated: the run held out no training images (data.val_size is 0); "
            f"temperature 1, sure at p >= {metadata['min_prob']}"
        )
    return (
        f"calibrated on {c['images']:,} held-out validation images: temperature "
        f"{metadata['temperature']:.2f}, calibration error {c['ece_before']:.2%} -> "
        f"{c['ece_after']:.2%}; sure at p >= {metadata['min_prob']:.3f} "
        f"({c['sure_share']:.1%} of them, {c['sure_error']:.2%} of those wrong)"
    )


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
        # until calibrate_export has fitted them on held-out images
        "temperature": 1.0,
        "min_prob": UNCALIBRATED_MIN_PROB,
        "calibration": {"split": None, "images": 0},
        "paddle_version": paddle.__version__,
    }


def _add_onnx(folder: Path, metadata: dict, images: np.ndarray, logits: np.ndarray) -> float:
    """Write `inference.onnx` beside the program, check it against Paddle Inference's `logits`,
    record it (and its SHA-256) in `metadata`; the largest logit difference."""
    export_onnx(folder / f"{PREFIX}.json", folder / f"{PREFIX}.pdiparams", folder / ONNX)
    diff = check_onnx(folder / ONNX, images, logits, TOLERANCE)
    metadata["files"]["onnx"] = ONNX
    metadata["sha256"][ONNX] = file_digest(folder / ONNX)
    return diff


def _check(
    network: paddle.nn.Layer, recognizer: Recognizer, meta: dict, data_root: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """Max |logit difference| between Paddle Inference and dygraph on MNIST test images; the
    images and the predictor's logits."""
    norm = meta["normalize"]
    data = DataConfig(root=data_root, mean=norm["mean"], std=norm["std"], test_limit=CHECK_IMAGES)
    images, _ = mnist_arrays(data, "test")
    with paddle.no_grad():
        expected = network(paddle.to_tensor(images)).numpy()
    got = recognizer.logits(images)
    return check_logits(got, expected), images, got


def check_logits(got: np.ndarray, expected: np.ndarray, what: str = "model") -> float:
    """The largest |logit difference| between Paddle Inference's `got` and the dygraph model's
    `expected`; beyond TOLERANCE (or NaN) a one-line error, and nothing is written."""
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:  # also catches NaN
        raise UserError(
            f"exported {what} disagrees with the dygraph {what}: max logit difference "
            f"{diff:.2e} > {TOLERANCE:g}; nothing was written"
        )
    return diff


def add_model_files(folder: Path, name: str, network: paddle.nn.Layer, input_spec) -> None:
    """Save `network` into the export `folder` as `<name>.json` + `<name>.pdiparams` and record
    both in its metadata (files `<name>_model`, `<name>_params`, with their SHA-256): how the
    number and line models join an export."""
    paddle.jit.save(network, str(folder / name), input_spec=[input_spec])
    meta = read_metadata(folder)
    for key, file in ((f"{name}_model", f"{name}.json"), (f"{name}_params", f"{name}.pdiparams")):
        meta["files"][key] = file
        meta["sha256"][file] = file_digest(folder / file)
    write_json(folder / METADATA, meta)


def replace_dir(new: Path, target: Path) -> None:
    """Move folder `new` to `target`, replacing an old `target` only once `new` is complete."""
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-old-"))
        target.rename(old / target.name)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)
