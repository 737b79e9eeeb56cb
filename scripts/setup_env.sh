#!/usr/bin/env bash
# Create .venv (once) and install the pinned requirements and the package (editable) into it.
# Sourced by the other scripts; afterwards `python` is the project's interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
if ! cmp -s requirements.txt .venv/.installed-requirements 2>/dev/null; then
    echo "== installing requirements.txt (first time: a few minutes, Paddle is large)"
    python -m pip install --quiet --upgrade pip
    python -m pip install --quiet -r requirements.txt
    cp requirements.txt .venv/.installed-requirements
fi
