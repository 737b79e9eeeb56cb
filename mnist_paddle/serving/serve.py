"""Serve the exported model over HTTP: a JSON API and a page to draw digits on.

    python deploy/serve.py [--model-dir output/inference] [--host 127.0.0.1] [--port 8000]

Then open http://127.0.0.1:8000/ in a browser, or POST images to /predict:

    curl -F image=@digit.png http://127.0.0.1:8000/predict

Listens on localhost only unless --host says otherwise. Each worker process (one per core by
default) creates its Paddle Inference predictors at start-up. Uses only the export folder, never
the training code.

Workers listen on sockets of their own, bound to the same port with SO_REUSEPORT (Linux, the BSDs,
macOS), so that the kernel spreads new connections over them. On one shared socket, uvicorn's
default, the worker that wakes first accepts every connection waiting: 16 connections opened at
once by a client all landed on one of the two workers in about half of the runs here, which then
did the work of both (950 requests/s instead of about 1,600 with tools/loadtest.py).
"""

import contextlib
import dataclasses
import json
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable

from mnist_paddle.cli import parser, quiet_paddle, user_errors
from mnist_paddle.errors import UserError
from mnist_paddle.serving.infer import add_answer_args

# Each worker answers on its own event loop; one per core uses the machine (each holds its own
# Paddle predictors, about 400 MB).
WORKERS = min(os.cpu_count() or 1, 8)


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--model-dir", default="output/inference", help="export folder (default: output/inference)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=WORKERS,
        help=f"worker processes (default: one per core, at most 8; here {WORKERS})",
    )
    p.add_argument("--max-body", type=int, default=4 * 1024 * 1024, help="bytes per request")
    p.add_argument("--max-pixels", type=int, default=4_000_000, help="pixels per image")
    p.add_argument("--max-images", type=int, default=32, help="images per request")
    p.add_argument(
        "--max-request-pixels",
        type=int,
        default=16_000_000,
        help="pixels of all images per request",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    add_answer_args(p)
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        import uvicorn

        from mnist_paddle.serving.inference import Recognizer
        from mnist_paddle.serving.service import SETTINGS, Limits

        # a broken export is one line now, not one per worker
        meta = Recognizer(args.model_dir, runtime=args.runtime).meta
        limits = Limits(
            args.max_body, args.max_pixels, args.max_request_pixels, args.max_images, args.timeout
        )
        os.environ[SETTINGS] = json.dumps(
            {
                "model_dir": args.model_dir,
                "limits": dataclasses.asdict(limits),
                "min_prob": args.min_prob,
                "runtime": args.runtime,
            }
        )

        def banner(port: int) -> str:
            return (
                f"serving {args.model_dir} ({meta['model']['name']}) on "
                f"http://{args.host}:{port}/ with {args.workers} worker(s); Ctrl-C stops"
            )

        options = dict(
            app="mnist_paddle.serving.service:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info" if args.verbose else "warning",
        )
        if args.workers > 1 and hasattr(socket, "SO_REUSEPORT"):
            run_workers(uvicorn.Config(**options), banner)  # says it once every worker is up
        else:
            print(banner(args.port), flush=True)
            uvicorn.run(**options)


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other sockets of this user may bind as well."""
    return _bound(host, port, share=True)


def free_port(host: str, port: int) -> int:
    """`port` (a free one if 0), checked by binding it without SO_REUSEPORT: a service already
    listening there is an error, not a partner to share connections with."""
    with _bound(host, port, share=False) as sock:
        return sock.getsockname()[1]


def _bound(host: str, port: int, share: bool) -> socket.socket:
    """A TCP socket bound to (host, port), with SO_REUSEPORT if `share`; a port in use (or an
    address that is not this machine's) is a `UserError`."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections may linger
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve_worker(config, ready) -> None:
    """One worker process: its own listening socket on the shared port, one uvicorn server; puts
    its pid on `ready` once the server has started."""
    import paddle
    import uvicorn

    config.configure_logging()
    config.load()  # the app, and Paddle with it, before uvicorn sets its signal handlers
    paddle.disable_signal_handler()  # Paddle's dumps a C++ "FatalError" on SIGTERM
    sock = reuseport_socket(config.host, config.port)
    sock.listen(config.backlog)
    server = uvicorn.Server(config)
    threading.Thread(target=_report_started, args=(server, ready), daemon=True).start()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    # Ctrl-C reaches every process of the terminal; the parent stops the others, quietly
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])


def _report_started(server, ready) -> None:
    while not server.started:  # set once the app's startup (its predictors) is done
        time.sleep(0.05)
    ready.put(os.getpid())


def _exit_with_parent(parent: int) -> None:
    """Stop this worker (gracefully, as SIGTERM does) once its parent is gone, even if killed."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def run_workers(config, banner: Callable[[int], str]) -> None:
    """`config.workers` processes of `serve_worker`; prints `banner(port)` once all have
    started, then serves until Ctrl-C or SIGTERM. A worker that dies is started again, unless it
    died before it started (then the service stops with an error)."""
    config.port = free_port(config.host, config.port)
    # bound, never listened on: holds the port between a worker's end and its successor's start
    guard = reuseport_socket(config.host, config.port)
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Queue()
    started: set[int] = set()  # pids of the workers that have started
    workers: dict[int, multiprocessing.Process] = {}  # slot -> process

    def start(slot: int) -> None:
        workers[slot] = spawn.Process(target=serve_worker, args=(config, ready), daemon=True)
        workers[slot].start()

    stop = _stop_on_sigterm()
    try:
        for slot in range(config.workers):
            start(slot)
        while not stop.is_set():
            with contextlib.suppress(queue.Empty):
                started.add(ready.get(timeout=0.5))
            if banner and len(started) == config.workers:
                print(banner(config.port), flush=True)  # the port the kernel chose, for port 0
                banner = None
            for slot, process in list(workers.items()):
                if process.is_alive() or stop.is_set():
                    continue
                if process.pid not in started:
                    raise UserError(
                        f"a worker stopped while starting (exit code {process.exitcode}); "
                        "run with --workers 1 --verbose to see why"
                    )
                print(
                    f"a worker stopped (exit code {process.exitcode}); starting another", flush=True
                )
                start(slot)
    except KeyboardInterrupt:
        pass
    finally:
        for process in workers.values():
            process.terminate()
        for process in workers.values():
            process.join(timeout=30)
        guard.close()


def _stop_on_sigterm() -> threading.Event:
    """An event that SIGTERM sets (how service managers and the benchmark stop the service)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


if __name__ == "__main__":  # python -m mnist_paddle.serving.serve (the benchmark starts it so)
    main()
