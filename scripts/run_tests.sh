#!/usr/bin/env bash
# Set up .venv, then lint (ruff) and run the test suite (pytest). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
echo "== ruff";   ruff check . && ruff format --check .
echo "== pytest"; python -m pytest "$@"
