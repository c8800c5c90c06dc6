"""Arguments shared by the sub-commands that build one model on one of the paper's data sets."""

from __future__ import annotations

import argparse
from typing import Any

from .. import data as wfdata
from ..model import P3L, PartiallyTrained, Shallow, WideNet

DATASETS = {"random_labels": wfdata.random_labels, "quadratic_teacher": wfdata.quadratic_teacher,
            "axis_xor": wfdata.axis_xor}


def add_model_arguments(p: argparse.ArgumentParser, *, n: int) -> None:
    """--model, --data, -n, -d, -m, -D, --depth, --activation, --scaling, --c-hat, --seed."""
    p.add_argument("--model", choices=["shallow", "p3l", "deep"], default="p3l")
    p.add_argument("--data", choices=sorted(DATASETS), default="axis_xor")
    p.add_argument("-n", type=int, default=n, help="training points")
    p.add_argument("-d", type=int, default=20, help="input dimension")
    p.add_argument("-m", type=int, default=1024, help="width of the trained layer")
    p.add_argument("-D", type=int, default=None, help="embedding dimension (default m)")
    p.add_argument("--depth", type=int, default=4, help="L for --model deep")
    p.add_argument("--activation", default="relu")
    p.add_argument("--scaling", default="ours")
    p.add_argument("--c-hat", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)


def build_model(args: argparse.Namespace, **kwargs: Any) -> WideNet:
    """The model named by the arguments of :func:`add_model_arguments` (``kwargs``: dtype, device, ...)."""
    kw = dict(activation=args.activation, scaling=args.scaling, c_hat=args.c_hat, seed=args.seed, **kwargs)
    if args.model == "shallow":
        return Shallow(args.d, args.m, **kw)
    if args.model == "p3l":
        return P3L(args.d, args.m, args.D, **kw)
    return PartiallyTrained(args.d, args.m, args.D, depth=args.depth, **kw)
