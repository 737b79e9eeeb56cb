"""Measure training, inference and service speed side by side; writes
output/bench/results.{json,md}.

    python tools/benchmark.py [--epochs 3] [--model-dir output/inference]

Needs an exported model (scripts/run_pipeline.sh makes one). PyTorch comes from
requirements-bench.txt and wrk from Debian (apt install wrk); without them their rows are skipped.
"""

from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--epochs", type=int, default=3, help="training epochs per case (median taken)")
    p.add_argument("--model-dir", default="output/inference", help="export folder")
    p.add_argument(
        "--checkpoint",
        help="the checkpoint the export came from, for the dygraph rows "
        "(default: the one the export's metadata.json names)",
    )
    p.add_argument(
        "--config", default="configs/lenet_tutorial.yml", help="the recipe the training cases time"
    )
    p.add_argument(
        "--race-config",
        default="configs/lenet_fast.yml",
        help="the recipe of the race to 99%% test accuracy, here and in PyTorch",
    )
    p.add_argument(
        "--service-seconds", type=int, default=10, help="seconds of wrk load on the service"
    )
    p.add_argument("--data-root", default="data/mnist", help="MNIST files (default: data/mnist)")
    p.add_argument("--out", default="output/bench", help="where results go (default: output/bench)")
    p.add_argument(
        "--inference-only",
        action="store_true",
        help="skip the training cases (scripts/check_gpu.sh)",
    )
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.bench import benchmark, report
        from mnist_paddle.serving.inference import read_metadata

        # a clear error now rather than after the training cases
        meta = read_metadata(args.model_dir)
        results = benchmark.run(
            Path(args.out),
            Path(args.model_dir),
            args.checkpoint or meta["checkpoint"],
            Path(args.data_root),
            Path(args.config),
            args.epochs,
            args.inference_only,
            Path(args.race_config),
            args.service_seconds,
        )
        print(report.to_markdown(results))


if __name__ == "__main__":
    main()
