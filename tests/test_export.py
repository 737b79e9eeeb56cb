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
    # the run held out no training images: nothing to calibrate on, and the test set is not used
    assert meta["calibration"] == {"split": None, "images": 0}
    assert meta["temperature"] == 1.0 and meta["min_prob"] == export_module.UNCALIBRATED_MIN_PROB
    assert meta["model"] == {"name": "lenet", "args": {}}
    assert meta["input_shape"] == [1, 28, 28] and meta["input_name"] == "image"
    assert meta["normalize"] == {"mean": 127.5, "std": 127.5}
    assert meta["class_names"] == [str(k) for k in range(10)]
    assert meta["test_acc"] == pytest.approx(metrics["final"]["eval_acc"])
    assert not list(exported.parent.glob(".*")), "staging folder left behind"


def test_export_calibrates_on_the_images_the_run_held_out(tmp_path):
    from conftest import small_config

    from mnist_paddle.train import calibrate, engine
    from mnist_paddle.train.loader import load_data

    cfg = small_config(
        tmp_path,
        "lenet.yml",
        "data.train_limit=2000",
        "data.val_size=600",
        "data.test_limit=100",
        "train.epochs=1",
    )
    engine.train(cfg)
    out = export(cfg.run_dir, out=tmp_path / "inference", data_root=str(DATA))
    meta = json.loads((out / "metadata.json").read_text())
    c = meta["calibration"]
    assert c["split"] == "validation" and c["images"] == 600
    assert c["nll_after"] <= c["nll_before"] and c["ece_after"] < c["ece_before"]
    assert meta["temperature"] > 0 and meta["temperature"] != 1.0
    # the threshold is the one sure_threshold picks on those very images, and holds its promise
    data = load_data(cfg)
    recognizer = Recognizer(out)
    probs = recognizer.probabilities(data.eval.images)
    correct = probs.argmax(axis=1) == data.eval.labels
    assert meta["min_prob"] == pytest.approx(calibrate.sure_threshold(probs.max(axis=1), correct))
    assert c["sure_error"] <= calibrate.MAX_SURE_ERROR and 0 < c["sure_share"] <= 1
    assert (out / "reliability.png").read_bytes().startswith(b"\x89PNG")


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


def test_predictors_keep_their_tensors_unless_the_environment_says(exported, monkeypatch):
    """Predictors switch off the executor's collector thread (FLAGS_eager_delete_tensor_gb -1,
    docs/speed.md) unless the environment sets the flag; either way the logits are the same."""
    flag = "FLAGS_eager_delete_tensor_gb"
    images, _ = arrays(load_mnist(DataConfig(root=str(DATA), test_limit=16), "test"))
    monkeypatch.setenv(flag, "0")
    paddle.set_flags({flag: 0.0})
    collecting = Recognizer(exported)
    assert paddle.get_flags([flag])[flag] == 0.0
    one, many = collecting.logits(images[:1]), collecting.logits(images)
    monkeypatch.delenv(flag)
    keeping = Recognizer(exported)
    assert paddle.get_flags([flag])[flag] == -1.0
    np.testing.assert_array_equal(keeping.logits(images[:1]), one)
    np.testing.assert_array_equal(keeping.logits(images), many)


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
