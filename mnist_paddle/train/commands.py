"""The training commands, as `tools/train.py` and `tools/finetune.py` run them, and as the zoo
runs them in child processes (`python -m mnist_paddle.train.commands train|finetune ...`, also
under `python -m paddle.distributed.launch`), so they work from an installed package too.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from mnist_paddle.cli import add_config_args, add_run_args, parser, quiet_paddle, user_errors
from mnist_paddle.errors import UserError
from mnist_paddle.train.config import load_config

TRAIN_HELP = """Train a model on MNIST with paddle.Model.fit and write its run folder under output/.

python tools/train.py -c configs/lenet.yml [-o train.epochs=3 ...] [--summary]
                       [--resume | --overwrite]

A run folder that already holds a run is not overwritten unless --overwrite is given;
--resume continues an interrupted run (Ctrl-C, kill, power cut) after its last complete epoch.
"""

FINETUNE_HELP = """Fine-tune a trained checkpoint: by default 2 more epochs of output/lenet/final.

python tools/finetune.py [-c configs/finetune.yml] [-o train.init_from=output/<run>/final ...]
                          [--resume | --overwrite]
"""


def train_main(argv: list[str] | None = None) -> None:
    p = parser(TRAIN_HELP)
    add_config_args(p, default="configs/lenet.yml")
    p.add_argument(
        "--summary", action="store_true", help="print paddle.summary of the model and exit"
    )
    add_run_args(p)
    args = p.parse_args(argv)
    quiet_paddle(args.verbose)
    with user_errors():
        cfg = load_config(args.config, args.overrides)
        from mnist_paddle.train import engine  # imports Paddle, after quiet_paddle()

        if args.summary:
            engine.print_summary(cfg)
        elif _in_processes("train", cfg, argv, args.verbose):
            return
        elif args.resume:
            engine.resume(cfg)
        else:
            engine.train(cfg, overwrite=args.overwrite)


def finetune_main(argv: list[str] | None = None) -> None:
    p = parser(FINETUNE_HELP)
    add_config_args(p, default="configs/finetune.yml")
    add_run_args(p)
    args = p.parse_args(argv)
    quiet_paddle(args.verbose)
    with user_errors():
        cfg = load_config(args.config, args.overrides)
        from mnist_paddle.train import engine  # imports Paddle, after quiet_paddle()

        if _in_processes("finetune", cfg, argv, args.verbose):
            return
        if args.resume:
            engine.resume(engine.adopted_config(cfg))
        else:
            engine.finetune(cfg, overwrite=args.overwrite)


def _in_processes(command: str, cfg, argv: list[str] | None, verbose: bool) -> bool:
    """Run the command again in `cfg.train.processes` data-parallel processes (0: one per core,
    or per GPU; the first one's lines shown as they come), unless the config asks for one or
    this is one of them: True when it was run so."""
    import paddle

    from mnist_paddle.train.rundir import processes_for, run_launched

    processes = processes_for(cfg.train.processes, cfg.train.device)
    if processes == 1 or paddle.distributed.ParallelEnv().nranks > 1:
        return False
    work = Path(tempfile.mkdtemp(prefix=f"{command}-"))
    print(f"{command}: starting {processes} data-parallel processes", flush=True)
    args = ["-m", __name__, command, *(sys.argv[1:] if argv is None else argv)]
    code = run_launched(processes, args, work, verbose)
    if code != 0:  # its logs stay for a look
        raise UserError(f"{command} on {processes} processes failed (exit {code}); see {work}")
    shutil.rmtree(work, ignore_errors=True)
    return True


COMMANDS = {"train": train_main, "finetune": finetune_main}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python -m mnist_paddle.train.commands {{{','.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])
