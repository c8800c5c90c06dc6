"""Train one model sharded over the processes of a torchrun launch, and write the history (rank 0).

    torchrun --nproc_per_node 2 examples/distributed_train.py --neurons 4096 --embedding inf --steps 300 \
        --out out/dist.csv

(Long option names: torchrun reads an abbreviation such as --m as one of its own options.)

Every process builds the same model and data; ``wf.train(..., distributed=True)`` gives each its block of the
neurons (wideflow.distributed), and the history is the same on every rank. Without torchrun (or with
``--single``) the same script trains on one process, which is what the distributed run reproduces.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch

import wideflow as wf


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-dim", dest="d", type=int, default=10, help="d")
    p.add_argument("--neurons", dest="m", type=int, default=256, help="m")
    p.add_argument("--embedding", dest="D", default="inf", help="D, or 'inf' for the infinite random embedding")
    p.add_argument("--points", dest="n", type=int, default=64, help="n, training inputs")
    p.add_argument("--test-points", dest="n_test", type=int, default=32, help="test inputs")
    p.add_argument("--scaling", default="ours", choices=["ours", "ntk", "mf"])
    p.add_argument("--activation", default="relu")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--single", action="store_true", help="train on this process alone (the reference); the default "
                   "outside torchrun")
    p.add_argument("--out", type=Path, default=Path("out/examples/distributed_train.csv"),
                   help="CSV of the history (written by rank 0)")
    args = p.parse_args(argv)
    D = math.inf if args.D == "inf" else int(args.D)
    sharded = "RANK" in os.environ and not args.single
    device = args.device
    if sharded and device == "cuda":  # one GPU per process (NCCL): torchrun numbers them LOCAL_RANK
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    X, y = wf.data.axis_xor(args.n, args.d, seed=0)
    Xs, ys = wf.data.axis_xor(args.n_test, args.d, seed=1)
    model = wf.P3L(args.d, args.m, D=D, scaling=args.scaling, activation=args.activation,
                   dtype=getattr(torch, args.dtype), device=device)
    result = wf.train(model, X, y, steps=args.steps, X_test=Xs, y_test=ys, log_every=args.log_every,
                      method="kernel", progress=False, distributed=sharded,
                      checkpoint=args.checkpoint, resume=args.checkpoint)
    if not sharded or torch.distributed.get_rank() == 0:
        wf.io.atomic_text(args.out, result.history.to_csv(index=False))
        processes = torch.distributed.get_world_size() if sharded else 1
        print(f"{processes} process(es), m = {args.m}, D = {args.D}: final train loss "
              f"{result.final_train_loss:.6g}, test error {result.final_test_error:.6g}; history in {args.out}")


if __name__ == "__main__":
    main()
