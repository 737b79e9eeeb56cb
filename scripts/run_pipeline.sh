#!/usr/bin/env bash
# The whole pipeline end to end on a fresh machine: set up .venv, train LeNet (5 epochs),
# fine-tune it (2 epochs), export it, recognize the sample digits.
# It replaces the runs output/lenet and output/lenet_finetune if they exist (--overwrite).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
echo "== train";     python tools/train.py -c configs/lenet.yml --overwrite "$@"
echo "== fine-tune"; python tools/finetune.py --overwrite
echo "== export";    python tools/export.py
echo "== infer";     python deploy/infer.py deploy/samples
