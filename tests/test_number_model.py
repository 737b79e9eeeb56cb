"""The number model (train/numbers.py, tools/train_numbers.py): its examples and their labels,
the eleventh class, the export it joins, and the reader with it."""

import json
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from conftest import DATA, assert_one_line_error, run_tool, small_config, start_server

from mnist_paddle.serving import numbers as reader
from mnist_paddle.serving import segment
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train import fonts, numbers, synth
from mnist_paddle.train.data import mnist_files, read_idx


@pytest.fixture(scope="module")
def mnist():
    return tuple(read_idx(p) for p in mnist_files(DATA, "train"))


def test_every_pixel_of_a_composed_number_knows_its_digit(mnist):
    images, _ = mnist
    rng = np.random.default_rng(0)
    for _ in range(20):
        digits = list(images[rng.integers(0, 1000, int(rng.integers(2, 7)))])
        ink, owners = synth.handwritten_number(digits, rng)
        assert ink.shape == owners.shape
        assert set(np.unique(owners)) == set(range(len(digits) + 1))  # background and each digit
        assert (owners[ink > 0.3] > 0).all()  # no stroke without its digit
        # digits are placed left to right
        centers = [np.nonzero(owners == k + 1)[1].mean() for k in range(len(digits))]
        assert centers == sorted(centers)


def test_typeset_numbers_know_their_digits():
    rng = np.random.default_rng(1)
    font = fonts.training_fonts()[0]
    page, owners = synth.typeset_number("2026", font, rng)
    assert page.shape[:2] == owners.shape
    assert set(np.unique(owners)) == {0, 1, 2, 3, 4}
    centers = [np.nonzero(owners == k)[1].mean() for k in (1, 2, 3, 4)]
    assert centers == sorted(centers)


