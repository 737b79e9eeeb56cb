"""Fine-tune a trained checkpoint: python tools/finetune.py [-o train.init_from=...] [--help]"""

from mnist_paddle.train.commands import finetune_main

if __name__ == "__main__":
    finetune_main()
