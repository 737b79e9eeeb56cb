"""Whole numbers: the strip (serving/strip.py), CTC decoding, boxes and probabilities
(serving/numbers.py), deploy/infer.py --number and the service's number mode, and the
evaluation's number groups (bench/numbers.py)."""

import json
import shutil

import cv2
import httpx
import numpy as np
import pytest
from conftest import DATA, assert_one_line_error, line_reading, run_tool, start_server

from mnist_paddle.bench.numbers import GROUPS, scores, to_markdown
from mnist_paddle.models import line as line_model
from mnist_paddle.serving import ctc, numbers, page, strip
from mnist_paddle.serving.ctc import Digit, decode
from mnist_paddle.serving.numbers import NumberReader
from mnist_paddle.train.data import read_mnist


@pytest.fixture(scope="module")
def test_digits():
    return read_mnist(DATA, "test")


def written(digits: list[np.ndarray], gap: int = 6, scale: float = 3.0) -> np.ndarray:
    """MNIST digits cropped to their ink columns, `gap` px apart, enlarged, dark on a white
    page: (H, W) gray levels."""
    crops = [d[:, np.flatnonzero(d.max(axis=0) > 25)].astype(np.float32) / 255 for d in digits]
    width = sum(c.shape[1] for c in crops) + gap * (len(crops) - 1)
    ink, x = np.zeros((28, width), np.float32), 0
    for c in crops:
        np.maximum(ink[:, x : x + c.shape[1]], c, out=ink[:, x : x + c.shape[1]])
        x += c.shape[1] + gap
    big = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return 255.0 - 255.0 * np.pad(big, 30)


def strip_of(gray: np.ndarray) -> strip.Strip | None:
    """The strip the reader makes of the number in `gray` (its page cleaned first)."""
    cleaned = page.clean(gray)
    found = strip.find_ink(cleaned.gray, cleaned.shaded)
    return None if found is None else strip.make_strip(*found)


def probs_of(path: str) -> np.ndarray:
    """Step probabilities that put 0.9 on the class each character names ('-' is blank)."""
    p = np.full((len(path), 11), 0.01)
    for t, c in enumerate(path):
        p[t, 0 if c == "-" else int(c) + 1] = 0.9
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    "path, number",
    [("--7--", "7"), ("-77-7", "77"), ("2-0-2-6", "2026"), ("1111", "1"), ("11-11", "11"),
     ("-----", ""), ("0", "0"), ("3-4", "34"), ("34", "34")],
)  # fmt: skip
def test_ctc_decoding_merges_repeats_and_drops_blanks(path, number):
    assert "".join(str(d.digit) for d in decode(probs_of(path))) == number


def test_each_digit_keeps_its_steps_and_its_best_probability():
    p = probs_of("-55--3")
    p[2] = 0.0
    p[2, 6] = 1.0  # the second step of the 5 is surer
    assert decode(p) == [Digit(5, 1.0, (1, 2)), Digit(3, pytest.approx(p[5, 4]), (5, 5))]


def test_a_digit_seen_away_from_those_read_is_unread():
    """The most any step more than one step away from the digits read gives a digit; a
    digit's own edges (the step next to it) do not count."""
    p = probs_of("--7------")
    p[4] = [0.6, 0, 0.4, 0, 0, 0, 0, 0, 0, 0, 0]  # a 1, mostly not seen, two steps off
    read = decode(p)
    assert [d.digit for d in read] == [7]
    assert ctc.unread(read, p) == pytest.approx(0.4)
    p[3] = p[4]
    p[4] = probs_of("-")[0]  # the same, next to the 7
    assert ctc.unread(read, p) == pytest.approx(1 - p[4:, 0].min())
    assert ctc.unread(decode(probs_of("333")), probs_of("333")) == 0.0  # no step left


def test_the_beam_reads_a_digit_no_single_step_is_sure_of():
    """Two steps each a little likelier blank than a 4: greedy reads nothing, while "4" summed
    over its paths (4-, -4, 44) is likelier than nothing; aligned, the 4 gets the step that
    gives it most."""
    p = np.full((2, 11), 0.0)
    p[:, 0], p[:, 5], p[:, 8] = 0.4, 0.35, 0.25
    p[1, 5], p[1, 8] = 0.36, 0.24
    assert decode(p) == [] and ctc.beam_search(p)[0][0] == (4,)
    assert line_reading(p)[0] == [Digit(4, pytest.approx(0.36), (1, 1))]


