import numpy as np
import paddle
import pytest
from conftest import small_config

from mnist_paddle.train import optim


def lr_curve(train, steps_per_epoch: int) -> list[float]:
    scheduler = optim.learning_rate(train, steps_per_epoch)
    rates = []
    for _ in range(train.epochs * steps_per_epoch):
        rates.append(scheduler())
        scheduler.step()
    return rates


def test_schedules_peak_at_the_configured_rate_and_end_near_zero(tmp_path):
    onecycle = small_config(tmp_path, "lenet.yml", "train.schedule=onecycle", "train.lr=0.01")
    rates = lr_curve(onecycle.train, 10)
    assert max(rates) == pytest.approx(0.01) and rates[0] < 0.001 and rates[-1] < 1e-4
    assert 10 <= int(np.argmax(rates)) <= 20  # the peak after 30% of the 50 steps
    cosine = small_config(
        tmp_path, "lenet.yml", "train.schedule=cosine", "train.lr=0.01", "train.warmup_epochs=1"
    )
    rates = lr_curve(cosine.train, 10)
    assert rates[0] == 0 and rates[10] == pytest.approx(0.01) and rates[-1] < 1e-4
    assert all(a <= b for a, b in zip(rates[:10], rates[1:11]))  # warm-up rises
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))  # then only falls
    constant = small_config(tmp_path, "lenet_tutorial.yml")
    assert optim.learning_rate(constant.train, 10) == 0.001


def test_smoothed_cross_entropy():
    logits = paddle.to_tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    label = paddle.to_tensor([[0], [2]], dtype="int64")
    plain = paddle.nn.CrossEntropyLoss()(logits, label)
    assert float(optim.SmoothedCrossEntropy(0.0)(logits, label)) == pytest.approx(float(plain))
    # the target (1 - e) one-hot + e / classes, written out
    log_p = np.log(paddle.nn.functional.softmax(logits).numpy())
    target = np.full((2, 3), 0.1 / 3)
    target[0, 0] += 0.9
    target[1, 2] += 0.9
    expected = -(target * log_p).sum(axis=1).mean()
    assert float(optim.SmoothedCrossEntropy(0.1)(logits, label)) == pytest.approx(expected)
