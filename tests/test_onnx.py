"""tools/export.py --onnx and --runtime onnxruntime: the same answers through ONNX Runtime."""

import json

import httpx
import numpy as np
import pytest
from conftest import DATA, ROOT, assert_one_line_error, run_tool, start_server

from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train.export import export

SAMPLES = ROOT / "deploy" / "samples"


@pytest.fixture(scope="module")
def with_onnx(trained, tmp_path_factory):
    cfg, _ = trained
    out = tmp_path_factory.mktemp("onnx") / "inference"
    return export(cfg.run_dir / "final", out=out, data_root=str(DATA), onnx=True)


def test_export_writes_and_records_the_onnx_model(with_onnx):
    meta = json.loads((with_onnx / "metadata.json").read_text())
    assert meta["files"]["onnx"] == "inference.onnx"
    onnx = (with_onnx / "inference.onnx").read_bytes()
    import hashlib

    assert meta["sha256"]["inference.onnx"] == hashlib.sha256(onnx).hexdigest()


def test_onnx_runtime_gives_paddle_inferences_logits(with_onnx):
    images = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype(np.float32)
    paddle_logits = Recognizer(with_onnx).logits(images)
    onnx_logits = Recognizer(with_onnx, runtime="onnxruntime").logits(images)
    np.testing.assert_allclose(onnx_logits, paddle_logits, atol=1e-4, rtol=0)


def infer(model_dir, *args):
    return run_tool("deploy/infer.py", "--model-dir", str(model_dir), "--json", *args)


def test_infer_with_onnxruntime_answers_as_paddle_inference(with_onnx):
    paddle_rows = [json.loads(x) for x in infer(with_onnx, str(SAMPLES)).stdout.splitlines()]
    result = infer(with_onnx, "--runtime", "onnxruntime", str(SAMPLES))
    assert result.returncode == 0, result.stderr
    onnx_rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(onnx_rows) == len(paddle_rows) == 10
    for a, b in zip(onnx_rows, paddle_rows):
        assert (a["path"], a["digit"], a["sure"]) == (b["path"], b["digit"], b["sure"])
        assert abs(a["prob"] - b["prob"]) <= 2e-4


def test_serve_with_onnxruntime_answers_as_paddle_inference(with_onnx):
    sample = sorted(SAMPLES.glob("*.png"))[0]
    expected = Recognizer(with_onnx).recognize([sample])[0]
    process, url = start_server(with_onnx, "--runtime", "onnxruntime")
    try:
        response = httpx.post(f"{url}/predict", files={"image": ("d.png", sample.read_bytes())})
        (got,) = response.json()["results"]
        assert (got["digit"], got["sure"]) == (expected["digit"], expected["sure"])
        assert abs(got["prob"] - expected["prob"]) <= 2e-4
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_an_export_without_onnx_says_how_to_get_one(exported):
    result = infer(exported, "--runtime", "onnxruntime", str(SAMPLES))
    assert_one_line_error(result, "no ONNX model in this export", "tools/export.py --onnx")


def test_a_damaged_onnx_file_is_refused(with_onnx, tmp_path):
    import shutil

    copy = tmp_path / "inference"
    shutil.copytree(with_onnx, copy)
    (copy / "inference.onnx").write_bytes(b"not a model")
    result = infer(copy, "--runtime", "onnxruntime", str(SAMPLES))
    assert_one_line_error(result, "inference.onnx: damaged or truncated")
