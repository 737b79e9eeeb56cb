#!/usr/bin/env bash
# The whole tutorial end to end on a fresh machine:
# set up .venv, train LeNet (5 epochs), fine-tune (2 epochs), export, recognize the sample digits.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
echo "== train";     python tools/train.py -c configs/lenet.yml "$@"
echo "== fine-tune"; python tools/finetune.py
echo "== export";    python tools/export.py
echo "== infer";     python deploy/infer.py deploy/samples
