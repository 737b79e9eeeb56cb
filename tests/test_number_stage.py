"""The number stage (train/numbers.py, train/strips.py, train/number_check.py,
tools/train_numbers.py): its training strips, the line model it starts from the digit model,
the export it joins, its calibration, and its one-line errors."""

import dataclasses
import json
import shutil

import cv2
import numpy as np
import paddle
import pytest
from conftest import (
    DATA,
    ROOT,
    assert_one_line_error,
    line_reading,
    number_overrides,
    run_tool,
)

from mnist_paddle.errors import UserError
from mnist_paddle.models.line import LineModel
from mnist_paddle.serving import numbers as reading
from mnist_paddle.serving.ctc import digit_probs
from mnist_paddle.serving.inference import Recognizer, softmax
from mnist_paddle.serving.numbers import LONG, VERDICT, NumberReader
from mnist_paddle.serving.strip import FRAME_STEPS, HEIGHT, STRIDE, WIDEN, views
from mnist_paddle.train import numbers, pages, strips
from mnist_paddle.train.data import read_mnist
from mnist_paddle.train.fonts import training_fonts


@pytest.fixture(scope="module")
def mnist():
    return read_mnist(DATA, "train")


@pytest.mark.parametrize(
    "length, typeset, angle",
    [(1, 0.0, 0.0), (5, 0.0, 0.0), (12, 0.0, 0.0), (4, 1.0, 0.0), (6, 1.0, 1.0)],
)
def test_a_training_batch_knows_each_digit_and_where_it_is(mnist, length, typeset, angle):
    images, labels = mnist
    rng = np.random.default_rng(length)
    fonts = training_fonts()
    batch = strips.batch(images[:2000], labels[:2000], fonts, 6, length, typeset, angle, rng)
    assert batch.pixels.shape[:3] == (6, 1, HEIGHT) and batch.pixels.shape[3] % STRIDE == 0
    assert batch.labels.shape == batch.centres.shape == (6, length)
    assert (batch.labels >= 1).all() and (batch.labels <= 10).all()  # digit d is d + 1
    for pixels, width, centres in zip(batch.pixels[:, 0], batch.widths, batch.centres):
        assert not pixels[:, width:].any()  # padding after the strip's own width
        assert (np.diff(centres) > 0).all()  # left to right
        for c in centres:  # a digit's centre lies on ink (within two columns)
            assert pixels[:, max(0, int(c) - 2) : int(c) + 3].max() > 0.3


def test_a_typeset_number_seen_at_an_angle_keeps_its_digits_centres():
    ink = np.zeros((20, 64), np.float32)
    centres = [10.0, 30.0, 50.0]
    for c in centres:  # a 5x5 mark at mid-height on each centre
        ink[8:13, int(c) - 2 : int(c) + 3] = 1.0
    for seed in range(5):
        warped, moved = strips._at_an_angle(ink, centres, np.random.default_rng(seed))
        assert warped.shape != ink.shape  # on a page with margins, warped
        count, _, _, found = cv2.connectedComponentsWithStats((warped > 0.5).astype(np.uint8))
        assert count == 4
        assert np.allclose(sorted(found[1:, 0]), moved, atol=1.0)