def test_the_beam_says_how_much_of_it_the_reading_holds():
    """One step: 4 at 0.6, 7 at 0.3, blank at 0.1: "4" holds 0.6 of the readings. Two steps
    where a second digit may or may not follow: the one-digit reading keeps only its share."""
    p = np.zeros((1, 11))
    p[0, [0, 5, 8]] = 0.1, 0.6, 0.3
    assert ctc.beam_search(p)[0] == ((4,), pytest.approx(0.6))
    p = np.zeros((3, 11))
    p[0, 4], p[1, 0], p[2, [0, 2]] = 1.0, 1.0, (0.7, 0.3)  # a 3, blank, then blank or a 1
    digits, share = line_reading(p)
    assert [d.digit for d in digits] == [3] and share == pytest.approx(0.7)


def test_a_beam_wide_enough_finds_the_likeliest_reading_of_all_paths():
    """With every prefix kept, the beam's reading and its share are those of the reading whose
    paths, of all 11^T paths through the T steps counted one by one, hold the most probability:
    three random steps, and three with a step where no digit is followed (blank nearly sure)
    among them."""
    import itertools

    blank_step = np.r_[1 - 9e-5, np.full(10, 1e-5)]
    for seed in range(4):
        p = np.random.default_rng(seed).dirichlet(np.full(11, 0.5), 3)
        if seed == 3:
            p = np.insert(p, 1, blank_step, axis=0)
        # a digit the beam never follows at a step counts nowhere (blank is always followed)
        p[:, 1:] = np.where(p[:, 1:] > ctc.UNLIKELY, p[:, 1:], 0.0)
        readings: dict[tuple, float] = {}
        for path in itertools.product(range(11), repeat=len(p)):
            spelt = tuple(c - 1 for k, c in enumerate(path) if c and (k == 0 or path[k - 1] != c))
            readings[spelt] = readings.get(spelt, 0.0) + np.prod(p[np.arange(len(p)), path])
        best = max(readings, key=readings.get)
        digits, share = ctc.beam_search(p, width=10_000)[0]
        assert digits == best
        assert share == pytest.approx(readings[best] / sum(readings.values()))


def test_two_alike_with_a_weak_blank_between_are_two():
    """Two steps between two 7s, each a little likelier a 7 than blank: the greedy path reads one
    7, but paths with a blank somewhere between them (two 7s) are likelier together."""
    p = probs_of("777777")
    p[2:4] = [0.45, 0.05, 0, 0, 0, 0, 0, 0, 0.5, 0, 0]
    assert [d.digit for d in decode(p)] == [7]
    read, _ = line_reading(p)
    assert [d.digit for d in read] == [7, 7]
    assert read[0].steps[1] < read[1].steps[0]  # one after the other


def test_a_readings_likelihood_sums_all_its_paths():
    """The forward pass against every path of 4 steps spelling the digits, counted one by one;
    readings of different lengths side by side (padded) score as they do alone."""
    import itertools

    p = np.random.default_rng(0).dirichlet(np.ones(11), 4)
    readings = ([3], [3, 3], [1, 2, 1], [])
    totals = []
    for digits in readings:
        total = 0.0
        for path in itertools.product(range(11), repeat=4):
            spelt = [c - 1 for k, c in enumerate(path) if c and (k == 0 or path[k - 1] != c)]
            if spelt == digits:
                total += np.prod(p[np.arange(4), path])
        assert ctc.log_likelihood(p, digits) == pytest.approx(np.log(total))
        totals.append(total)
    assert ctc.log_likelihoods(p, readings) == pytest.approx(np.log(totals))
    assert ctc.log_likelihoods(p, readings[::-1]) == pytest.approx(np.log(totals[::-1]))


