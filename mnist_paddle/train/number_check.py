"""The number stage's last steps: the line model added to a copy of the export and checked
there (`staged_export`), then the export's NumberReader reads numbers it never learned from, and
what its answers' probabilities mean is fitted on them (`check_reader`).

The numbers are made as the evaluation set makes its own (synth.py's renderers), from the run's
*validation* digits (held out of every training) and in the *validation* fonts (held out of
training, for choosing): handwritten numbers of 2-6 digits, long ones of 7-12, typeset ones of
2-12, and handwritten ones of 2-6 in a form's boxes. Never the test digits or the evaluation
fonts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle.fileio import DIR_MODE, write_json
from mnist_paddle.models.line import HEIGHT
from mnist_paddle.serving.inference import METADATA, read_metadata
from mnist_paddle.serving.numbers import (
    DOUBT_FLOOR,
    LONG,
    UNREAD,
    NumberReader,
    doubt,
    log_prob,
    number_prob,
)
from mnist_paddle.train import calibrate, pages, strips, synth
from mnist_paddle.train.export import add_model_files, check_logits
from mnist_paddle.train.fonts import VALIDATION_FONTS, debian_fonts, training_fonts
from mnist_paddle.train.rundir import Progress

# digits per number; "boxes": a form's boxes, a digit in each
KINDS = {"handwritten": (2, 6), "long": (7, 12), "typeset": (2, 12), "boxes": (2, 6)}
HANDWRITTEN = ("handwritten", "boxes")  # check.handwritten of each: their thresholds decide `sure`
SEED = 7
LINE = "line"  # -> line.json + line.pdiparams in the export folder
STRIP_SPEC = paddle.static.InputSpec([None, 1, HEIGHT, None], "float32", "strip")
CHECK_LENGTHS = (1, 4, 12)  # strips of these numbers run through Paddle Inference and dygraph


def staged_export(model_dir: Path, network, images, labels) -> Path:
    """A copy of the export folder with the line model `network` added (a hidden folder beside
    it), checked: Paddle Inference's logits on a few strips of `images` against the network's."""
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}-"))
    staging.chmod(DIR_MODE)
    try:
        for path in model_dir.iterdir():
            if path.is_file() and not path.name.startswith(f"{LINE}."):
                shutil.copy2(path, staging / path.name)
        meta = read_metadata(staging)
        meta.pop("line_model", None)  # an earlier line model's record goes with its files
        write_json(staging / METADATA, meta)
        add_model_files(staging, LINE, network, STRIP_SPEC)
        reader = NumberReader(staging)
        rng = np.random.default_rng(0)
        for length in CHECK_LENGTHS:
            batch = strips.batch(images, labels, training_fonts(), 1, length, 0, rng)
            with paddle.no_grad():
                expected = network(paddle.to_tensor(batch.pixels)).numpy()[0]
            check_logits(reader.logits(batch.pixels[0, 0]), expected, "line model")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def check_reader(model_dir: Path, images, labels, check) -> dict:
    """Read `check.numbers` numbers of each kind (KINDS; `check.handwritten` of the handwritten
    ones of 2-6 digits, on paper and in boxes) with the export in `model_dir`, made of
    `images` (validation digits, uint8, with their `labels`), typeset in the validation fonts, or
    written in a form's boxes. On the numbers the line model read, fit a number's probability of
    being right (a logistic in the doubt of its reading, serving/numbers.number_prob) and choose
    the thresholds above which at most `check.max_sure_error` of the numbers (counted
    `check.margin` standard errors high), and of the digits of numbers read at the right length,
    are wrong in each kind; a number in which the line model saw a digit it did not read, or read
    with LONG digits or more, is never sure. On those read box by box, the threshold for the
    product of the digits' probabilities.
    Returns {"read": {kind: share read whole}, "calibration": {...}}."""
    reader = NumberReader(model_dir)
    fonts = debian_fonts(VALIDATION_FONTS)
    rng = np.random.default_rng(SEED)
    kinds, lengths, right, boxed, line, log_probs, clear = [], [], [], [], [], [], []
    digit_kinds, digit_probs, digit_right = [], [], []
    counts = {kind: check.handwritten if kind in HANDWRITTEN else check.numbers for kind in KINDS}
    progress = Progress(sum(counts.values()), "  check: ", "number")
    for kind, (shortest, longest) in KINDS.items():
        for _ in range(counts[kind]):
            digits = [int(d) for d in rng.integers(0, 10, int(rng.integers(shortest, longest + 1)))]
            page = _page(kind, digits, images, labels, fonts, rng)
            reading = reader.reading(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
            read, probs = (reading.digits, reading.probs) if reading else ([], [])
            kinds.append(kind)
            lengths.append(len(read))
            right.append(read == digits)
            boxed.append(reading is not None and reading.strip is None)
            line.append(kind != "boxes" and not boxed[-1])  # read by the line model
            log_probs.append(log_prob(probs))
            clear.append(reading is not None and reading.unread < UNREAD)
            if len(read) == len(digits) and line[-1]:
                digit_kinds += [kind] * len(probs)
                digit_probs += probs
                digit_right += [d == truth for d, truth in zip(read, digits)]
            progress.step()
    kinds, lengths, right, boxed, line, log_probs, clear = map(
        np.array, (kinds, lengths, right, boxed, line, log_probs, clear)
    )
    slope, intercept = calibrate.fit_logistic(doubt(log_probs[line]), right[line])
    fit = {"slope": slope, "intercept": intercept, "doubt_floor": DOUBT_FLOOR}
    prob = number_prob(fit, log_probs[line])
    may_be_sure = np.where(clear[line], prob, 0.0)  # a digit seen but not read: never sure
    # the reader can tell how many digits it read, not whether they were handwritten
    long, hand = lengths[line] >= LONG, np.where(kinds[line] == "typeset", "typeset", "hand")
    fit["min_prob"] = _strictest(may_be_sure[~long], right[line][~long], hand[~long], check)
    fit["digit_min_prob"] = _strictest(
        np.array(digit_probs), np.array(digit_right, bool), np.array(digit_kinds), check
    )
    fit["box_min_prob"] = calibrate.sure_threshold(
        np.exp(log_probs[boxed]), right[boxed], check.max_sure_error, check.margin
    )
    fit["ece"] = calibrate.calibration_error(prob, right[line])
    above = np.where(long, -1.0, may_be_sure - fit["min_prob"])  # sure: >= 0; long: never
    fit |= calibrate.risk_coverage(above, right[line], 0.0)
    read = {kind: float(right[kinds == kind].mean()) for kind in KINDS}
    return {
        "read": read | {"numbers": check.numbers, "handwritten_numbers": check.handwritten},
        "calibration": fit,
    }


def _strictest(prob: np.ndarray, right: np.ndarray, kinds: np.ndarray, check) -> float:
    """The highest of the kinds' thresholds (calibrate.sure_threshold, with the check's margin):
    pooled, the typeset numbers, nearly all read right, would let unsure handwritten ones
    through."""
    return max(
        (
            calibrate.sure_threshold(
                prob[kinds == kind], right[kinds == kind], check.max_sure_error, check.margin
            )
            for kind in np.unique(kinds)
        ),
        default=1.0,  # none read: none sure
    )


def _page(kind: str, digits: list[int], images, labels, fonts, rng) -> np.ndarray:
    """A BGR page of the number `digits`: handwritten with validation digits of those labels
    (on plain paper or in a form's boxes), or typeset in one of `fonts`."""
    if kind == "typeset":
        text = "".join(str(d) for d in digits)
        return synth.typeset_number(text, fonts[rng.integers(len(fonts))], rng)[0]
    picks = [rng.choice(np.flatnonzero(labels == d)) for d in digits]
    if kind == "boxes":
        return pages.handwritten("boxes", list(images[picks]), rng)
    return synth.number_on_paper(list(images[picks]), rng)[0]
