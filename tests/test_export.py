import json
import os
import shutil
import time

import numpy as np
import paddle
import pytest
from conftest import DATA

from mnist_paddle.errors import UserError
from mnist_paddle.fileio import write_json
from mnist_paddle.models import build_model
from mnist_paddle.serving.inference import Recognizer, softmax
from mnist_paddle.train import export as export_module
from mnist_paddle.train.checkpoint import read_meta
from mnist_paddle.train.config import DataConfig
from mnist_paddle.train.data import arrays, load_mnist
from mnist_paddle.train.export import default_checkpoint, export


def test_export_folder_and_metadata(exported, trained):
    cfg, metrics = trained
    assert sorted(p.name for p in exported.iterdir()) == [
        "inference.json",
        "inference.pdiparams",
        "metadata.json",
    ]
    meta = json.loads((exported / "metadata.json").read_text())
    assert meta["model"] == {"name": "lenet", "args": {}}
    assert meta["input_shape"] == [1, 28, 28] and meta["input_name"] == "image"
    assert meta["normalize"] == {"mean": 127.5, "std": 127.5}
    assert meta["class_names"] == [str(k) for k in range(10)]
    assert meta["test_acc"] == pytest.approx(metrics["final"]["eval_acc"])
    assert not list(exported.parent.glob(".*")), "staging folder left behind"


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_predictor_logits_equal_dygraph_logits(exported, trained, batch):
    cfg, _ = trained
    network = build_model("lenet")
    network.set_state_dict(paddle.load(str(cfg.run_dir / "final.pdparams")))
    network.eval()
    data = load_mnist(DataConfig(root=str(DATA), test_limit=batch), "test")
    images, _ = arrays(data)
    expected = network(paddle.to_tensor(images)).numpy()
    got = Recognizer(exported, threads=2).logits(images)
    assert got.shape == (batch, 10)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(softmax(got).sum(axis=1), 1.0, rtol=1e-5)


def test_default_checkpoint_is_the_newest_finetuned_else_the_newest(tmp_path, trained):
    cfg, _ = trained
    with pytest.raises(UserError, match="no trained model under"):
        default_checkpoint(tmp_path)
    meta = read_meta(cfg.run_dir / "final")
    runs = [("tuned_old", {"init_from": "a"}), ("tuned", {"init_from": "b"}), ("plain_newest", {})]
    for age, (run, extra) in zip((30, 20, 10), runs):
        (tmp_path / run).mkdir()
        shutil.copy(cfg.run_dir / "final.pdparams", tmp_path / run / "final.pdparams")
        write_json(tmp_path / run / "final.json", {**meta, **extra})
        stamp = time.time() - age
        os.utime(tmp_path / run / "final.json", (stamp, stamp))
    assert default_checkpoint(tmp_path) == tmp_path / "tuned" / "final"
    for run in ("tuned_old", "tuned"):
        (tmp_path / run / "final.json").unlink()
    assert default_checkpoint(tmp_path) == tmp_path / "plain_newest" / "final"


def test_failed_check_keeps_the_previous_export(exported, trained, monkeypatch):
    cfg, _ = trained
    before = {p.name: p.read_bytes() for p in exported.iterdir()}
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # no export can pass
    with pytest.raises(UserError, match="disagrees with the dygraph model.*nothing was written"):
        export(cfg.run_dir / "final", out=exported, data_root=str(DATA))
    assert {p.name: p.read_bytes() for p in exported.iterdir()} == before
    assert not list(exported.parent.glob(".*"))


@pytest.mark.skipif(
    not paddle.device.is_compiled_with_cuda(), reason="this Paddle build has no CUDA"
)
def test_gpu_predictor_matches_cpu(exported):
    images = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    cpu = Recognizer(exported).logits(images)
    gpu = Recognizer(exported, device="gpu").logits(images)
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=0)
