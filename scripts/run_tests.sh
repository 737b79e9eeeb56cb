#!/usr/bin/env bash
# Set up .venv (and, as root, the Debian packages the tests use), then lint (ruff) and run the
# test suite (pytest). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
# the page test drives Debian's chromium (tests/test_serve.py), the service benchmark's test runs
# wrk (tests/test_benchmark.py); without them those tests skip and say why
apt_install chromium wrk
echo "== ruff";   ruff check . && ruff format --check .
echo "== pytest"; python -m pytest "$@"
