"""Run by tests/test_distributed.py, as the processes of a sharded run.

    worker.py cases OUT            (under torchrun) the runs of CASES; rank 0 writes OUT/<case>.csv
    worker.py fault OUT [options]  (started by the test with RANK, WORLD_SIZE, MASTER_ADDR/PORT set) one run with
                                   checkpoints, which can kill its own process at a step, diverge, or be given a
                                   rank-dependent seed; writes OUT/rank<r>.csv or OUT/rank<r>.error
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path

import torch

import wideflow as wf

#: (name, D, scaling, dtype): finite D and D = ∞ under each scaling of Table 1, a richness one and μP, float64,
#: and one float32 run
CASES = [(f"{scaling}-{'inf' if math.isinf(D) else D}", D, scaling, torch.float64)
         for scaling in ("ours", "ntk", "mf", "richness(0.3)", "mup") for D in (48, math.inf)] + [("ours-inf-f32", math.inf, "ours", torch.float32)]
M, STEPS = 64, 300


def run(D: float, scaling: str, dtype: torch.dtype, distributed: bool):
    X, y = wf.data.axis_xor(24, 6, seed=0)
    Xs, ys = wf.data.axis_xor(10, 6, seed=1)
    activation = "tanh" if scaling == "mf" else "relu"  # MF at D = ∞ starts at h = 0, where relu has σ' = 0
    model = wf.P3L(6, M, D=D, scaling=scaling, activation=activation, dtype=dtype, seed=3)
    return wf.train(model, X, y, steps=STEPS, X_test=Xs, y_test=ys, log_every=50, method="kernel",
                    progress=False, distributed=distributed)


def fault(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--kill-rank", type=int, default=-1)
    p.add_argument("--kill-at", type=int, default=-1)
    p.add_argument("--step-size", type=float, default=1.0)
    p.add_argument("--seed-per-rank", action="store_true")
    a = p.parse_args(argv)
    rank = int(os.environ["RANK"])
    X, y = wf.data.axis_xor(24, 6, seed=0)
    model = wf.P3L(6, M, D=math.inf, seed=3 + (rank if a.seed_per_rank else 0))

    def killer(state: wf.TrainState) -> dict:
        if rank == a.kill_rank and state.step == a.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {}

    try:
        result = wf.train(model, X, y, steps=STEPS, step_size=a.step_size, log_every=10, method="kernel",
                          progress=False, distributed=True, checkpoint=a.checkpoint,
                          checkpoint_every=None if a.checkpoint is None else 50, resume=a.checkpoint,
                          callbacks=[killer])
    except wf.WideflowError as exc:
        step = getattr(exc, "step", None)
        (a.out / f"rank{rank}.error").write_text(f"{type(exc).__name__} {step}\n{exc}\n")
        print(f"rank {rank}: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
    result.history.to_csv(a.out / f"rank{rank}.csv", index=False)


if __name__ == "__main__":
    if sys.argv[1] == "fault":
        fault(sys.argv[2:])
    else:
        out = Path(sys.argv[2])
        for name, D, scaling, dtype in CASES:
            history = run(D, scaling, dtype, distributed=True).history
            if torch.distributed.get_rank() == 0:
                history.to_csv(out / f"{name}.csv", index=False)
