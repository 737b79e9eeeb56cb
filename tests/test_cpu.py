"""MKL's AVX2 code asked for on AMD processors only (mnist_paddle/cpu.py)."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from mnist_paddle.cpu import AVX2, MKL_PATH, describe, mkl_path, read_cpuinfo, use_fast_mkl


def cpuinfo(vendor: str, flags: str, processors: int = 2) -> str:
    block = (
        f"processor\t: {{}}\nvendor_id\t: {vendor}\ncpu family\t: 25\nmodel\t\t: 1\n"
        f"model name\t: AMD EPYC\nflags\t\t: {flags}\n"
    )
    return "\n".join(block.format(i) for i in range(processors))


def test_avx2_is_asked_for_on_an_amd_processor_that_has_it():
    assert mkl_path(cpuinfo("AuthenticAMD", "fpu sse2 avx avx2 fma")) == AVX2
    assert mkl_path(cpuinfo("AuthenticAMD", "fpu sse2 avx")) is None  # no AVX2: MKL's choice
    assert mkl_path(cpuinfo("GenuineIntel", "fpu sse2 avx avx2 avx512f")) is None
    assert mkl_path("") is None


def test_a_value_in_the_environment_stands_and_a_missing_file_sets_nothing(tmp_path, monkeypatch):
    amd = tmp_path / "cpuinfo"
    amd.write_text(cpuinfo("AuthenticAMD", "avx avx2"))
    monkeypatch.delenv(MKL_PATH, raising=False)
    use_fast_mkl(tmp_path / "missing")
    assert MKL_PATH not in os.environ
    use_fast_mkl(amd)
    assert os.environ[MKL_PATH] == AVX2
    monkeypatch.setenv(MKL_PATH, "2")
    use_fast_mkl(amd)
    assert os.environ[MKL_PATH] == "2"


def test_importing_the_package_asks_for_it_on_this_machine():
    env = {k: v for k, v in os.environ.items() if k != MKL_PATH}
    script = f"import os, mnist_paddle; print(os.environ.get({MKL_PATH!r}, ''))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    info = Path("/proc/cpuinfo")
    expected = mkl_path(info.read_text()) if info.exists() else None
    assert done.stdout.strip() == (expected or "")


def test_a_benchmark_names_the_processor_fully(monkeypatch):
    """describe: the first processor's name, maker, family, model and widest vector code, and
    the MKL path in the environment; a machine without /proc/cpuinfo gives blanks."""
    monkeypatch.setenv(MKL_PATH, AVX2)
    amd = describe(cpuinfo("AuthenticAMD", "fpu sse4_2 avx avx2 fma"))
    assert amd == {
        "name": "AMD EPYC",
        "vendor": "AuthenticAMD",
        "family": "25",
        "model": "1",
        "isa": "AVX2",
        "mkl_path": AVX2,
    }
    monkeypatch.delenv(MKL_PATH)
    intel = describe(cpuinfo("GenuineIntel", "avx avx2 avx512f avx512bw"))
    assert intel["isa"] == "AVX-512" and intel["mkl_path"] is None
    assert describe(read_cpuinfo(Path("/nonexistent/cpuinfo")))["name"] is None