def test_a_lone_digits_probability_sums_its_paths():
    """`alone`: for each digit, every path of 4 steps that spells that digit and nothing else,
    counted one by one."""
    import itertools

    p = np.random.default_rng(1).dirichlet(np.ones(11), 4)
    expected = np.zeros(10)
    for path in itertools.product(range(11), repeat=4):
        spelt = [c - 1 for k, c in enumerate(path) if c and (k == 0 or path[k - 1] != c)]
        if len(spelt) == 1:
            expected[spelt[0]] += np.prod(p[np.arange(4), path])
    assert ctc.alone(p) == pytest.approx(expected)


def test_the_reading_likeliest_in_every_view_wins():
    """The strip alone reads one 7 (two 7s with a weak blank between them lose there); a view
    of it that reads two 7s plainly outweighs that, and the reading keeps the strip's steps,
    with a smaller share of its beam. A view that agrees changes nothing."""
    p = probs_of("777777")
    p[2:4] = [0.2, 0.05, 0, 0, 0, 0, 0, 0, 0.75, 0, 0]
    alone, share = line_reading(p)
    assert [d.digit for d in alone] == [7]
    read, shared = line_reading(p, [probs_of("77--77")])
    assert [d.digit for d in read] == [7, 7] and read[0].steps[1] < read[1].steps[0] <= 3
    assert shared < share
    assert line_reading(p, [probs_of("-777-")]) == (alone, share)


def test_the_candidates_are_the_readings_close_to_the_likeliest():
    """Two 7s with a weak blank between, or one: both readings are candidates, the likelier
    first, each with its likelihood summed over the views and its share of the strip's beam;
    a reading MARGIN nats behind the likeliest is none, and a view's own reading is one."""
    p = probs_of("777777")
    p[2:4] = [0.45, 0.05, 0, 0, 0, 0, 0, 0, 0.5, 0, 0]
    found = ctc.candidates(p)
    assert [c.digits for c in found][:2] == [[7, 7], [7]]
    assert found[0].score == pytest.approx(ctc.log_likelihood(p, [7, 7]))
    assert found[0].share == ctc.beam_search(p)[0][1] and found[1].share < found[0].share
    assert all(c.score >= found[0].score - ctc.MARGIN for c in found)
    sure = probs_of("--7--") ** 4  # 0.9 against 1e-8: no other reading within MARGIN
    sure /= sure.sum(axis=1, keepdims=True)
    assert [c.digits for c in ctc.candidates(sure)] == [[7]]
    view = probs_of("-7-3-") ** 4
    view /= view.sum(axis=1, keepdims=True)
    assert sorted(c.digits for c in ctc.candidates(sure, [view])) == [[7], [7, 3]]


def test_each_digits_probabilities_are_the_geometric_mean_over_the_views():
    """The strip doubts its second digit (8 or 3); a view of another length, sure of the 8,
    is aligned to the digits read and its steps for the 8 count as much as the strip's."""
    p = probs_of("-3-8-")
    p[3] = [0.05, 0, 0, 0, 0.4, 0, 0, 0, 0, 0.55, 0]
    view = probs_of("--3--88-")
    read = line_reading(p)[0]
    got = ctc.digit_probs([p, view], read)
    strip_8, view_8 = p[3, 1:], np.maximum(view[5:7, 1:].max(axis=0), 1e-30)
    mean = np.sqrt(strip_8 * view_8)
    assert got.shape == (2, 10) and np.allclose(got.sum(axis=1), 1)
    assert np.allclose(got[1], mean / mean.sum()) and got[1, 8] > p[3, 9] / p[3, 1:].sum()
    assert got[0].argmax() == 3
    assert ctc.digit_probs([p, view], []).shape == (0, 10)


def test_the_strips_views_shift_by_half_a_step_and_enlarge():
    pixels = np.random.default_rng(0).random((strip.HEIGHT, 40)).astype(np.float32)
    shifted, enlarged = strip.views(pixels)
    assert shifted.shape == (strip.HEIGHT, 44)
    assert np.array_equal(shifted[:, strip.SHIFT : strip.SHIFT + 40], pixels)
    assert enlarged.shape == (strip.HEIGHT, 52)  # 40 x 1.265, to whole steps
    assert enlarged.flags.c_contiguous


def test_aligning_no_digits_is_no_digits():
    assert ctc.align(probs_of("-3-"), []) == []


