#!/usr/bin/env bash
# Everything a GPU can tell this project, in one command that fits in 10 minutes, ending with one table:
#   1. tests:   the CUDA tests of the engines (tests/test_engine_fast_paths.py -k cuda)               <=  90 s
#   2. engines: bench_engines.py on the GPU, float32 (speed-ups over autograd, % of the matmul rate)   <= 150 s
#   3. exp3:    Experiment 3 at the paper's grid in float32 (benchmarks/exp3_paper_float32.toml), 3 seeds,
#               1.7e15 counted flops; the store resumes, so a second call finishes what the first did not  <= 210 s
#   4. long:    one paper-scale wf.train run, P-3L n = 512, m = D = 8192, n_test = 500, 50000 steps     <=  60 s
#   5. limits:  gpu_limits.sh, the widest D = ∞ run on one GPU (m = 2^23, n = 512, 100 steps)           <=  90 s
# Each part has its own time limit (a part that runs out is reported, the next one starts). Everything lands in
# $OUT (default out/gpu_all); copy the table, the date and the GPU's name into benchmarks/RESULTS.md and the exp3
# table of $OUT/exp3/REPORT.md into docs/reproductions.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_all}
mkdir -p "$OUT"
{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; \
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT/machine.txt"

declare -a NAMES STATUS WALL LAST
part() {  # part NAME LIMIT_S COMMAND...: run COMMAND under a time limit, keep its output, status and wall time
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    NAMES+=("$name")
    WALL+=("$((SECONDS - t0))")
    if [ "$rc" -eq 0 ]; then STATUS+=("ok"); elif [ "$rc" -eq 124 ]; then STATUS+=("time limit ${limit} s"); \
        else STATUS+=("failed ($rc)"); fi
    LAST+=("$(grep -v '^\s*$' "$OUT/$name.txt" | tail -n 1 | cut -c1-110)")
}

part tests 90 python -m pytest tests/test_engine_fast_paths.py -q -k cuda -p no:cacheprovider
part engines 150 python benchmarks/bench_engines.py --device cuda --repeats 3 --min-time 0.2 --scaling-repeats 2 \
    --json "$OUT/bench_cuda.json"
part exp3 210 wideflow reproduce exp3 --preset paper --config benchmarks/exp3_paper_float32.toml --device cuda \
    --out "$OUT/exp3"
if [ -f "$OUT/exp3/exp3/summary.json" ]; then
    python - "$OUT/exp3/exp3/summary.json" > "$OUT/exp3_verdicts.txt" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for c in s["claims"]:
    print(f"{c['id']}: {c['verdict']}: {c['headline'][:150]}")
PY
fi
part long 60 python benchmarks/bench_engines.py --device cuda --long-run-only --long-run 50000 \
    --long-run-shape 512 8192 8192 --json "$OUT/long_run.json"
part limits 90 env OUT="$OUT/limits" benchmarks/gpu_limits.sh

echo
echo "| part | status | wall (s) | last line |"
echo "|---|---|---|---|"
for i in "${!NAMES[@]}"; do
    echo "| ${NAMES[$i]} | ${STATUS[$i]} | ${WALL[$i]} | ${LAST[$i]//|/\\|} |"
done | tee "$OUT/table.md"
if [ -f "$OUT/exp3_verdicts.txt" ]; then
    echo
    echo "Experiment 3 at paper scale (float32):"
    cat "$OUT/exp3_verdicts.txt"
else
    done_runs=$(ls "$OUT/exp3/store/runs" 2>/dev/null | wc -l)
    echo
    echo "Experiment 3 at paper scale: $done_runs of 162 runs in $OUT/exp3/store (run this script again to finish)."
fi
