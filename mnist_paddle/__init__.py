"""mnist-paddle: MNIST digits with PaddlePaddle, from training to a deployed recognizer.

    config      YAML configs with -o overrides        data        MNIST through paddle.vision
    models/     the model registry                     engine      train / fine-tune (paddle.Model)
    checkpoint  checkpoints and their descriptions     plots       the PNGs a run writes
    export      static model for Paddle Inference      inference   the deployed recognizer
    preprocess  image file -> MNIST-like input         cli         what the tools share

Importing the package imports no Paddle: the tools quiet Paddle's logging before it loads.
"""

__version__ = "0.1.0"
