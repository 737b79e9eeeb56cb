"""Run folders (`output/<run_name>/`): who may write one, whether a resume matches it, and what
an interrupted run left in it.

Under `python -m paddle.distributed.launch` (`launcher` starts the command) only the first
process writes files; the others train their share of each batch and stay quiet.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import paddle

from mnist_paddle.errors import UserError
from mnist_paddle.train.checkpoint import LATEST, META
from mnist_paddle.train.config import Config, load_config, to_dict

# Keys a resumed run may change: they say how to show or run the work, not what it computes.
RESUME_MAY_CHANGE = {
    "train.verbose", "train.log_freq", "train.device", "train.processes", "data.num_workers"
}  # fmt: skip
# what a launcher prints besides its first process's lines: its own log lines, and the banner of
# changed flags that Paddle's parallel start writes
LAUNCHER_LINES = ("LAUNCH ", "=====", "FLAGS(")


def is_main_process() -> bool:
    """False in the second and later processes of a data-parallel run: they write nothing."""
    return paddle.distributed.ParallelEnv().rank == 0


def launcher(processes: int, log_dir: Path) -> list[str]:
    """The start of a command that runs what follows it in `processes` data-parallel processes
    (`python -m paddle.distributed.launch`), the launcher's and workers' logs in `log_dir`; what
    follows is run as it is, so `python -m module ...` works, not only a .py file."""
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node"]
    return command + [str(processes), "--log_dir", str(log_dir), sys.executable]


def processes_for(asked: int, device: str = "auto") -> int:
    """The data-parallel processes a run asks for: `asked`, or for 0 one per GPU when it trains
    on GPUs (the launcher gives each process a GPU of its own), else one per core."""
    if asked:
        return asked
    if device != "cpu" and paddle.device.is_compiled_with_cuda():
        gpus = paddle.device.cuda.device_count()
        if gpus:
            return gpus
    return os.cpu_count() or 1


def run_launched(processes: int, args: list[str], work: Path, verbose: bool, keep=None) -> int:
    """`python args...` in `processes` data-parallel processes (`launcher`), its logs in `work`
    (launch.log, logs/). The lines of the first process are passed on as they come, those that
    `keep` (a predicate on a line) when given, and its one-line error for a user's mistake (on
    stderr); with `verbose`, every line, the launcher's and Paddle's own too. Returns the exit
    code; after a user's mistake, exits as the command alone would (the logs go: the line said
    it all)."""
    command = launcher(processes, work / "logs") + args
    failed = False  # the launcher has said a process failed, and repeats the end of its log
    told = False  # a process's one-line error for a user's mistake has been shown
    with open(work / "launch.log", "w") as log:
        child = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in child.stdout:
            log.write(line)
            failed = failed or line.startswith("Container ")
            mistake = line.startswith("error: ")
            shown = mistake or (keep(line) if keep else not line.startswith(LAUNCHER_LINES))
            if verbose or (shown and not failed):
                print(line, end="", flush=True, file=sys.stderr if mistake else sys.stdout)
                told = told or mistake
    code = child.wait()
    # Every process finds the mistake, but the launcher stops the others when the first one
    # fails: the one that said it may be any of them.
    lasts = map(_last_line, (work / "logs").glob("workerlog.*"))
    mistakes = [last for last in lasts if last.startswith("error: ")]
    if code != 0 and mistakes:
        if not told:
            print(mistakes[0], file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(UserError.exit_code)
    return code


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else ""


def say(message: str) -> None:
    """Print a progress line once per run, not once per process."""
    if is_main_process():
        print(message, flush=True)


class Progress:
    """Says `prefix`{unit} k/steps (the loss, when given) and the time left at the pace so far,
    at most every `seconds` (and after the last step); `step(done=n)` counts n steps at once."""

    def __init__(self, steps: int, prefix: str, unit: str = "batch", seconds: float = 10.0):
        self.steps, self.prefix, self.unit, self.seconds = steps, prefix, unit, seconds
        self.done, self.start = 0, time.monotonic()
        self.last = self.start

    def step(self, loss: float | None = None, done: int = 1) -> None:
        self.done += done
        now = time.monotonic()
        if now - self.last < self.seconds and self.done < self.steps:
            return
        self.last = now
        left = (now - self.start) / self.done * (self.steps - self.done)
        loss_part = "" if loss is None else f", loss {loss:.3f}"
        say(
            f"{self.prefix}{self.unit} {self.done:,}/{self.steps:,}{loss_part}, "
            f"{duration(left)} left"
        )


def duration(seconds: float) -> str:
    """`seconds` as "4 min 05 s" (or "35 s")."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def claim_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Make sure a new run may write into `run_dir`: refuse one that holds a run, unless
    `overwrite`, in which case that run is deleted."""
    finished = (run_dir / f"final{META}").is_file()
    started = (run_dir / "config.yml").is_file() or (run_dir / LATEST).is_file()
    if not (finished or started) or not is_main_process():
        return
    if not overwrite:
        name = run_dir.name
        free = next(
            f"{name}_{n}"
            for n in itertools.count(2)
            if not (run_dir.parent / f"{name}_{n}").exists()
        )
        what = "a finished run" if finished else "an unfinished run (add --resume to continue it)"
        raise UserError(
            f"{run_dir} holds {what}; add --overwrite to replace it, or keep it and name the new "
            f"run, e.g. -o run_name={free} (the new run then goes to {run_dir.parent / free})"
        )
    shutil.rmtree(run_dir)


def check_resumable(cfg: Config, run_dir: Path) -> None:
    """Refuse to resume a folder without a run, a finished run, or a run configured otherwise."""
    saved = run_dir / "config.yml"
    if not saved.is_file():
        raise UserError(
            f"{run_dir}: no run to resume here (no config.yml); start it without --resume"
        )
    if (run_dir / f"final{META}").is_file():
        raise UserError(f"{run_dir}: this run has finished, there is nothing to resume")
    wanted, have = _flat(to_dict(cfg)), _flat(to_dict(load_config(saved)))
    differ = [k for k in sorted(wanted) if k not in RESUME_MAY_CHANGE and wanted[k] != have.get(k)]
    if differ:
        key = differ[0]
        raise UserError(
            f"--resume continues the run as {saved} says, but the config has {key}="
            f"{wanted[key]!r} where the run has {have.get(key)!r}"
            + (f" (and {len(differ) - 1} more)" if len(differ) > 1 else "")
        )


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "args":
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def remove_partial_files(run_dir: Path) -> None:
    """Delete the temporary files of writes that a kill cut short (they start with a dot)."""
    for partial in run_dir.glob(".*"):
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink()


def what_was_saved(run_dir: Path, epochs_done: int) -> str:
    """What an interrupted run left on disk, and how to go on."""
    if not epochs_done:
        return f"no epoch had finished, nothing is saved in {run_dir}"
    return (
        f"{epochs_phrase(epochs_done)} saved in {run_dir} (latest: epoch_{epochs_done}); "
        "continue with the same command and --resume"
    )


def epochs_phrase(done: int) -> str:
    return "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
