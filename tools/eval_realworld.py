"""Accuracy of the exported model on the real-looking set, this project's preprocessing beside a
naive one (gray + resize); writes output/bench/realworld.json and realworld.md.

    python tools/eval_realworld.py [--data output/realworld] [--model-dir output/inference]
"""

from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--data", default="output/realworld", help="the set (tools/make_realworld.py)")
    p.add_argument("--model-dir", default="output/inference", help="export folder")
    p.add_argument("--data-root", default="data/mnist", help="MNIST files (default: data/mnist)")
    p.add_argument(
        "--out", default="output/bench", help="where the results go (default: output/bench)"
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.bench.realworld import report

        print(report(Path(args.data), Path(args.model_dir), Path(args.out), Path(args.data_root)))


if __name__ == "__main__":
    main()