def test_the_beam_keeps_the_greedy_steps_when_they_agree():
    p = probs_of("-55--3")
    assert line_reading(p)[0] == decode(p)


def test_the_digits_columns_meet_half_way():
    digits = [Digit(1, 0.9, (2, 2)), Digit(2, 0.9, (6, 8))]  # centres at columns 10 and 30
    assert ctc.digit_columns(digits, 48) == [(0.0, 20.0), (20.0, 48.0)]


def test_the_likeliest_digits_probability_keeps_the_doubt_float32_rounds_away():
    probs = np.array([1e-9, 1.0, 2e-9, 0.0], np.float32)  # float32: 1 - 3e-9 is 1.0
    digit, prob = numbers.likeliest(probs)
    assert digit == 1 and prob < 1.0 and 1 - prob == pytest.approx(3e-9, rel=1e-3)
    assert numbers.likeliest(np.array([1.0, 3.0])) == (1, 0.75)  # unnormalized: its share


def test_a_numbers_probability_grows_with_its_digits_confidence():
    fit = {"slope": -1.0, "intercept": -2.0}
    surer = numbers.number_prob(fit, np.log([0.3, 0.9, 0.99, 0.9999]))
    assert np.all(np.diff(surer) > 0) and np.all((surer > 0) & (surer < 1))
    assert numbers.log_prob([0.5, 0.8]) == pytest.approx(np.log(0.4))
    assert numbers.log_prob([0.5, 0.8], share=0.5) == pytest.approx(np.log(0.2))
    assert numbers.log_prob([]) < np.log(1e-40)  # no digit read in ink: no chance it is right


