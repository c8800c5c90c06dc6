"""Whole reproductions against their floor: the matrix products they cannot avoid, timed on this machine.

For each experiment of a preset, every run's floating-point operations are counted by the engine it uses
(``wideflow.engines.engine_costs``: the kernel engine's 2 m n² per step and 2 m n n_test per logging step, the
weights engine's 4 m n D per step, the set-up products of both). This machine's product throughput is measured
in the same process at each run's shape (an (m, n) × (n, n) product for the kernel engine, (m, D) × (D, n) for the
weights engine, one torch thread as one sweep worker has), so each run gets a floor time flops / throughput. The
floor of the experiment is that work spread over the workers, or its longest run if that is more:
max(Σ t_run / workers, max t_run). Then the reproduction itself runs into a fresh folder and its wall time is
printed against the floor.

    python benchmarks/bench_reproduce.py exp3 --preset quick
    python benchmarks/bench_reproduce.py all --preset quick --out out/bench_reproduce.json --keep out/bench_quick

The machine is shared: the throughput is measured just before the reproduction, and the wall/floor ratio is
what the reproduction adds (per-step Python, element-wise work, logging, scheduling, tables and figures).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wideflow.engines import choose_method, engine_costs
from wideflow.experiments.common import experiment_settings, in_process_workers, load_preset
from wideflow.experiments.reproduce import ALL, EXPERIMENTS, reproduce
from wideflow.sweep import normalize
from wideflow.sweep.dask_runner import available_cores

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def run_configs(name: str, s: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of one experiment, normalized: the sweep's (``configs``) or those trained in process."""
    mod = EXPERIMENTS[name]
    if hasattr(mod, "prepare"):  # real: the digits splits, written where the floor's count can read them
        s = mod.prepare(s, Path(tempfile.mkdtemp(prefix=f"bench_{name}_")))
    configs = mod.configs(s) if not hasattr(mod, "run") else mod.run_configs(s)
    return [normalize(c) for c in configs]


def shape_of(config: dict[str, Any]) -> tuple[str, int, int, float, int, int, int, str]:
    """(engine, m, n, D, n_test, steps, log_every, dtype) of one run."""
    m, d, t = config["model"], config["data"], config["train"]
    if d["kind"] == "file":  # real: the sizes of the written splits
        d = {"n": len(np.load(d["path"])[d["y_key"]]), "n_test": len(np.load(d["test_path"])[d["y_key"]])}
    D = math.inf if isinstance(m["D"], str) or m["D"] == math.inf else int(m["D"])
    method = choose_method(t["method"], m=m["m"], n=d["n"], D=D, n_test=d["n_test"], steps=t["steps"],
                           log_every=t["log_every"], trains_neurons=bool(m["train_c"] or m["bias"]))
    return method, m["m"], d["n"], D, d["n_test"], t["steps"], t["log_every"], t["dtype"]


def flops(shape: tuple[str, int, int, float, int, int, int, str]) -> float:
    """The counted operations of one run (at D = ∞ the kernel engine's set-up is left out: it is O(n²))."""
    method, m, n, D, n_test, steps, log_every, _ = shape
    if D == math.inf:
        return 2.0 * m * n * n * steps + 2.0 * m * n * n_test * (steps // log_every + 2)
    return engine_costs(m, n, int(D), n_test, steps, log_every)[method]


def throughput(method: str, m: int, n: int, D: float, dtype: str, repeats: int = 5) -> float:
    """Flop/s of the engine's step product at this shape, one thread, median of ``repeats`` timings."""
    k = n if method == "kernel" or D == math.inf else int(D)
    a = torch.randn(m, k, dtype=DTYPES[dtype])
    b = torch.randn(k, n, dtype=DTYPES[dtype])
    work = 2.0 * m * k * n
    reps = max(1, int(2e8 / work))  # about 0.01-0.1 s per timing
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        times.append((time.perf_counter() - t0) / reps)
    return work / statistics.median(times)


def floor(name: str, s: dict[str, Any], workers: int, rates: dict[tuple, float]) -> dict[str, Any]:
    """The floor of one experiment: counted flops per run over this machine's throughput at its shape."""
    times, total = [], 0.0
    configs = run_configs(name, s)
    for config in configs:
        shape = shape_of(config)
        key = (shape[0], shape[1], shape[2], shape[3], shape[7])
        if key not in rates:
            rates[key] = throughput(*key)
        work = flops(shape)
        total += work
        times.append(work / rates[key])
    if hasattr(EXPERIMENTS[name], "run"):  # trained in process, on as many workers as train_in_process takes
        workers = in_process_workers(configs, total)
    return {"runs": len(times), "flops": total, "floor_s": max(sum(times) / workers, max(times, default=0.0)),
            "longest_run_s": max(times, default=0.0), "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the table as JSON here")
    parser.add_argument("--floor-only", action="store_true", help="count and time the products, run nothing")
    parser.add_argument("--keep", type=Path, default=None,
                        help="reproduce into this new (or empty) folder and keep it (REPORT.md, figures), "
                             "instead of a temporary one")
    args = parser.parse_args()
    if args.keep is not None and args.keep.is_file():
        parser.error(f"--keep {args.keep}: a file; give a new or empty folder to reproduce into.")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"--keep {args.keep}: the folder holds files; the wall time is that of a fresh reproduction, "
                     "so give a new or empty folder.")
    names = list(ALL) if args.experiment == "all" else [args.experiment]
    settings = load_preset(args.preset, args.config, experiment_keys={k: v.KEYS for k, v in EXPERIMENTS.items()})
    torch.set_num_threads(1)
    workers = available_cores()
    rates: dict[tuple, float] = {}
    rows = {name: floor(name, experiment_settings(settings, name), workers, rates) for name in names}
    if args.floor_only:
        for name, r in rows.items():
            print(f"{name}: {r['runs']} runs, {r['flops'] / 1e9:.0f} Gflop, floor {r['floor_s']:.1f} s "
                  f"(longest run {r['longest_run_s']:.1f} s, {r['workers']} worker(s))")
        print(f"total floor {sum(r['floor_s'] for r in rows.values()):.1f} s")
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summaries = reproduce(names, args.keep or tmp, preset=args.preset, config=args.config, progress=False)
        wall = time.perf_counter() - t0
    for name, summary in summaries.items():
        rows[name]["training_s"] = summary["runs"]["training_time_s"]
        rows[name]["verdicts"] = summary["verdicts"]
        rows[name]["claims"] = {c["id"]: c["verdict"] for c in summary["claims"]}
    total_floor = sum(r["floor_s"] for r in rows.values())
    print(f"preset {args.preset}, {workers} workers, torch {torch.__version__}; product throughput "
          f"{min(rates.values()) / 1e9:.1f}-{max(rates.values()) / 1e9:.1f} GFLOP/s per thread over {len(rates)} shapes")
    print("| experiment | runs | Gflop | floor (s) | longest run (s) | training summed (s) | verdicts |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        v = r["verdicts"]
        print(f"| {name} | {r['runs']} | {r['flops'] / 1e9:.0f} | {r['floor_s']:.1f} | {r['longest_run_s']:.1f} | "
              f"{r['training_s']:.1f} | {v['reproduced']}/{v['not reproduced']}/{v['inconclusive']} |")
    print(f"\nwall {wall:.1f} s, floor {total_floor:.1f} s: wall / floor = {wall / total_floor:.2f} "
          f"({', '.join(names)})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"preset": args.preset, "wall_s": wall, "floor_s": total_floor,
                                        "experiments": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()
