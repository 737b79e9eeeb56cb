"""What `paddle.Model.prepare` gets besides the network: optimizer, learning-rate schedule, loss."""

from __future__ import annotations

import paddle

from mnist_paddle.train.config import TrainConfig


def build_optimizer(
    train: TrainConfig, parameters: list, steps_per_epoch: int
) -> paddle.optimizer.Optimizer:
    """Adam (the tutorial's) or AdamW, at `train.lr` or on the configured schedule."""
    lr = learning_rate(train, steps_per_epoch)
    if train.optimizer == "adamw":
        return paddle.optimizer.AdamW(lr, parameters=parameters, weight_decay=train.weight_decay)
    # Adam's weight_decay is an L2 penalty added to the gradient
    return paddle.optimizer.Adam(lr, parameters=parameters, weight_decay=train.weight_decay or None)


def learning_rate(
    train: TrainConfig, steps_per_epoch: int
) -> float | paddle.optimizer.lr.LRScheduler:
    """`train.lr`, or a schedule over all steps; hapi's LRScheduler callback steps it per batch.

    A schedule's position is part of the optimizer's state, so checkpoints (.pdopt) keep it.
    """
    total = train.epochs * steps_per_epoch
    if train.schedule == "onecycle":
        return paddle.optimizer.lr.OneCycleLR(
            max_learning_rate=train.lr, total_steps=total, end_learning_rate=train.lr * 1e-4
        )
    if train.schedule == "cosine":
        warmup = round(train.warmup_epochs * steps_per_epoch)
        cosine = paddle.optimizer.lr.CosineAnnealingDecay(train.lr, T_max=max(total - warmup, 1))
        if not warmup:
            return cosine
        return paddle.optimizer.lr.LinearWarmup(cosine, warmup, start_lr=0.0, end_lr=train.lr)
    return train.lr


def build_loss(train: TrainConfig) -> paddle.nn.Layer:
    if train.label_smoothing:
        return SmoothedCrossEntropy(train.label_smoothing)
    return paddle.nn.CrossEntropyLoss()


class SmoothedCrossEntropy(paddle.nn.Layer):
    """Cross-entropy against targets that spread `smoothing` of their mass over all classes.

    Written out because `paddle.nn.CrossEntropyLoss(label_smoothing=...)` fails on integer labels
    in Paddle 3.3 (its label_smooth kernel has no int64 version).
    """

    def __init__(self, smoothing: float):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: paddle.Tensor, label: paddle.Tensor) -> paddle.Tensor:
        log_probs = paddle.nn.functional.log_softmax(logits, axis=-1)  # (N, classes)
        true_class = paddle.take_along_axis(log_probs, label, axis=-1)  # (N, 1)
        return -((1 - self.smoothing) * true_class.mean() + self.smoothing * log_probs.mean())