def bbox_aspect(ink: np.ndarray) -> float:
    """Width over height of the box around the True pixels of `ink`."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)


def test_the_strip_scales_a_digit_to_mnists_height_and_widens_it(test_digits):
    images, _ = test_digits
    for scale in (1.5, 3.0, 8.0):  # 8x: a large photo, shrunk first
        gray = written([images[k] for k in (0, 1, 2)], scale=scale)
        found = strip_of(gray)
        assert found.pixels.shape[0] == strip.HEIGHT == line_model.HEIGHT
        assert found.pixels.shape[1] % strip.STRIDE == 0 and strip.STRIDE == line_model.STRIDE
        height = strip.digit_height((found.pixels > 0.3).astype(np.uint8))
        assert abs(height - strip.DIGIT_HEIGHT) <= 2
        widened = bbox_aspect(found.pixels > 0.3) / bbox_aspect(gray < 128)
        assert widened == pytest.approx(strip.WIDEN, rel=0.1)
        assert found.pixels.max() == pytest.approx(1.0, abs=0.01)
        assert not found.pixels[:, : strip.MARGIN].any()


def test_small_print_is_enlarged_at_most_max_enlarge_times(test_digits):
    images, _ = test_digits
    scales = [
        strip_of(written([images[k] for k in (5, 6)], scale=s)).scale for s in (0.5, 1.0, 2.5)
    ]  # digits about 10, 20 and 50 px tall
    assert scales[0] == strip.MAX_ENLARGE
    assert scales[1] == pytest.approx(strip.WORK_HEIGHT / 20, rel=0.25)
    assert scales[2] == 1.0


def test_light_on_dark_gives_the_same_strip(test_digits):
    images, _ = test_digits
    gray = written([images[k] for k in (3, 4)])
    dark = strip_of(gray).pixels
    light = strip_of(255.0 - gray).pixels
    assert dark.shape == light.shape and np.abs(dark - light).max() < 0.05


def test_boxes_are_each_digits_ink_in_the_image(test_digits):
    """Columns of the strip map back to the image as given, a large one shrunk first, and a
    small one enlarged (its digits 20 px tall, under WORK_HEIGHT) too."""
    images, _ = test_digits
    for scale in (1.0, 3.0, 9.0):
        gray = written([images[k] for k in (0, 1)], gap=8, scale=scale)
        found = strip_of(gray)
        assert (found.scale > 1.5) == (scale == 1.0) and (found.scale < 1) == (scale == 9.0)
        ink = gray < 128
        columns = np.flatnonzero(ink.any(axis=0))
        gap = np.flatnonzero(np.diff(columns) > 1)[0]  # where the first digit ends
        first, second = (columns[0], columns[gap]), (columns[gap + 1], columns[-1])
        middle = (found.pixels.shape[1] / 2) + 0.0
        for (lo, hi), box in zip((first, second), (found.box(0, middle), found.box(middle, 1e9))):
            x, y, w, h = box
            assert (
                abs(x - lo) <= 0.05 * gray.shape[1] and abs(x + w - 1 - hi) <= 0.05 * gray.shape[1]
            )
            rows = np.flatnonzero(ink[:, lo : hi + 1].any(axis=1))
            assert abs(y - rows[0]) <= 2 * scale and abs(y + h - 1 - rows[-1]) <= 2 * scale


def test_a_forms_frames_lie_under_their_own_steps(test_digits):
    """frames_strip sets a form's digit frames side by side, widened as a strip is: frame k's
    ink lies in the strip columns of the line model's steps frame_spans gives it, FRAME_STEPS
    of them."""
    images, _ = test_digits
    frames = [images[k].astype(np.float32) for k in range(3)]
    pixels = strip.frames_strip(frames)
    wide = strip.FRAME_STEPS * strip.STRIDE
    assert 28 * strip.WIDEN <= wide < 28 * strip.WIDEN + strip.STRIDE
    assert pixels.shape == (line_model.HEIGHT, 2 * strip.MARGIN + wide * 3)
    assert pixels.shape[1] % strip.STRIDE == 0 and pixels.max() <= 1.0
    for frame, (first, end) in zip(frames, strip.frame_spans(len(frames))):
        assert end - first == strip.FRAME_STEPS
        own = pixels[:, first * strip.STRIDE : end * strip.STRIDE]
        assert own.sum() == pytest.approx(frame.sum() / 255.0 * wide / 28, rel=0.02)


def test_each_digit_is_cut_from_its_own_ink():
    """Pieces of ink mostly in a digit's columns are its own, whole (a stroke reaching past the
    half-way line stays with its digit); a piece across two digits is cut where they meet."""
    ink = np.zeros((30, 70), np.float32)
    ink[5:25, 5:15] = 1  # a digit ...
    ink[5:7, 15:24] = 1  # ... whose top stroke reaches past column 22
    ink[5:25, 40:48] = 1  # two touching digits
    ink[14:16, 48:56] = 1
    ink[5:25, 56:64] = 1
    mask = (ink > 0).astype(np.uint8)
    cuts, touching = numbers.cut_digits(ink, mask, [(0, 22), (22, 52), (52, 70)])
    assert len(cuts) == 3 and all(c.shape == (28, 28) for c in cuts)
    assert touching.tolist() == [False, True, True]
    # the first digit is cut whole, its top stroke in it: 19 px wide and 20 tall, not 10 and 20
    rows, cols = np.nonzero(cuts[0] > 50)
    assert (cols.max() - cols.min()) / (rows.max() - rows.min()) > 0.75
    # the second and third get the parts of the touching piece in their columns
    assert cuts[1].max() > 0 and cuts[2].max() > 0
    assert not numbers.cut_digits(ink, mask, [])[0]


def test_a_touching_digits_cut_has_less_say():
    """The digit model's verdict on a cut from a piece shared with a neighbour counts less
    (a power below 1) than on a digit standing apart: the line model, which saw the two
    together, decides where the two disagree about as strongly."""
    lines = np.full((2, 10), 0.01)
    lines[:, 3], lines[:, 8] = 0.7, 0.2  # the line model: a 3, perhaps an 8
    verdicts = np.full((2, 10), 0.01)
    verdicts[:, 3], verdicts[:, 8] = 0.15, 0.8  # the digit model on the cut: an 8
    digits, _ = numbers.both(lines, verdicts, np.array([False, True]))
    assert digits == [8, 3]
    assert numbers.both(lines, verdicts)[0] == [8, 8]  # no cut touching


def test_a_digit_tall_piece_under_no_digit_read_is_read_too():
    """The line model read one digit of three pieces of ink: the tall piece it passed over
    becomes a digit (the likeliest over its steps), in its place; the short bar does not."""
    ink = np.zeros((20, 60), np.float32)
    ink[:, 2:12] = 1  # a digit, read
    ink[:, 20:23] = 1  # a thin 1 the line model missed
    ink[16:19, 40:50] = 1  # a short bar: no digit
    found = strip.make_strip(ink, (ink > 0).astype(np.uint8))
    # step t reads strip columns [4t, 4t + 4): the 7 at the middle of the first piece
    column = lambda x: strip.MARGIN + (x - found.origin[0]) * found.per_pixel  # noqa: E731
    path = ["-"] * (found.pixels.shape[1] // strip.STRIDE)
    path[int(column(7) // strip.STRIDE)] = "7"
    read = decode(probs_of("".join(path)))
    steps = probs_of("".join(path))
    steps[int(column(20) // strip.STRIDE) : int(column(23) // strip.STRIDE) + 1, 2] = 0.3
    assert [d.digit for d in read] == [7]
    added = ctc.missed_digits(read, steps, found)
    assert [d.digit for d in added] == [7, 1]
    assert added[1].prob == pytest.approx(0.3)
    assert ctc.missed_digits(added, steps, found) == added  # nothing more to add


def test_a_piece_beside_a_digit_read_off_it_is_that_digits_own():
    """A tall piece under no digit's centre is not a second digit when its own steps read the
    digit next to it (a 5's flag, say: the 5's centre fell just outside the piece); and a step
    that read the neighbour does not vote for what the piece is."""
    ink = np.zeros((20, 60), np.float32)
    ink[:, 2:12] = 1  # a digit, read
    ink[:, 16:19] = 1  # a tall piece beside it
    found = strip.make_strip(ink, (ink > 0).astype(np.uint8))
    column = lambda x: strip.MARGIN + (x - found.origin[0]) * found.per_pixel  # noqa: E731
    first, last = int(column(16) // strip.STRIDE), int(column(19) // strip.STRIDE)
    path = ["-"] * (found.pixels.shape[1] // strip.STRIDE)
    path[int(column(7) // strip.STRIDE)] = "5"
    steps = probs_of("".join(path))
    steps[first : last + 1, 6] = 0.6  # the piece's steps read 5 too
    read = decode(steps)
    assert [d.digit for d in read] == [5] and read[0].centre < column(16)
    assert ctc.missed_digits(read, steps, found) == read
    # the 5 read on to the piece's first step (its centre still outside); the rest reads a 1
    for t in range(int(column(7) // strip.STRIDE), first + 1):
        path[t] = "5"
    steps = probs_of("".join(path))
    steps[first + 1 : last + 1, 2] = 0.3
    read = decode(steps)
    assert [d.digit for d in read] == [5] and read[0].centre < column(16)
    added = ctc.missed_digits(read, steps, found)
    assert [d.digit for d in added] == [5, 1]


def test_a_dark_band_along_the_top_edge_is_no_ink(test_digits):
    """What a shadow thinner than the cleaning's closing leaves along the page's top edge is
    no digit: the strip holds the number alone, as without the band."""
    images, _ = test_digits
    gray = written([images[k] for k in (0, 1, 2)])
    alone = strip_of(gray).pixels
    shaded = gray.copy()
    shaded[:20] *= np.linspace(0.4, 0.9, 20)[:, None]  # a soft band, darkest at the edge
    assert strip_of(shaded).pixels.shape == alone.shape
    assert np.abs(strip_of(shaded).pixels - alone).max() < 0.05


def test_a_shadows_corner_below_the_digits_is_no_ink(test_digits):
    """A dark corner at the page's edge, wholly below the digits (a shadow's), is not part of
    the number: the strip is the number's alone, as without it."""
    images, _ = test_digits
    gray = written([images[k] for k in (0, 1, 2)])
    alone = strip_of(gray).pixels
    shaded = gray.copy()
    shaded[-26:, -30:] *= 0.4
    assert strip_of(shaded).pixels.shape == alone.shape
    assert np.abs(strip_of(shaded).pixels - alone).max() < 0.05