def test_spans_are_labelled_whole_digits_or_not_a_digit(mnist):
    """Three digits well apart: the spans that are one digit get it; the spans that join two
    digits are 'not one digit'."""
    images, labels = mnist
    picks = [1, 3, 5]  # 0, 1, 2 in MNIST's first images: a wide, a narrow and a curly digit
    digits = [images[k] for k in picks]
    crops = [d[:, np.flatnonzero(d.max(axis=0) > 25)] for d in digits]
    gap = np.zeros((28, 12), np.uint8)
    ink = np.hstack([gap, crops[0], gap, crops[1], gap, crops[2], gap]).astype(np.float32) / 255
    owners = np.zeros(ink.shape, np.uint8)
    x = 12
    for k, crop in enumerate(crops):
        owners[:, x : x + crop.shape[1]][crop > 12] = k + 1
        x += crop.shape[1] + 12
    big = lambda a, f: cv2.resize(a, None, fx=3, fy=3, interpolation=f)  # noqa: E731
    page = (255 - 255 * np.pad(big(ink, cv2.INTER_CUBIC).clip(0, 1), 20)).astype(np.uint8)
    page = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    owners = np.pad(big(owners, cv2.INTER_NEAREST), 20)
    found, span_labels = numbers.labelled_spans(page, owners, labels[picks])
    reader_sees = segment.candidates(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
    assert list(found.spans) == list(reader_sees.spans)  # the reader's own candidates
    assert len(found.images()) == len(span_labels) == len(found.spans)
    columns = [np.nonzero(owners == k + 1)[1] for k in range(3)]  # each digit's columns
    whole = {int(labels[picks[k]]): (c.min(), c.max() + 1) for k, c in enumerate(columns)}
    found_whole = set()
    for span, label in zip(found.spans.values(), span_labels):
        x, _, w, _ = span.box
        inside = [d for d, (lo, hi) in whole.items() if lo - 3 <= x and x + w <= hi + 3]
        if label == numbers.NOT_A_DIGIT:
            continue
        assert inside == [label]  # a labelled span lies within its digit
        if abs(x - whole[label][0]) <= 3 and abs(x + w - whole[label][1]) <= 3:
            found_whole.add(label)
    assert found_whole == set(whole)  # each digit, whole, is among the spans with its label
    joined = [
        label
        for span, label in zip(found.spans.values(), span_labels)
        if sum(span.box[0] < hi and lo < span.box[0] + span.box[2] for lo, hi in whole.values()) > 1
    ]
    assert joined and all(label == numbers.NOT_A_DIGIT for label in joined)


def test_the_eleventh_class_starts_from_the_digit_model(exported):
    """The number network gives the digit network's logits for the ten digits, 0 for the new
    class, before it is trained."""
    import paddle

    from mnist_paddle.train.checkpoint import load_network

    meta = json.loads((exported / "metadata.json").read_text())
    digits_net, checkpoint = load_network(Path(meta["checkpoint"]))
    network = numbers._eleven_classes(digits_net, checkpoint["model"])
    network.eval()
    x = paddle.randn([8, 1, 28, 28])
    with paddle.no_grad():
        old, new = digits_net(x).numpy(), network(x).numpy()
    assert new.shape == (8, 11)
    np.testing.assert_allclose(new[:, :10], old, atol=1e-5)
    np.testing.assert_allclose(new[:, 10], 0, atol=1e-6)


@pytest.fixture(scope="module")
def number_export(tmp_path_factory):
    """A LeNet trained 1 epoch on 3,000 images with 500 held out, exported, and taught
    numbers from 60 handwritten and 10 typeset ones, and a line model from 40."""
    from mnist_paddle.train import engine
    from mnist_paddle.train.export import export

    cfg = small_config(
        tmp_path_factory.mktemp("output"),
        "lenet.yml",
        "data.train_limit=3000",
        "data.val_size=500",
        "data.test_limit=200",
        "train.epochs=1",
    )
    engine.train(cfg)
    out = export(cfg.run_dir / "final", out=Path(cfg.output_dir) / "inference", data_root=str(DATA))
    numbers.train_number_model(
        out,
        str(DATA),
        handwritten_count=60,
        typeset_count=10,
        epochs=1,
        check=5,
        line_numbers=40,
        line_epochs=1,
    )
    return out


def test_the_export_gains_the_number_model(number_export):
    meta = json.loads((number_export / "metadata.json").read_text())
    assert meta["files"]["number_model"] == "number.json"
    assert meta["files"]["number_params"] == "number.pdiparams"
    for name in ("number.json", "number.pdiparams", "inference.json", "inference.pdiparams"):
        assert (number_export / name).is_file() and name in meta["sha256"]
    record = meta["number_model"]
    assert record["checkpoint"] == meta["checkpoint"]
    assert record["examples"]["handwritten_numbers"] == 60 and record["examples"]["spans"] > 60
    assert record["validation"]["numbers"] == 5
    assert 0 <= record["validation"]["handwritten"] <= 1
    fit = record["calibration"]  # fitted on those 5 + 5 numbers
    assert set(fit) >= {"slope", "intercept", "min_prob", "ece", "sure_share", "sure_error"}
    assert np.isfinite([fit["slope"], fit["intercept"]]).all() and 0 <= fit["min_prob"] <= 1
    assert not list(number_export.parent.glob(".inference-*"))  # no staging folder left
    recognizer = Recognizer(number_export)
    assert recognizer.has_number_model
    digits = [np.zeros((28, 28), np.float32), np.full((28, 28), 255.0, np.float32)]
    assert recognizer.number_logits(digits).shape == (2, 11)


def test_the_export_gains_the_line_model(number_export, tmp_path):
    """line.json and line.pdiparams join the export, recorded and checked; it reads strips of
    any width. Taught again without one (--lines 0), the export keeps no line model."""
    meta = json.loads((number_export / "metadata.json").read_text())
    assert meta["files"]["line_model"] == "line.json"
    assert meta["files"]["line_params"] == "line.pdiparams"
    for name in ("line.json", "line.pdiparams"):
        assert (number_export / name).is_file() and name in meta["sha256"]
    assert meta["number_model"]["line_model"] == {"numbers": 40, "epochs": 1}
    recognizer = Recognizer(number_export)
    assert recognizer.has_line_model
    for width in (32, 100, 244):
        strip = np.random.default_rng(width).random((32, width)).astype(np.float32)
        strip = np.pad(strip, ((0, 0), (0, -width % 4)))
        assert recognizer.line_logits(strip).shape == (11, strip.shape[1] // 4)

    again = tmp_path / "inference"
    shutil.copytree(number_export, again)
    numbers.train_number_model(
        again, str(DATA), handwritten_count=20, typeset_count=0, check=3, line_numbers=0
    )
    meta = json.loads((again / "metadata.json").read_text())
    assert "line_model" not in meta["files"] and "line.json" not in meta["sha256"]
    assert not (again / "line.json").exists() and not Recognizer(again).has_line_model


def test_the_reader_chooses_with_the_number_and_line_models(number_export):
    """The spans are scored by the number model when the export has one, in one batch, and the
    line model reads the number's strip once; the digits reported are the reading chosen, with
    the digit model's calibrated probability of them."""
    recognizer = Recognizer(number_export)
    calls = {"number": [], "line": []}
    number_logits, line_logits = recognizer.number_logits, recognizer.line_logits

    def number_spy(images):
        calls["number"].append(len(images))
        return number_logits(images)

    def line_spy(strip):
        calls["line"].append(strip.shape)
        return line_logits(strip)

    recognizer.number_logits, recognizer.line_logits = number_spy, line_spy
    result = reader.read_number(recognizer, mnist_number(0, 1, 2))
    assert len(calls["number"]) == 1 and calls["number"][0] >= len(result["digits"]) >= 1
    assert len(calls["line"]) == 1 and calls["line"][0][0] == 32
    assert result["number"] == "".join(str(d["digit"]) for d in result["digits"])
    for d in result["digits"]:
        assert 0 <= d["digit"] <= 9 and 0 <= d["prob"] <= 1
        assert d["sure"] == (d["prob"] >= recognizer.min_prob)


def mnist_number(*indices: int) -> np.ndarray:
    """MNIST test digits side by side, 3x, dark on white: a gray page of a number."""
    images = read_idx(mnist_files(DATA, "test")[0])
    ink = np.hstack([images[k].astype(np.float32) / 255 for k in indices])
    return 255.0 - 255.0 * np.pad(cv2.resize(ink, None, fx=3, fy=3), 30).clip(0, 1)


def test_a_numbers_probability_is_the_fitted_one(number_export, tmp_path):
    """With the export's calibration, a number's prob is sigmoid(slope * doubt + intercept), the
    doubt from the number model's log-probability of the reading, and it is sure from the number
    threshold on; an export without one
    (made before it existed) gives the product of the digits' probabilities, sure when all are."""
    gray = mnist_number(3, 4)
    fitted = Recognizer(number_export)
    fit = fitted.number_calibration
    reading = reader.read(fitted, gray)
    assert reading.log_prob < 0 and len(reading.digits) == len(reading.boxes) >= 1
    result = reader.read_number(fitted, gray)
    doubt = np.log(reader.DOUBT_FLOOR - reading.log_prob)
    expected = 1 / (1 + np.exp(-(fit["slope"] * doubt + fit["intercept"])))
    assert result["prob"] == pytest.approx(expected, abs=1e-4)
    assert result["sure"] == (expected >= fit["min_prob"])
    assert result["number"] == "".join(map(str, reading.digits))

    older = tmp_path / "older"
    shutil.copytree(number_export, older)
    meta = json.loads((older / "metadata.json").read_text())
    del meta["number_model"]["calibration"]
    (older / "metadata.json").write_text(json.dumps(meta))
    result = reader.read_number(Recognizer(older), gray)
    probs = [d["prob"] for d in result["digits"]]
    assert result["prob"] == pytest.approx(np.prod(probs), abs=1e-3)
    assert result["sure"] == all(d["sure"] for d in result["digits"])


def test_not_a_digit_makes_the_reading_split_a_span():
    """Two atoms: read as one digit when the joined span is a confident digit, as two when the
    number model calls the joined span 'not one digit'."""
    atom = segment.Segment((0, 0, 10, 20), np.ones((20, 10), np.uint8))
    right = segment.Segment((10, 0, 10, 20), np.ones((20, 10), np.uint8))
    both = segment.Segment((0, 0, 20, 20), np.ones((20, 20), np.uint8))
    found = segment.Candidates(np.zeros((24, 24)), [atom, right], {}, 20.0, 1.0)
    found.spans = {(0, 1): atom, (1, 2): right, (0, 2): both}

    def probs(joined_is_a_digit: bool) -> dict:
        piece = np.full(11, 0.01)
        piece[1] = 0.9  # each half looks like a 1
        joined = np.full(11, 0.01)
        joined[4 if joined_is_a_digit else numbers.NOT_A_DIGIT] = 0.99
        return {(0, 1): piece, (1, 2): piece, (0, 2): joined}

    for joined_is_a_digit, spans in ((True, [(0, 2)]), (False, [(0, 1), (1, 2)])):
        scores = reader._span_scores(found, probs(joined_is_a_digit))
        assert reader._spans_for(found, scores)[1] == spans


def test_a_damaged_number_model_is_one_line(number_export, tmp_path):
    broken = tmp_path / "inference"
    shutil.copytree(number_export, broken)
    params = broken / "number.pdiparams"
    params.write_bytes(params.read_bytes()[:100])
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), np.pad(np.full((40, 20), 0, np.uint8), 30, constant_values=255))
    result = run_tool("deploy/infer.py", "--model-dir", str(broken), "--number", str(image))
    assert_one_line_error(result, "number.pdiparams", "damaged")


