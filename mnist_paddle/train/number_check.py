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

import multiprocessing
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
    DOUBT,
    LONG,
    NumberReader,
    doubt,
    log_prob,
    number_prob,
)
from mnist_paddle.train import calibrate, pages, strips, synth
from mnist_paddle.train.export import add_model_files, check_logits, replace_dir
from mnist_paddle.train.fonts import VALIDATION_FONTS, debian_fonts, training_fonts
from mnist_paddle.train.rundir import Progress, processes_for

# digits per number; "boxes": a form's boxes, a digit in each
KINDS = {"handwritten": (2, 6), "long": (7, 12), "typeset": (2, 12), "boxes": (2, 6)}
SEED = 7
LINE = "line"  # -> line.json + line.pdiparams in the export folder
STRIP_SPEC = paddle.static.InputSpec([None, 1, HEIGHT, None], "float32", "strip")
CHECK_LENGTHS = (1, 4, 12)  # strips of these numbers run through Paddle Inference and dygraph


def staged_copy(model_dir: Path, line_model: bool = False) -> Path:
    """A copy of the export folder (a hidden folder beside it), with its line model's files when
    `line_model`, without the line model's record (its check): the copy's NumberReader reads
    uncalibrated, as the check needs."""
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}-"))
    staging.chmod(DIR_MODE)
    try:
        for path in model_dir.iterdir():
            if path.is_file() and (line_model or not path.name.startswith(f"{LINE}.")):
                shutil.copy2(path, staging / path.name)
        meta = read_metadata(staging)
        meta.pop("line_model", None)
        write_json(staging / METADATA, meta)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def staged_export(model_dir: Path, network, images, labels) -> Path:
    """A copy of the export folder with the line model `network` added in place of any earlier
    one (`staged_copy`), checked: Paddle Inference's logits on a few strips of `images` against
    the network's."""
    staging = staged_copy(model_dir)
    try:
        add_model_files(staging, LINE, network, STRIP_SPEC)
        reader = NumberReader(staging)
        rng = np.random.default_rng(0)
        for length in CHECK_LENGTHS:
            batch = strips.batch(images, labels, training_fonts(), 1, length, 0, 0, rng)
            with paddle.no_grad():
                expected = network(paddle.to_tensor(batch.pixels)).numpy()[0]
            check_logits(reader.logits(batch.pixels[0, 0]), expected, "line model")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def install_checked(staging: Path, model_dir: Path, inputs, cfg, record: dict) -> dict:
    """Check the line model in the staged export `staging` as `cfg.check` says (`check_reader`, on
    the validation digits of `inputs`), add the check to `record` in the export's metadata, and
    put `staging` in `model_dir`'s place. Returns the record."""
    # the check reads on the CPU: one process per core, not per GPU, unless the config says
    processes = processes_for(cfg.train.processes, "cpu")
    try:
        images, labels = inputs.val_images, inputs.val_labels
        record = record | check_reader(staging, images, labels, cfg.check, processes)
        meta = read_metadata(staging)
        write_json(staging / METADATA, meta | {"line_model": record})
        replace_dir(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def summary(record: dict, check) -> str:
    """What the check of `record` read, in one sentence."""
    read, fit = record["read"], record["calibration"]
    return (
        f"it reads {read['handwritten']:.1%} of {check.handwritten:,} numbers of validation "
        f"digits, {read['long']:.1%} of {check.numbers:,} long ones (7-12 digits), "
        f"{read['typeset']:.1%} typeset in the validation fonts and {read['boxes']:.1%} written "
        f"in a form's boxes, whole; sure at p >= {fit['min_prob']:.3f} ({fit['sure_share']:.1%} "
        f"sure, {fit['sure_error']:.1%} of those wrong)"
    )


def check_reader(model_dir: Path, images, labels, check, processes: int = 1) -> dict:
    """Read `check.numbers` numbers of each kind (KINDS; `check.handwritten` of the handwritten
    ones of 2-6 digits, `check.boxes` of those in a form's boxes) with the export in
    `model_dir`, made of `images` (validation digits, uint8, with their `labels`: check_numbers)
    or typeset in the validation fonts, in `processes` processes. On the numbers the line model
    read, fit a number's probability of being right (a logistic in the doubt of its reading,
    serving/numbers.number_prob) and choose the thresholds above which at most
    `check.max_sure_error` of the numbers (counted `check.margin` standard errors high), and of
    the digits of numbers read at the right length, are wrong in each kind; a number read with
    LONG digits or more, or not clear to both models (serving/numbers.Reading.clear), is never
    sure. On those read box by box, the threshold for the product of the digits' probabilities.
    Returns {"read": {kind: share read whole}, "calibration": {...}}."""
    numbers = check_numbers(check, labels)
    results = _read_all(model_dir, images, numbers, processes)
    kinds, lengths, right, boxed, line, log_probs, clear = [], [], [], [], [], [], []
    digit_kinds, digit_probs, digit_right = [], [], []
    for (kind, digits, _), (read, probs, share, in_boxes, is_clear) in zip(numbers, results):
        kinds.append(kind)
        lengths.append(len(read))
        right.append(read == digits)
        boxed.append(in_boxes)
        line.append(kind != "boxes" and not in_boxes)  # read by the line model
        log_probs.append(log_prob(probs, share))
        clear.append(is_clear)
        if len(read) == len(digits) and line[-1]:
            digit_kinds += [kind] * len(probs)
            digit_probs += probs
            digit_right += [d == truth for d, truth in zip(read, digits)]
    kinds, lengths, right, boxed, line, log_probs, clear = map(
        np.array, (kinds, lengths, right, boxed, line, log_probs, clear)
    )
    slope, intercept = calibrate.fit_logistic(doubt(log_probs[line]), right[line])
    fit = {"slope": slope, "intercept": intercept} | DOUBT
    prob = number_prob(fit, log_probs[line])
    may_be_sure = np.where(clear[line], prob, 0.0)  # not Reading.clear: never sure
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
        "read": read
        | {
            "numbers": check.numbers,
            "handwritten_numbers": check.handwritten,
            "boxed_numbers": check.boxes,
        },
        "calibration": fit,
    }


