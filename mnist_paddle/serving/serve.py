"""Serve the exported model over HTTP: a JSON API and a page to draw digits on.

    python deploy/serve.py [--model-dir output/inference] [--host 127.0.0.1] [--port 8000]

Then open http://127.0.0.1:8000/ in a browser, or POST images to /predict:

    curl -F image=@digit.png http://127.0.0.1:8000/predict

Listens on localhost only unless --host says otherwise. Each worker process (one per core by
default) creates its Paddle Inference predictors at start-up. Uses only the export folder, never
the training code.
"""

import dataclasses
import json
import os

from mnist_paddle.cli import parser, quiet_paddle, user_errors
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
        print(
            f"serving {args.model_dir} ({meta['model']['name']}) on "
            f"http://{args.host}:{args.port}/ with {args.workers} worker(s); Ctrl-C stops",
            flush=True,
        )
        uvicorn.run(
            "mnist_paddle.serving.service:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info" if args.verbose else "warning",
        )


if __name__ == "__main__":  # python -m mnist_paddle.serving.serve (the benchmark starts it so)
    main()
