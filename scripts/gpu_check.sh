#!/usr/bin/env bash
# The one GPU session of issue #22 (≈ 6–8 min on one H100/H200): the GPU tests, bench/gpu.py
# (8B geometry, both input sets, every ratio from this one call) and the README's throughput bench.
# Run from anywhere: scripts/gpu_check.sh [OUT]; the logs land in OUT (default $OUT or /tmp/itdd-gpu).
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/itdd-gpu}}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
{
  date -u
  git log -1 --format='%H %s' 2>/dev/null || true
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| device', torch.cuda.get_device_name())"
} 2>&1 | tee "$out/device.txt"
echo "== GPU tests" | tee "$out/tests.txt"
timeout 150 python -m pytest tests/test_gpu.py tests/test_attention.py -q -x -k "not two_processes" 2>&1 | tee -a "$out/tests.txt"
echo "== bench/gpu.py" | tee "$out/gpu.txt"
timeout 270 python bench/gpu.py 2>&1 | tee -a "$out/gpu.txt"
echo "== bench/throughput.py (the README's d 1024 run)" | tee "$out/throughput.txt"
timeout 90 python bench/throughput.py --device cuda --d 1024 --layers 8 --vocab 32000 --records 64 2>&1 | tee -a "$out/throughput.txt"
echo "logs in $out"
