"""A bounded load test of the HTTP service: N requests, C connections at a time, from this machine.

Each connection is kept alive and sends its requests one after another: a JSON post of one PNG,
as `wrk` sends them and as the page does. A request fails when the answer is not a 200 with the
digit its file is labelled with. Reports throughput, latency percentiles and failures.

The client is a few lines of HTTP/1.1 on asyncio streams, not a general HTTP library: on the
2-core machine the load generator shares the cores with the service, and httpx spent more CPU per
request than the service did (477 requests/s measured with it, against 1,400 with wrk).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np


def _json_body(png: bytes) -> bytes:
    """The service's JSON request for one PNG, as the page sends it."""
    return json.dumps({"image": base64.b64encode(png).decode("ascii")}).encode()


def _request(host: str, port: int, png: bytes) -> bytes:
    body = _json_body(png)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    return status, await reader.readexactly(length)


async def _load(url: str, images: list[tuple[bytes, int]], requests: int, concurrency: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    posts = [(_request(host, port, png), label) for png, label in images]
    latencies: list[float] = []
    failures: list[str] = []
    next_request = iter(range(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in next_request:  # one shared iterator: each request is sent once
                post, label = posts[i % len(posts)]
                start = time.perf_counter()
                try:
                    writer.write(post)
                    status, body = await _response(reader)
                    answer = json.loads(body)
                    digit = answer["results"][0].get("digit") if status == 200 else None
                except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as e:
                    failures.append(f"request {i}: {type(e).__name__}: {e}")
                    writer.close()  # its stream is in an unknown state: start a fresh one
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - start)
                if digit != label:
                    failures.append(f"request {i}: HTTP {status}, digit {digit} not {label}")
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
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
    """`requests` JSON posts of (PNG bytes, expected digit) pairs over `concurrency` kept-alive
    connections."""
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
        "| requests | connections | failed | requests/s | p50 (ms) | p90 (ms) | p99 (ms) |\n"
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
        f"| {r['requests']:,} | {r['concurrency']} | {r['failed']} | "
        f"{r['requests_per_second']:,.0f} | {latency['p50']:.1f} | {latency['p90']:.1f} | "
        f"{latency['p99']:.1f} |\n"
    )


# wrk's script: every request a JSON post of the one PNG in the file WRK_BODY names
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
"""


def bench_service(model_dir: Path, png: bytes, label: int, seconds: int = 10) -> dict:
    """deploy/serve.py with its defaults, under wrk (16 connections, `seconds`, if installed) and
    under `run_load` (the same posts, every answer checked)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mnist_paddle.serving.serve", "--model-dir", str(model_dir)]
    server = subprocess.Popen(
        cmd + ["--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _wait_until_up(host="127.0.0.1", port=port, server=server):
            return {"skipped": f"the service did not start: {server.communicate()[0][-300:]}"}
        result = {"workers": _workers(server)}
        result["wrk"] = _wrk(url, png, seconds)
        result["loadtest"] = run_load(url, [(png, label)], requests=5000, concurrency=16)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_until_up(host: str, port: int, server: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection((host, port), timeout=1) as conn:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _workers(server: subprocess.Popen) -> int | None:
    """The worker count from the server's first line ("... with 2 worker(s); ...")."""
    found = re.search(r"with (\d+) worker", server.stdout.readline())
    return int(found[1]) if found else None


def _wrk(url: str, png: bytes, seconds: int) -> dict:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (apt install wrk)"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_bytes(_json_body(png))
        (Path(tmp) / "post.lua").write_text(WRK_SCRIPT)
        cmd = [shutil.which("wrk"), "-t2", "-c16", f"-d{seconds}s", "--latency"]
        cmd += ["-s", f"{tmp}/post.lua", f"{url}/predict"]
        env = {"WRK_BODY": f"{tmp}/body.json", "PATH": "/usr/bin:/bin"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    latency = {q: _ms(re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)[1]) for q in ("50", "90", "99")}
    errors = re.search(r"Socket errors: (.*)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": 16,
        "seconds": seconds,
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "latency_ms": {f"p{q}": v for q, v in latency.items()},
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": errors[1] if errors else None,
    }


def _ms(text: str) -> float:
    """wrk's "9.63ms" / "120.00us" / "1.02s" in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
