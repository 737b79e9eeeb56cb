"""`Conv2D`: `paddle.nn.Conv2D`, trained faster on CPU; the models' convolutions with a bias.

Paddle 3.3's CPU kernel adds a convolution's bias, shaped (1, C, 1, 1), to its (N, C, H, W)
output through a general broadcast loop, forward and back; for the small maps of these models
that costs about as much as the convolution itself. Added to the channels-last view, where the
bias runs along the last axis, it is a plain loop. Each output is the same single addition and
the bias's gradient comes out the same to the bit (tests/test_models.py checks both), so
training gives the same weights in less time (docs/speed.md, "The bias of a convolution, in
training").
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn


class Conv2D(nn.Conv2D):
    """`nn.Conv2D` whose bias is added channels-last while it trains on CPU. Evaluation,
    export and GPUs take `nn.Conv2D`'s own path (Paddle Inference fuses that bias into the
    convolution), so an exported model is the one `nn.Conv2D` exports."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if (
            not self.training
            or self.bias is None
            or self._data_format != "NCHW"
            or not x.place.is_cpu_place()
        ):
            return super().forward(x)
        out = F.conv2d(
            x, self.weight, None, self._stride, self._padding, self._dilation, self._groups
        )
        return (out.transpose([0, 2, 3, 1]) + self.bias).transpose([0, 3, 1, 2])
