#!/usr/bin/env bash
# Check the whole GPU path on a machine with an NVIDIA GPU and Paddle's GPU build (README, "GPU"),
# in a few minutes: 1 epoch of training on the GPU, export, deploy/infer.py on the samples on the
# CPU, the GPU and through TensorRT (fp32, fp16) with the same answers everywhere, the GPU tests,
# and the benchmark's inference rows. Writes under output/gpu_check/. Exits non-zero on a failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
out=output/gpu_check
python -W ignore - <<'PY'
import sys
import paddle
if not paddle.device.is_compiled_with_cuda():
    sys.exit("this Paddle has no CUDA: install Paddle's GPU build first (README, 'GPU')")
if paddle.device.cuda.device_count() == 0:
    sys.exit("Paddle has CUDA but sees no GPU (nvidia-smi, CUDA_VISIBLE_DEVICES)")
print(f"GPU: {paddle.device.cuda.get_device_name(0)}, Paddle {paddle.__version__}, "
      f"TensorRT {paddle.inference.get_trt_compile_version()}")
PY
echo "== train 1 epoch on the GPU"
python tools/train.py -c configs/lenet.yml -o run_name=gpu_check -o output_dir=$out \
    -o train.epochs=1 -o train.device=gpu -o train.verbose=2 --overwrite
echo "== export (checked on the CPU)"
python tools/export.py --checkpoint $out/gpu_check --out $out/inference
answers() { python deploy/infer.py --model-dir $out/inference --json "$@" deploy/samples; }
echo "== infer: CPU, GPU, TensorRT fp32 and fp16"
answers > $out/cpu.jsonl
answers --device gpu > $out/gpu.jsonl
runs=(gpu)
if python -c "import sys, paddle; sys.exit(tuple(paddle.inference.get_trt_compile_version()) == (0, 0, 0))"; then
    answers --device gpu --tensorrt > $out/tensorrt_fp32.jsonl
    answers --device gpu --tensorrt --precision fp16 > $out/tensorrt_fp16.jsonl
    runs+=(tensorrt_fp32 tensorrt_fp16)
else
    echo "this Paddle build has no TensorRT: --tensorrt not checked"
fi
for run in "${runs[@]}"; do
    python -W ignore - "$out/cpu.jsonl" "$out/$run.jsonl" "$run" <<'PY'
import json, sys
cpu, other = ([json.loads(l)["digit"] for l in open(p)] for p in sys.argv[1:3])
if cpu != other:
    sys.exit(f"{sys.argv[3]} answers {other}, the CPU {cpu}")
print(f"{sys.argv[3]}: the CPU's answers for all {len(cpu)} samples")
PY
done
echo "== the GPU tests"
python -m pytest -q tests/test_gpu.py tests/test_infer.py -k "gpu or tensorrt"
echo "== benchmark: inference on CPU, GPU and TensorRT at batch 1, 64, 1024"
python tools/benchmark.py --inference-only --model-dir $out/inference \
    --checkpoint $out/gpu_check/final --out $out/bench
echo "GPU path checked; results in $out/"
