"""The deploy/infer.py command: recognize digits in image files with the exported model.

Also runnable as `python -m mnist_paddle.serving.infer` (the benchmark times it that way, from
process start), so it works from an installed package.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors

HELP = """Recognize handwritten digits in image files with the exported model (Paddle Inference).

    python deploy/infer.py digit.png [more.png | a_folder ...] [--json] [--device cpu|gpu]

With --number each image is read as a whole number: `photo.jpg: 2026 (p=0.97)`.
Prints `digit.png: 7 (p=0.998)` per image, or `digit.png: 7? (unsure, p=0.41; next 1, p=0.38)`
when the answer's probability is below the export's threshold for a sure answer (--min-prob sets
another), or with --json one JSON object per line. A bad file
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
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="TensorRT's precision (with --tensorrt; default fp32)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument(
        "--debug-dir",
        help="write what the model saw for each input here: the 28x28 digit, or with --number "
        "the strip it read and the input with the boxes drawn",
    )
    p.add_argument(
        "--number",
        action="store_true",
        help="read each image as a whole number, its digits left to right",
    )
    add_answer_args(p)
    args = p.parse_args(argv)
    quiet_paddle(args.verbose)
    with user_errors():
        items = collect_images(args.images)  # image paths, and error dicts for bad arguments
        if args.number:
            results = _read_numbers(args, items)
        else:
            from mnist_paddle.serving.inference import Recognizer  # imports Paddle

            recognizer = Recognizer(
                args.model_dir,
                args.device,
                args.threads,
                args.tensorrt,
                min_prob=args.min_prob,
                precision=args.precision,
                runtime=args.runtime,
            )
            paths = [x for x in items if isinstance(x, Path)]
            found = iter(recognizer.recognize(paths, debug_dir=args.debug_dir))
            results = [next(found) if isinstance(x, Path) else x for x in items]
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
        else:
            print(f"{r['path']}: {describe(r)}")
    return 1 if any("error" in r for r in results) else 0


def _read_numbers(args, items: list) -> list[dict]:
    """--number: each image read by the export's line model (serving/numbers.py), one result
    per item, in order: {"path", "number", ...}, or {"path", "error"} (collect_images' errors
    passed through)."""
    from mnist_paddle.errors import UserError
    from mnist_paddle.serving.debug import write_debug
    from mnist_paddle.serving.images import read_gray
    from mnist_paddle.serving.numbers import NumberReader  # imports Paddle
    from mnist_paddle.serving.preprocess import NO_DIGIT

    if args.runtime != "paddle" or args.tensorrt or args.min_prob is not None:
        raise UserError(
            "--number reads with the line model through Paddle Inference at the export's "
            "thresholds: without --runtime onnxruntime, --tensorrt or --min-prob"
        )
    reader = NumberReader(args.model_dir, args.device)
    results = []
    for i, item in enumerate(items):
        if isinstance(item, dict):  # a missing path, a folder without images
            results.append(item)
            continue
        try:
            gray = read_gray(item)
        except UserError as e:
            results.append({"path": str(item), "error": str(e)})
            continue
        result = reader.read(gray)
        if result is None:
            results.append({"path": str(item), "error": f"{item}: {NO_DIGIT}"})
            continue
        if args.debug_dir is not None:
            write_debug(args.debug_dir, i, item.stem, gray, result)
        del result["reading"]
        results.append({"path": str(item), **result})
    return results


def add_answer_args(p) -> None:
    """--runtime and --min-prob, for deploy/infer.py and deploy/serve.py."""
    p.add_argument(
        "--runtime",
        choices=("paddle", "onnxruntime"),
        default="paddle",
        help="Paddle Inference (default), or ONNX Runtime on the export's inference.onnx",
    )
    p.add_argument(
        "--min-prob",
        type=probability,
        help="answers below this probability are unsure (default: the export's threshold)",
    )


def describe(answer: dict) -> str:
    """`7 (p=0.998)`, or `7? (unsure, p=0.41; next 1, p=0.38)` for an answer that is not sure;
    `2026 (p=0.970)` or `2026? (unsure, p=0.41)` for a number."""
    if "number" in answer:
        if answer["sure"]:
            return f"{answer['number']} (p={answer['prob']:.3f})"
        return f"{answer['number']}? (unsure, p={_down(answer['prob'])})"
    if answer["sure"]:
        return f"{answer['digit']} (p={answer['prob']:.3f})"
    runner_up = answer["top"][1]
    return (
        f"{answer['digit']}? (unsure, p={_down(answer['prob'])}; "
        f"next {runner_up['digit']}, p={_down(runner_up['prob'])})"
    )


def _down(prob: float) -> str:
    """An unsure answer's probability to two places, rounded down: 0.9994 under a threshold of
    0.9995 shows as 0.99, not as a 1.00 that looks sure."""
    return f"{math.floor(round(prob * 100, 6)) / 100:.2f}"


def probability(text: str) -> float:
    """An argparse type: a number in 0..1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


def collect_images(args: list[str]) -> list[Path | dict]:
    """Files and folders from the command line -> image paths, with an error dict in place of
    each argument that is missing or a folder without images; in the order given."""
    from mnist_paddle.serving.images import IMAGE_EXTENSIONS

    items: list[Path | dict] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                kinds = ", ".join(IMAGE_EXTENSIONS)
                items.append({"path": arg, "error": f"{arg}: folder holds no images ({kinds})"})
            items.extend(found)
        elif path.exists():
            items.append(path)
        else:
            items.append({"path": arg, "error": f"{arg}: no such file or folder"})
    return items


if __name__ == "__main__":
    sys.exit(main())
