"""Runs that are killed, interrupted, misconfigured or blow up lose nothing already on disk."""

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import DATA, ROOT, TYPESET, assert_one_line_error, run_tool, small_config

from mnist_paddle.errors import UserError
from mnist_paddle.train import engine
from mnist_paddle.train.checkpoint import read_meta, read_params
from mnist_paddle.train.loader import TrainLoader

# Three epochs of a few seconds each, evaluated on a validation split.
RUN = (
    "data.train_limit=6000",
    "data.val_size=500",
    "data.test_limit=500",
    "train.epochs=3",
    "train.batch_size=16",
    "train.verbose=0",
    f"data.typeset={TYPESET}",
)


def train_args(output: Path, *extra: str) -> list[str]:
    overrides = (f"output_dir={output}", f"data.root={DATA}", *RUN)
    return ["tools/train.py", "-c", "configs/lenet.yml", *(f"-o{o}" for o in overrides), *extra]


def start_and_stop_in_epoch_2(output: Path, sig: int) -> subprocess.CompletedProcess:
    """Start a training process and send it `sig` once it reports its progress in epoch 2
    (epoch 1 is then saved, and epoch 2 has hundreds of steps to go); wait for the process."""
    progress = ["-otrain.verbose=2", "-otrain.log_freq=20"]  # a line per 20 steps, "step 20/..."
    process = subprocess.Popen(
        [sys.executable, *train_args(output), *progress],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # as from a terminal: a shell's background job (CI may be one) ignores SIGINT, and
        # Python keeps an ignored SIGINT ignored instead of raising KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in process.stdout:  # ends when the process does: a run that never gets there fails
        seen.append(line)
        if any(s.startswith("Epoch 2/") for s in seen) and line.lstrip().startswith("step "):
            process.send_signal(sig)
            break
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(seen) + out, err)


def assert_every_file_loads(run: Path, temporary_ok: bool = False) -> None:
    for meta in run.glob("epoch_*.json"):
        prefix = meta.with_suffix("")
        assert read_meta(prefix)["epoch"] == int(prefix.name.split("_")[1])
        assert read_params(prefix.with_suffix(".pdparams"))
        assert paddle.load(str(prefix.with_suffix(".pdopt")))
    metrics = json.loads((run / "metrics.json").read_text())
    assert (run / "latest").read_text().strip() == f"epoch_{len(metrics['epochs'])}"
    if not temporary_ok:
        assert not list(run.glob(".*")), "temporary files left behind"


