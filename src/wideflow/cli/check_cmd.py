"""``wideflow check``: which assumptions and which theorem hold for one model and data set (spec §2)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..model import P3L, PartiallyTrained, Shallow
from ..theory import check
from .train_cmd import _DATA


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check Assumptions 1-4 and Condition 1 for a model and data set, and "
                                     "print which theorem applies and the rate it guarantees")
    p.add_argument("--model", choices=["shallow", "p3l", "deep"], default="p3l")
    p.add_argument("--data", choices=sorted(_DATA), default="axis_xor")
    p.add_argument("-n", type=int, default=50, help="training points")
    p.add_argument("-d", type=int, default=20, help="input dimension")
    p.add_argument("-m", type=int, default=1024, help="width of the trained layer")
    p.add_argument("-D", type=int, default=None, help="embedding dimension (default m)")
    p.add_argument("--depth", type=int, default=4, help="L for --model deep")
    p.add_argument("--activation", default="relu")
    p.add_argument("--scaling", default="ours")
    p.add_argument("--c-hat", type=float, default=1.0)
    p.add_argument("--reduction", default="sum", help="sum (N = 1, the paper's statements) or mean (N = n)")
    p.add_argument("--delta", type=float, default=0.05, help="failure probability for Lemma 3's width condition")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    X, y = _DATA[args.data](args.n, args.d, seed=args.seed)
    kw = dict(activation=args.activation, scaling=args.scaling, c_hat=args.c_hat, seed=args.seed)
    if args.model == "shallow":
        model = Shallow(args.d, args.m, **kw)
    elif args.model == "p3l":
        model = P3L(args.d, args.m, args.D, **kw)
    else:
        model = PartiallyTrained(args.d, args.m, args.D, depth=args.depth, **kw)
    report = check(model, X, y, reduction=args.reduction, delta=args.delta, verbose=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(report), indent=2))
    return 0


def _jsonable(value: Any) -> Any:
    """The report with tuples as lists and ±∞ as strings (JSON has no infinity)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
