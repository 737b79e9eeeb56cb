"""Train a model on MNIST with paddle.Model.fit and write its run folder under output/.

python tools/train.py -c configs/lenet.yml [-o train.epochs=3 ...] [--summary]
"""

from mnist_paddle.cli import add_config_args, parser, quiet_paddle, user_errors
from mnist_paddle.config import load_config


def main() -> None:
    p = parser(__doc__)
    add_config_args(p, default="configs/lenet.yml")
    p.add_argument(
        "--summary", action="store_true", help="print paddle.summary of the model and exit"
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        cfg = load_config(args.config, args.overrides)
        from mnist_paddle import engine  # imports Paddle, after quiet_paddle()

        engine.print_summary(cfg) if args.summary else engine.train(cfg)


if __name__ == "__main__":
    main()
