"""Teach the exported model to read whole numbers: it learns an eleventh class, "not one digit",
on the candidate digits the number reader cuts from numbers composed of its run's training digits,
and is added to the export folder (number.json, number.pdiparams). `deploy/infer.py --number` and
the service's number mode use it; without it they read with the digit model alone.

    python tools/train_numbers.py [--model output/inference] [--epochs 1]
"""

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--model", default="output/inference", help="export folder (default: %(default)s)"
    )
    p.add_argument("--data-root", default="data/mnist", help="MNIST files (default: %(default)s)")
    p.add_argument(
        "--handwritten", type=int, help="handwritten numbers to learn from (default 7000)"
    )
    p.add_argument("--typeset", type=int, help="typeset numbers to learn from (default 2000)")
    p.add_argument("--epochs", type=int, help="epochs (1)")
    p.add_argument(
        "--check",
        type=int,
        help="numbers of each kind read at the end, to check and calibrate on (500)",
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.train import numbers  # imports Paddle, after quiet_paddle()

        given = {
            "handwritten_count": args.handwritten,
            "typeset_count": args.typeset,
            "epochs": args.epochs,
            "check": args.check,
        }
        for key, value in given.items():
            if value is not None and value < (0 if key == "typeset_count" else 1):
                raise numbers.UserError(f"--{key.split('_')[0]} must be positive, got {value}")
        numbers.train_number_model(
            args.model, args.data_root, **{k: v for k, v in given.items() if v is not None}
        )


if __name__ == "__main__":
    main()
