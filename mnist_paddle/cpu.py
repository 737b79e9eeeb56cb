"""MKL's fast code path on AMD processors.

Paddle's CPU kernels multiply matrices with the Intel MKL it ships (`libmklml_intel.so`, a 2019
build): the convolutions of training and of single-image inference, the LSTM, the linear layers.
That MKL chooses its code by the processor's maker, not by what the processor can do, and on an
AMD processor it runs its generic SSE code. `MKL_DEBUG_CPU_TYPE=5` makes it run its AVX2 code
instead: on a 2-core AMD EPYC (family 25 model 1, AVX2) a 512x512 product went from 15 to 62
GFLOP/s, and the quick start from 15.7 to 13.9 minutes (docs/speed.md, "MKL on AMD
processors"). MKL reads the variable at its first call, and child processes inherit it, so it
is set when the package is imported. Intel processors are left alone: forced to AVX2, MKL would
not use their AVX-512. A value already in the environment stands. `describe` names the
processor, and the path asked for, in a benchmark's results (bench/benchmark.py).
"""

from __future__ import annotations

import os
from pathlib import Path

MKL_PATH = "MKL_DEBUG_CPU_TYPE"
AVX2 = "5"  # MKL's number for its AVX2 code
CPUINFO = Path("/proc/cpuinfo")
# the flag that names each kind of vector instructions, the widest first
ISAS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4_2", "SSE4.2"))


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """/proc/cpuinfo's text, or "" where there is none (not Linux)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def processor(cpuinfo: str) -> dict[str, str]:
    """The first processor's fields in `cpuinfo` (/proc/cpuinfo's text): {"vendor_id": ...,
    "cpu family": ..., "model": ..., "model name": ..., "flags": ..., ...}."""
    head = cpuinfo.split("\n\n", 1)[0]
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in head.splitlines())
    }


def describe(cpuinfo: str) -> dict:
    """What a benchmark's figures were measured on: the processor's name, maker, family and
    model, its widest vector instructions, and the MKL code path asked for (None: MKL's own
    choice)."""
    fields = processor(cpuinfo)
    flags = fields.get("flags", "").split()
    isa = next((name for flag, name in ISAS if flag in flags), None)
    return {
        "name": fields.get("model name"),
        "vendor": fields.get("vendor_id"),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "isa": isa,
        "mkl_path": os.environ.get(MKL_PATH),
    }


def mkl_path(cpuinfo: str) -> str | None:
    """The MKL code path to ask for on the processor `cpuinfo` (/proc/cpuinfo's text)
    describes: AVX2 on an AMD processor that has it, else None (MKL's own choice)."""
    fields = processor(cpuinfo)
    if fields.get("vendor_id") == "AuthenticAMD" and "avx2" in fields.get("flags", "").split():
        return AVX2
    return None


def use_fast_mkl(cpuinfo: Path = CPUINFO) -> None:
    """Set MKL_DEBUG_CPU_TYPE for this process and its children where it helps (Linux only:
    elsewhere there is no /proc/cpuinfo and nothing is set)."""
    if MKL_PATH not in os.environ and (path := mkl_path(read_cpuinfo(cpuinfo))):
        os.environ[MKL_PATH] = path
