"""Teach an export to read whole numbers: train the line model (a CTC reader of a number's strip
of ink) as a config says, add it to the export folder (line.json, line.pdiparams), and calibrate
its answers. `deploy/infer.py --number` and the service's number mode use it.

    python tools/train_numbers.py -c configs/numbers/quick.yml [-o train.steps=3000 ...]
    python tools/train_numbers.py --check-only    # calibrate the export's line model anew
"""

from mnist_paddle.cli import add_config_args, parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    add_config_args(p, default="configs/numbers/quick.yml")
    p.add_argument(
        "--check-only",
        action="store_true",
        help="do not train: check the export's line model again and fit its calibration anew "
        "(about a minute on 2 cores; for an export a newer reader refuses)",
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.train import numbers  # imports Paddle, after quiet_paddle()

        cfg = numbers.load_numbers_config(args.config, args.overrides)
        if args.check_only:
            numbers.check_again(cfg)
        else:
            numbers.train_numbers(cfg, verbose=args.verbose)


if __name__ == "__main__":
    main()
