"""The line model's side of the number reader (serving/lines.py, models/line.py, train/lines.py):
the strip it reads, CTC likelihoods and readings against brute force, and how the reader weighs
its readings against the spans'."""

import itertools
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from conftest import DATA

from mnist_paddle.models import line as line_model
from mnist_paddle.serving import lines, segment
from mnist_paddle.serving import numbers as reader
from mnist_paddle.train import lines as line_training
from mnist_paddle.train.data import mnist_files, read_idx


def brute_force(log_probs: np.ndarray) -> dict[str, float]:
    """Every reading of every path of steps, with its log-probability (the CTC definition)."""
    readings: dict[str, float] = {}
    for path in itertools.product(range(11), repeat=len(log_probs)):
        text, previous = "", 0
        for c in path:
            if c != previous and c != 0:
                text += str(c - 1)
            previous = c
        p = sum(log_probs[t, c] for t, c in enumerate(path))
        readings[text] = np.logaddexp(readings.get(text, -np.inf), p)
    return readings


@pytest.mark.parametrize("seed", [0, 1])
def test_ctc_likelihood_and_readings_match_brute_force(seed):
    log_probs = lines.log_softmax(np.random.default_rng(seed).normal(size=(4, 11)) * 3)
    readings = brute_force(log_probs)
    for text in ("", "3", "33", "12", "121", "5555"):  # "5555" needs 7 steps: impossible
        expected = readings.get(text, -np.inf)
        assert lines.log_likelihood(log_probs, text) == pytest.approx(expected, abs=1e-9)
    best = sorted(readings, key=lambda t: -readings[t])
    assert lines.best_readings(log_probs, width=10)[:3] == best[:3]


def test_the_strip_is_the_numbers_ink():
    images = read_idx(mnist_files(DATA, "test")[0])
    ink = np.hstack([images[k].astype(np.float32) / 255 for k in (0, 1, 2)])
    gray = 255.0 - 255.0 * np.pad(ink, ((40, 40), (20, 60))).clip(0, 1)  # off-centre
    strip = lines.line_image(segment.candidates(gray))
    assert strip.shape[0] == lines.LINE_HEIGHT and strip.shape[1] % lines.STRIDE == 0
    assert strip.max() == pytest.approx(1.0) and strip.min() >= 0
    assert not strip[:, : lines.MARGIN].any() and not strip[:, -lines.MARGIN :].any()
    # three digits about as wide as tall each: the strip is about three heights wide
    assert 2.0 * lines.LINE_HEIGHT < strip.shape[1] < 4.0 * lines.LINE_HEIGHT


