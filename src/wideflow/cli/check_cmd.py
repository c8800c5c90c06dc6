"""``wideflow check``: which assumptions and which theorem hold for one model and data set (Section 3): a
generator's or a user's file (``--data FILE``, of which the training part is checked; :mod:`.data_args`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io import atomic_json
from ..theory import check
from .data_args import data_file, data_from_args, describe_data
from .train_cmd import add_model_arguments, model_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check Assumptions 1-4 and Condition 1 for a model and data set, and "
                                     "print which theorem applies and the rate it guarantees")
    add_model_arguments(p, n=50)
    p.add_argument("--reduction", default="mean",
                   help="mean (N = n, the default, as for 'wideflow train': the rate compares with a run's) or "
                        "sum (N = 1, the paper's statements)")
    p.add_argument("--loss", default="squared",
                   help="squared (the paper's, the default) or logistic (labels ±1); the theorems are for the squared loss")
    p.add_argument("--delta", type=float, default=0.05, help="failure probability for Lemma 3's width condition")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the report as JSON here (an infinite or undefined number is written as null)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    data = data_from_args(args, with_test=False)
    X, y, _, _ = data
    if data_file(args.data) is not None:
        print(describe_data(args, data))
    report = check(model_from_args(args, X.shape[1]), X, y, reduction=args.reduction, delta=args.delta, verbose=True,
                   loss=args.loss)
    if args.json is not None:
        atomic_json(args.json, report)
    return 0
