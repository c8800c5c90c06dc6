#!/usr/bin/env bash
# The GPU check of the engines, for a machine with a CUDA GPU (about 4 minutes on one H200; nothing here needs more).
#   1. the engines on CUDA agree with the CPU (tests/test_engine_fast_paths.py -k cuda);
#   2. the engine benchmark on the GPU (the shapes of the CPU table, float32, with memory probes and scaling fits);
#   3. the paper-scale run: P-3L, n = 512, m = D = 8192, n_test = 500, 50000 GD steps with wf.train (Appendix I).
# Everything lands in $OUT (default out/gpu_check); copy the printed tables, the date and the GPU's name into
# benchmarks/RESULTS.md. float32 products use full fp32 (torch's default: TF32 off for matmul).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
mkdir -p "$OUT"
{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; \
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"
timeout 120 python -m pytest tests/test_engine_fast_paths.py -q -k cuda -p no:cacheprovider | tee "$OUT/tests.txt"
timeout 240 python benchmarks/bench_engines.py --device cuda --repeats 5 --min-time 0.2 --scaling-repeats 3 \
    --json "$OUT/bench_cuda.json" | tee "$OUT/bench_cuda.txt"
timeout 180 python benchmarks/bench_engines.py --device cuda --long-run-only --long-run 50000 \
    --long-run-shape 512 8192 8192 --json "$OUT/long_run.json" | tee "$OUT/long_run.txt"
