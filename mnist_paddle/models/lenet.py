"""The tutorial's four LeNets (tutorial 003): the 1998 original and a modern one spelled three ways.

The modern LeNet is written three ways in the tutorial, as nn.Sequential, as an nn.Layer subclass,
and as `paddle.vision.models.LeNet`; all three have the same layers and 61,610 parameters.
Like the tutorial, the modern net has no activation between its fully connected layers.
"""

from __future__ import annotations

import paddle
from paddle import nn

from mnist_paddle.models import register_model
from mnist_paddle.models.layers import Conv2D

# After the two conv/pool stages of the modern LeNet: 16 channels of 5x5.
MODERN_FEATURES = 16 * 5 * 5


@register_model("lenet5")
def lenet5(num_classes: int = 10) -> nn.Layer:
    """LeNet-5 as LeCun et al. (1998) built it: tanh, average pooling, sigmoid, on 32x32 input.

    MNIST digits are 28x28; the first layer pads them by 2 to the 32x32 the paper used, so the
    model takes the same (N, 1, 28, 28) input as every other model here. 61,706 parameters.
    """
    return nn.Sequential(
        nn.Pad2D(padding=2),  # (N, 1, 32, 32)
        Conv2D(1, 6, kernel_size=5),  # C1: (N, 6, 28, 28)
        nn.Tanh(),
        nn.AvgPool2D(kernel_size=2, stride=2),  # S2: (N, 6, 14, 14)
        nn.Sigmoid(),
        Conv2D(6, 16, kernel_size=5),  # C3: (N, 16, 10, 10)
        nn.Tanh(),
        nn.AvgPool2D(kernel_size=2, stride=2),  # S4: (N, 16, 5, 5)
        nn.Sigmoid(),
        Conv2D(16, 120, kernel_size=5),  # C5: (N, 120, 1, 1)
        nn.Tanh(),
        nn.Flatten(),  # (N, 120)
        nn.Linear(120, 84),  # F6
        nn.Tanh(),
        nn.Linear(84, num_classes),  # output
    )


@register_model("lenet_sequential")
def lenet_sequential(num_classes: int = 10) -> nn.Layer:
    """The modern LeNet as one nn.Sequential: 3x3 first conv, ReLU, max pooling."""
    return nn.Sequential(
        Conv2D(1, 6, kernel_size=3, padding=1),  # (N, 6, 28, 28)
        nn.ReLU(),
        nn.MaxPool2D(kernel_size=2, stride=2),  # (N, 6, 14, 14)
        Conv2D(6, 16, kernel_size=5),  # (N, 16, 10, 10)
        nn.ReLU(),
        nn.MaxPool2D(kernel_size=2, stride=2),  # (N, 16, 5, 5)
        nn.Flatten(),  # (N, 400)
        nn.Linear(MODERN_FEATURES, 120),
        nn.Linear(120, 84),
        nn.Linear(84, num_classes),
    )


@register_model("lenet_subclass")
class LeNet(nn.Layer):
    """The modern LeNet as an nn.Layer subclass: a feature extractor, then a classifier."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            Conv2D(1, 6, kernel_size=3, padding=1),  # (N, 6, 28, 28)
            nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),  # (N, 6, 14, 14)
            Conv2D(6, 16, kernel_size=5),  # (N, 16, 10, 10)
            nn.ReLU(),
            nn.MaxPool2D(kernel_size=2, stride=2),  # (N, 16, 5, 5)
        )
        self.fc = nn.Sequential(
            nn.Linear(MODERN_FEATURES, 120),
            nn.Linear(120, 84),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.features(x)
        x = paddle.flatten(x, start_axis=1)  # (N, 400)
        return self.fc(x)


@register_model("lenet")
def lenet(num_classes: int = 10) -> nn.Layer:
    """Paddle's `paddle.vision.models.LeNet`: the tutorial's model and this project's default."""
    return paddle.vision.models.LeNet(num_classes=num_classes)
