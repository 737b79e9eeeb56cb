"""What every command-line tool shares: quiet logs, config arguments, one-line errors.

This module imports no Paddle: a tool calls `quiet_paddle()` first and imports Paddle after,
because Paddle reads its logging settings (GLOG_*) when it is imported.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from mnist_paddle.errors import UserError


def quiet_paddle(verbose: bool = False) -> None:
    """Hide Paddle's C++ log lines and Python warnings unless `verbose`."""
    if verbose:
        os.environ.setdefault("GLOG_v", "3")
        return
    os.environ.setdefault("GLOG_minloglevel", "2")  # errors only
    os.environ.setdefault("GLOG_v", "0")
    # Paddle warns about a missing ccache, tensor copies inside hapi and other internals.
    warnings.filterwarnings("ignore", module=r"paddle(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # the same for child interpreters (the service's worker processes): the one that shows there
    os.environ.setdefault("PYTHONWARNINGS", "ignore:No ccache found")


def parser(doc: str) -> argparse.ArgumentParser:
    """An ArgumentParser whose help starts with the tool's docstring; adds --verbose."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--verbose", action="store_true", help="show Paddle's own log lines and warnings"
    )
    return p


def add_config_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "-c",
        "--config",
        default=default,
        required=default is None,
        help="YAML config file" + (f" (default: {default})" if default else ""),
    )
    p.add_argument(
        "-o",
        "--override",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. -o train.epochs=3 (repeatable)",
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    """--resume and --overwrite, for the tools that write a run folder."""
    p.add_argument(
        "--resume", action="store_true", help="continue the run after its last complete epoch"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the run folder"
    )


@contextmanager
def user_errors() -> Iterator[None]:
    """Report a `UserError` as one line on stderr and exit 2 (130 for Ctrl-C)."""
    try:
        yield
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
