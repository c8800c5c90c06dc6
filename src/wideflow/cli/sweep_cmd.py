"""``wideflow sweep FILE``: run a grid of runs (a TOML grid spec) on Dask, resumably.

``--data FILE`` (with ``--test-data``, ``--test-fraction``, ``--standardize``, :mod:`.data_args`) replaces the
data of every run by a user's file, and ``model.d`` by its number of input columns.

Exit status: 0 when every run succeeded, 1 when at least one failed (the failures are listed, and each
has an ``error.json`` in its run folder), 2 for an invalid grid spec or option.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from ..errors import InvalidArgument
from ..io import read_json, to_json
from ..registry import make_data
from ..sweep import Store, expand, flatten, load_spec, run_id, run_sweep
from ..sweep.store import compact
from .data_args import FILE_KIND, add_file_arguments, file_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs described by a TOML file on Dask (resumable)",
                       description="Expand the grid spec FILE into runs and run those missing from the store "
                       "on Dask distributed (an embedded LocalCluster unless --scheduler is given).",
                       epilog="exit status: 0 when every run succeeded, 1 when a run failed (each failure is listed, "
                       "with its error and configuration), 2 for an invalid grid spec or option.")
    p.add_argument("file", type=Path, help="grid spec (TOML): [base], [grid], [[zip]], seeds")
    p.add_argument("--dry-run", action="store_true", help="list the expanded runs (and which are done) and exit")
    p.add_argument("--store", type=Path, default=None, help="results store folder (default: out/sweeps/<FILE stem>)")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="address of a running Dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster)")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="worker processes of the LocalCluster (default: one per core, at most one per run)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="T",
                   help="torch threads per worker (default: cores // workers)")
    p.add_argument("--no-batch", action="store_true", help="train every run alone (no batching of small runs)")
    p.add_argument("--retries", type=int, default=3, help="re-runs of a task whose worker died (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="train every run on this file instead of the spec's data: a .csv file with a header row and "
                        "a y column, or a .npz archive with arrays X and y; model.d becomes its number of inputs")
    add_file_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    spec = load_spec(args.file)
    if args.data is not None:
        spec = with_data_file(spec, args)
    elif args.test_data is not None or args.test_fraction is not None or args.standardize != "none":
        raise InvalidArgument("--test-data, --test-fraction and --standardize apply to --data FILE, which was not "
                              f"given; the data of {str(args.file)!r} is set in its [base] and [grid].")
    configs = expand(spec)
    store = args.store if args.store is not None else Path("out") / "sweeps" / args.file.stem
    if args.dry_run:
        print(_listing(configs, store).to_string(index=False))
        return 0
    table = run_sweep(configs, store, scheduler=args.scheduler, n_workers=args.workers,
                      torch_threads=args.torch_threads, progress=not args.no_progress, batch=not args.no_batch,
                      retries=args.retries)
    failed = table[table["status"] != "ok"]
    print(f"{len(table)} runs in {store}: {len(table) - len(failed)} ok, {len(failed)} failed "
          f"({table.attrs.get('computed', 0)} computed by this command)")
    for _, row in failed.iterrows():
        config = read_json(store / "runs" / row["run_id"] / "config.json")
        print(f"  failed {row['run_id']}: {row['error']}\n    config: {to_json(config, indent=None, sort_keys=True)}")
    return 0 if failed.empty else 1


def with_data_file(spec: dict, args: argparse.Namespace) -> dict:
    """``spec`` with the data of every run replaced by ``--data FILE`` (read once here, so that a bad file is
    reported before any run starts) and ``model.d`` of ``[base]`` by the file's number of input columns; an axis
    of the data or of model.d is refused."""
    for group in [spec.get("grid", {}), *spec.get("zip", [])]:
        for key, value in group.items():
            if key == "data" or (key == "model" and isinstance(value, dict) and "d" in value):
                raise InvalidArgument(f"--data {args.data} sets the data and model.d of every run, but the grid spec "
                                      f"{str(args.file)!r} varies {key} in an axis; remove that axis.")
    options = file_options(args, args.data)
    X = make_data(FILE_KIND, None, **options)[0]
    base = {**spec.get("base", {})}
    base["model"] = {**base.get("model", {}), "d": X.shape[1]}
    base["data"] = {"kind": FILE_KIND, **options}
    return {**spec, "base": base}


def _listing(configs: list[dict], store: Path) -> pd.DataFrame:
    """One row per expanded run: its id, whether the store has it, and the settings that vary."""
    st = Store(store, create=False) if (store / "store.json").exists() else None
    ids = [run_id(c) for c in configs]
    states = ["to run" if st is None else _state(st, rid) for rid in ids]
    table = pd.DataFrame([{"run_id": rid, "state": s, **flatten(c)} for rid, s, c in zip(ids, states, configs,
                                                                                          strict=True)])
    counts = pd.Series(states).value_counts().to_dict()
    print(f"{len(configs)} runs ({', '.join(f'{v} {k}' for k, v in counts.items())}); store: {store}")
    return compact(table)


def _state(store: Store, rid: str) -> str:
    if store.finished(rid):
        return "done"
    return "failed" if (store.folder(rid) / "error.json").exists() else "to run"
