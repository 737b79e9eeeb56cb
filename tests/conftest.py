"""Shared fixtures: one small training run and its export, reused by the tests that need a model."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from mnist_paddle.cli import quiet_paddle

quiet_paddle()

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "mnist"
TYPESET = 100  # typeset digits in the tests' small runs


def small_config(output_dir: Path, config: str = "lenet.yml", *overrides: str):
    """`configs/<config>` for a quick run: few images, silent, writing under `output_dir`."""
    from mnist_paddle.train.config import load_config

    # few typeset digits (the config's thousands take 15 s to render); a test may ask for more
    return load_config(
        ROOT / "configs" / config,
        [
            f"output_dir={output_dir}",
            f"data.root={DATA}",
            "train.verbose=0",
            f"data.typeset={TYPESET}",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """LeNet trained 2 epochs on 5,000 images (about 95% on the test images) with the tutorial's
    recipe: (config, metrics)."""
    from mnist_paddle.train import engine

    cfg = small_config(
        tmp_path_factory.mktemp("output"),
        "lenet_tutorial.yml",
        "data.typeset=0",  # the tutorial's recipe: MNIST only
        "data.train_limit=5000",
        "data.test_limit=500",
        "train.epochs=2",
    )
    return cfg, engine.train(cfg)


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> Path:
    from mnist_paddle.train.export import export

    cfg, _ = trained
    return export(
        cfg.run_dir / "final",
        out=tmp_path_factory.mktemp("export") / "inference",
        data_root=str(DATA),
    )


def run_tool(*args: str, cwd: Path = ROOT, **env_vars: str) -> subprocess.CompletedProcess:
    """Run `python <args>` the way a user would, from the repository root (`env_vars` added to
    the environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOG_")} | env_vars
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess, *fragments: str, code: int = 2
) -> None:
    """A user mistake: the exit code, one line on stderr naming the problem, no traceback."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def png_header(width: int, height: int) -> bytes:
    """A valid PNG start that claims width x height pixels, with next to no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(100)))
        + chunk(b"IEND", b"")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir, *args: str):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "deploy/serve.py", "--model-dir", str(model_dir), "--port", str(port)]
        + list(args),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"the server did not start: {process.communicate()[0]}")


@pytest.fixture(scope="session")
def number_export(tmp_path_factory) -> Path:
    """three_conv trained 1 epoch on 3,000 images with 500 held out, exported, and given a line
    model trained 150 batches on one process (it reads some numbers; the tests check the
    plumbing, tools/eval_realworld.py how well it reads)."""
    from mnist_paddle.train import engine
    from mnist_paddle.train.export import export
    from mnist_paddle.train.numbers import load_numbers_config, train_numbers

    cfg = small_config(
        tmp_path_factory.mktemp("output"),
        "three_conv_typeset.yml",
        "data.train_limit=3000",
        "data.val_size=500",
        "data.test_limit=200",
        "train.epochs=1",
    )
    engine.train(cfg)
    out = export(cfg.run_dir / "final", out=Path(cfg.output_dir) / "inference", data_root=str(DATA))
    train_numbers(load_numbers_config(ROOT / "configs/numbers/quick.yml", number_overrides(out)))
    return out


def number_overrides(model_dir: Path, *more: str) -> list[str]:
    """-o overrides for a number stage of a few seconds on the export in `model_dir`."""
    return [
        f"model_dir={model_dir}",
        f"run_dir={model_dir.parent / 'line_model'}",
        f"data.root={DATA}",
        "train.steps=150",
        "train.batch_size=32",
        "train.processes=1",
        "check.numbers=10",
        "check.handwritten=10",
        "check.boxes=10",
        *more,
    ]


def line_reading(probs, others=()):
    """What the line model alone reads in (T, 11) step probabilities (and `others`, the same
    strip's views): its likeliest candidate, each digit with its steps, and its share of the
    beam."""
    from mnist_paddle.serving import ctc

    best = ctc.candidates(probs, others)[0]
    return ctc.placed(probs, best.digits), best.share
