import json

import pytest

from mnist_paddle.bench import zoo
from mnist_paddle.models import build_model, count_parameters


def test_zoo_measures_a_finished_run_without_training_it(trained, tmp_path, monkeypatch):
    cfg, metrics = trained
    monkeypatch.setattr(zoo, "_train", lambda *a: pytest.fail("a finished run was trained again"))
    config = tmp_path / "run.yml"
    config.write_text(
        f"run_name: {cfg.run_name}\nmodel:\n  name: lenet\ndata:\n  root: {cfg.data.root}\n"
    )
    rows = zoo.zoo([config], str(cfg.output_dir), tmp_path / "zoo")
    (row,) = rows
    assert row["parameters"] == count_parameters(build_model("lenet")) == 61_610
    # paddle.flops counts LeNet's 0.34 M multiply-adds, plus a few element-wise operations
    assert 340_000 < row["flops"] < 360_000
    assert row["test_acc"] == metrics["final"]["eval_acc"]
    assert row["epochs"] == 2 and row["train_minutes"] > 0
    assert row["images_per_second"] > 1000
    assert json.loads((tmp_path / "zoo" / "zoo.json").read_text()) == rows
    table = (tmp_path / "zoo" / "zoo.md").read_text()
    assert f"| {cfg.run_name} | lenet | 61,610 |" in table


def test_a_fine_tune_is_redone_when_its_base_run_is(tmp_path):
    from mnist_paddle.train.config import Config, TrainConfig

    tune = Config(train=TrainConfig(init_from=str(tmp_path / "lenet" / "final")))
    assert zoo._starts_from(tune, {(tmp_path / "lenet").resolve()})
    assert not zoo._starts_from(tune, {(tmp_path / "lenet5").resolve()})