def test_a_faint_piece_on_a_shaded_pages_side_is_no_ink(test_digits):
    """A page in a shadow (its left part, soft-edged) with a faint band on its left edge (what a
    shadow's edge or the noise in its dark part leaves): the band is no digit there, but on a
    page lit evenly a piece on a side stays (a number cropped close, its end digit paler)."""
    images, _ = test_digits
    gray = written([images[k] for k in range(4)])
    height, width = gray.shape
    light = 1 - 0.5 / (1 + np.exp((np.arange(width) - 40) / 4))  # darker left of column 40
    shaded = gray * 0.86 * light
    shaded[35:110, :10] -= 100 * light[:10]  # the band, fainter than the digits
    cleaned = page.clean(np.clip(shaded, 0, 255))
    assert cleaned.shaded and not page.clean(gray).shaded

    def pieces(mask):
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        return count - 1, int((stats[1:, cv2.CC_STAT_LEFT] == 0).sum())

    assert pieces(strip.find_ink(cleaned.gray, shaded=True)[1]) == (4, 0)  # the 4 digits
    assert pieces(strip.find_ink(cleaned.gray, shaded=False)[1]) == (5, 1)


def test_no_ink_is_no_strip():
    assert strip_of(np.full((60, 200), 230.0)) is None


def test_a_group_with_no_sure_number_says_so():
    row = {"numbers": 3, "exact_match": 2 / 3, "digit_accuracy": 0.9, "wrong_length": 1}
    results = {
        "numbers_long": row | {"sure_share": 0.0, "sure_exact_match": None, "ece": 0.1},
        "numbers_paper": row | {"sure_share": 1 / 3, "sure_exact_match": 1.0, "ece": 0.1},
    }
    lines = to_markdown({k: v | {"median_ms": 9.0} for k, v in results.items()}).splitlines()
    assert "| 0.0% | none sure |" in lines[2] and "| 33.3% | 100.00% |" in lines[3]


