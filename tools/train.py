"""Train a model on MNIST: python tools/train.py -c configs/lenet.yml [-o key=value ...] [--help]"""

from mnist_paddle.train.commands import train_main

if __name__ == "__main__":
    train_main()
