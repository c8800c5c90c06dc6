"""``wideflow train``: train one model on one of the paper's data sets and print the history."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..dynamics import train
from ._models import DATASETS, add_model_arguments, build_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model by full-batch GD and print its history")
    add_model_arguments(p, n=200)
    p.add_argument("--n-test", type=int, default=500, help="test points")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--step-size", type=float, default=1.0)
    p.add_argument("--reduction", default="mean")
    p.add_argument("--method", default="auto")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write the history as CSV here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gen = DATASETS[args.data]
    X, y = gen(args.n, args.d, seed=args.seed)
    Xt, yt = gen(args.n_test, args.d, seed=args.seed + 10_000)
    model = build_model(args, dtype=args.dtype, device=args.device)
    result = train(model, X, y, steps=args.steps, step_size=args.step_size, X_test=Xt, y_test=yt,
                   reduction=args.reduction, method=args.method, log_every=args.log_every)
    print(result.history.to_string(index=False))
    print(f"method={result.method} wall_time={result.wall_time:.2f}s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.history.to_csv(args.out, index=False)
    return 0
