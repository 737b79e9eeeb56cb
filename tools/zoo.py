"""Train every recipe in configs/ that has no finished run, then measure all of them into
output/zoo/zoo.{json,md}: parameters, FLOPs, test accuracy, training time, inference images/s.

    python tools/zoo.py [--retrain] [--jobs 2 | --nproc 2] [--visualdl] [configs/lenet.yml ...]

Each training runs as `tools/train.py -c <config>` (or `tools/finetune.py` for a fine-tuning
config) in its own process, its log in output/<run>.log. One training process keeps about one
core busy: `--jobs 2` trains two configs at a time, `--nproc 2` trains each config with two
data-parallel processes (`python -m paddle.distributed.launch`).
"""

from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument("configs", nargs="*", help="configs to include (default: all in configs/)")
    p.add_argument("--retrain", action="store_true", help="train even where a run is finished")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time (default: 1)")
    p.add_argument(
        "--nproc", type=int, default=1, help="processes per training, data-parallel (default: 1)"
    )
    p.add_argument("--output-dir", default="output", help="where runs go (default: output)")
    p.add_argument(
        "--visualdl", action="store_true", help="log every training for VisualDL (<run>/visualdl)"
    )
    p.add_argument("--out", default="output/zoo", help="where the table goes (default: output/zoo)")
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.bench import zoo

        configs = [Path(c) for c in args.configs] or sorted(Path("configs").glob("*.yml"))
        zoo.zoo(
            configs,
            args.output_dir,
            Path(args.out),
            args.retrain,
            max(args.jobs, 1),
            args.nproc,
            args.visualdl,
        )


if __name__ == "__main__":
    main()
