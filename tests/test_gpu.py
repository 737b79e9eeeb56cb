"""The GPU path (serving/gpu.py). On a CUDA machine the tests at the bottom run it for real; here
they skip, and the logic that needs no GPU is tested: what `paddle.tensorrt.convert` is handed,
where the engine cache lives and what its name is tied to, and the one-line errors."""

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import assert_one_line_error, run_tool

from mnist_paddle.errors import UserError
from mnist_paddle.serving import gpu
from mnist_paddle.serving.inference import Recognizer

HAS_CUDA = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
HAS_TRT = HAS_CUDA and tuple(paddle.inference.get_trt_compile_version()) != (0, 0, 0)
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA build of Paddle or no GPU here")
needs_trt = pytest.mark.skipif(not HAS_TRT, reason="no TensorRT-enabled Paddle and GPU here")
# TF32 (Ampere and newer, Paddle's default in cuBLAS and cuDNN) keeps 10 mantissa bits
TF32_RTOL, TF32_ATOL = 1e-2, 1e-2


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """paddle.tensorrt.export as far as gpu.convert uses it (the CPU build has no such module)."""
    export = types.ModuleType("paddle.tensorrt.export")

    class Input:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class TensorRTConfig:
        def __init__(self, inputs, save_model_dir=None, precision_mode="FP32"):
            self.inputs, self.save_model_dir, self.precision_mode = (
                inputs,
                save_model_dir,
                precision_mode,
            )

    export.Input, export.TensorRTConfig = Input, TensorRTConfig
    export.PrecisionMode = types.SimpleNamespace(FP32="FP32", FP16="FP16")
    package = types.ModuleType("paddle.tensorrt")
    package.export = export
    monkeypatch.setitem(sys.modules, "paddle.tensorrt", package)
    monkeypatch.setitem(sys.modules, "paddle.tensorrt.export", export)


def export_like(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "inference"
    folder.mkdir()
    (folder / "inference.json").write_text("{}")
    meta = {
        "input_shape": [1, 28, 28],
        "input_name": "image",
        "files": {"model": "inference.json", "params": "inference.pdiparams"},
        "sha256": {"inference.pdiparams": "ab" * 32},
    }
    return folder / "inference.json", meta


def test_convert_gets_the_path_prefix_and_the_cache_is_absolute(tmp_path, fake_tensorrt):
    model_file, meta = export_like(tmp_path)
    cache = model_file.parent / gpu.CACHE / "key"
    seen = {}

    def convert(path, config):  # writes what paddle.tensorrt.convert writes
        seen.update(path=path, config=config)
        save = Path(config.save_model_dir)
        (save / "").mkdir(parents=True)
        (save / "engine_1_0.trt").write_bytes(b"engine")
        program = {"engine_serialized_data": str(save / "engine_1_0.trt")}
        save.with_suffix(".json").write_text(json.dumps(program))
        save.with_suffix(".pdiparams").write_bytes(b"params")

    gpu.convert(model_file, meta, "fp16", cache, convert_fn=convert)
    # pir_io's load_inference_model appends ".json" itself: it gets the prefix
    assert seen["path"] == str(model_file.with_suffix(""))
    assert Path(seen["config"].save_model_dir).is_absolute()
    assert seen["config"].precision_mode == "FP16"
    assert seen["config"].inputs[0].max_input_shape == (gpu.MAX_BATCH, 1, 28, 28)
    # in place, engine paths pointing at the cache's final place, no staging left behind
    program = json.loads((cache / "inference.json").read_text())
    assert program["engine_serialized_data"] == str(cache / "inference" / "engine_1_0.trt")
    assert (cache / "inference" / "engine_1_0.trt").read_bytes() == b"engine"
    assert [p.name for p in cache.parent.iterdir()] == ["key"]


def test_a_failed_conversion_leaves_no_cache(tmp_path, fake_tensorrt):
    model_file, meta = export_like(tmp_path)
    cache = model_file.parent / gpu.CACHE / "key"

    def convert(path, config):
        Path(config.save_model_dir).mkdir(parents=True)
        (Path(config.save_model_dir) / "engine_1_0.trt").write_bytes(b"half")
        raise OSError("libnvinfer_plugin.so: cannot open shared object file\nmore detail")

    with pytest.raises(UserError) as err:
        gpu.convert(model_file, meta, "fp32", cache, convert_fn=convert)
    assert str(err.value) == (
        "--tensorrt: converting the model failed "
        "(libnvinfer_plugin.so: cannot open shared object file)"
    )
    assert not cache.exists() and list(cache.parent.iterdir()) == []


def test_the_cache_is_named_after_the_gpu_tensorrt_precision_and_model():
    meta = {"files": {"params": "p"}, "sha256": {"p": "0123456789abcdef" * 4}}
    key = gpu.cache_key("NVIDIA A100-SXM4-40GB", (8, 0), "10.5.0", "fp16", meta)
    assert key == "nvidia-a100-sxm4-40gb-sm80-trt10.5.0-fp16-0123456789ab"
    assert gpu.cache_key("NVIDIA A100-SXM4-40GB", (8, 0), "10.5.0", "fp32", meta) != key
    assert gpu.cache_key("Tesla T4", (7, 5), "10.5.0", "fp16", meta) != key
    assert gpu.cache_key("NVIDIA A100-SXM4-40GB", (8, 0), "8.6.1", "fp16", meta) != key


def test_tensorrt_errors_name_what_is_missing(monkeypatch):
    monkeypatch.setattr(gpu.paddle_infer, "get_trt_compile_version", lambda: (0, 0, 0))
    with pytest.raises(UserError, match="this Paddle build has no TensorRT"):
        gpu._tensorrt_module()
    monkeypatch.setattr(gpu.paddle_infer, "get_trt_compile_version", lambda: (10, 5, 0))
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(UserError, match=r"package is missing.*pip install tensorrt==10\.5\.\*"):
        gpu._tensorrt_module()


def test_a_cuda_build_that_sees_no_gpu_says_so(monkeypatch):
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 0)
    with pytest.raises(UserError, match="Paddle has CUDA but sees no GPU"):
        gpu.check_gpu()


