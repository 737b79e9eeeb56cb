"""Write the real-looking evaluation set: MNIST test digits as pen on paper, printed digits in
fonts training may see and in fonts it never sees, and whole numbers handwritten and printed.

python tools/make_realworld.py [--out output/realworld] [--count 1000] [--numbers 1000] [--seed 0]
"""

from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--out", default="output/realworld", help="folder to write (default: output/realworld)"
    )
    p.add_argument("--count", type=int, default=1000, help="images per group (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="the set is fixed by its seed (default: 0)")
    p.add_argument(
        "--numbers", type=int, default=1000, help="images per whole-number group (default: 1000)"
    )
    p.add_argument("--data-root", default="data/mnist", help="MNIST files (default: data/mnist)")
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.bench.realworld import make_realworld

        labels = make_realworld(
            Path(args.out), Path(args.data_root), args.count, args.seed, args.numbers
        )
        print(f"wrote {3 * args.count + 2 * args.numbers} images and {labels}")


if __name__ == "__main__":
    main()
