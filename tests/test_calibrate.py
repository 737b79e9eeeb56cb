"""Calibration at export: temperature, calibration error, sure threshold (train/calibrate.py)."""

import numpy as np
import pytest

from mnist_paddle.serving.inference import softmax
from mnist_paddle.train import calibrate


def overconfident_logits(n: int, scale: float, seed: int = 0):
    """Labels drawn from softmax(z), so z is calibrated; the logits are z * scale."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, 10))
    probs = softmax(z)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z * scale, labels


def test_a_fitted_temperature_lowers_the_calibration_error_on_held_out_logits():
    fit_logits, fit_labels = overconfident_logits(4000, scale=4.0, seed=1)
    held_logits, held_labels = overconfident_logits(4000, scale=4.0, seed=2)
    temperature = calibrate.fit_temperature(fit_logits, fit_labels)
    assert temperature == pytest.approx(4.0, rel=0.15)  # undoes the sharpening
    correct = held_logits.argmax(1) == held_labels
    before = calibrate.calibration_error(softmax(held_logits).max(1), correct)
    after = calibrate.calibration_error(softmax(held_logits, temperature).max(1), correct)
    assert before > 0.05 and after < before / 3
    assert calibrate.nll(held_logits, held_labels, temperature) < calibrate.nll(
        held_logits, held_labels
    )


def test_temperature_is_the_minimum_of_the_nll():
    logits, labels = overconfident_logits(2000, scale=0.5)
    t = calibrate.fit_temperature(logits, labels)
    best = calibrate.nll(logits, labels, t)
    assert best <= calibrate.nll(logits, labels, t * 1.05)
    assert best <= calibrate.nll(logits, labels, t / 1.05)


def test_calibration_error_of_a_known_case():
    top = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, True, True, False, True, True])
    # bin of 0.95: accuracy 0.75, gap 0.20, weight 4/6; bin of 0.55: accuracy 1, gap 0.45, 2/6
    expected = 4 / 6 * 0.20 + 2 / 6 * 0.45
    assert calibrate.calibration_error(top, correct) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("top", "correct", "threshold"),
    [
        # 1000 answers: the 5 wrong ones have p 0.50..0.54, the rest above: at 0.54 one wrong
        # in 996 is 0.10% <= 0.2%; at 0.53 two in 997 are 0.2006% > 0.2%
        (
            np.r_[np.linspace(0.6, 1.0, 995), [0.50, 0.51, 0.52, 0.53, 0.54]],
            np.r_[np.ones(995, bool), np.zeros(5, bool)],
            0.54,
        ),
        # every answer right: every answer is sure
        (np.array([0.3, 0.9, 0.6]), np.ones(3, bool), 0.3),
        # the most confident answer is wrong and it is the only one: nothing is sure
        (np.array([0.9]), np.zeros(1, bool), 1.0),
    ],
)
def test_sure_threshold_is_the_lowest_with_few_enough_errors(top, correct, threshold):
    t = calibrate.sure_threshold(top, correct)
    assert t == pytest.approx(threshold)
    if t < 1.0:
        assert calibrate.risk_coverage(top, correct, t)["sure_error"] <= calibrate.MAX_SURE_ERROR


def test_a_margin_asks_for_more_evidence():
    """Twenty answers all right meet 1% on their face, not once counted half a standard error
    high (Wilson's bound); a hundred do."""
    top = np.linspace(0.99, 0.5, 100)
    assert calibrate.sure_threshold(top[:20], np.ones(20, bool), 0.01) == pytest.approx(top[19])
    assert calibrate.sure_threshold(top[:20], np.ones(20, bool), 0.01, margin=0.5) == 1.0
    assert calibrate.sure_threshold(top, np.ones(100, bool), 0.01, margin=0.5) == top[-1]


def test_a_threshold_keeps_ties_together():
    # two answers at 0.9, one of them wrong: 0.9 cannot be the threshold (50% wrong)
    top = np.array([0.99, 0.9, 0.9])
    correct = np.array([True, True, False])
    assert calibrate.sure_threshold(top, correct) == pytest.approx(0.99)


def test_a_logistic_fit_recovers_the_law_the_answers_follow():
    """Answers right with probability sigmoid(2 * score + 1): the fit finds slope 2, intercept 1,
    and its probabilities are calibrated on answers it was not fitted on."""
    rng = np.random.default_rng(3)

    def answers(n):
        score = rng.uniform(-4, 2, n)
        return score, rng.random(n) < calibrate.sigmoid(2.0 * score + 1.0)

    slope, intercept = calibrate.fit_logistic(*answers(20000))
    assert slope == pytest.approx(2.0, abs=0.1) and intercept == pytest.approx(1.0, abs=0.1)
    score, right = answers(20000)
    assert calibrate.calibration_error(calibrate.sigmoid(slope * score + intercept), right) < 0.02


def test_a_logistic_fit_stays_finite_when_every_answer_is_right():
    slope, intercept = calibrate.fit_logistic(np.array([-1.0, -0.5, 0.0]), np.ones(3, bool))
    assert np.isfinite([slope, intercept]).all()
    assert calibrate.sigmoid(slope * -0.5 + intercept) > 0.5
