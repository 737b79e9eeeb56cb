"""The number model: the digit model taught an eleventh class, "not one digit", so that the
number reader (serving/numbers.py) can tell a whole digit from a piece of one or from two
touching digits.

The examples are what the reader itself sees: numbers composed from MNIST *training* digits
(the run's validation digits excluded) as a person writes them and photographed on paper, and
numbers typeset in the training fonts (synth.py); the reader's own candidate spans are cut from
each, and a span is labelled with its digit when it holds most of one digit's ink and little
else, else with NOT_A_DIGIT. Every pixel of a composed number knows whose digit it is (its
`owners`), so the labels need no guessing. The same composition, from the MNIST *test* digits and
the evaluation fonts, makes the evaluation set (bench/numbers.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle.digits import normalize
from mnist_paddle.errors import UserError
from mnist_paddle.fileio import DIR_MODE, write_json
from mnist_paddle.models import build_model
from mnist_paddle.serving import numbers as reader
from mnist_paddle.serving import segment
from mnist_paddle.serving.inference import METADATA, Recognizer, read_metadata
from mnist_paddle.train import calibrate, lines, synth
from mnist_paddle.train.checkpoint import load_network
from mnist_paddle.train.data import IMAGE_SPEC, LABEL_SPEC, mnist_files, read_idx
from mnist_paddle.train.export import add_model_files, check_logits, replace_dir
from mnist_paddle.train.fonts import training_fonts
from mnist_paddle.train.loader import ArrayDataset, split_validation

NOT_A_DIGIT = 10  # the eleventh class
NUMBER = "number"  # -> number.json + number.pdiparams in the export folder
# The recipe, chosen on numbers of validation digits (docs/numbers.md): examples from
# 7,000 handwritten and 2,000 typeset numbers and 30,000 plain MNIST digits, one epoch of Adam
# from 1e-3 down a cosine, from the digit model's weights.
HANDWRITTEN, TYPESET, PLAIN = 7000, 2000, 30000
EPOCHS, BATCH, LR = 1, 64, 1e-3
LOG = 500  # batches between progress lines
CHECK_NUMBERS = 500  # numbers of each kind read at the end, to check and calibrate on
MAX_SURE_ERROR = 0.01  # error rate allowed among the numbers read "sure"
CHECK_IMAGES = 256  # spans run through Paddle Inference and dygraph to compare
# a span is digit k when it holds this share of k's ink, and k's ink is this share of the span's
OWN, PURE = 0.75, 0.85
NEGATIVES = 0.2  # the share of the NOT_A_DIGIT spans kept: they outnumber the digits 4 to 1


def labelled_spans(page: np.ndarray, owners: np.ndarray, digits):
    """The reader's candidates for the number on `page` (segment.Candidates, or None without
    ink), and a label for each of its spans, in their order: its digit, or NOT_A_DIGIT (a piece
    of a digit, two digits, a digit and a piece)."""
    found = segment.candidates(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
    if found is None:
        return None, []
    height, width = (s - 2 * segment.PAD for s in found.ink.shape)  # the image the reader saw
    owners = cv2.resize(owners, (width, height), interpolation=cv2.INTER_NEAREST)
    whole = _owned(owners, segment.union(found.atoms), len(digits))  # each digit's ink
    labels = []
    for span in found.spans.values():
        owned = _owned(owners, span, len(digits))
        k = int(owned.argmax())
        one = owned[k] >= PURE * owned.sum() and owned[k] >= OWN * whole[k] > 0
        labels.append(int(digits[k]) if one else NOT_A_DIGIT)
    return found, labels


def _owned(owners: np.ndarray, part: segment.Segment, count: int) -> np.ndarray:
    """How many of `part`'s pixels each of the `count` digits owns."""
    x, y, w, h = part.box
    return np.bincount(owners[y : y + h, x : x + w][part.mask > 0], minlength=count + 1)[1:]


