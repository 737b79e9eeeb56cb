"""Load-test a running deploy/serve.py: many requests from this machine, several at a time.

    python deploy/serve.py &                # in another terminal
    python tools/loadtest.py [--url http://127.0.0.1:8000] [--requests 2000] [--concurrency 16]

Posts the labelled sample digits of deploy/samples/ in turn (JSON, over kept-alive connections)
and checks every answer; writes output/bench/serve_load.{json,md}. Exits 1 if any request failed.
"""

from pathlib import Path

from mnist_paddle.cli import parser, user_errors
from mnist_paddle.errors import UserError


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the service")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--samples", default="deploy/samples", help="folder of *_label<d>.png files")
    p.add_argument("--out", default="output/bench", help="where results go (default: output/bench)")
    args = p.parse_args()
    with user_errors():
        import httpx

        from mnist_paddle.bench.loadtest import labelled_pngs, run_load, to_markdown
        from mnist_paddle.fileio import write_json, write_text

        images = labelled_pngs(Path(args.samples))
        if not images:
            raise UserError(f"{args.samples}: no *_label<digit>.png files")
        try:
            httpx.get(f"{args.url}/health", timeout=5).raise_for_status()
        except httpx.HTTPError as e:
            raise UserError(f"no service at {args.url} ({e}); start deploy/serve.py") from None
        result = run_load(args.url, images, args.requests, args.concurrency)
        write_json(Path(args.out) / "serve_load.json", result)
        write_text(Path(args.out) / "serve_load.md", to_markdown(result))
        print(to_markdown(result), end="")
        for failure in result["failures"]:
            print(failure)
        return 1 if result["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
