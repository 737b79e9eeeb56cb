"""mnist-paddle: MNIST digits with PaddlePaddle, from training to a deployed recognizer.

Three rooms and what they share:

    train/      from the MNIST files and a YAML config to checkpoints and an exported model
    serving/    the exported model answering: image preprocessing, Paddle Inference, HTTP
    bench/      measuring: speed, real-looking images, the model zoo, load on the service
    models/     the model registry (every network the project trains)

    digits      the input shape, the classes and the normalization everybody agrees on
    cli         what the command-line tools share: quiet logs, config arguments, one-line errors
    cpu         MKL's fast code on AMD processors, asked for when the package is imported
    errors      UserError, the one exception for mistakes a user can fix
    fileio      writes that never leave a half-written file

What may import what: the shared modules import nothing of the package but each other;
`models` the shared ones; `serving` the shared ones only, so a deployment needs nothing but the
export folder; `train` the shared ones, `models` and `serving` (export checks its model
through the deployed predictor); `bench` anything. tests/test_layout.py holds these rules.

Importing the package imports no Paddle: the tools quiet Paddle's logging before it loads.
"""

from mnist_paddle.cpu import use_fast_mkl

use_fast_mkl()

__version__ = "0.1.0"
