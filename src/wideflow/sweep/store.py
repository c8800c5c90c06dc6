"""The results store: one folder per run, named by the hash of its configuration, written atomically.

Layout::

    STORE/store.json                      format, wideflow version and git revision of its creation
    STORE/runs/<run_id>/config.json       the normalized run configuration
    STORE/runs/<run_id>/history.parquet   the training history
    STORE/runs/<run_id>/arrays.npz        recorded arrays (may be empty)
    STORE/runs/<run_id>/run.json          provenance: wideflow version, git revision, host, batch size
    STORE/runs/<run_id>/metrics.json      final metrics; written last, so a run is finished iff it exists
    STORE/runs/<run_id>/error.json        a failed attempt: error, traceback (removed once the run succeeds)

Every file is written by :func:`wideflow.io.atomic_write`: to a temporary name in the same folder
(``.NAME.PID.RANDOM.tmp``), flushed to disk and renamed into place, so a crash (Ctrl-C, SIGKILL, power loss)
never leaves a half-written file under a final name, and a run whose metrics.json is missing is simply run
again. A writer killed mid-file leaves its hidden temporary file behind; it is never read (and never
deleted, in case another process is writing the same run). The JSON files follow the policy of
:mod:`wideflow.io`: a NaN or infinite metric (no test set, a history too short to fit) is written as
``null``, and :meth:`Store.row` reads it back as NaN.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import InvalidArgument, OutputError
from ..io import atomic_json, atomic_write, read_json
from .config import flatten
from .runner import Outcome

__all__ = ["Store", "load_results", "load_history", "load_arrays", "provenance", "compact"]

STORE_FORMAT = 1


@functools.lru_cache(maxsize=1)
def provenance() -> dict[str, Any]:
    """The wideflow version and, when wideflow runs from a git checkout, its commit and whether the
    working tree differs from it (``git_dirty``)."""
    here = Path(__file__).resolve().parent
    info: dict[str, Any] = {"wideflow_version": __version__, "git_revision": None, "git_dirty": None}
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return info
    info.update(git_revision=rev, git_dirty=bool(dirty))
    return info


class Store:
    """A results store at ``path`` (created on first use)."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True) -> None:
        self.path = Path(path)
        meta = self.path / "store.json"
        if meta.exists():
            info = read_json(meta)
            if info.get("format") != STORE_FORMAT:
                raise InvalidArgument(
                    f"{str(self.path)!r} is a results store of format {info.get('format')!r}; this wideflow "
                    f"reads format {STORE_FORMAT}."
                )
        elif self.path.exists() and not self.path.is_dir():
            raise InvalidArgument(f"store={str(self.path)!r} is a file; expected a folder for the results store "
                                  "(made if missing).")
        elif not create:
            raise InvalidArgument(f"{str(self.path)!r} is not a wideflow results store (it has no store.json).")
        elif self.path.exists() and any(self.path.iterdir()):
            raise InvalidArgument(
                f"store={str(self.path)!r} is a folder that is not empty and not a wideflow results store; "
                "give a new or empty folder."
            )
        else:
            _mkdir(self.path / "runs")
            atomic_json(meta, {"format": STORE_FORMAT, "created": _now(), **provenance()})

    def folder(self, rid: str) -> Path:
        return self.path / "runs" / rid

    def finished(self, rid: str) -> bool:
        """True once the run's metrics.json exists."""
        return (self.folder(rid) / "metrics.json").exists()

    def run_ids(self) -> list[str]:
        """Ids of every run with a folder (finished or failed), sorted."""
        runs = self.path / "runs"
        return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.exists() else []

    def write(self, outcome: Outcome) -> None:
        """Record a finished or a failed run. A failure never overwrites a finished run."""
        folder = self.folder(outcome.run_id)
        _mkdir(folder)
        atomic_json(folder / "config.json", outcome.config)
        run_info = {**provenance(), "host": platform.node(), "batch_size": outcome.batch_size, "written": _now()}
        if outcome.output is None:
            if not self.finished(outcome.run_id):
                atomic_json(folder / "error.json", {"error": outcome.error, "traceback": outcome.traceback,
                                                     **run_info})
            return
        out = outcome.output
        atomic_write(folder / "history.parquet", lambda fh: out.history.to_parquet(fh, index=False))
        atomic_write(folder / "arrays.npz", lambda fh: np.savez(fh, **out.arrays))
        atomic_json(folder / "run.json", run_info)
        atomic_json(folder / "metrics.json", out.metrics)
        (folder / "error.json").unlink(missing_ok=True)

    def row(self, rid: str) -> dict[str, Any] | None:
        """The results-table row of a run: run_id, status, error, configuration columns, metrics and
        provenance; ``None`` if the store has nothing for it."""
        folder = self.folder(rid)
        if self.finished(rid):
            metrics = {k: math.nan if v is None else v for k, v in read_json(folder / "metrics.json").items()}
            info = read_json(folder / "run.json")
            status, error = "ok", None
        elif (folder / "error.json").exists():
            info = read_json(folder / "error.json")
            metrics, status, error = {}, "failed", info["error"]
        else:
            return None
        config = read_json(folder / "config.json")
        return {"run_id": rid, "status": status, "error": error, **flatten(config), **metrics,
                "wideflow_version": info.get("wideflow_version"), "git_revision": info.get("git_revision")}

    def table(self, run_ids: Iterable[str]) -> pd.DataFrame:
        """The results table of ``run_ids`` (in that order; runs the store lacks are left out)."""
        rows = [row for rid in run_ids if (row := self.row(rid)) is not None]
        return pd.DataFrame(rows)


