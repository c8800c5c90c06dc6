"""Run the paper's experiments end to end: grids through the sweep runner, then tables, figures, verdicts.

:func:`reproduce` is what ``wideflow reproduce`` calls. For each experiment it writes, under ``out/<exp>/``:
``summary.json`` (settings, run counts, and every claim with its measured numbers and verdict), the
figures as PNG and PDF, the CSV behind each figure and ``runs.csv`` (one row per run: configuration and
final metrics); then ``out/REPORT.md`` over every experiment found in ``out``. The runs live in the sweep
store ``out/store``, so running the same command again computes only what is missing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from .. import sweep
from ..errors import WideflowError, check_choice
from ..io import atomic_json, jsonable
from ..sweep.runner import build_data
from ..sweep.store import provenance
from . import exp1, exp2, exp3, limits, precision, real, richness, sensitivity
from .common import experiment_settings, load_preset, write_csv
from .report import write_report
from .stats import VERDICTS

__all__ = ["ALL", "EXPERIMENTS", "RunsFailed", "reproduce"]

EXPERIMENTS: dict[str, ModuleType] = {"exp1": exp1, "exp2": exp2, "exp3": exp3, "sensitivity": sensitivity,
                                      "real": real, "precision": precision, "limits": limits, "richness": richness}
# What ``wideflow reproduce all`` runs: the paper's three experiments, the sensitivity of Experiment 3 to the
# unstated choices, the real-data comparison and the richness family between ours and NTK (Appendix C).
# precision (long runs) and limits (the m → ∞ study at D = ∞, beyond the paper's figures) run when named.
ALL = ("exp1", "exp2", "exp3", "sensitivity", "real", "richness")


class RunsFailed(WideflowError, RuntimeError):
    """Some runs of a reproduction failed; the experiments they belong to have no verdicts."""


def reproduce(
    experiments: Sequence[str],
    out: str | Path,
    *,
    preset: str = "quick",
    config: str | Path | None = None,
    seeds: int | None = None,
    device: str | None = None,
    scheduler: Any = None,
    progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Reproduce ``experiments`` (names from :data:`EXPERIMENTS`) into the folder ``out``.

    ``preset``/``config``/``seeds``/``device`` choose the settings (see
    :func:`~wideflow.experiments.common.load_preset`); ``scheduler`` is passed to
    :func:`wideflow.sweep.run_sweep` (``None``: an embedded Dask LocalCluster). Returns the summary of each
    experiment (what its ``summary.json`` holds). Raises :class:`RunsFailed` after writing everything else
    if a run failed.
    """
    names = [check_choice("experiment", name, EXPERIMENTS) for name in experiments]
    out = Path(out)
    t0 = time.perf_counter()
    settings = load_preset(preset, config, seeds=seeds, device=device,
                           experiment_keys={name: mod.KEYS for name, mod in EXPERIMENTS.items()})
    per_exp = {name: experiment_settings(settings, name) for name in names}
    for name in names:  # an experiment that reads files writes them first (real: the digits splits)
        if hasattr(EXPERIMENTS[name], "prepare"):
            per_exp[name] = EXPERIMENTS[name].prepare(per_exp[name], out / name)
    configs = {name: EXPERIMENTS[name].configs(per_exp[name]) for name in names}
    every = [c for name in names for c in configs[name]]
    store = out / "store"
    ids = [sweep.run_id(c) for c in every]
    existing = sweep.Store(store)
    finished_before = {rid for rid in ids if existing.finished(rid)}
    t_sweep = time.perf_counter()
    results = sweep.run_sweep(every, store, scheduler=scheduler, progress=progress)
    sweep_wall = time.perf_counter() - t_sweep

    summaries, failed = {}, {}
    start = 0
    for name in names:
        if hasattr(EXPERIMENTS[name], "run"):  # trained in this process, not by the sweep (limits, richness)
            runs, computed = EXPERIMENTS[name].run(per_exp[name], store, progress=progress)
        else:
            runs = results.iloc[start:start + len(configs[name])].reset_index(drop=True)
            runs["zero_test_error"] = zero_test_errors(configs[name])
            start += len(configs[name])
            computed = int((~runs["run_id"].isin(finished_before)).sum())
        summaries[name] = _experiment(name, runs, per_exp[name], settings, out, store, computed)
        if summaries[name]["runs"]["failed"]:
            failed[name] = summaries[name]["failed_runs"]
    wall = time.perf_counter() - t0
    for name, summary in summaries.items():
        summary["command"] = {"experiments": names, "wall_time_s": wall, "sweep_wall_time_s": sweep_wall}
        atomic_json(out / name / "summary.json", summary)
    write_report(out)
    if failed:
        lines = [f"{name}: run {f['run_id']} failed: {f['error']}" for name, fs in failed.items() for f in fs]
        raise RunsFailed(
            f"{sum(len(v) for v in failed.values())} run(s) failed, so {sorted(failed)} have no verdicts "
            f"(their errors are in {out}/<exp>/summary.json and {store}/runs/<run_id>/error.json):\n  "
            + "\n  ".join(lines[:10])
        )
    return summaries


def zero_test_errors(configs: Sequence[dict[str, Any]]) -> list[float]:
    """The test error ½·mean(y²) of the predictor f ≡ 0 on each run's test set (NaN without one): the chance
    level of :func:`.stats.judged_cells`, written to ``runs.csv`` as ``zero_test_error``."""
    cache: dict[str, float] = {}
    out = []
    for config in configs:
        config = sweep.normalize(config)
        key = json.dumps([config["data"], config["model"]["d"]], sort_keys=True, default=str)
        if key not in cache:
            y_test = build_data(config)[3]
            cache[key] = math.nan if y_test is None or len(y_test) == 0 else 0.5 * float((y_test.double() ** 2).mean())
        out.append(cache[key])
    return out


def _experiment(name: str, runs: pd.DataFrame, s: dict[str, Any], settings: dict[str, Any], out: Path,
                store: Path, computed: int) -> dict[str, Any]:
    """Tables, figures and claims of one experiment whose runs are in ``runs``; returns its summary."""
    mod = EXPERIMENTS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    ok = runs["status"] == "ok"
    summary: dict[str, Any] = {
        "experiment": name,
        "title": mod.title(s) if hasattr(mod, "title") else mod.TITLE,
        "preset": settings["preset"],
        "preset_files": settings["sources"],
        "settings": s,
        **provenance(),
        "runs": {"total": len(runs), "computed_now": computed, "reused": len(runs) - computed,
                 "failed": int((~ok).sum()),
                 "training_time_s": float(runs.loc[ok, "wall_time"].sum()) if ok.any() else 0.0},
        "tables": [write_csv(runs, folder, "runs")],
        "figures": [],
        "claims": [],
    }
    if not ok.all():
        summary["failed_runs"] = [{"run_id": r.run_id, "error": r.error} for r in runs[~ok].itertuples()]
    else:
        tables = mod.tables(runs, lambda rid: sweep.load_history(store, rid),
                            lambda rid: sweep.load_arrays(store, rid), s)
        summary["tables"] += [write_csv(table, folder, stem) for stem, table in tables.items()]
        summary["figures"] = mod.figures(tables, folder, s)
        summary["claims"] = [claim.to_dict() for claim in mod.claims(tables, s)]
        if hasattr(mod, "extras"):
            summary.update(jsonable(mod.extras(tables, s)))
    summary["reproduced"] = f"{sum(c['reproduced'] for c in summary['claims'])}/{len(summary['claims'])}"
    summary["verdicts"] = {v: sum(c["verdict"] == v for c in summary["claims"]) for v in VERDICTS}
    return summary
