"""-o train.visualdl=true: the run's log, read back with VisualDL's LogReader."""

from pathlib import Path

from conftest import small_config

from mnist_paddle.train import engine


def read_log(folder: Path):
    from visualdl import LogReader

    (log,) = folder.glob("vdlrecords.*.log")
    return LogReader(file_path=str(log))


def test_a_run_logs_scalars_per_step_and_epoch_and_its_figures(tmp_path):
    cfg = small_config(
        tmp_path,
        "lenet.yml",
        "data.train_limit=1200",
        "data.val_size=200",
        "data.test_limit=100",
        "data.typeset=0",
        "train.epochs=2",
        "train.log_freq=10",
        "train.visualdl=true",
    )
    metrics = engine.train(cfg)
    reader = read_log(cfg.run_dir / "visualdl")
    tags = reader.get_tags()
    assert {"train/loss", "train/acc", "train/lr", "eval/loss", "eval/acc"} <= set(tags["scalar"])
    assert {"samples", "confusion"} <= set(tags["image"])
    steps_per_epoch = 1000 // 32 + 1  # 1,000 training images in batches of 32
    losses = reader.get_data("scalar", "train/loss")
    assert [x.id for x in losses] == [
        e * steps_per_epoch + s for e in range(2) for s in range(10, steps_per_epoch + 1, 10)
    ]
    # the logged losses are the recorded step losses at those steps
    recorded = metrics["step_losses"]
    for x in losses:
        assert abs(x.value - recorded[x.id - 1]) < 1e-6
    lrs = [x.value for x in reader.get_data("scalar", "train/lr")]
    assert max(lrs) <= cfg.train.lr * 1.0001 and len(set(lrs)) > 3  # one-cycle: it moves
    evals = reader.get_data("scalar", "eval/acc")
    assert [(x.id, round(x.value, 6)) for x in evals] == [
        (e["epoch"], round(e["eval_acc"], 6)) for e in metrics["epochs"]
    ]


def test_off_by_default(tmp_path):
    cfg = small_config(
        tmp_path,
        "lenet_tutorial.yml",
        "data.train_limit=200",
        "data.test_limit=50",
        "train.epochs=1",
    )
    engine.train(cfg)
    assert not (cfg.run_dir / "visualdl").exists()
