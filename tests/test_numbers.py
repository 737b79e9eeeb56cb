"""Whole numbers (serving/numbers.py, deploy/infer.py --number, the service's number mode)."""

import json

import cv2
import httpx
import numpy as np
import pytest
from conftest import DATA, assert_one_line_error, run_tool, start_server

from mnist_paddle.bench.numbers import number_on_paper, scores
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.serving.numbers import read_number
from mnist_paddle.train.data import mnist_files, read_idx


@pytest.fixture(scope="module")
def recognizer(exported):
    return Recognizer(exported)


@pytest.fixture(scope="module")
def clear_digits(recognizer):
    """One MNIST test image per digit that the test model reads surely, as digit -> 28x28."""
    images, labels = (read_idx(p) for p in mnist_files(DATA, "test"))
    chosen = {}
    probs = recognizer.digit_probabilities([im.astype(np.float32) for im in images[:1000]])
    for image, label, p in zip(images[:1000], labels[:1000], probs):
        if int(label) not in chosen and p.argmax() == label and p.max() > 0.95:
            chosen[int(label)] = image
    assert len(chosen) == 10
    return chosen


def page(ink: np.ndarray, scale: float = 3.0) -> np.ndarray:
    """Ink 0..1 as dark strokes on a white page, enlarged."""
    big = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return 255.0 - 255.0 * np.pad(big, 30)


def side_by_side(digits: list[np.ndarray], gap: int) -> np.ndarray:
    """28x28 digits cropped to their ink columns, `gap` pixels apart (negative: overlapping)."""
    crops = []
    for d in digits:
        ink = d.astype(np.float32) / 255
        cols = np.flatnonzero(ink.max(axis=0) > 0.1)
        crops.append(ink[:, cols[0] : cols[-1] + 1])
    width = sum(c.shape[1] for c in crops) + gap * (len(crops) - 1)
    canvas, x = np.zeros((28, width + 8), np.float32), 4
    for c in crops:
        region = canvas[:, x : x + c.shape[1]]
        np.maximum(region, c, out=region)
        x += c.shape[1] + gap
    return canvas


@pytest.mark.parametrize("number", ["2026", "07", "381", "945"])
def test_digits_well_apart(recognizer, clear_digits, number):
    ink = side_by_side([clear_digits[int(c)] for c in number], gap=6)
    result = read_number(recognizer, page(ink))
    assert result["number"] == number
    boxes = [d["box"] for d in result["digits"]]
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)  # left to right


@pytest.mark.parametrize("number", ["20", "35", "08"])
def test_touching_digits_are_split_by_recognition(recognizer, clear_digits, number):
    ink = side_by_side([clear_digits[int(c)] for c in number], gap=-2)
    middle = ink.shape[1] // 2
    ink[13:15, middle - 3 : middle + 3] = 1.0  # a joining stroke, as a hurried pen leaves
    count, _ = cv2.connectedComponents((ink > 0.3).astype(np.uint8))
    assert count - 1 == 1  # they do touch: one connected piece
    assert read_number(recognizer, page(ink))["number"] == number


def test_a_digit_in_pieces_stays_one_digit(recognizer, clear_digits):
    ink = side_by_side([clear_digits[5], clear_digits[4]], gap=8)
    five = ink[:, :18]
    rows = np.flatnonzero(five.max(axis=1) > 0.1)
    ink[rows[0] + 5 : rows[0] + 7, :18] = 0  # a gap below the 5's top stroke
    count, _ = cv2.connectedComponents((ink[:, :18] > 0.3).astype(np.uint8))
    assert count - 1 >= 2  # the 5 is in pieces now
    assert read_number(recognizer, page(ink))["number"] == "54"


