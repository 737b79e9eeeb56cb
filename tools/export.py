"""Export a trained model for Paddle Inference into output/inference/ and check it.

With no arguments: the newest fine-tuned run's final checkpoint, else the newest trained one.

    python tools/export.py [--checkpoint output/<run>/final] [--out output/inference] [--onnx]
"""

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--checkpoint", help="checkpoint prefix or run folder (default: see above)")
    p.add_argument(
        "--output-dir", default="output", help="where runs are looked for (default: output)"
    )
    p.add_argument("--out", help="export folder (default: <output-dir>/inference)")
    p.add_argument(
        "--data-root", default="data/mnist", help="MNIST files for the check (default: data/mnist)"
    )
    p.add_argument(
        "--onnx", action="store_true", help="also write inference.onnx (paddle2onnx), checked"
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.train.export import export  # imports Paddle, after quiet_paddle()

        export(args.checkpoint, args.output_dir, args.out, args.data_root, onnx=args.onnx)


if __name__ == "__main__":
    main()
