"""The project's own model for the top of the zoo table: a small all-3x3 conv net with BatchNorm.

Two convolutions at 28x28, two at 14x14 and one at 7x7, the channels doubling as the image
halves, then dropout and one linear layer over the 7x7 map. With `width` 16 it has 66,714
parameters (LeNet: 61,610) and about 5.5 M multiply-adds per image (LeNet: 0.35 M): its budget
goes into convolutions over the pixels rather than into fully connected layers. (Paddle's CPU
convolution is slowest on small maps with many channels, so the 7x7 stage stays thin.)
"""

from __future__ import annotations

import paddle
from paddle import nn

from mnist_paddle.models import register_model


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Layer]:
    # BatchNorm supplies the shift, so the conv needs no bias
    return [
        nn.Conv2D(in_channels, out_channels, kernel_size=3, padding=1, bias_attr=False),
        nn.BatchNorm2D(out_channels),
        nn.ReLU(),
    ]


@register_model("convnet")
class ConvNet(nn.Layer):
    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.2):
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            *conv_bn_relu(1, c1),  # (N, c1, 28, 28)
            *conv_bn_relu(c1, c1),
            nn.MaxPool2D(kernel_size=2),  # (N, c1, 14, 14)
            *conv_bn_relu(c1, c2),
            *conv_bn_relu(c2, c2),
            nn.MaxPool2D(kernel_size=2),  # (N, c2, 7, 7)
            *conv_bn_relu(c2, c3),  # (N, c3, 7, 7)
        )
        self.dropout = nn.Dropout(dropout)
        # a linear layer over all 7x7 positions: where a stroke is matters for a digit
        self.classifier = nn.Linear(c3 * 7 * 7, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = paddle.flatten(self.features(x), start_axis=1)  # (N, c3 * 49)
        return self.classifier(self.dropout(x))