def test_scores_count_missing_extra_and_wrong_digits():
    result = scores(["2026", "07", "15"], ["2026", "7", "158"])
    assert result["exact_match"] == pytest.approx(1 / 3)
    # 1 missing digit + 1 extra digit against 8 true digits
    assert result["digit_accuracy"] == pytest.approx(1 - 2 / 8)
    assert result["wrong_length"] == 2


def test_the_evaluation_set_has_long_numbers(tmp_path):
    from mnist_paddle.bench.realworld import _rows, make_realworld

    make_realworld(tmp_path, DATA, count=2, numbers=30, pages=2)
    rows = _rows(tmp_path)
    assert {r["group"] for r in rows} >= set(GROUPS)
    lengths = {g: [len(r["label"]) for r in rows if r["group"] == g] for g in GROUPS}
    assert min(lengths["numbers_long"]) >= 7 and max(lengths["numbers_long"]) <= 12
    assert max(lengths["numbers_paper"]) <= 6 and len(lengths["numbers_long"]) == 30
    for row in rows:
        if row["group"] == "numbers_long":
            assert (tmp_path / row["path"]).is_file() and row["label"].isdigit()


def test_infer_number_json_and_debug_dir(number_export, test_digits, tmp_path):
    images, labels = test_digits
    image = tmp_path / "number.png"
    cv2.imwrite(str(image), written([images[3], images[2]]))  # MNIST's test 0 and 1
    debug = tmp_path / "debug"
    common = ["deploy/infer.py", "--model-dir", str(number_export), "--number"]
    result = run_tool(*common, "--json", "--debug-dir", str(debug), str(image))
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert set(row) == {"path", "number", "prob", "sure", "digits"}
    assert isinstance(row["number"], str) and row["number"].isdigit()
    assert row["number"] == "".join(str(d["digit"]) for d in row["digits"])
    for d in row["digits"]:
        assert set(d) == {"digit", "prob", "sure", "box"} and len(d["box"]) == 4
        assert 0 <= d["prob"] <= 1
    boxes = [d["box"][0] for d in row["digits"]]
    assert boxes == sorted(boxes)  # left to right
    files = sorted(p.name for p in debug.iterdir())
    cuts = [f"0000_number_digit{k}.png" for k in range(len(row["digits"]))]
    assert files == sorted([f"0000_number_{k}.png" for k in ("boxes", "page", "strip")] + cuts)
    strip_png = cv2.imread(str(debug / "0000_number_strip.png"), cv2.IMREAD_GRAYSCALE)
    assert strip_png.shape[0] == strip.HEIGHT
    plain = run_tool(*common, str(image))
    assert plain.stdout.startswith(f"{image}: {row['number']}")


