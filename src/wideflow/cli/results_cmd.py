"""``wideflow results DIR``: the results table of a sweep store, printed or written as CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..io import atomic_write
from ..sweep import load_results
from ..sweep.store import compact


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="show or export the results table of a sweep store",
                       description="One row per run: configuration columns and final metrics (with --histories, "
                       "one row per logged step).")
    p.add_argument("store", type=Path, help="a results store written by 'wideflow sweep'")
    p.add_argument("--histories", action="store_true", help="one row per logged step of every finished run")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE", help="write the full table here as CSV")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    table = load_results(args.store, histories=args.histories)
    if args.csv is not None:
        atomic_write(args.csv, lambda fh: table.to_csv(fh, index=False))
        print(f"wrote {len(table)} rows and {table.shape[1]} columns to {args.csv}")
        return 0
    if table.empty:
        print(f"{args.store}: no runs yet")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_rows", None):
        print(compact(table).to_string(index=False))
    return 0
