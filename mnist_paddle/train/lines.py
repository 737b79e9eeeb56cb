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
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import paddle

from mnist_paddle.cli import quiet_paddle
from mnist_paddle.errors import UserError
from mnist_paddle.models.line import LINE_HEIGHT, STRIDE, LineReader
from mnist_paddle.serving import lines, segment
from mnist_paddle.serving.inference import Recognizer
from mnist_paddle.train import synth
from mnist_paddle.train.export import add_model_files, check_logits
from mnist_paddle.train.fonts import training_fonts
from mnist_paddle.train.rundir import is_main_process, launcher, say

LINE = "line"  # -> line.json + line.pdiparams in the export folder
# The recipe, checked on numbers of validation digits (docs/numbers.md, where models of half the
# width, 3 epochs and half the strips are compared): 80,000 handwritten and 20,000 typeset
# numbers (twice as many as the convolutional line model had, which the LSTM needs to pay off),
# 2 epochs of Adam, one-cycle up to 3e-3, batch 64 (over all processes).
HANDWRITTEN, TYPESET = 80000, 20000
EPOCHS, BATCH, LR = 2, 64, 3e-3
LOG = 200  # batches between progress lines
PROGRESS = "  line model: "  # how they start
PARAMS = "line.pdparams"  # the trained weights, as a data-parallel run hands them back
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
    fonts = training_fonts()
    made, texts = [], []
    for i in range(handwritten_count + typeset_count):
        handwritten = i < handwritten_count
        digits, page, _ = synth.random_number(handwritten, images, labels, fonts, rng)
        found = segment.candidates(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY).astype(np.float32))
        if found is not None:
            made.append((lines.line_image(found) * 255).round().astype(np.uint8))
            texts.append("".join(str(d) for d in digits))
    return made, texts


def train_line_model(
    made: list[np.ndarray],
    texts: list[str],
    epochs: int = EPOCHS,
    processes: int | None = None,
    verbose: bool = False,
) -> LineReader:
    """A LineReader taught with CTC to read `texts` off the strips `made`, data-parallel on
    `processes` (default: one per core): Paddle's dygraph training uses one core here, so with
    two the model trains in about half the time. Each process runs `python -m
    mnist_paddle.train.lines` under `paddle.distributed.launch` and takes its half of every
    batch; the first one's progress lines are passed on (`verbose`: every line, the launcher's
    and Paddle's own from the processes)."""
    processes = processes or os.cpu_count() or 1
    if processes == 1:
        return _train(made, texts, epochs)
    work = Path(tempfile.mkdtemp(prefix="line-model-"))
    widths = [strip.shape[1] for strip in made]  # the strips end to end, and where each ends
    np.savez(work / "strips.npz", ink=np.hstack(made), widths=widths, texts=np.array(texts))
    command = launcher(processes, work / "logs") + ["-m", __name__]
    command += [str(work / "strips.npz"), str(work / PARAMS), str(epochs)]
    command += ["--verbose"] if verbose else []  # Paddle's own lines in the processes too
    try:
        with open(work / "launch.log", "w") as log:
            child = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            for line in child.stdout:
                log.write(line)
                if verbose or line.startswith(PROGRESS):  # the rest is the launcher's
                    print(line, end="", flush=True)
    finally:
        (work / "strips.npz").unlink()  # hundreds of MB for the quick start's strips
    if child.wait() != 0:  # its logs stay for a look
        raise UserError(
            f"training the line model failed (exit {child.returncode}); see {work}/launch.log "
            f"and {work}/logs"
        )
    network = LineReader()
    network.set_state_dict(paddle.load(str(work / PARAMS)))
    shutil.rmtree(work, ignore_errors=True)
    network.eval()
    return network


def _train(made: list[np.ndarray], texts: list[str], epochs: int) -> LineReader:
    """The training loop, in this process alone or as one of a data-parallel run's: every
    process draws the same batches and learns from its share of each (the gradients are
    averaged), so the recipe means the same on one process or several."""
    world, rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
    paddle.seed(0)
    rng = np.random.default_rng(0)
    widths = np.array([s.shape[1] for s in made])
    network = LineReader()
    model = paddle.DataParallel(network) if world > 1 else network
    steps = epochs * math.ceil(len(made) / BATCH)
    schedule = paddle.optimizer.lr.OneCycleLR(max_learning_rate=LR, total_steps=steps)
    optimizer = paddle.optimizer.Adam(schedule, parameters=model.parameters())
    ctc = paddle.nn.CTCLoss(blank=lines.BLANK)
    step = 0
    for epoch in range(1, epochs + 1):
        # batches of neighbours in width (jittered, so that they differ between epochs)
        order = np.argsort(widths + rng.uniform(0, 8, len(widths)))
        batches = [order[k : k + BATCH] for k in range(0, len(order), BATCH)]
        for batch in rng.permutation(len(batches)):
            # this process's share (a batch smaller than the processes: its first strip)
            chosen = (
                batches[batch][rank::world] if len(batches[batch]) >= world else batches[batch][:1]
            )
            x, labels = _batch([made[k] for k in chosen], [texts[k] for k in chosen])
            logits = model(paddle.to_tensor(x)).transpose([2, 0, 1])  # (T, N, 11)
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
                say(f"{PROGRESS}epoch {epoch}/{epochs}, batch {step}/{steps}, "
                    f"CTC loss {float(loss):.3f}")  # fmt: skip
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


def _main(argv: list[str]) -> None:
    """One process of a data-parallel run (train_line_model starts them): the strips from
    `argv[0]` (.npz), the trained weights to `argv[1]` (the first process), `argv[2]` epochs."""
    source, params, epochs = Path(argv[0]), Path(argv[1]), int(argv[2])
    paddle.distributed.init_parallel_env()
    with np.load(source) as saved:
        ink, widths, texts = saved["ink"], saved["widths"], [str(t) for t in saved["texts"]]
    made = np.split(ink, np.cumsum(widths)[:-1], axis=1)
    network = _train(made, texts, epochs)
    if is_main_process():
        paddle.save(network.state_dict(), str(params))


if __name__ == "__main__":
    quiet_paddle("--verbose" in sys.argv)
    _main([arg for arg in sys.argv[1:] if arg != "--verbose"])
