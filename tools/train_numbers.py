"""Teach the exported model to read whole numbers: it learns an eleventh class, "not one digit",
on the candidate digits the number reader cuts from numbers composed of its run's training digits
(number.json, number.pdiparams), and a line model learns to read a number's whole strip of ink
with CTC (line.json, line.pdiparams); both are added to the export folder. `deploy/infer.py
--number` and the service's number mode use them; without them they read with the digit model
alone.

    python tools/train_numbers.py [--model output/inference] [--epochs 1] [--lines 100000]
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
    p.add_argument(
        "--lines",
        type=int,
        help="numbers the line model learns from, four in five handwritten (100000; 0: no line "
        "model)",
    )
    p.add_argument("--line-epochs", type=int, help="the line model's epochs (2)")
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.train import numbers  # imports Paddle, after quiet_paddle()

        given = {  # train_number_model's argument: (its flag, the value given, least allowed)
            "handwritten_count": ("--handwritten", args.handwritten, 1),
            "typeset_count": ("--typeset", args.typeset, 0),
            "epochs": ("--epochs", args.epochs, 1),
            "check": ("--check", args.check, 1),
            "line_numbers": ("--lines", args.lines, 0),
            "line_epochs": ("--line-epochs", args.line_epochs, 1),
        }
        for flag, value, least in given.values():
            if value is not None and value < least:
                raise numbers.UserError(f"{flag} must be at least {least}, got {value}")
        numbers.train_number_model(
            args.model,
            args.data_root,
            verbose=args.verbose,
            **{key: value for key, (_, value, _) in given.items() if value is not None},
        )


if __name__ == "__main__":
    main()
