"""Very wide models at D = ∞: one process against a sharded run, and the widest model a machine trains.

Two measurements, each printed as a table (times are medians over the timed steps of one run):

- ``weak``: weak scaling of a sharded run (wideflow.distributed). P = 1 and P processes (torchrun, gloo or NCCL)
  train at equal neurons per process, m = P·m0, with one thread per process; the efficiency is
  t(P = 1, m0) / t(P, P·m0) per GD step (1 is perfect: the all-reduce of the n outputs costs nothing). Each round
  also starts P unsharded runs of m0 together: t(1, m0) / t(those) is the ceiling that P processes reach on this
  machine with no communication at all, and t(those) / t(P, P·m0) is what the sharding itself costs.
- ``widest``: one process trains m neurons at n inputs for ``--steps`` steps (D = ∞, float32) and reports the time
  per step and the peak memory (the resident set on the CPU, torch's peak allocation on CUDA).

    python benchmarks/bench_limits.py weak --per-process 65536 --points 256 --procs 2   # this machine: 2 cores
    python benchmarks/bench_limits.py widest --neurons 1048576 --points 256 --steps 100  # 2^20 neurons
    benchmarks/gpu_limits.sh                                                   # 1 and 8 GPUs at m = 2^23, n = 512

Results go to the terminal (and ``--json``); the numbers worth keeping are copied into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import wideflow as wf


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_times(m: int, n: int, steps: int, device: str, dtype: torch.dtype, distributed: bool) -> dict:
    """Train m neurons (D = ∞) for ``steps`` steps logged every 10; the seconds per step between logging steps
    (the set-up and the first 10 steps excluded), the set-up time and the peak memory."""
    X, y = wf.data.axis_xor(n, 20, seed=0)
    stamps: list[float] = []

    def stamp(state: wf.TrainState) -> dict:
        _sync(device)
        stamps.append(time.perf_counter())
        return {}

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = wf.P3L(20, m, D=math.inf, dtype=dtype, device=device)
    result = wf.train(model, X, y, steps=steps, log_every=10, method="kernel", progress=False, callbacks=[stamp],
                      distributed=distributed)
    per_step = [(b - a) / 10 for a, b in zip(stamps[1:-1], stamps[2:], strict=False)]
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"m": m, "n": n, "steps": steps, "step_s": statistics.median(per_step), "setup_s": stamps[0] - t0,
            "peak_bytes": peak, "final_train_loss": float(result.history["train_loss"].iloc[-1])}


def _worker(args: argparse.Namespace) -> None:
    """One process of a ``weak`` or ``widest`` measurement (under torchrun when sharded); prints one JSON line."""
    torch.set_num_threads(args.threads)
    distributed = "RANK" in os.environ
    device = args.device
    if distributed and device == "cuda":
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        torch.cuda.set_device(device)
    out = step_times(args.m, args.n, args.steps, device, getattr(torch, args.dtype), distributed)
    if not distributed or torch.distributed.get_rank() == 0:
        print(json.dumps({**out, "processes": int(os.environ.get("WORLD_SIZE", 1))}), flush=True)


def _command(procs: int, m: int, args: argparse.Namespace, threads: int) -> list[str]:
    # long option names: torchrun would read an abbreviation such as --m as one of its own options
    me = [str(Path(__file__).resolve()), "worker", "--neurons", str(m), "--points", str(args.n), "--steps", str(args.steps),
          "--dtype", args.dtype, "--device", args.device, "--threads", str(threads)]
    return ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs), *me]
            if procs > 1 else [sys.executable, *me])


def _launch(procs: int, m: int, args: argparse.Namespace, threads: int) -> dict:
    done = subprocess.run(_command(procs, m, args, threads), capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _independent(procs: int, m: int, args: argparse.Namespace) -> dict:
    """``procs`` unsharded single-thread runs of m neurons started together: what P processes cost each other on
    this machine (shared memory bandwidth and caches, the host's other load) with no communication at all."""
    running = [subprocess.Popen(_command(1, m, args, 1), stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in running]
    return {**outs[0], "step_s": max(o["step_s"] for o in outs), "processes": procs}


def weak(args: argparse.Namespace) -> dict:
    """``--rounds`` rounds of three runs, one after another: P = 1 at m0; P independent unsharded runs of m0 started
    together (the ceiling this machine allows P processes); the sharded run of P·m0. Medians over the rounds."""
    rounds = []
    for _ in range(args.rounds):
        one = _launch(1, args.m0, args, threads=1)
        alone = _independent(args.procs, args.m0, args)
        many = _launch(args.procs, args.procs * args.m0, args, threads=1)
        rounds.append({"one": one["step_s"], "independent": alone["step_s"], "sharded": many["step_s"]})
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    eff, ceiling, sharding = (med["one"] / med["sharded"], med["one"] / med["independent"],
                              med["independent"] / med["sharded"])
    print(f"weak scaling at D = ∞, m0 = {args.m0}, n = {args.n}, {args.dtype}, one thread per process, {args.device}, "
          f"{args.rounds} rounds (medians)")
    print(f"{'round':>5} {'P=1 ms':>8} {'P indep ms':>11} {'P sharded ms':>13} {'efficiency':>10} {'ceiling':>8}")
    for i, r in enumerate(rounds):
        print(f"{i:>5} {1e3 * r['one']:>8.1f} {1e3 * r['independent']:>11.1f} {1e3 * r['sharded']:>13.1f} "
              f"{r['one'] / r['sharded']:>10.3f} {r['one'] / r['independent']:>8.3f}")
    print(f"efficiency t(1, m0)/t({args.procs}, {args.procs}·m0) = {eff:.3f}; ceiling of {args.procs} processes "
          f"without communication t(1, m0)/t(indep) = {ceiling:.3f}; the sharding's own cost t(indep)/t(sharded) = "
          f"{sharding:.3f}")
    return {"rounds": rounds, "median": med, "efficiency": eff, "ceiling": ceiling, "sharding": sharding}


def widest(args: argparse.Namespace) -> dict:
    r = _launch(1, args.m, args, threads=args.threads)
    print(f"m = {r['m']} (2^{math.log2(r['m']):.0f}), n = {r['n']}, D = ∞, {args.dtype}, {args.device}: "
          f"{1e3 * r['step_s']:.1f} ms/step, set-up {r['setup_s']:.1f} s, peak {r['peak_bytes'] / 2**30:.2f} GiB, "
          f"{r['steps']} steps, final train loss {r['final_train_loss']:.4g}")
    return r


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["weak", "widest", "worker"])
    p.add_argument("--per-process", dest="m0", type=int, default=2**16, help="neurons per process m0 (weak)")
    p.add_argument("--procs", type=int, default=2, help="processes of the sharded run (weak)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the three weak-scaling runs (medians)")
    p.add_argument("--neurons", dest="m", type=int, default=2**20, help="neurons m (widest)")
    p.add_argument("--points", dest="n", type=int, default=256, help="training inputs n")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.what == "worker":
        _worker(args)
        return {}
    out = weak(args) if args.what == "weak" else widest(args)
    if args.json is not None:
        wf.io.atomic_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