def test_infer_number_on_a_blank_page_is_one_line(number_export, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((50, 120), 255, np.uint8))
    result = run_tool("deploy/infer.py", "--model-dir", str(number_export), "--number", str(blank))
    assert_one_line_error(result, "blank.png: no digit found", code=1)


def test_an_export_without_a_line_model_reads_no_numbers(exported, tmp_path):
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), np.pad(np.zeros((40, 20), np.uint8), 30, constant_values=255))
    result = run_tool("deploy/infer.py", "--model-dir", str(exported), "--number", str(image))
    assert_one_line_error(result, "reads no whole numbers", "tools/train_numbers.py")


def test_a_damaged_line_model_is_one_line(number_export, tmp_path):
    broken = tmp_path / "inference"
    shutil.copytree(number_export, broken)
    params = broken / "line.pdiparams"
    params.write_bytes(params.read_bytes()[:100])
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), np.pad(np.zeros((40, 20), np.uint8), 30, constant_values=255))
    result = run_tool("deploy/infer.py", "--model-dir", str(broken), "--number", str(image))
    assert_one_line_error(result, "line.pdiparams", "damaged")


def test_the_service_reads_numbers_as_infer_does(number_export, test_digits, tmp_path):
    images, _ = test_digits
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), written([images[7], images[4]]))
    expected = NumberReader(number_export).read(cv2.imread(str(image), 0).astype(np.float32))
    del expected["reading"]
    process, url = start_server(number_export)
    try:
        health = httpx.get(f"{url}/health").json()
        data = image.read_bytes()
        import base64

        as_json = httpx.post(
            f"{url}/predict", json={"image": base64.b64encode(data).decode(), "number": True}
        ).json()["results"][0]
        as_form = httpx.post(
            f"{url}/predict", files={"image": ("n.png", data)}, data={"number": "1"}
        ).json()["results"][0]
        single = httpx.post(f"{url}/predict", files={"image": ("n.png", data)}).json()
        text = httpx.post(f"{url}/predict", files={"image": ("a.txt", b"hi")}, data={"number": "1"})
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert health["numbers"] is True
    assert as_json == as_form == expected
    assert text.status_code == 400 and text.json()["error"].startswith("a.txt: not an image")
    assert "digit" in single["results"][0]  # without number mode: one digit, as before


def test_the_service_names_an_export_checked_by_an_older_reader(number_export, tmp_path):
    """An export whose line model was calibrated by an older reader: number requests get the
    reader's one-line refusal and the command that mends it, digits are read as before."""
    stale = tmp_path / "inference"
    shutil.copytree(number_export, stale)
    meta = json.loads((stale / "metadata.json").read_text())
    del meta["line_model"]["calibration"]["digit_views"]
    (stale / "metadata.json").write_text(json.dumps(meta))
    data = cv2.imencode(".png", np.pad(np.zeros((40, 20), np.uint8), 30, constant_values=255))[1]
    files = {"image": ("n.png", data.tobytes())}
    process, url = start_server(stale)
    try:
        number = httpx.post(f"{url}/predict", files=files, data={"number": "1"})
        digit = httpx.post(f"{url}/predict", files=files)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert number.status_code == 400
    assert "not calibrated as this version reads" in number.json()["error"]
    assert "--check-only" in number.json()["error"]
    assert digit.status_code == 200 and "digit" in digit.json()["results"][0]


def test_the_benchmark_times_a_number_on_plain_and_ruled_paper(number_export):
    from mnist_paddle.bench.numbers import time_number

    timed = time_number(NumberReader(number_export), DATA, calls=3)
    assert timed["digits"] == 6
    for kind in ("paper", "ruled"):
        assert timed[kind]["p50_ms"] > 0 and len(timed[kind]["pixels"]) == 2
