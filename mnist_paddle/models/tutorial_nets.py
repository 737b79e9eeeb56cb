"""Paddle ports of the networks in the project's other source tutorials (000, 001 and 002).

Each is written as its tutorial wrote it, with the output layer turned into a 10-way classifier
where the tutorial had a single regression output (tutorial 002).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

from mnist_paddle.models import register_model
from mnist_paddle.models.layers import Conv2D

PIXELS = 28 * 28


@register_model("fcnet")
class FCNet(nn.Layer):
    """Tutorial 002's fully connected net: 784 -> hidden -> hidden -> classes, sigmoid activations.

    The tutorial uses 10 hidden units and says to tune them; `hidden_size` is that knob.
    """

    def __init__(self, num_classes: int = 10, hidden_size: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(PIXELS, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        self.fc3 = nn.Linear(hidden_size, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = paddle.flatten(x, start_axis=1)  # (N, 784)
        x = F.sigmoid(self.fc1(x))
        x = F.sigmoid(self.fc2(x))
        return self.fc3(x)


@register_model("two_conv")
class TwoConvNet(nn.Layer):
    """Tutorial 002's conv net: two 5x5 convs of 20 channels, each with ReLU and max pooling."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = Conv2D(1, 20, kernel_size=5, padding=2)  # (N, 20, 28, 28)
        self.conv2 = Conv2D(20, 20, kernel_size=5, padding=2)  # (N, 20, 14, 14)
        self.pool = nn.MaxPool2D(kernel_size=2, stride=2)
        self.fc = nn.Linear(20 * 7 * 7, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(F.relu(self.conv1(x)))  # (N, 20, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (N, 20, 7, 7)
        x = paddle.flatten(x, start_axis=1)  # (N, 980)
        return self.fc(x)


@register_model("conv_bn")
class ConvBNNet(nn.Layer):
    """Tutorial 000's net: one 5x5 conv of 32 channels with BatchNorm, then a tanh MLP (70, 30)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv = Conv2D(1, 32, kernel_size=5, padding=2)  # (N, 32, 28, 28)
        self.bn = nn.BatchNorm2D(32)
        self.pool = nn.MaxPool2D(kernel_size=2)  # (N, 32, 14, 14)
        self.fc1 = nn.Linear(32 * 14 * 14, 70)
        self.fc2 = nn.Linear(70, 30)
        self.fc3 = nn.Linear(30, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = paddle.flatten(x, start_axis=1)  # (N, 6272)
        x = F.tanh(self.fc1(x))
        x = F.tanh(self.fc2(x))
        return self.fc3(x)


@register_model("three_conv")
class ThreeConvNet(nn.Layer):
    """Tutorial 001's net: three 3x3 convs (8, 16, 32 channels), max pooling after the first two."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            Conv2D(1, 8, kernel_size=3, padding=1),  # (N, 8, 28, 28)
            nn.ReLU(),
            nn.MaxPool2D(kernel_size=2),  # (N, 8, 14, 14)
            Conv2D(8, 16, kernel_size=3, padding=1),  # (N, 16, 14, 14)
            nn.ReLU(),
            nn.MaxPool2D(kernel_size=2),  # (N, 16, 7, 7)
            Conv2D(16, 32, kernel_size=3, padding=1),  # (N, 32, 7, 7)
            nn.ReLU(),
        )
        self.out = nn.Linear(32 * 7 * 7, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.features(x)
        x = paddle.flatten(x, start_axis=1)  # (N, 1568)
        return self.out(x)
