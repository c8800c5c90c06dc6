"""``wideflow reproduce``: the paper's experiments, figures and verdicts from one command (Section 4)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..experiments import ALL, EXPERIMENTS, PRESETS, reproduce


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's experiments: figures, CSVs, summary.json and REPORT.md",
        description="Run the grids of Experiments 1-3 through the sweep runner, draw Figures 1-4 (PNG and PDF "
                    "with the CSV behind each) and check each claim of the paper, in DIR/<exp>/ and DIR/REPORT.md. "
                    "Runs are kept in DIR/store: rerunning computes only what is missing.",
    )
    p.add_argument("experiment", choices=[*EXPERIMENTS, "all"],
                   help=f"which experiment (all: {', '.join(ALL)}; precision and limits run only when named)")
    p.add_argument("--preset", choices=PRESETS, default="quick",
                   help="built-in settings: quick (minutes on a laptop), paper (the paper's), tiny (smoke test)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="a preset TOML file (e.g. a copied and edited one) whose keys override --preset")
    p.add_argument("--seeds", type=int, default=None, metavar="K", help="repeat each setting K times")
    p.add_argument("--device", default=None, metavar="DEV", help="torch device of the runs (cpu, cuda, cuda:1)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of a running Dask scheduler (default: a local cluster on this machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = list(ALL) if args.experiment == "all" else [args.experiment]
    t0 = time.perf_counter()
    summaries = reproduce(names, args.out, preset=args.preset, config=args.config, seeds=args.seeds,
                          device=args.device, scheduler=args.scheduler, progress=not args.no_progress)
    for name, summary in summaries.items():
        runs = summary["runs"]
        verdicts = ", ".join(f"{k} {v}" for k, v in summary["verdicts"].items())
        print(f"{name}: {len(summary['claims'])} claims ({verdicts}; {runs['total']} runs, "
              f"{runs['computed_now']} computed now) -> {args.out / name / 'summary.json'}")
        for claim in summary["claims"]:
            print(f"  [{claim['verdict']}] {claim['id']}: {claim['headline']}")
        for row in summary.get("sensitivity", []):
            print(f"  [{row['reading']}] {row['claim']}: {row['verdict']} ({row['test']})")
    print(f"report: {args.out / 'REPORT.md'} (wall time {time.perf_counter() - t0:.1f} s)")
    return 0
