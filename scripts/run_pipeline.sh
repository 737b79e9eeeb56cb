#!/usr/bin/env bash
# The whole pipeline end to end on a fresh machine: set up .venv, train the deployed model
# (tutorial 001's three-conv net on MNIST + typeset digits, 5 epochs), fine-tune it (2 epochs),
# export it, teach the export whole numbers (tools/train_numbers.py: the line model, quick recipe),
# recognize the sample digits and numbers. Why not LeNet: docs/accuracy.md.
# It replaces the runs output/three_conv_typeset and output/three_conv_finetune if they exist.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
echo "== train";     python tools/train.py -c configs/three_conv_typeset.yml --overwrite "$@"
echo "== fine-tune"; python tools/finetune.py -c configs/three_conv_finetune.yml --overwrite
echo "== export";    python tools/export.py --checkpoint output/three_conv_finetune/final
echo "== numbers";   python tools/train_numbers.py -c configs/numbers/quick.yml
echo "== infer";     python deploy/infer.py deploy/samples && python deploy/infer.py --number deploy/samples/numbers
