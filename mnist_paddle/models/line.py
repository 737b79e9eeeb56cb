"""The line reader: a small CRNN (convolutions, then a bidirectional LSTM along the line) that
reads a whole number from one strip of ink, without cutting it into digits first, trained with
CTC (as PaddleOCR's text recognizers are).

Unlike the registry's digit models it takes (N, 1, LINE_HEIGHT, W) strips of any width W (a
multiple of STRIDE; serving/lines.py makes them) and returns (N, CLASSES, W / STRIDE) logits: for
every STRIDE columns, blank (class 0) or digit d (class d + 1). The number reader
(serving/numbers.py) weighs its readings against the cut-and-classify ones.
"""

from __future__ import annotations

import paddle
from paddle import nn

from mnist_paddle.models.convnet import conv_bn_relu

LINE_HEIGHT = 32  # px: the strip's height, the whole number's ink scaled to it
STRIDE = 4  # columns of the strip per output step
CLASSES = 11  # blank and the ten digits


class LineReader(nn.Layer):
    # Channels (32, 64, 128) read 92.0% of numbers of validation digits alone, (16, 32, 64) 90.1%
    # (93.1% -> 94.2% weighed with the spans), at 2.5x the time per strip (1.1 -> 2.7 ms). The
    # context along the line: a 2-layer bidirectional LSTM in place of two 1-D
    # convolutions of width 3; with twice the strips it lifts the reader on 4,000 numbers of
    # validation digits from 92.4% to 94.2% weighed, 94.8% with the line model's count as the
    # quick start makes it (docs/numbers.md).
    def __init__(self, channels: tuple[int, int, int] = (32, 64, 128), hidden: int = 128):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            *conv_bn_relu(1, a), nn.MaxPool2D(2, 2),  # (N, a, 16, W/2)
            *conv_bn_relu(a, b), nn.MaxPool2D(2, 2),  # (N, b, 8, W/4)
            *conv_bn_relu(b, c),
            *conv_bn_relu(c, c), nn.MaxPool2D((2, 1), (2, 1)),  # (N, c, 4, W/4)
            # the 4 remaining rows into one column of features per output step
            nn.Conv2D(c, hidden, (LINE_HEIGHT // 8, 1), bias_attr=False),
            nn.BatchNorm2D(hidden),
            nn.ReLU(),
        )  # fmt: skip
        # context along the whole line, both ways: each step sees its neighbours' digits
        self.context = nn.LSTM(hidden, hidden // 2, num_layers=2, direction="bidirect")
        self.classify = nn.Linear(hidden, CLASSES)

    def forward(self, strips: paddle.Tensor) -> paddle.Tensor:
        steps = self.features(strips).squeeze(2).transpose([0, 2, 1])  # (N, W/4, hidden)
        context, _ = self.context(steps)
        return self.classify(context + steps).transpose([0, 2, 1])  # (N, CLASSES, W/4)