def test_sigkill_mid_epoch_then_resume_finishes_like_an_uninterrupted_run(tmp_path):
    killed = start_and_stop_in_epoch_2(tmp_path / "killed", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    run = tmp_path / "killed" / "lenet"
    assert (run / "latest").read_text().strip() == "epoch_1"
    assert not (run / "final.json").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    # a checkpoint writer killed mid-write leaves its temporary folder; --resume clears it
    assert_every_file_loads(run, temporary_ok=True)

    resumed = run_tool(*train_args(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 1 is done, continuing with epoch 2" in resumed.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert_every_file_loads(run)

    plain = run_tool(*train_args(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    expected = json.loads((tmp_path / "plain" / "lenet" / "metrics.json").read_text())
    # an exact continuation: weights, optimizer and schedule state, shuffle and augmentation
    # all come back, so every step's loss is the uninterrupted run's
    assert len(metrics["step_losses"]) == len(expected["step_losses"]) > 0
    assert metrics["step_losses"] == expected["step_losses"]
    for got, want in zip(metrics["epochs"], expected["epochs"]):
        assert {k: v for k, v in got.items() if k != "seconds"} == {
            k: v for k, v in want.items() if k != "seconds"
        }
    assert metrics["final"] == expected["final"]
    assert read_meta(run / "final")["eval_acc"] == metrics["final"]["eval_acc"]


def test_ctrl_c_saves_the_finished_epochs_and_says_how_to_go_on(tmp_path):
    result = start_and_stop_in_epoch_2(tmp_path, signal.SIGINT)
    assert_one_line_error(result, "interrupted: epoch 1 is saved in", "--resume", code=130)
    assert_every_file_loads(tmp_path / "lenet")


def test_resume_of_a_finished_or_missing_run_is_refused(tmp_path):
    cfg = small_config(tmp_path, "lenet.yml", *RUN[:3], "train.epochs=1")
    with pytest.raises(UserError, match="no run to resume here"):
        engine.resume(cfg)
    engine.train(cfg)
    with pytest.raises(UserError, match="this run has finished, there is nothing to resume"):
        engine.resume(cfg)
    (cfg.run_dir / "final.json").unlink()
    other = small_config(tmp_path, "lenet.yml", *RUN[:3], "train.epochs=2")
    with pytest.raises(UserError, match="the config has train.epochs=2 where the run has 1"):
        engine.resume(other)


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path):
    args = train_args(tmp_path, "-otrain.epochs=1")
    assert run_tool(*args).returncode == 0
    before = digests(tmp_path / "lenet")
    refused = run_tool(*args)
    assert_one_line_error(
        refused,
        "lenet holds a finished run; add --overwrite",
        f"-o run_name=lenet_2 (the new run then goes to {tmp_path / 'lenet_2'})",
    )
    assert digests(tmp_path / "lenet") == before
    replaced = run_tool(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert digests(tmp_path / "lenet").keys() == before.keys()


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    batches = TrainLoader.__iter__

    def poisoned(self):  # in epoch 2 (counting from 0: 1) one batch overflows float32
        for i, (x, y) in enumerate(batches(self)):
            if self.epoch == 1 and i == 3:
                x = x * 3e38
            yield x, y

    monkeypatch.setattr(TrainLoader, "__iter__", poisoned)
    cfg = small_config(tmp_path, "lenet.yml", *RUN[:3])
    with pytest.raises(UserError) as err:
        engine.train(cfg)
    message = str(err.value)
    assert "the training loss became nan in epoch 2, step 4: training stopped" in message
    assert "epoch 1 is saved" in message and "\n" not in message
    assert (cfg.run_dir / "latest").read_text().strip() == "epoch_1"
    assert not (cfg.run_dir / "final.json").exists()
    params = read_params(cfg.run_dir / "epoch_1.pdparams")
    assert all(np.isfinite(v.numpy()).all() for v in params.values())


def test_foreign_parameters_name_both_models(trained, tmp_path):
    """A checkpoint whose .pdparams came from another model: fine-tune and export both say so."""
    cfg, _ = trained
    other = small_config(tmp_path / "other", "convnet.yml", *RUN[:3], "train.epochs=1")
    engine.train(other)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "final.json").write_bytes((cfg.run_dir / "final.json").read_bytes())  # says lenet
    (mixed / "final.pdparams").write_bytes((other.run_dir / "final.pdparams").read_bytes())
    message = "holds a 'convnet' model's parameters, not a 'lenet' model's"
    ft = small_config(tmp_path / "out", "finetune.yml", f"train.init_from={mixed / 'final'}")
    with pytest.raises(UserError, match=message):
        engine.finetune(ft)
    result = run_tool("tools/export.py", "--checkpoint", str(mixed), "--out", str(tmp_path / "x"))
    assert_one_line_error(result, message)
    assert not (tmp_path / "x").exists()


def test_finetune_refuses_other_model_arguments(trained, tmp_path):
    cfg, _ = trained
    ft = small_config(
        tmp_path, "finetune.yml", f"train.init_from={cfg.run_dir}", "model.args.width=32"
    )
    with pytest.raises(UserError, match=r"holds a 'lenet' model with arguments \{\}"):
        engine.finetune(ft)


def test_a_file_that_is_not_a_checkpoint(trained, tmp_path):
    cfg, _ = trained
    (tmp_path / "final.json").write_bytes((cfg.run_dir / "final.json").read_bytes())
    (tmp_path / "final.pdparams").write_text("hello")
    result = run_tool(
        "tools/export.py", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "x")
    )
    assert_one_line_error(result, "final.pdparams: cannot load it, the file is damaged or not")
