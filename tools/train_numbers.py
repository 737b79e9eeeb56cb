"""Teach an export to read whole numbers: train the line model (a CTC reader of a number's strip
of ink) as a config says, add it to the export folder (line.json, line.pdiparams), and calibrate
its answers. `deploy/infer.py --number` and the service's number mode use it.

    python tools/train_numbers.py -c configs/numbers/quick.yml [-o train.steps=3000 ...]
"""

from mnist_paddle.cli import add_config_args, parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    add_config_args(p, default="configs/numbers/quick.yml")
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.train import numbers  # imports Paddle, after quiet_paddle()

        cfg = numbers.load_numbers_config(args.config, args.overrides)
        numbers.train_numbers(cfg, verbose=args.verbose)


if __name__ == "__main__":
    main()
