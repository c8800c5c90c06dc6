"""``wideflow check``: which assumptions and which theorem hold for one model and data set (spec §2)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..theory import check
from ._models import DATASETS, add_model_arguments, build_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check Assumptions 1-4 and Condition 1 for a model and data set, and "
                                     "print which theorem applies and the rate it guarantees")
    add_model_arguments(p, n=50)
    p.add_argument("--reduction", default="sum", help="sum (N = 1, the paper's statements) or mean (N = n)")
    p.add_argument("--delta", type=float, default=0.05, help="failure probability for Lemma 3's width condition")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    X, y = DATASETS[args.data](args.n, args.d, seed=args.seed)
    report = check(build_model(args), X, y, reduction=args.reduction, delta=args.delta, verbose=True)
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
