"""Recognize digits in image files: python deploy/infer.py digit.png [a_folder ...] [--help]"""

import sys

from mnist_paddle.serving.infer import main

if __name__ == "__main__":
    sys.exit(main())
