"""The line model (models/line.py): a small CRNN taught with CTC to read a whole number from its
strip of ink, without cutting it into digits. The number reader weighs its readings against the
cut-and-classify ones (serving/numbers.py).

It learns from the same kinds of numbers as the number model (train/numbers.py): composed from
the run's MNIST *training* digits (its validation digits excluded) on paper, and typeset in the
training fonts. Each strip is made by the reader's own code (segment.candidates, then
lines.line_image), so the model sees what the reader will show it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle.models.line import LINE_HEIGHT, STRIDE, LineReader
from mnist_paddle.serving import lines, segment
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train import synth
from mnist_paddle.train.export import add_model_files, check_logits

LINE = "line"  # -> line.json + line.pdiparams in the export folder
# The recipe: the first one tried, checked on numbers of validation digits (README, "Whole
# numbers", where a wider model is compared): 40,000 handwritten and 10,000 typeset numbers,
# 2 epochs of Adam, one-cycle up to 3e-3, batch 64.
HANDWRITTEN, TYPESET = 40000, 10000
EPOCHS, BATCH, LR = 2, 64, 3e-3
LOG = 200  # batches between progress lines
STRIP_SPEC = paddle.static.InputSpec([None, 1, LINE_HEIGHT, None], "float32", "strip")
CHECK_STRIPS = 8  # strips run through Paddle Inference and dygraph to compare


def strips(images, labels, handwritten_count: int, typeset_count: int, seed: int):
    """The strips of `handwritten_count` numbers composed from `images` (MNIST digits, uint8)
    and `typeset_count` typeset in the training fonts, with their numbers: ([(32, W) uint8],
    [str]). Made in one process per core."""
    parts = synth.in_parallel(_strips, images, labels, handwritten_count, typeset_count, seed)
    return [s for part, _ in parts for s in part], [t for _, part in parts for t in part]


def _strips(job):
    images, labels, handwritten_count, typeset_count, seed = job
    rng = np.random.default_rng(seed)
    fonts = synth.training_fonts()
    made, texts = [], []
    for i in range(handwritten_count + typeset_count):
        handwritten = i < handwritten_count
        digits, page, _ = synth.random_number(handwritten, images, labels, fonts, rng)
        found = segment.candidates(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
        if found is not None:
            made.append((lines.line_image(found) * 255).round().astype(np.uint8))
            texts.append("".join(str(d) for d in digits))
    return made, texts


def train_line_model(made: list[np.ndarray], texts: list[str], epochs: int = EPOCHS) -> LineReader:
    """A LineReader taught with CTC to read `texts` off the strips `made`. Each batch holds
    strips of about the same width (padded with blank ink to the widest)."""
    paddle.seed(0)
    rng = np.random.default_rng(0)
    widths = np.array([s.shape[1] for s in made])
    network = LineReader()
    steps = epochs * math.ceil(len(made) / BATCH)
    schedule = paddle.optimizer.lr.OneCycleLR(max_learning_rate=LR, total_steps=steps)
    optimizer = paddle.optimizer.Adam(schedule, parameters=network.parameters())
    ctc = paddle.nn.CTCLoss(blank=lines.BLANK)
    step = 0
    for epoch in range(1, epochs + 1):
        # batches of neighbours in width (jittered, so that they differ between epochs)
        order = np.argsort(widths + rng.uniform(0, 8, len(widths)))
        batches = [order[k : k + BATCH] for k in range(0, len(order), BATCH)]
        for batch in rng.permutation(len(batches)):
            chosen = batches[batch]
            x, labels = _batch([made[k] for k in chosen], [texts[k] for k in chosen])
            logits = network(paddle.to_tensor(x)).transpose([2, 0, 1])  # (T, N, 11)
            loss = ctc(
                logits,
                paddle.to_tensor(labels),
                paddle.to_tensor(widths[chosen] // STRIDE),
                paddle.to_tensor(np.array([len(texts[k]) for k in chosen], np.int64)),
            )
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
            step += 1
            if step % LOG == 0 or step == steps:
                print(f"  line model: epoch {epoch}/{epochs}, batch {step}/{steps}, "
                      f"CTC loss {float(loss):.3f}", flush=True)  # fmt: skip
    network.eval()
    return network


def _batch(made: list[np.ndarray], texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 32, widest) float32 strips 0..1, and (N, longest) int32 labels (digit d: d + 1)."""
    x = np.zeros((len(made), 1, LINE_HEIGHT, max(s.shape[1] for s in made)), np.float32)
    labels = np.zeros((len(texts), max(len(t) for t in texts)), np.int32)
    for k, (strip, text) in enumerate(zip(made, texts)):
        x[k, 0, :, : strip.shape[1]] = strip / 255.0
        labels[k, : len(text)] = [int(c) + 1 for c in text]
    return x, labels


def add_line_model(folder: Path, network: LineReader, made: list[np.ndarray]) -> None:
    """Save `network` into the export `folder` (line.json, line.pdiparams, recorded in its
    metadata), checked: Paddle Inference's logits on a few of the strips `made` against the
    dygraph network's."""
    add_model_files(folder, LINE, network, STRIP_SPEC)
    recognizer = Recognizer(folder)
    for strip in made[:: max(1, len(made) // CHECK_STRIPS)][:CHECK_STRIPS]:
        strip = strip.astype(np.float32) / 255.0
        with paddle.no_grad():
            expected = network(paddle.to_tensor(strip[None, None])).numpy()[0]
        check_logits(recognizer.line_logits(strip), expected, "line model")
