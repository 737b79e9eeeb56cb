"""Write the real-looking evaluation set: MNIST test digits as pen on paper, printed digits in
fonts training may see and in fonts it never sees, whole numbers handwritten and printed, and
real pages: ruled and squared paper, a form's boxes, printed pages photographed.

python tools/make_realworld.py [--out output/realworld] [--count 1000] [--numbers 1000]
                               [--pages 1000] [--seed 0] [--tuning]

With --tuning the same groups are made of training digits the runs hold out and of the
validation fonts (into output/tuning by default): a set to choose on, never the test digits.
"""

from pathlib import Path

from mnist_paddle.cli import parser, quiet_paddle, user_errors


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", help="folder to write (default: output/realworld, or output/tuning)")
    p.add_argument("--count", type=int, default=1000, help="images per group (default: 1000)")
    p.add_argument("--seed", type=int, default=0, help="the set is fixed by its seed (default: 0)")
    p.add_argument(
        "--numbers", type=int, default=1000, help="images per whole-number group (default: 1000)"
    )
    p.add_argument(
        "--pages", type=int, default=1000, help="images per real-page group (default: 1000)"
    )
    p.add_argument(
        "--tuning",
        action="store_true",
        help="make the set of held-out training digits and validation fonts, to choose on",
    )
    p.add_argument("--data-root", default="data/mnist", help="MNIST files (default: data/mnist)")
    args = p.parse_args()
    quiet_paddle(args.verbose)
    with user_errors():
        from mnist_paddle.bench.realworld import make_realworld

        out = Path(args.out or ("output/tuning" if args.tuning else "output/realworld"))
        labels, images = make_realworld(
            out, Path(args.data_root), args.count, args.seed, args.numbers, args.pages, args.tuning
        )
        print(f"wrote {images} images and {labels}")


if __name__ == "__main__":
    main()