def test_a_run_without_validation_digits_is_one_line(exported):
    """The tutorial's recipe holds no digits out: the number model would have nothing but the
    test set to be checked on, so the tool refuses."""
    result = run_tool("tools/train_numbers.py", "--model", str(exported), "--handwritten", "5")
    assert_one_line_error(result, "held out no validation digits")


def test_the_service_and_infer_read_with_the_number_model(number_export, tmp_path):
    gray = mnist_number(3, 4)
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), gray.astype(np.uint8))
    expected = reader.read_number(Recognizer(number_export), gray.astype(np.uint8).astype(float))
    del expected["images"]
    result = run_tool(
        "deploy/infer.py", "--model-dir", str(number_export), "--number", "--json", str(image)
    )
    assert result.returncode == 0 and "note:" not in result.stderr, result.stderr
    assert json.loads(result.stdout) == {"path": str(image), **expected}
    process, url = start_server(number_export)
    try:
        health = httpx.get(f"{url}/health").json()
        answer = httpx.post(
            f"{url}/predict", files={"image": ("n.png", image.read_bytes())}, data={"number": "1"}
        ).json()["results"][0]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert health["number_model"] is True and health["line_model"] is True
    assert answer["number"] == expected["number"] and answer["digits"] == expected["digits"]


def test_infer_says_when_the_export_has_no_number_model(exported, tmp_path):
    image = tmp_path / "n.png"
    cv2.imwrite(str(image), np.pad(np.zeros((40, 20), np.uint8), 30, constant_values=255))
    result = run_tool("deploy/infer.py", "--model-dir", str(exported), "--number", str(image))
    assert result.returncode == 0, result.stderr
    assert "no number model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