def test_framewise_targets_mark_each_centre_and_leave_its_sides_free(mnist):
    images, labels = mnist
    rng = np.random.default_rng(0)
    batch = strips.batch(images[:500], labels[:500], training_fonts(), 2, 3, 0.0, 0.0, rng)
    steps = batch.pixels.shape[3] // STRIDE
    targets = strips.frame_targets(batch, steps)
    for row, width, centres, digits in zip(targets, batch.widths, batch.centres, batch.labels):
        at = (centres // STRIDE).astype(int)
        assert list(row[at]) == list(digits)
        assert set(row[width // STRIDE :]) <= {-100}  # padding: not counted
        free = {t for a in at for t in (a - 1, a + 1)} - set(at)
        assert all(row[t] == -100 for t in free if t < width // STRIDE)
        assert (row[: width // STRIDE] >= -100).all() and 0 in row  # blank between the digits


def test_the_line_model_starts_reading_lone_digits_as_the_digit_model(number_export, mnist):
    """From the digit model's weights, before any training, the window at a lone digit gives
    the digit model's answer: the line model's window is its classifier, slid along."""
    from mnist_paddle.train.checkpoint import load_network

    meta = json.loads((number_export / "metadata.json").read_text())
    digits_net, _ = load_network(__import__("pathlib").Path(meta["checkpoint"]))
    network = LineModel()
    network.load_digit_model({k: v.numpy() for k, v in digits_net.state_dict().items()})
    network.eval()
    images, labels = mnist
    rows = np.zeros((40, 1, HEIGHT, 28 + 2 * 12), np.float32)
    rows[:, 0, 4:32, 12:40] = images[-40:] / 255.0  # each digit alone, in the middle
    with paddle.no_grad():
        logits = network(paddle.to_tensor(rows)).numpy()  # (40, T, 11)
        expected = digits_net(paddle.to_tensor((images[-40:, None] / 127.5 - 1).astype("float32")))
    middle = logits[:, logits.shape[1] // 2, 1:]  # the window over the digit, ten digits
    agree = (middle.argmax(axis=1) == expected.numpy().argmax(axis=1)).mean()
    # chance is 0.1; not all, as the line model's first convolution skips every other pixel
    assert agree >= 0.5, agree


def test_the_export_gains_the_line_model(number_export):
    meta = json.loads((number_export / "metadata.json").read_text())
    assert meta["files"]["line_model"] == "line.json"
    assert meta["files"]["line_params"] == "line.pdiparams"
    for name in ("line.json", "line.pdiparams", "inference.json", "inference.pdiparams"):
        assert (number_export / name).is_file() and name in meta["sha256"]
    record = meta["line_model"]
    assert record["config"]["train"]["steps"] == 150 and record["training_seconds"] > 0
    assert record["read"]["numbers"] == 10 and record["read"]["handwritten_numbers"] == 10
    assert set(record["read"]) >= {"handwritten", "long", "typeset", "boxes"}
    fit = record["calibration"]
    assert set(fit) >= {"slope", "intercept", "doubt_floor", "min_prob"}
    assert set(fit) >= {"digit_min_prob", "box_min_prob"}
    assert np.isfinite([fit["slope"], fit["intercept"]]).all() and 0 <= fit["min_prob"] <= 1
    assert not list(number_export.parent.glob(".inference-*"))  # no staging folder left


def written(*indices: int) -> np.ndarray:
    """The MNIST test digits at `indices` side by side, three times their size, dark on a white
    page with a 30-px margin: (H, W) float32 gray levels."""
    images = read_mnist(DATA, "test")[0]
    ink = np.hstack([images[k] / 255.0 for k in indices])
    return (255.0 - 255.0 * np.pad(np.kron(ink, np.ones((3, 3))), 30)).astype(np.float32)


def test_the_reader_answers_with_the_fitted_probability(number_export):
    """A number's prob is the logistic fitted at the check, in the doubt of its digits' joint
    probability; sure from the fitted threshold on, unless it has LONG digits or more or is not
    clear to both models (a digit seen but not read, a cut the digit model doubts)."""
    reader = NumberReader(number_export)
    result = reader.read(written(0, 1, 2))
    reading = result["reading"]
    assert result["number"] == "".join(str(d) for d in reading.digits)
    fit = reader.calibration
    floor = fit["doubt_floor"]
    log_p = sum(np.log(p) for p in reading.probs) + np.log(reading.share)
    doubt = np.log(floor - log_p) if reading.probs else np.log(100)
    expected = 1 / (1 + np.exp(-(fit["slope"] * doubt + fit["intercept"])))
    assert result["prob"] == pytest.approx(expected, abs=1e-4)
    short = len(reading.digits) < LONG
    assert result["sure"] == (short and expected >= fit["min_prob"] and reading.clear)


def read_as(reader, monkeypatch, length: int, verdict: float = 1.0) -> dict:
    """The reader's answer when its models read `length` 7s, each with probability 1, the
    digit model's least top probability on a cut being `verdict`."""
    page = reading.Page(np.full((40, 40), 255.0, np.float32))
    strip = np.zeros((HEIGHT, 40), np.float32)
    boxes = [[0, 0, 1, 1]] * length
    found = reading.Reading([7] * length, [1.0] * length, boxes, [], page, strip, verdict=verdict)
    monkeypatch.setattr(reader, "reading", lambda gray: found)
    return reader.read(np.zeros((40, 40), np.float32))


def test_a_long_number_is_never_sure(number_export, monkeypatch):
    """However sure each digit: the checks' long numbers could not be held to 1% wrong."""
    reader = NumberReader(number_export)
    reader.calibration = reader.calibration | {"min_prob": 0.0}  # anything else would be sure
    assert read_as(reader, monkeypatch, LONG - 1)["sure"]
    assert not read_as(reader, monkeypatch, LONG)["sure"]


def test_a_number_is_never_sure_when_the_digit_model_doubts_a_cut(number_export, monkeypatch):
    """The verdict is the least of the digit model's top probabilities on the cuts; below
    VERDICT the number is not sure, however likely its reading."""
    reader = NumberReader(number_export)
    found = reader.reading(written(0, 1, 2))
    tops = reader.digit_model.digit_probabilities(found.cuts).max(axis=1)
    assert len(tops) == 3 and found.verdict == pytest.approx(tops.min())
    reader.calibration = reader.calibration | {"min_prob": 0.0}
    assert read_as(reader, monkeypatch, 3, verdict=VERDICT)["sure"]
    assert not read_as(reader, monkeypatch, 3, verdict=VERDICT - 0.01)["sure"]


def form_of_four() -> np.ndarray:
    """Four MNIST test digits written one a box in a form, as gray levels."""
    images = read_mnist(DATA, "test")[0]
    page = pages.handwritten("boxes", list(images[:4]), np.random.default_rng(3))
    return cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)


def test_a_forms_digits_are_read_by_both_models(number_export, monkeypatch):
    """In a form, each box's digit is the likeliest under the digit model's verdict times the
    line model's reading over that box's frame: with the digit model undecided, the line
    model's 3 over the second frame's steps, a stronger 7 at the steps either side of them (the
    first and third frames' last and first) and 5 elsewhere decide."""
    reader = NumberReader(number_export)
    gray = form_of_four()

    def line_logits(pixels):
        logits = np.zeros((pixels.shape[1] // STRIDE, 11), np.float32)
        logits[:, 6] = 5.0  # a 5 everywhere ...
        logits[FRAME_STEPS + 1 : 2 * FRAME_STEPS + 1, 4] = 10.0  # ... but a 3 over the second box
        logits[[FRAME_STEPS, 2 * FRAME_STEPS + 1], 8] = 12.0  # a 7 at the steps either side
        return logits

    monkeypatch.setattr(reader, "logits", line_logits)
    monkeypatch.setattr(
        reader.digit_model, "digit_probabilities", lambda cuts: np.full((len(cuts), 10), 0.1)
    )
    result = reader.read(gray)
    assert result["reading"].strip is None
    assert result["number"] == "7375"


def test_a_forms_number_is_sure_from_the_box_threshold(number_export, monkeypatch):
    """Read box by box, a number's prob is its digits' product, sure from the threshold the
    check chose on boxed numbers; a form with a box missed is read as a line instead."""
    reader = NumberReader(number_export)
    gray = form_of_four()
    result = reader.read(gray)
    assert result["reading"].strip is None and len(result["digits"]) == 4
    assert result["prob"] == pytest.approx(np.prod(result["reading"].probs), abs=1e-4)
    assert result["sure"] == (
        np.prod(result["reading"].probs) >= reader.calibration["box_min_prob"]
    )
    clean = reading.clean

    def last_box_missed(gray):
        page = clean(gray)
        return dataclasses.replace(page, cells=page.cells[:3])

    monkeypatch.setattr(reading, "clean", last_box_missed)
    assert reader.read(gray)["reading"].strip is not None


@pytest.mark.parametrize(
    "key, value",
    # a former check's floor; before the share; before the strip's views; before each digit's
    # probabilities came from all of them
    [("doubt_floor", 1e-4), ("beam_share", None), ("views", None), ("digit_views", None)],
)
def test_a_calibration_from_an_older_check_is_refused(number_export, tmp_path, key, value):
    copy = tmp_path / "inference"
    shutil.copytree(number_export, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["line_model"]["calibration"][key] = value
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="not calibrated as this version reads.*--check-only"):
        NumberReader(copy).read(np.full((60, 200), 230.0, np.float32))


def test_a_line_model_of_other_strips_is_refused_and_not_checked_again(number_export, tmp_path):
    """A line model that learned on strips of another width (an older version's) reads numbers
    wrong, and checking it again would not mend that: both say to train it again."""
    trained = json.loads((number_export / "metadata.json").read_text())["line_model"]
    assert trained["strip_widen"] == WIDEN
    copy = tmp_path / "inference"
    shutil.copytree(number_export, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    del meta["line_model"]["strip_widen"]
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="strips of another width.*train it again"):
        NumberReader(copy).read(np.full((60, 200), 230.0, np.float32))
    flags = [arg for o in number_overrides(copy) for arg in ("-o", o)]
    result = run_tool("tools/train_numbers.py", "--check-only", *flags)
    assert_one_line_error(result, "strips of another width", "train it again")
    assert json.loads((copy / "metadata.json").read_text()) == meta  # left as it was


def test_check_only_calibrates_an_older_export_again(number_export, tmp_path):
    """`--check-only`: the refused export's line model is checked and calibrated anew, its
    weights and training record kept, and it reads numbers again."""
    copy = tmp_path / "inference"
    shutil.copytree(number_export, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["line_model"]["calibration"]["digit_views"] = None  # as an older reader's check left it
    (copy / "metadata.json").write_text(json.dumps(meta))
    weights = (copy / "line.pdiparams").read_bytes()
    flags = [arg for o in number_overrides(copy, "check.numbers=12") for arg in ("-o", o)]
    result = run_tool("tools/train_numbers.py", "--check-only", *flags)
    assert result.returncode == 0, result.stderr
    assert f"checked {copy}/ again: it reads" in result.stdout and "batch" not in result.stdout
    assert (copy / "line.pdiparams").read_bytes() == weights
    record = json.loads((copy / "metadata.json").read_text())["line_model"]
    assert record["calibration"]["digit_views"] == 3
    assert record["training_seconds"] == meta["line_model"]["training_seconds"]
    assert record["config"]["check"]["numbers"] == 12
    assert NumberReader(copy).read(np.full((60, 200), 230.0, np.float32)) is None  # no ink


def test_check_only_without_a_line_model_is_one_line(exported):
    result = run_tool("tools/train_numbers.py", "--check-only", "-o", f"model_dir={exported}")
    assert_one_line_error(result, "has no line model to check", "train_numbers.py")


def test_each_digit_is_the_likeliest_under_both_models(number_export, monkeypatch):
    """The line model's probabilities and the digit model's verdict on each digit's cut multiply: a
    verdict sure of a 7 makes a digit a 7 unless the line model rules 7 out (the line model's
    likeliest reading alone weighed: below, the verdicts choose among readings too)."""
    reader = NumberReader(number_export)
    gray = written(1, 2)
    likeliest = reading.candidates
    monkeypatch.setattr(reading, "candidates", lambda steps, others: likeliest(steps, others)[:1])
    pixels = reader.reading(gray).strip.pixels
    readings = [softmax(reader.logits(p)) for p in (pixels, *views(pixels))]
    read, _ = line_reading(readings[0], readings[1:])
    assert read
    lines = digit_probs(readings, read)  # the line model's, from the strip and its views

    def sure_of(digit):
        def verdict(cuts):
            assert len(cuts) == len(read) and all(c.shape == (28, 28) for c in cuts)
            p = np.full((len(cuts), 10), 1e-6)
            p[:, digit] = 1.0
            return p / p.sum(axis=1, keepdims=True)

        return verdict

    for digit in (7, 3):
        monkeypatch.setattr(reader.digit_model, "digit_probabilities", sure_of(digit))
        read_so = reader.reading(gray)
        for steps, got, prob in zip(lines, read_so.digits, read_so.probs):
            both = steps * np.where(np.arange(10) == digit, 1.0, 1e-6)
            assert got == both.argmax() and prob == pytest.approx(both.max() / both.sum(), rel=1e-3)


def test_a_lone_digit_the_digit_model_doubts_is_read_by_both_models(number_export, monkeypatch):
    """A lone digit the digit model doubts (its likeliest under SECOND_LOOK) is read by the line
    model too, as a strip of one frame: the digit model leans to 1 (0.5) over 7 (0.4), the line
    model reads a 7, and the answer is 7, with the digit model's probability of it, unsure, the
    1 next. A digit the digit model is sure of is not read again."""
    recognizer = Recognizer(number_export)
    doubt = np.full(10, 0.1 / 8)
    doubt[[1, 7]] = 0.5, 0.4
    sure = np.full(10, 0.001 / 9)
    sure[1] = 0.999
    digit = np.zeros((28, 28), np.float32)  # what it looks like is the models' say, below
    monkeypatch.setattr(recognizer, "digit_probabilities", lambda digits, *_: doubt[None])

    def line_run(pixels):  # the line model: a 7 over the middle steps, blank elsewhere
        logits = np.zeros((1, pixels.shape[-1] // STRIDE, 11), np.float32)
        logits[0, :, 0] = 5.0
        logits[0, 4:8, 8] = 10.0
        return logits

    monkeypatch.setattr(recognizer.line, "run", line_run)
    probs, choices = recognizer.read_digits([digit])
    answer = recognizer.answer(probs[0], choices[0])
    assert (answer["digit"], answer["prob"], answer["sure"]) == (7, 0.4, False)
    assert [t["digit"] for t in answer["top"]][:2] == [7, 1]
    monkeypatch.setattr(recognizer, "digit_probabilities", lambda digits, *_: sure[None])
    monkeypatch.setattr(recognizer.line, "run", lambda pixels: pytest.fail("read again"))
    probs, choices = recognizer.read_digits([digit])
    assert recognizer.answer(probs[0], choices[0])["digit"] == 1


def test_of_two_close_readings_the_digit_model_decides(number_export, monkeypatch):
    """Over one piece of ink the line model likes one 7 a little better than two (in the strip
    and in its views alike); the digit model, sure of a 7 on each half, makes it two, and
    doubtful of them, leaves it one: each digit adds the log of its verdict and PER_DIGIT to a
    reading's score."""
    reader = NumberReader(number_export)
    gray = written(0)  # a 7: one piece of ink
    made = reader.reading(gray).strip
    ((lo, hi),) = made.digit_pieces()

    def steps(pixels):
        t = pixels.shape[1] // STRIDE
        first, last = (round(x / made.pixels.shape[1] * t) for x in (lo, hi))
        p = np.full((t, 11), 1e-4)
        p[:, 0] = 1.0
        p[first:last, 0], p[first:last, 8] = 1e-4, 1.0  # a 7 all along the piece
        p[(first + last) // 2, [0, 8]] = 0.45, 0.55  # or a blank between two 7s
        return np.log(p / p.sum(axis=1, keepdims=True))

    monkeypatch.setattr(reader, "logits", steps)
    for sure_of_7, count in ((0.99, 2), (0.3, 1)):
        verdict = np.full(10, (1 - sure_of_7) / 9)
        verdict[7] = sure_of_7
        tiled = lambda cuts, v=verdict: np.tile(v, (len(cuts), 1))  # noqa: E731
        monkeypatch.setattr(reader.digit_model, "digit_probabilities", tiled)
        assert reader.reading(gray).digits == [7] * count


def test_the_tool_trains_on_two_processes_with_progress(number_export, tmp_path):
    """As the quick start runs it: data-parallel, with progress lines and the time left."""
    import shutil

    copy = tmp_path / "inference"
    shutil.copytree(number_export, copy)
    overrides = number_overrides(copy, "train.processes=2", "train.steps=6")
    flags = [arg for o in overrides for arg in ("-o", o)]
    result = run_tool("tools/train_numbers.py", "-c", "configs/numbers/quick.yml", *flags)
    assert result.returncode == 0, result.stderr
    assert "line model: batch 6/6" in result.stdout and " left" in result.stdout
    assert "wrote" in result.stdout and "Traceback" not in result.stderr
    assert "SIGTERM" not in result.stderr  # the check's reading processes end on their own
    meta = json.loads((copy / "metadata.json").read_text())
    assert meta["line_model"]["config"]["train"]["processes"] == 2


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.step=3", "unknown key 'train.step'"),
        ("train.lr=-1", "'train.lr' must be > 0"),
        ("model.channels=[8, 16]", "'model.channels' must be three channel counts"),
        ("data.max_length=0", "'data.max_length' must be between data.min_length and 40"),
    ],
)
def test_config_mistakes_are_one_line(override, fragment):
    result = run_tool("tools/train_numbers.py", "-o", override)
    assert_one_line_error(result, fragment)


def test_a_run_without_validation_digits_is_one_line(exported):
    """The tutorial's recipe holds no digits out: the line model would have nothing but the test
    set to be checked on, so the tool refuses."""
    result = run_tool("tools/train_numbers.py", "-o", f"model_dir={exported}")
    assert_one_line_error(result, "held out no validation digits")


def test_starting_from_a_digit_model_of_another_kind_is_one_line(tmp_path):
    """LeNet's weights cannot start the line model: the tool says so and how to go on."""
    from conftest import small_config

    from mnist_paddle.train import engine
    from mnist_paddle.train.export import export

    cfg = small_config(tmp_path, "lenet.yml", "data.train_limit=600", "data.val_size=100",
                       "data.test_limit=100", "train.epochs=1")  # fmt: skip
    engine.train(cfg)
    out = export(cfg.run_dir / "final", out=tmp_path / "inference", data_root=str(DATA))
    result = run_tool("tools/train_numbers.py", "-o", f"model_dir={out}")
    assert_one_line_error(result, "needs a three_conv digit model", "from_digit_model=false")


def test_the_configs_load():
    for path in sorted((ROOT / "configs" / "numbers").glob("*.yml")):
        cfg = numbers.load_numbers_config(path)
        assert cfg.train.steps >= 1 and len(cfg.model.channels) == 3