def load_results(store: str | os.PathLike, histories: bool = False) -> pd.DataFrame:
    """The results table of every run in ``store``, sorted by run id.

    One row per run: ``run_id``, ``status`` ("ok" or "failed"), ``error``, the configuration flattened to
    dotted columns (``model.m``, ``data.n``, ``tags.experiment``, ...), the final metrics
    (final_train_loss, final_test_error, fitted_rate, ...) and the wideflow version and git revision that
    produced it. With ``histories=True``: one row per logged step of every finished run instead, the
    history columns (step, time, train_loss, test_error) joined to that run's row.
    """
    st = Store(store, create=False)
    table = st.table(st.run_ids())
    if not histories or table.empty:
        return table
    ok = table[table["status"] == "ok"]
    parts = [load_history(store, rid).assign(run_id=rid) for rid in ok["run_id"]]
    if not parts:
        return table.iloc[0:0]
    return ok.merge(pd.concat(parts, ignore_index=True), on="run_id", how="inner")


def load_history(store: str | os.PathLike, run_id: str) -> pd.DataFrame:
    """The training history of one finished run."""
    return pd.read_parquet(_finished_file(store, run_id, "history.parquet"))


def load_arrays(store: str | os.PathLike, run_id: str) -> dict[str, np.ndarray]:
    """The arrays recorded by one finished run (e.g. ``h0_train``/``hT_train`` with ``record.features``)."""
    with np.load(_finished_file(store, run_id, "arrays.npz")) as npz:
        return {k: npz[k] for k in npz.files}


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """The columns of a results table that tell its runs apart: ids and status, the configuration
    columns whose values differ between rows, and every other column (metrics, history); the error
    column only when a run failed, and no provenance."""
    keep = []
    for col in table.columns:
        if col in ("wideflow_version", "git_revision") or (col == "error" and table[col].isna().all()):
            continue
        if "." in col and table[col].astype(str).nunique() <= 1 and len(table) > 1:
            continue
        keep.append(col)
    return table[keep]


def _finished_file(store: str | os.PathLike, run_id: str, name: str) -> Path:
    st = Store(store, create=False)
    if not st.finished(run_id):
        raise InvalidArgument(f"run_id={run_id!r} is not a finished run of the store {str(st.path)!r}.")
    return st.folder(run_id) / name


def _mkdir(folder: Path) -> None:
    """``folder`` and its parents, or :class:`~wideflow.errors.OutputError` naming it (read-only, full disk)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to the results store: could not make {str(folder)!r}: "
                          f"{exc.strerror or exc}.") from None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