def test_precision_is_fp32_or_fp16():
    with pytest.raises(UserError, match="--precision must be one of fp32, fp16"):
        gpu.tensorrt_model(Path("x.json"), {}, "int8")


@pytest.mark.skipif(HAS_CUDA, reason="checks the message of a build without CUDA")
def test_tensorrt_on_a_cpu_build_is_one_line(exported):
    sample = next((Path(__file__).parents[1] / "deploy" / "samples").glob("*.png"))
    result = run_tool(
        "deploy/infer.py",
        "--model-dir",
        str(exported),
        "--device",
        "gpu",
        "--tensorrt",
        str(sample),
    )
    assert_one_line_error(result, "--device gpu: this Paddle build has no CUDA")


# ---- on a machine with a GPU -----------------------------------------------------------------


def close_under_tf32(gpu_logits: np.ndarray, cpu_logits: np.ndarray) -> None:
    np.testing.assert_allclose(gpu_logits, cpu_logits, rtol=TF32_RTOL, atol=TF32_ATOL)
    assert (gpu_logits.argmax(axis=1) == cpu_logits.argmax(axis=1)).all()


@needs_gpu
def test_gpu_predictor_matches_cpu(exported):
    images = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
    close_under_tf32(
        Recognizer(exported, device="gpu").logits(images), Recognizer(exported).logits(images)
    )


@needs_gpu
def test_export_checks_against_a_cpu_reference_when_the_default_device_is_a_gpu(trained, tmp_path):
    from mnist_paddle.train.export import export

    cfg, _ = trained
    paddle.set_device("gpu")
    out = export(cfg.run_dir, out=tmp_path / "inference", data_root=cfg.data.root)
    assert paddle.get_device().startswith("gpu")  # put back as it was
    assert (out / "metadata.json").is_file()


@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_matches_cpu_and_its_cache_works_from_another_folder(
    exported, precision, tmp_path, monkeypatch
):
    images = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
    cpu = Recognizer(exported).logits(images)
    trt = Recognizer(exported, device="gpu", tensorrt=True, precision=precision).logits(images)
    tol = 5e-2 if precision == "fp16" else TF32_ATOL
    np.testing.assert_allclose(trt, cpu, rtol=tol, atol=tol)
    assert (trt.argmax(1) == cpu.argmax(1)).mean() >= 0.98
    caches = list((exported / gpu.CACHE).iterdir())
    assert any(precision in c.name for c in caches)
    elsewhere = Path(tmp_path)  # a relative model folder, run from another working folder
    monkeypatch.chdir(elsewhere)
    again = Recognizer(
        os.path.relpath(exported, elsewhere), device="gpu", tensorrt=True, precision=precision
    )
    np.testing.assert_allclose(again.logits(images), trt, rtol=1e-5, atol=1e-5)