def check_numbers(check, labels: np.ndarray) -> list[tuple[str, list[int], list[int]]]:
    """The check's numbers, (kind, digits, picks): `picks` are the indices of the validation
    digits (of `labels`) that write them by hand, drawn as the evaluation set draws its own, from
    all the digits (so a 1 a little more often than a 5, as in MNIST); typeset digits are even."""
    rng = np.random.default_rng(SEED)
    numbers = []
    for kind, (shortest, longest) in KINDS.items():
        count = {"handwritten": check.handwritten, "boxes": check.boxes}.get(kind, check.numbers)
        for _ in range(count):
            length = int(rng.integers(shortest, longest + 1))
            if kind == "typeset":
                numbers.append((kind, [int(d) for d in rng.integers(0, 10, length)], []))
            else:
                picks = [int(k) for k in rng.choice(len(labels), length)]
                numbers.append((kind, [int(labels[k]) for k in picks], picks))
    return numbers


def _read_all(model_dir: Path, images, numbers: list, processes: int) -> list[tuple]:
    """`_read` for each of `numbers`, in order, in `processes` processes, with progress."""
    progress = Progress(len(numbers), "  check: ", "number")
    results = []
    if processes == 1:
        _start_reading(model_dir, images)
        for item in enumerate(numbers):
            results.append(_read(item))
            progress.step()
        return results
    # fresh interpreters: Paddle's state does not survive a fork
    pool = multiprocessing.get_context("spawn").Pool(processes, _start_reading, (model_dir, images))
    try:
        for result in pool.imap(_read, enumerate(numbers), chunksize=20):
            results.append(result)
            progress.step()
        pool.close()  # the workers end on their own (terminated, Paddle logs the signal)
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return results


_WORKER: dict = {}  # what a reading process reads with (_start_reading)


def _start_reading(model_dir: Path, images) -> None:
    fonts = debian_fonts(VALIDATION_FONTS)
    _WORKER.update(reader=NumberReader(model_dir), images=images, fonts=fonts)


def _read(item: tuple[int, tuple[str, list[int], list[int]]]) -> tuple:
    """Number `i` of the check, (kind, digits, picks), made into a page and read: (digits read,
    their probabilities, the beam's share of them, read box by box, Reading.clear)."""
    i, (kind, digits, picks) = item
    w = _WORKER
    rng = np.random.default_rng([SEED, i])
    page = _page(kind, digits, w["images"][picks], w["fonts"], rng)
    reading = w["reader"].reading(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
    if reading is None:
        return [], [], 1.0, False, False
    return reading.digits, reading.probs, reading.share, reading.strip is None, reading.clear


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


def _page(kind: str, digits: list[int], written, fonts, rng) -> np.ndarray:
    """A BGR page of the number `digits`: handwritten, the MNIST digits `written` (on paper or
    in a form's boxes), or typeset in one of `fonts`."""
    if kind == "typeset":
        text = "".join(str(d) for d in digits)
        return synth.typeset_number(text, fonts[rng.integers(len(fonts))], rng)[0]
    if kind == "boxes":
        return pages.handwritten("boxes", list(written), rng)
    return synth.number_on_paper(list(written), rng)[0]
