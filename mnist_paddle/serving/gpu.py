"""Paddle Inference on a GPU, and through TensorRT (Paddle 3's PIR-TRT), for an export folder.

Checked against Paddle 3.3's own source (no GPU machine here; see the README's GPU section):

- `paddle.tensorrt.convert(path, config)` loads the model with `paddle.static.load_inference_model`,
  which appends ".json" to the path it is given (python/paddle/static/pir_io.py), so it gets the
  path *prefix* (`.../inference`), as Paddle's own tests and PaddleX pass it.
- The converted program names each TensorRT engine file by the path it was written to, under
  `save_model_dir` (python/paddle/tensorrt/util.py `get_cache_path`); when that path does not
  open, the engine op looks in FLAGS_trt_engine_serialized_path, which the predictor sets to the
  model file's path without its suffix (analysis_predictor.cc). Both are absolute here, so the
  cache works from any working folder.
- An engine is built for one GPU, one TensorRT version and one precision: the cache folder is
  named after all three and the model's SHA-256, and written under a temporary name and renamed
  into place only when the conversion succeeded, so a failed one is never trusted.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import paddle.inference as paddle_infer

from mnist_paddle.errors import UserError, first_line

GPU_MEMORY_MB = 256  # initial GPU memory pool; Paddle grows it when needed
PRECISIONS = ("fp32", "fp16")
CACHE = "tensorrt"  # folder inside the export folder
PREFIX = "inference"
# TensorRT's optimization profile: the batch sizes the engine is built for
MIN_BATCH, OPT_BATCH, MAX_BATCH = 1, 64, 1024


def gpu_config(model_file: Path, params_file: Path) -> paddle_infer.Config:
    """A predictor config for the first GPU; a one-line error if there is none to use."""
    check_gpu()
    config = paddle_infer.Config(str(model_file), str(params_file))
    config.enable_use_gpu(GPU_MEMORY_MB, 0)
    return config


def check_gpu() -> None:
    import paddle  # the framework, for its build and device facts

    if not paddle.device.is_compiled_with_cuda():
        raise UserError("--device gpu: this Paddle build has no CUDA (install Paddle's GPU wheel)")
    if paddle.device.cuda.device_count() == 0:
        raise UserError(
            "--device gpu: Paddle has CUDA but sees no GPU (check nvidia-smi, the driver, and "
            "CUDA_VISIBLE_DEVICES)"
        )


def tensorrt_model(model_file: Path, meta: dict, precision: str) -> tuple[Path, Path]:
    """The model converted for TensorRT on this GPU at `precision`: (program, parameters),
    converted once and cached in the export folder."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    check_gpu()
    trt = _tensorrt_module()
    import paddle

    props = paddle.device.cuda.get_device_properties(0)
    key = cache_key(props.name, (props.major, props.minor), trt.__version__, precision, meta)
    folder = model_file.resolve().parent / CACHE / key
    program = folder / f"{PREFIX}.json"
    if not program.is_file():
        convert(model_file.resolve(), meta, precision, folder)
    return program, folder / f"{PREFIX}.pdiparams"


def cache_key(gpu: str, capability: tuple[int, int], trt_version: str, precision: str, meta: dict):
    """The cache folder's name: what an engine is tied to (GPU, compute capability, TensorRT
    version, precision) and the model it was built from."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    model = meta["sha256"][meta["files"]["params"]][:12]
    return f"{gpu}-sm{capability[0]}{capability[1]}-trt{trt_version}-{precision}-{model}"


def convert(model_file: Path, meta: dict, precision: str, folder: Path, convert_fn=None) -> None:
    """Run `paddle.tensorrt.convert` into a temporary folder beside `folder`, then rename it into
    place. Any failure is a one-line error and leaves no cache behind."""
    from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig

    if convert_fn is None:
        import paddle.tensorrt

        convert_fn = paddle.tensorrt.convert
    shape = meta["input_shape"]
    image = Input(
        min_input_shape=(MIN_BATCH, *shape),
        optim_input_shape=(OPT_BATCH, *shape),
        max_input_shape=(MAX_BATCH, *shape),
        name=meta["input_name"],
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        config = TensorRTConfig(
            inputs=[image],
            # the program goes to <staging>/inference.json; the engines into <staging>/inference/
            save_model_dir=str(staging / PREFIX),
            precision_mode=PrecisionMode.FP16 if precision == "fp16" else PrecisionMode.FP32,
        )
        try:
            convert_fn(str(model_file.with_suffix("")), config)  # the prefix: see the docstring
        except Exception as e:  # libnvinfer_plugin missing, an engine that does not build, ...
            raise UserError(f"--tensorrt: converting the model failed ({first_line(e)})") from None
        if not (staging / f"{PREFIX}.json").is_file():
            raise UserError("--tensorrt: the conversion wrote no program; nothing was cached")
        _engine_paths_relative_to(staging, folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _engine_paths_relative_to(staging: Path, folder: Path) -> None:
    """The program records each engine by the path it was written to (in `staging`); point those
    at the cache's final place, so the first lookup opens the file."""
    program = staging / f"{PREFIX}.json"
    text = program.read_text(encoding="utf-8")
    program.write_text(text.replace(str(staging), str(folder)), encoding="utf-8")


def _tensorrt_module():
    """The `tensorrt` Python package, after checking that this Paddle was built with TensorRT."""
    built = paddle_infer.get_trt_compile_version()
    if tuple(built) == (0, 0, 0):
        raise UserError(
            "--tensorrt: this Paddle build has no TensorRT (install a TensorRT-enabled GPU build "
            "of Paddle; see the README's GPU section)"
        )
    try:
        import tensorrt
    except ImportError:
        version = ".".join(str(v) for v in built)
        raise UserError(
            f"--tensorrt: the tensorrt Python package is missing; Paddle was built with TensorRT "
            f"{version}: pip install tensorrt=={built[0]}.{built[1]}.*"
        ) from None
    return tensorrt