def examples(
    images: np.ndarray, labels: np.ndarray, handwritten_count: int, typeset_count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled spans of `handwritten_count` numbers composed from `images` (MNIST digits,
    uint8) and of `typeset_count` numbers in the training fonts: ((N, 28, 28) uint8, (N,) int64).
    Made in one process per core."""
    parts = synth.in_parallel(_examples, images, labels, handwritten_count, typeset_count, seed)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _examples(job) -> tuple[np.ndarray, np.ndarray]:
    images, labels, handwritten_count, typeset_count, seed = job
    rng = np.random.default_rng(seed)
    fonts = training_fonts()
    x, y = [], []
    for i in range(handwritten_count + typeset_count):
        digits, page, owners = synth.random_number(
            i < handwritten_count, images, labels, fonts, rng
        )
        found, span_labels = labelled_spans(page, owners, digits)
        kept = [
            (key, label)
            for key, label in zip(found.spans if found else (), span_labels)
            if label != NOT_A_DIGIT or rng.random() < NEGATIVES
        ]
        if kept:  # 28x28 images of the kept spans only: most of the others are dropped
            x += found.images([key for key, _ in kept])
            y += [label for _, label in kept]
    images = np.stack(x) if x else np.zeros((0, 28, 28), np.float32)
    return images.round().astype(np.uint8), np.array(y, np.int64)


def train_number_model(
    model_dir: str | Path = "output/inference",
    data_root: str = "data/mnist",
    handwritten_count: int = HANDWRITTEN,
    typeset_count: int = TYPESET,
    epochs: int = EPOCHS,
    check: int = CHECK_NUMBERS,
    line_numbers: int = lines.HANDWRITTEN + lines.TYPESET,
    line_epochs: int = lines.EPOCHS,
    verbose: bool = False,
) -> dict:
    """Teach the checkpoint behind the export in `model_dir` the eleventh class on spans of
    numbers made of its run's training digits, and add the result to the export (number.json,
    number.pdiparams); then read `check` numbers of its validation digits and `check` typeset
    ones with it, and calibrate a number's probability on them. Returns what it records in the
    export's metadata under "number_model".

    Unless `line_numbers` is 0, it also trains the line model (train/lines.py) on the strips of
    that many numbers (four in five handwritten) for `line_epochs`, and adds it (line.json,
    line.pdiparams) before the check; `verbose` passes on every line of the line model's
    data-parallel run, Paddle's own included."""
    model_dir = Path(model_dir)
    prefix = Path(read_metadata(model_dir)["checkpoint"])
    digits_net, checkpoint = load_network(prefix)
    val_size = checkpoint["config"]["data"].get("val_size", 0)
    if not val_size:
        raise UserError(
            f"{prefix}: its run held out no validation digits (data.val_size is 0): nothing to "
            "check the number model on without the test set; train with data.val_size > 0"
        )
    images, labels = (read_idx(path) for path in mnist_files(data_root, "train"))
    limit = checkpoint["config"]["data"].get("train_limit") or len(images)
    # the run's own split: its validation digits stay out of the examples
    (images, labels), (val_images, val_labels) = split_validation(
        images[:limit], labels[:limit], val_size
    )
    print(
        f"number model from {prefix}: the spans of {handwritten_count:,} handwritten and "
        f"{typeset_count:,} typeset numbers ...",
        flush=True,
    )
    spans, span_labels = examples(images, labels, handwritten_count, typeset_count, seed=0)
    plain = np.random.default_rng(0).choice(len(images), min(PLAIN, len(images)), replace=False)
    x = np.concatenate([spans, images[plain]])
    y = np.concatenate([span_labels, labels[plain].astype(np.int64)])
    print(
        f"training on {len(y):,} images for {epochs} epoch(s): {len(spans):,} spans "
        f"({int((span_labels == NOT_A_DIGIT).sum()):,} not one digit) and {len(plain):,} "
        "MNIST digits",
        flush=True,
    )
    norm = checkpoint["normalize"]
    paddle.seed(0)
    np.random.seed(0)  # the order hapi's sampler shuffles the examples in
    network = _eleven_classes(digits_net, checkpoint["model"])
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(LR, max(1, epochs * (len(y) // BATCH)))
    model = paddle.Model(network, inputs=[IMAGE_SPEC], labels=[LABEL_SPEC])
    model.prepare(
        paddle.optimizer.Adam(schedule, parameters=network.parameters()),
        paddle.nn.CrossEntropyLoss(),
        paddle.metric.Accuracy(),
    )
    # the schedule steps after every batch (hapi's default LRScheduler callback)
    train_set = ArrayDataset(normalize(x, norm["mean"], norm["std"])[:, None], y)
    model.fit(train_set, epochs=epochs, batch_size=BATCH, shuffle=True, verbose=2, log_freq=LOG)
    network.eval()
    record = {
        "checkpoint": str(prefix),
        "epochs": epochs,
        "examples": {
            "handwritten_numbers": handwritten_count,
            "typeset_numbers": typeset_count,
            "spans": len(spans),
            "plain_digits": len(plain),
        },
    }
    line_network = None
    if line_numbers:
        handwritten_lines = line_numbers * 4 // 5
        print(
            f"line model: the strips of {handwritten_lines:,} handwritten and "
            f"{line_numbers - handwritten_lines:,} typeset numbers ...",
            flush=True,
        )
        made, texts = lines.strips(
            images, labels, handwritten_lines, line_numbers - handwritten_lines, seed=1
        )
        line_network = lines.train_line_model(made, texts, line_epochs, verbose=verbose)
        record["line_model"] = {"numbers": len(made), "epochs": line_epochs}
    staging = _staged_export(model_dir, network, spans[:CHECK_IMAGES], norm)
    try:
        if line_network is not None:
            lines.add_line_model(staging, line_network, made)
        record["validation"] = _read_check(Recognizer(staging), val_images, val_labels, check)
        record["calibration"] = record["validation"].pop("calibration")
        write_json(staging / METADATA, read_metadata(staging) | {"number_model": record})
        replace_dir(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    v, c = record["validation"], record["calibration"]
    print(
        f"wrote {model_dir}/ ({NUMBER}.json, {NUMBER}.pdiparams"
        f"{f', {lines.LINE}.json, {lines.LINE}.pdiparams' if line_network else ''}): it reads "
        f"{v['handwritten']:.1%} "
        f"of {check} numbers of validation digits and {v['typeset']:.1%} of {check} typeset in "
        f"the training fonts whole; on them a number's probability is calibrated (ECE "
        f"{c['ece']:.1%}), sure at p >= {c['min_prob']:.3f} ({c['sure_share']:.1%} sure, "
        f"{c['sure_error']:.1%} of those wrong)"
    )
    return record


def _eleven_classes(digits_net: paddle.nn.Layer, model: dict) -> paddle.nn.Layer:
    """The digit network's architecture with one more output, "not one digit": every weight
    copied, the new output's weights zero (its logit starts at 0)."""
    network = build_model(model["name"], num_classes=NOT_A_DIGIT + 1, **model["args"])
    old = digits_net.state_dict()
    state = {}
    for name, value in network.state_dict().items():
        source = old[name].numpy()
        # the output layer: (in, 10) -> (in, 11), (10,) -> (11,)
        if source.shape != tuple(value.shape):
            source = np.pad(source, [(0, 0)] * (source.ndim - 1) + [(0, 1)])
        state[name] = paddle.to_tensor(source)
    network.set_state_dict(state)
    return network


def _staged_export(model_dir: Path, network: paddle.nn.Layer, spans: np.ndarray, norm) -> Path:
    """A copy of the export folder with the number model added (a hidden folder beside it),
    checked: Paddle Inference's logits on `spans` against the dygraph network's."""
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}-"))
    staging.chmod(DIR_MODE)
    try:
        for path in model_dir.iterdir():
            if path.is_file() and not path.name.startswith((f"{NUMBER}.", f"{lines.LINE}.")):
                shutil.copy2(path, staging / path.name)
        meta = read_metadata(staging)
        for key in ("line_model", "line_params"):  # a line model of an earlier run is gone
            meta["sha256"].pop(meta["files"].pop(key, None), None)
        write_json(staging / METADATA, meta)
        add_model_files(staging, NUMBER, network, IMAGE_SPEC)
        with paddle.no_grad():
            batch = normalize(spans.astype(np.float32), norm["mean"], norm["std"])[:, None]
            expected = network(paddle.to_tensor(batch)).numpy()
        got = Recognizer(staging).number_logits(list(spans.astype(np.float32)))
        check_logits(got, expected, "number model")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _read_check(recognizer: Recognizer, images, labels, count: int) -> dict:
    """Whole-number exact match on `count` handwritten numbers made of `images` (validation
    digits) and `count` typeset in the training fonts; and, fitted on them together, a number's
    probability of being right from the `reader.doubt` of its reading, and the threshold above
    which no more than MAX_SURE_ERROR of them are wrong."""
    rng = np.random.default_rng([0, 7])
    fonts = training_fonts()
    kinds, right, log_probs = [], [], []
    for kind in ("handwritten", "typeset"):
        for _ in range(count):
            digits, page, _ = synth.random_number(kind == "handwritten", images, labels, fonts, rng)
            gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32)
            reading = reader.read(recognizer, gray)
            kinds.append(kind)
            right.append(reading is not None and reading.digits == [int(d) for d in digits])
            log_probs.append(reading.log_prob if reading else -100.0)
    kinds, right = np.array(kinds), np.array(right)
    slope, intercept = calibrate.fit_logistic(reader.doubt(log_probs), right)
    prob = reader.fitted_prob({"slope": slope, "intercept": intercept}, log_probs)
    threshold = calibrate.sure_threshold(prob, right, MAX_SURE_ERROR)
    fit = {"slope": slope, "intercept": intercept, "min_prob": threshold}
    fit |= {"ece": calibrate.calibration_error(prob, right)}
    fit |= calibrate.risk_coverage(prob, right, threshold)
    shares = {kind: float(right[kinds == kind].mean()) for kind in ("handwritten", "typeset")}
    return shares | {"numbers": count, "calibration": fit}
