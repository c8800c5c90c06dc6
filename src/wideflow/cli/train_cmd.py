"""``wideflow train``: train one model on one of the paper's data sets and print the history."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import data as wfdata
from ..dynamics import train
from ..model import P3L, PartiallyTrained, Shallow

_DATA = {"random_labels": wfdata.random_labels, "quadratic_teacher": wfdata.quadratic_teacher,
         "axis_xor": wfdata.axis_xor}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model by full-batch GD and print its history")
    p.add_argument("--model", choices=["shallow", "p3l", "deep"], default="p3l")
    p.add_argument("--data", choices=sorted(_DATA), default="axis_xor")
    p.add_argument("-n", type=int, default=200, help="training points")
    p.add_argument("--n-test", type=int, default=500, help="test points")
    p.add_argument("-d", type=int, default=20, help="input dimension")
    p.add_argument("-m", type=int, default=1024, help="width of the trained layer")
    p.add_argument("-D", type=int, default=None, help="embedding dimension (default m)")
    p.add_argument("--depth", type=int, default=4, help="L for --model deep")
    p.add_argument("--activation", default="relu")
    p.add_argument("--scaling", default="ours")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--step-size", type=float, default=1.0)
    p.add_argument("--reduction", default="mean")
    p.add_argument("--method", default="auto")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write the history as CSV here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    gen = _DATA[args.data]
    X, y = gen(args.n, args.d, seed=args.seed)
    Xt, yt = gen(args.n_test, args.d, seed=args.seed + 10_000)
    kw = dict(activation=args.activation, scaling=args.scaling, seed=args.seed, dtype=args.dtype,
              device=args.device)
    if args.model == "shallow":
        model = Shallow(args.d, args.m, **kw)
    elif args.model == "p3l":
        model = P3L(args.d, args.m, args.D, **kw)
    else:
        model = PartiallyTrained(args.d, args.m, args.D, depth=args.depth, **kw)
    result = train(model, X, y, steps=args.steps, step_size=args.step_size, X_test=Xt, y_test=yt,
                   reduction=args.reduction, method=args.method, log_every=args.log_every)
    print(result.history.to_string(index=False))
    print(f"method={result.method} wall_time={result.wall_time:.2f}s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.history.to_csv(args.out, index=False)
    return 0
