"""The deploy/infer.py command: recognize digits in image files with the exported model.

Also runnable as `python -m mnist_paddle.serving.infer` (the benchmark times it that way, from
process start), so it works from an installed package.
"""

from __future__ import annotations

import json
import sys

from mnist_paddle.cli import parser, quiet_paddle, user_errors

HELP = """Recognize handwritten digits in image files with the exported model (Paddle Inference).

    python deploy/infer.py digit.png [more.png | a_folder ...] [--json] [--device cpu|gpu]

Prints `digit.png: 7 (p=0.998)` per image, or with --json one JSON object per line. A bad file
gets its own one-line error, the others still run, and the exit code is then 1.
Uses only the export folder (python tools/export.py), never the training code.
"""


def main(argv: list[str] | None = None) -> int:
    p = parser(HELP)
    p.add_argument("images", nargs="+", help="image files or folders of images")
    p.add_argument(
        "--model-dir", default="output/inference", help="export folder (default: output/inference)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image, with the top 3")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument(
        "--tensorrt", action="store_true", help="run through TensorRT (with --device gpu)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--debug-dir", help="write the 28x28 image the model saw for each input here")
    args = p.parse_args(argv)
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.serving.inference import Recognizer  # imports Paddle

        recognizer = Recognizer(args.model_dir, args.device, args.threads, args.tensorrt)
        results = recognizer.recognize_args(args.images, debug_dir=args.debug_dir)
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
        else:
            print(f"{r['path']}: {r['digit']} (p={r['prob']:.3f})")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
