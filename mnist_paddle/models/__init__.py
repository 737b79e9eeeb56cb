"""The model registry: every network the project trains, by name.

    @register_model("lenet")
    def lenet(num_classes: int = 10) -> nn.Layer: ...

    build_model("lenet", num_classes=10)

Every model takes (N, 1, 28, 28) images normalized to about -1..1 and returns (N, num_classes)
logits, so training, export and deployment treat them all alike. One network is outside the
registry: line.py's LineModel, which reads a whole number's strip of ink (train/numbers.py).
Their convolutions with a bias are layers.py's `Conv2D`, `nn.Conv2D` trained faster on CPU.
They import Paddle, numpy, this package and the shared modules (errors.py); nothing else.
"""

from __future__ import annotations

import inspect
from typing import Callable

from paddle import nn

from mnist_paddle.errors import UserError

MODELS: dict[str, Callable[..., nn.Layer]] = {}


def register_model(name: str) -> Callable:
    def register(factory: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = factory
        return factory

    return register


def build_model(name: str, **kwargs) -> nn.Layer:
    """Build the registered model `name`; an unknown name or argument is a `UserError`."""
    if name not in MODELS:
        choices = ", ".join(sorted(MODELS))
        raise UserError(f"unknown model {name!r}; choose one of: {choices}")
    factory = MODELS[name]
    accepted = inspect.signature(factory).parameters
    for arg in kwargs:
        if arg not in accepted:
            raise UserError(
                f"model {name!r} has no argument {arg!r} (its arguments: {', '.join(accepted)})"
            )
    return factory(**kwargs)


def count_parameters(model: nn.Layer) -> int:
    """All parameters, trainable or not (BatchNorm's running statistics too), as paddle.summary."""
    return sum(int(p.size) for p in model.parameters())


# Importing the model files fills the registry.
from mnist_paddle.models import convnet, lenet, tutorial_nets  # noqa: E402, F401
