"""Throughput of batched training against one-by-one runs, measured side by side in one process.

For each problem size, R runs (the three scalings of Table 1 × seeds, P-3L on the axis-XOR data) are
trained twice: one by one with ``wideflow.sweep.run_one`` (that is, ``wideflow.train``), and the way
``run_sweep`` trains them on one worker: cut into batches by ``wideflow.sweep.batched.plan`` (runs too large
to gain from batching stay alone) and trained with ``run_group``. Both include building the models and the
data. The two are timed alternately, ``--repeats`` times each, and the ratio of the median times is the
throughput gain of batching; the largest difference of their training losses is printed too, as a check
that both computed the same runs.

    python benchmarks/bench_batched.py                   # default sizes, 1 torch thread
    python benchmarks/bench_batched.py --sizes 64x16 512x128 --runs 24 --steps 500 --out out/bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from wideflow.sweep import expand, run_one
from wideflow.sweep.batched import plan, run_group


def configs(m: int, n: int, runs: int, steps: int) -> list[dict]:
    """``runs`` runs of equal shapes: the three scalings × seeds (m, n and n_test fixed)."""
    seeds = -(-runs // 3)
    spec = {"base": {"model": {"kind": "p3l", "d": 10, "m": m}, "data": {"kind": "axis_xor", "n": n, "n_test": 100},
                     "train": {"steps": steps, "log_every": max(1, steps // 10), "method": "kernel"}},
            "grid": {"model": {"scaling": ["ours", "ntk", "mf"]}}, "seeds": seeds}
    return expand(spec)[:runs]


def measure(m: int, n: int, runs: int, steps: int, repeats: int) -> dict:
    cfgs = configs(m, n, runs, steps)
    tasks = [[cfgs[i] for i in task] for task in plan(cfgs, slots=1)]
    one, together, diff = [], [], 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        single = [run_one(c) for c in cfgs]
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched = [outcome for task in tasks for outcome in run_group(task)]
        together.append(time.perf_counter() - t0)
        for s, b in zip(single, batched, strict=True):
            a, c = s.history["train_loss"].to_numpy(), b.output.history["train_loss"].to_numpy()
            diff = max(diff, float(np.max(np.abs(a - c) / np.abs(a))))
    t_one, t_batch = statistics.median(one), statistics.median(together)
    return {"m": m, "n": n, "runs": runs, "steps": steps, "batches": [len(t) for t in tasks],
            "one_by_one_s": t_one, "batched_s": t_batch, "runs_per_s_one_by_one": runs / t_one,
            "runs_per_s_batched": runs / t_batch, "throughput_ratio": t_one / t_batch, "max_rel_loss_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["32x16", "64x32", "128x64", "256x64", "512x128"],
                        help="problem sizes MxN (width m, training points n)")
    parser.add_argument("--runs", type=int, default=12, help="runs per size (batch size R)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a sweep worker's default is 1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.runs} runs of {args.steps} GD steps per size")
    print(f"{'m':>6} {'n':>5} {'one-by-one s':>13} {'batched s':>10} {'runs/s 1x1':>11} {'runs/s batch':>13} "
          f"{'ratio':>6} {'max rel diff':>13}  batches")
    results = []
    for size in args.sizes:
        m, n = (int(v) for v in size.lower().split("x"))
        r = measure(m, n, args.runs, args.steps, args.repeats)
        results.append(r)
        print(f"{m:>6} {n:>5} {r['one_by_one_s']:>13.3f} {r['batched_s']:>10.3f} {r['runs_per_s_one_by_one']:>11.2f} "
              f"{r['runs_per_s_batched']:>13.2f} {r['throughput_ratio']:>6.2f} {r['max_rel_loss_diff']:>13.1e}  "
              f"{r['batches']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
