#!/usr/bin/env bash
# Very wide models at D = ∞ on GPUs: one GPU, then eight (torchrun --nproc_per_node 8, NCCL), at m = 2^23 neurons,
# n = 512 training inputs, float32, 100 GD steps (benchmarks/bench_limits.py).
#   GPUS=1 (default): the widest run on one GPU. Memory: the engine holds H, Z, σ(H) and c ⊙ σ'(H), 4·m·n·4 bytes
#     = 64 GiB at m = 2^23, n = 512 (an H200 has 141 GiB); the Gaussian draw of H_0 is made on the CPU in float64,
#     in slabs of 65536 neurons, and the model keeps the revealed values (m·n·8 bytes = 32 GiB of host memory).
#     One step costs 2 m n² = 4.4 TFLOP, about 0.01 s at the H200's fp32 matmul rate.
#   GPUS=8: the weak-scaling run, 2^23 neurons per GPU (2^26 in all) against one GPU at 2^23; each GPU holds its
#     block of the neurons and draws only its own rows of H_0 (no host memory for the others).
# What it prints: the lines of bench_limits.py, e.g.
#   m = 8388608 (2^23), n = 512, D = ∞, float32, cuda: ... ms/step, set-up ... s, peak ... GiB, 100 steps, ...
#   weak scaling at D = ∞, n = 512, float32, one thread per process, cuda
#     P          m   ms/step  set-up s
#     1    8388608      ...
#     8   67108864      ...
#   efficiency t(1, m0)/t(8, 8·m0) = ...
# Everything lands in $OUT (default out/gpu_limits); copy the tables, the date and the GPU's name into
# benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_limits}
GPUS=${GPUS:-1}
mkdir -p "$OUT"
{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; } \
    | tee "$OUT/machine.txt"
timeout 600 python benchmarks/bench_limits.py widest --neurons 8388608 --points 512 --steps 100 --device cuda \
    --json "$OUT/widest.json" | tee "$OUT/widest.txt"
if [ "$GPUS" -gt 1 ]; then
    timeout 900 python benchmarks/bench_limits.py weak --per-process 8388608 --points 512 --steps 100 \
        --procs "$GPUS" --device cuda --json "$OUT/weak.json" | tee "$OUT/weak.txt"
fi
