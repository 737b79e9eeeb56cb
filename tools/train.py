"""Train a model on MNIST with paddle.Model.fit and write its run folder under output/.

python tools/train.py -c configs/lenet.yml [-o train.epochs=3 ...] [--summary]
                       [--resume | --overwrite]

A run folder that already holds a run is not overwritten unless --overwrite is given;
--resume continues an interrupted run (Ctrl-C, kill, power cut) after its last complete epoch.
"""

from mnist_paddle.cli import add_config_args, add_run_args, parser, quiet_paddle, user_errors
from mnist_paddle.config import load_config


def main() -> None:
    p = parser(__doc__)
    add_config_args(p, default="configs/lenet.yml")
    p.add_argument(
        "--summary", action="store_true", help="print paddle.summary of the model and exit"
    )
    add_run_args(p)
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        cfg = load_config(args.config, args.overrides)
        from mnist_paddle import engine  # imports Paddle, after quiet_paddle()

        if args.summary:
            engine.print_summary(cfg)
        elif args.resume:
            engine.resume(cfg)
        else:
            engine.train(cfg, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