def test_the_line_model_reads_strips_of_any_width():
    assert (lines.LINE_HEIGHT, lines.STRIDE) == (line_model.LINE_HEIGHT, line_model.STRIDE)
    network = line_model.LineReader()
    network.eval()
    for width in (16, 64, 200):
        out = network(paddle.rand([2, 1, line_model.LINE_HEIGHT, width]))
        assert out.shape == [2, line_model.CLASSES, width // line_model.STRIDE]


def test_a_training_batch_pads_strips_and_labels():
    made = [np.full((32, 8), 255, np.uint8), np.full((32, 16), 51, np.uint8)]
    x, labels = line_training._batch(made, ["7", "012"])
    assert x.shape == (2, 1, 32, 16) and x[0, 0, :, 8:].max() == 0 and x[0].max() == 1.0
    assert x[1].max() == pytest.approx(0.2)
    assert labels.tolist() == [[8, 0, 0], [1, 2, 3]]


class LineSays:
    """A recognizer whose line model spells `text`, one digit every other step."""

    def __init__(self, text: str):
        self.text = text

    def line_logits(self, strip: np.ndarray) -> np.ndarray:
        logits = np.zeros((11, 2 * len(self.text) + 1))
        logits[0] = 8.0  # blank
        for k, c in enumerate(self.text):
            logits[:, 2 * k + 1] = 0.0
            logits[int(c) + 1, 2 * k + 1] = 8.0
        return logits


def two_atoms():
    """Two atoms side by side; each alone looks like a 1 (0.9), the right one a 4 at 0.05."""
    left = segment.Segment((0, 0, 10, 20), np.ones((20, 10), np.uint8))
    right = segment.Segment((12, 0, 10, 20), np.ones((20, 10), np.uint8))
    both = segment.union([left, right])
    found = segment.Candidates(np.ones((24, 26)), [left, right], {}, 20.0, 1.0)
    found.spans = {(0, 1): left, (1, 2): right, (0, 2): both}
    one, right_probs, joined = np.full(11, 0.005), np.full(11, 0.005), np.full(11, 0.005)
    one[1], right_probs[1], right_probs[4], joined[10] = 0.9, 0.9, 0.05, 0.95
    return found, {(0, 1): one, (1, 2): right_probs, (0, 2): joined}


def test_the_line_model_overrules_the_spans_when_it_is_sure():
    found, probs = two_atoms()
    scores = reader._span_scores(found, probs)
    assert reader._spans_for(found, scores)[1] == [(0, 1), (1, 2)]
    spans, digits, among = reader._weighed_reading(LineSays("14"), found, scores, [1, 1])
    assert digits == [1, 4] and spans == [(0, 1), (1, 2)] and -0.5 < among < 0
    # agreeing, the spans' reading stands; a reading no run of spans gives ("147") is out
    spans, digits, _ = reader._weighed_reading(LineSays("11"), found, scores, [1, 1])
    assert digits == [1, 1] and spans == [(0, 1), (1, 2)]
    _, digits, _ = reader._weighed_reading(LineSays("147"), found, scores, [1, 1])
    assert len(digits) <= 2


def test_the_line_model_says_how_many_digits_overlap():
    # two overlapping digits, a 1 and a 4: the cut leaves each atom a piece of the other, so
    # apart the spans find "not one digit" (every digit at 0.001), together one 4 (0.9)
    found, _ = two_atoms()
    apart, joined = np.full(11, 0.001), np.full(11, 0.001)
    apart[10], joined[4] = 0.98, 0.9
    scores = reader._span_scores(found, {(0, 1): apart, (1, 2): apart, (0, 2): joined})
    assert reader._spans_for(found, scores)[1] == [(0, 2)]
    # weighed alone, "4" wins: log(0.9) + about -8 against 2 log(0.001)
    line_14, spans_14 = lines.log_softmax(LineSays("14").line_logits(None).T), [(0, 1), (1, 2)]
    assert lines.log_likelihood(line_14, "4") + np.log(0.9) > 2 * np.log(0.001)
    # the line model reads one digit more: it says how many there are
    spans, digits, among = reader._weighed_reading(LineSays("14"), found, scores, [4])
    assert digits == [1, 4] and spans == spans_14 and among <= 0
    # one digit fewer: the weighing alone decides
    _, digits, _ = reader._weighed_reading(LineSays("4"), found, scores, [1, 4])
    assert digits == [4]


def test_spans_for_a_text_follow_its_digits():
    found, probs = two_atoms()
    scores = reader._span_scores(found, probs)
    score, spans = reader._spans_for(found, scores, "41")
    assert spans == [(0, 1), (1, 2)] and score == pytest.approx(np.log(0.005) + np.log(0.9))
    assert reader._spans_for(found, scores, "9") == (pytest.approx(np.log(0.005)), [(0, 2)])
    assert reader._spans_for(found, scores, "123") == (-np.inf, [])


@pytest.mark.parametrize("processes, verbose", [(1, False), (2, False), (2, True)])
def test_the_line_model_trains_on_one_process_or_several(capsys, processes, verbose):
    """In this process, or data-parallel on two (paddle.distributed.launch): the progress lines
    (the first process's) reach the user, the launcher's only when `verbose`; the learned
    weights return."""
    rng = np.random.default_rng(0)
    texts = ["1", "22", "345", "6789", "0", "51"]
    made = [rng.integers(0, 256, (32, 12 * len(t) + 4), np.uint8) for t in texts]
    network = line_training.train_line_model(made, texts, 2, processes, verbose)
    shown = capsys.readouterr().out.splitlines()
    progress = [line for line in shown if line.startswith(line_training.PROGRESS)]
    assert progress and (len(progress) < len(shown)) == verbose
    assert "epoch 2/2, batch 2/2" in progress[-1]
    paddle.seed(0)
    untrained = line_model.LineReader().state_dict()
    moved = [
        not np.allclose(v.numpy(), untrained[k].numpy()) for k, v in network.state_dict().items()
    ]
    assert any(moved) and not network.training


def test_a_failed_data_parallel_run_is_one_error():
    made, texts = [np.zeros((32, 16), np.uint8)], ["1"]
    with pytest.raises(line_training.UserError, match="training the line model failed") as e:
        line_training.train_line_model(made, texts, epochs=0, processes=2)  # no step to take
    log = Path(str(e.value).split("see ")[1].split(" and ")[0])
    assert "\n" not in str(e.value) and log.read_text()
    shutil.rmtree(log.parent)
