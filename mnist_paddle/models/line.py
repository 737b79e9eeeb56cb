"""The line model: reads a whole number from its strip of ink with CTC, no cut into digits.

It is the digit models' kind of network slid along the strip (serving/strip.py: a digit is 20
pixels tall in a strip 36 pixels high, as in MNIST's frames):

    strip (N, 1, 36, W)
      -> three 3x3 convolutions, the first two halving the size  (N, c3, 9, W/4)
      -> a window of 7x7 features, a 28x28 window of the strip, at every 4 columns and at 3
         heights, the best height kept: 11 logits, blank and the ten digits    (N, 11, W/4)
      -> a bidirectional LSTM along the line adds what the neighbours say     (N, W/4, 11)

With `three_conv`'s sizes (8, 16, 32 channels) it starts from the deployed digit model
(`load_digit_model`): the window is then the digit model's own classifier, so the line model
reads a lone digit well from its first step and learns what a strip adds, blank and neighbours.
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

from mnist_paddle.models.layers import Conv2D

HEIGHT = 36  # px: the strip's height (serving/strip.py makes it; tests check they agree)
STRIDE = 4  # strip columns per step
WINDOW = 7  # feature columns and rows of the window: 28 px of the strip, MNIST's frame
CLASSES = 11  # blank (0) and the digits (d + 1)


class LineModel(nn.Layer):
    def __init__(
        self, channels: tuple[int, int, int] = (8, 16, 32), hidden: int = 64, window: int = 11
    ):
        super().__init__()
        a, b, c = channels
        self.features = nn.Sequential(
            Conv2D(1, a, 3, padding=1, stride=2), nn.ReLU(),  # (N, a, 18, W/2)
            Conv2D(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),  # (N, b, 9, W/4)
            Conv2D(b, c, 3, padding=1), nn.ReLU(),  # (N, c, 9, W/4)
        )  # fmt: skip
        # a 28x28 window of the strip at every step, at 3 heights: (N, window, 3, W/4); its
        # first 11 features are the logits, the rest more for the LSTM to see
        self.window = Conv2D(c, max(window, CLASSES), WINDOW, padding=(0, WINDOW // 2))
        self.context = nn.LSTM(max(window, CLASSES), hidden // 2, direction="bidirect")
        # what the neighbours add, from 0: the model starts as its window alone
        zero = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
        self.refine = nn.Linear(hidden, CLASSES, weight_attr=zero, bias_attr=zero)

    def forward(self, strips: paddle.Tensor) -> paddle.Tensor:
        """(N, 1, HEIGHT, W) ink 0..1 -> (N, W / STRIDE, CLASSES) logits."""
        features = self.features(strips * 2 - 1)  # ink -1..1, as the digit models see it
        steps = self.window(features).max(axis=2).transpose([0, 2, 1])  # (N, W/4, window)
        context, _ = self.context(steps)
        return steps[:, :, :CLASSES] + self.refine(context)

    def load_digit_model(self, state: dict) -> None:
        """Start from a `three_conv` digit model's weights (`state`: its state dict, arrays): its
        convolutions as the first 8, 16 and 32 channels, its classifier as the window's ten
        digit logits (blank from 0). Wider layers keep their own weights for the channels
        beyond, but none of those flows into the digit model's channels or the logits: the
        model starts by computing the digit model's answer at every window."""
        convolutions = [layer for layer in self.features if isinstance(layer, Conv2D)]
        for conv, source in zip(convolutions, ("features.0", "features.3", "features.6")):
            weight, bias = conv.weight.numpy(), conv.bias.numpy()
            theirs = np.asarray(state[f"{source}.weight"])  # (out, in, 3, 3)
            out, inputs = theirs.shape[:2]
            weight[:out] = 0
            weight[:out, :inputs] = theirs
            bias[:out] = np.asarray(state[f"{source}.bias"])
            conv.weight.set_value(weight)
            conv.bias.set_value(bias)
        classifier = np.asarray(state["out.weight"]).T  # (10, 32 * 7 * 7)
        weight, bias = self.window.weight.numpy(), self.window.bias.numpy()
        weight[:CLASSES], bias[:CLASSES] = 0, 0
        weight[1:CLASSES, : classifier.shape[1] // WINDOW**2] = classifier.reshape(
            10, -1, WINDOW, WINDOW
        )
        bias[1:CLASSES] = np.asarray(state["out.bias"])
        self.window.weight.set_value(weight)
        self.window.bias.set_value(bias)