def test_what_is_read_does_not_depend_on_the_calibration(exported):
    """The reading is chosen on the model's own probabilities; the export's temperature only
    changes the probabilities reported (a sharpening one made cutting a digit into confidently
    read pieces cheap)."""
    rng = np.random.default_rng(1)
    images = read_idx(mnist_files(DATA, "test")[0])
    numbers = [
        cv2.cvtColor(
            number_on_paper(list(images[rng.integers(0, 1000, 5)]), rng), cv2.COLOR_BGR2GRAY
        )
        for _ in range(60)
    ]
    readings = {}
    for temperature in (0.2, 1.0):
        recognizer = Recognizer(exported)
        recognizer.temperature = temperature
        readings[temperature] = [read_number(recognizer, gray) for gray in numbers]
    for sharp, raw in zip(readings[0.2], readings[1.0]):
        assert sharp["number"] == raw["number"]
        assert [d["box"] for d in sharp["digits"]] == [d["box"] for d in raw["digits"]]
        # the reported probabilities are the calibrated ones: sharper at the lower temperature
        assert all(s["prob"] >= r["prob"] for s, r in zip(sharp["digits"], raw["digits"]))
    assert any(s["prob"] > r["prob"] for s, r in zip(readings[0.2], readings[1.0]))


def test_no_ink_is_none(recognizer):
    assert read_number(recognizer, np.full((60, 200), 230.0)) is None


def test_scores_count_missing_extra_and_wrong_digits():
    result = scores(["2026", "07", "15"], ["2026", "7", "158"])
    assert result["exact_match"] == pytest.approx(1 / 3)
    # 1 missing digit + 1 extra digit against 8 true digits
    assert result["digit_accuracy"] == pytest.approx(1 - 2 / 8)
    assert result["wrong_length"] == 2


def test_infer_number_json_and_debug_dir(exported, clear_digits, tmp_path):
    image = tmp_path / "number.png"
    cv2.imwrite(str(image), page(side_by_side([clear_digits[0], clear_digits[7]], 6)))
    debug = tmp_path / "debug"
    result = run_tool(
        "deploy/infer.py",
        "--model-dir",
        str(exported),
        "--number",
        "--json",
        "--debug-dir",
        str(debug),
        str(image),
    )
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert set(row) == {"path", "number", "prob", "sure", "digits"}
    assert row["number"] == "07" and isinstance(row["number"], str)  # the leading zero stays
    assert [d["digit"] for d in row["digits"]] == [0, 7]
    for d in row["digits"]:
        assert set(d) == {"digit", "prob", "sure", "box"} and len(d["box"]) == 4
    assert row["prob"] == pytest.approx(np.prod([d["prob"] for d in row["digits"]]), abs=1e-3)
    written = sorted(p.name for p in debug.iterdir())
    assert written == ["0000_number_boxes.png", "0000_number_digit0.png", "0000_number_digit1.png"]
    plain = run_tool("deploy/infer.py", "--model-dir", str(exported), "--number", str(image))
    assert plain.stdout.startswith(f"{image}: 07")


def test_infer_number_on_a_blank_page_is_one_line(exported, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((50, 120), 255, np.uint8))
    result = run_tool("deploy/infer.py", "--model-dir", str(exported), "--number", str(blank))
    assert_one_line_error(result, "blank.png: no digit found", code=1)


def test_the_service_reads_numbers_in_json_and_forms(exported, clear_digits):
    png = cv2.imencode(".png", page(side_by_side([clear_digits[3], clear_digits[8]], 6)))[1]
    data = png.tobytes()
    process, url = start_server(exported)
    try:
        import base64

        as_json = httpx.post(
            f"{url}/predict", json={"image": base64.b64encode(data).decode(), "number": True}
        ).json()["results"][0]
        as_form = httpx.post(
            f"{url}/predict", files={"image": ("n.png", data)}, data={"number": "1"}
        ).json()["results"][0]
        single = httpx.post(f"{url}/predict", files={"image": ("n.png", data)}).json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert as_json == as_form and as_json["number"] == "38"
    assert [d["digit"] for d in as_json["digits"]] == [3, 8]
    assert "digit" in single["results"][0]  # without number mode: one digit, as before
