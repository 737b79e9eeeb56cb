"""A bounded load test of the HTTP service: N requests, C at a time, from this machine.

Each request posts one PNG (multipart) to /predict; a request fails when the answer is not a 200
with the digit its file is labelled with. Reports throughput, latency percentiles and failures.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np


async def _load(url: str, images: list[tuple[bytes, int]], requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    next_request = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in next_request:  # one shared iterator: each request is sent once
            data, label = images[i % len(images)]
            start = time.perf_counter()
            try:
                response = await client.post(f"{url}/predict", files={"image": ("d.png", data)})
                digit = response.json()["results"][0].get("digit") if response.is_success else None
            except (httpx.HTTPError, ValueError, KeyError) as e:
                failures.append(f"request {i}: {type(e).__name__}: {e}")
                continue
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200 or digit != label:
                failures.append(
                    f"request {i}: HTTP {response.status_code}, digit {digit} not {label}"
                )

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "failed": len(failures),
        "failures": failures[:10],
        "seconds": seconds,
        "requests_per_second": requests / seconds,
        "latency_ms": {
            q: float(np.percentile(ms, int(q[1:]))) if len(ms) else None
            for q in ("p50", "p90", "p99")
        },
    }


def run_load(url: str, images: list[tuple[bytes, int]], requests: int, concurrency: int) -> dict:
    """`requests` POSTs of (PNG bytes, expected digit) pairs, `concurrency` at a time."""
    return asyncio.run(_load(url.rstrip("/"), images, requests, concurrency))


def labelled_pngs(folder: Path) -> list[tuple[bytes, int]]:
    """The PNGs of `folder` whose names end in `_label<digit>.png`, as deploy/samples/ has."""
    return [
        (path.read_bytes(), int(path.stem.rsplit("label", 1)[1]))
        for path in sorted(folder.glob("*_label?.png"))
    ]


def to_markdown(r: dict) -> str:
    latency = r["latency_ms"]
    return (
        "| requests | concurrent | failed | requests/s | p50 (ms) | p90 (ms) | p99 (ms) |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {r['requests']:,} | {r['concurrency']} | {r['failed']} | "
        f"{r['requests_per_second']:,.0f} | {latency['p50']:.1f} | {latency['p90']:.1f} | "
        f"{latency['p99']:.1f} |\n"
    )
