"""Fine-tune a trained checkpoint: by default 2 more epochs of output/lenet/final at lr 1e-4.

python tools/finetune.py [-c configs/finetune.yml] [-o train.init_from=output/<run>/final ...]
                          [--resume | --overwrite]
"""

from mnist_paddle.cli import add_config_args, add_run_args, parser, quiet_paddle, user_errors
from mnist_paddle.config import load_config


def main() -> None:
    p = parser(__doc__)
    add_config_args(p, default="configs/finetune.yml")
    add_run_args(p)
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        cfg = load_config(args.config, args.overrides)
        from mnist_paddle import engine  # imports Paddle, after quiet_paddle()

        if args.resume:
            engine.resume(engine.adopted_config(cfg))
        else:
            engine.finetune(cfg, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
