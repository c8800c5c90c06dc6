"""Shared pieces of the reproductions (Section 4): presets, claims and the figures and files an experiment writes.

A **preset** is a plain TOML file (``wideflow/presets/{quick,paper,tiny}.toml``; users copy and edit one
and pass it with ``--config``). Its ``[run]`` table holds the settings every experiment shares (seeds,
step size δ, loss reduction, activation, ĉ, dtype, device, test-set size) and each ``[expK]`` table the
grid of one experiment; a key of ``[run]`` repeated in ``[expK]`` overrides it for that experiment.

A **claim** is one statement of the paper with the numbers this run measured and the verdict of a
stated, fixed test on them (:mod:`.stats`): "reproduced", "not reproduced" or "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._tensor import parse_device
from ..activations import get_activation
from ..display import claims_html
from ..engines import METHODS, REDUCTIONS
from ..errors import (
    InvalidArgument,
    InvalidType,
    UnknownName,
    WideflowError,
    check_choice,
    check_positive_float,
    check_positive_int,
    closest,
)
from ..io import atomic_write, jsonable
from ..losses import LOSSES
from ..sweep.config import DTYPES, read_toml

__all__ = [
    "POOL_MIN_FLOPS",
    "PRESETS",
    "RUN_KEYS",
    "Claim",
    "check_even_widths",
    "choice_list",
    "experiment_settings",
    "final_and_curves",
    "in_process_workers",
    "int_list",
    "load_preset",
    "log_panel",
    "model_section",
    "n_axis",
    "nonneg_int",
    "palette",
    "plot_over_seeds",
    "positive_int",
    "preset_path",
    "save_figure",
    "seed_list",
    "seeds_label",
    "single_axes",
    "train_in_process",
    "train_section",
    "write_csv",
]

PRESETS = ("quick", "paper", "tiny")
SCALING_NAMES = ("ours", "ntk", "mf")

Validator = Callable[[str, Any], Any]


# ------------------------------------------------------------------------------------------- validators
def positive_int(key: str, value: Any) -> int:
    """An integer ≥ 1."""
    return check_positive_int(key, value)


def nonneg_int(key: str, value: Any) -> int:
    """An integer ≥ 0."""
    return check_positive_int(key, value, minimum=0)


def positive_float(key: str, value: Any) -> float:
    """A finite real number > 0."""
    return check_positive_float(key, value)


def int_list(key: str, value: Any) -> list[int]:
    """A non-empty, strictly increasing list of integers ≥ 1 (a grid axis such as n or m)."""
    if not isinstance(value, list) or not value:
        raise InvalidType(f"{key} must be a non-empty list of integers such as [20, 40]; got {value!r}.")
    out = [check_positive_int(f"{key} entry", v) for v in value]
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InvalidArgument(f"{key} must be strictly increasing (each value once); got {out}.")
    return out


def check_even_widths(key: str, widths: Sequence[int], scalings: Sequence[str]) -> None:
    """Refuse odd widths when the NTK scaling is among ``scalings`` (its symmetrized initialization pairs neuron i
    with i + m/2)."""
    if "ntk" in scalings and (odd := [m for m in widths if m % 2]):
        raise InvalidArgument(f"{key}={list(widths)} has odd widths {odd}; the NTK scaling's symmetrized "
                              "initialization needs even m.")


def choice_list(valid: Sequence[str]) -> Validator:
    """A validator of a non-empty list of distinct names from ``valid``."""

    def check(key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not value:
            raise InvalidType(f"{key} must be a non-empty list drawn from {list(valid)}; got {value!r}.")
        out = [check_choice(f"{key} entry", v, valid) for v in value]
        if len(set(out)) != len(out):
            raise InvalidArgument(f"{key} lists a value twice: {out}.")
        return out

    return check


def _choice(valid: Sequence[str]) -> Validator:
    return lambda key, value: check_choice(key, value, valid)


def activation_name(key: str, value: Any) -> Any:
    """The name of a registered activation (or an activation), checked by :func:`wideflow.get_activation`."""
    get_activation(value)
    return value


def _device(key: str, value: Any) -> str:
    """A device name ('cpu', 'cuda', 'cuda:K', 'mps'); whether it exists is checked by the sweep."""
    if not isinstance(value, str):
        raise InvalidType(f"{key} must be a device name such as 'cpu' or 'cuda:0'; got {value!r}.")
    parse_device(value, key)
    return value


# The settings every experiment shares (the [run] table of a preset).
RUN_KEYS: dict[str, Validator] = {
    "seeds": positive_int,
    "step_size": positive_float,
    "reduction": _choice(REDUCTIONS),
    "loss": _choice(tuple(LOSSES)),
    "activation": activation_name,
    "c_hat": positive_float,
    "dtype": _choice(DTYPES),
    "device": _device,
    "method": _choice(METHODS),
    "n_test": nonneg_int,
}


# ------------------------------------------------------------------------------------------- presets
def preset_path(name: str) -> Path:
    """The file of the built-in preset ``name`` (one of :data:`PRESETS`)."""
    check_choice("preset", name, PRESETS)
    return Path(str(resources.files("wideflow") / "presets" / f"{name}.toml"))


def load_preset(
    preset: str = "quick",
    config: str | Path | None = None,
    *,
    experiment_keys: Mapping[str, Mapping[str, Validator]],
    seeds: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The validated settings of a reproduction: the built-in ``preset``, then the file ``config`` over it.

    ``config`` may hold a whole preset (a copied and edited file) or only the keys it changes.
    ``seeds`` and ``device`` (the command line's ``--seeds``/``--device``) override both. Returns
    ``{"preset": name, "sources": [files], "run": {...}, "<exp>": {...}}``; unknown tables or keys and
    invalid values raise :class:`~wideflow.errors.InvalidArgument` naming the file, table and key.
    """
    sources = [preset_path(preset)]
    if config is not None:
        sources.append(Path(config))
    merged: dict[str, dict[str, Any]] = {}
    valid_tables = ["run", *experiment_keys]
    for path in sources:
        for table, values in read_toml(path, "preset file").items():
            if table not in valid_tables:
                raise UnknownName(f"unknown table [{table}] in {str(path)!r}; expected one of "
                                  f"{', '.join(f'[{t}]' for t in valid_tables)}." + closest(table, valid_tables))
            if not isinstance(values, dict):
                raise InvalidType(f"[{table}] in {str(path)!r} must be a table of settings; got {values!r}.")
            allowed = RUN_KEYS if table == "run" else {**RUN_KEYS, **experiment_keys[table]}
            for key, value in values.items():
                if key not in allowed:
                    raise UnknownName(f"unknown key {key!r} in [{table}] of {str(path)!r}; expected one of "
                                      f"{', '.join(map(repr, sorted(allowed)))}." + closest(key, allowed))
                try:
                    merged.setdefault(table, {})[key] = allowed[key](f"{table}.{key}", value)
                except WideflowError as exc:
                    raise type(exc)(f"{str(path)!r}: {exc}") from None
    overrides = {}
    if seeds is not None:
        overrides["seeds"] = positive_int("--seeds", seeds)
    if device is not None:
        overrides["device"] = _device("--device", device)
    for key, value in overrides.items():  # the command line wins over every table that sets the key
        merged.setdefault("run", {})[key] = value
        for table in merged.values():
            if key in table:
                table[key] = value
    missing = [f"run.{k}" for k in RUN_KEYS if k not in merged.get("run", {})]
    missing += [f"{t}.{k}" for t, keys in experiment_keys.items() for k in keys if k not in merged.get(t, {})]
    if missing:
        raise InvalidArgument(f"the preset {[str(s) for s in sources]} leaves {missing} unset; every key is needed.")
    return {"preset": preset if config is None else f"{preset}+{Path(config).name}",
            "sources": [str(s) for s in sources], **merged}


def experiment_settings(settings: Mapping[str, Any], experiment: str) -> dict[str, Any]:
    """The flat settings of one experiment: ``[run]`` with the experiment's own table over it."""
    return {**settings["run"], **settings[experiment]}


def seed_list(s: Mapping[str, Any]) -> list[int]:
    """The seeds 0..K-1 of ``--seeds K``; each seeds both the model (c, W, z) and the training set."""
    return list(range(s["seeds"]))


def model_section(s: Mapping[str, Any], **model: Any) -> dict[str, Any]:
    """The ``model`` part of a run configuration with the shared activation and ĉ of ``s``."""
    return {"activation": s["activation"], "c_hat": s["c_hat"], **model}


def train_section(s: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train`` part of a run configuration: GD with step δ for ``steps`` steps (eq. (9))."""
    return {key: s[key] for key in ("steps", "step_size", "reduction", "method", "log_every", "dtype", "device",
                                    "loss")}


# ------------------------------------------------------------------------------------------- claims
@dataclass
class Claim:
    """One claim of the paper, the numbers this run measured for it, and the verdict.

    ``statement`` is the paper's claim, ``source`` where it is made, ``criterion`` the paired differences
    tested (see :mod:`.stats`), ``headline`` a one-line digest of the numbers for tables, ``test`` the
    result of :func:`.stats.paired_test` (or a dict of them, one per condition, for a claim of several
    conditions), ``verdict`` one of "reproduced", "not reproduced", "inconclusive", and ``reproduced``
    whether the verdict is "reproduced". ``data`` names the CSV file the verdict is recomputed from.
    """

    id: str
    statement: str
    source: str
    criterion: str
    headline: str
    verdict: str
    test: dict[str, Any]
    data: str
    measured: dict[str, Any] = field(default_factory=dict)
    reproduced: bool = field(init=False)

    def __post_init__(self) -> None:
        check_choice("verdict", self.verdict, ("reproduced", "not reproduced", "inconclusive"))
        self.reproduced = self.verdict == "reproduced"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))

    def _repr_html_(self) -> str:
        """Jupyter's display: the claim's row of :func:`wideflow.display.claims_html`."""
        return claims_html([self.to_dict()])


# ------------------------------------------------------------------------------------------- files
def palette(k: int, name: str = "viridis") -> list[tuple[float, float, float, float]]:
    """``k`` colours spread along a colour map (dark to light), one per curve of a family."""
    from matplotlib import colormaps

    return [colormaps[name](x) for x in np.linspace(0.0, 0.85, k)]


def n_axis(ax: Any, values: Sequence[int]) -> None:
    """A log-scale x axis whose ticks are exactly the grid ``values`` (n), written as plain integers."""
    ax.set_xscale("log")
    ax.set_xticks(list(values), [str(v) for v in values])
    ax.minorticks_off()


def seeds_label(s: Mapping[str, Any]) -> str:
    """"1 seed" / "K seeds, band: min-max" for figure titles."""
    return "1 seed" if s["seeds"] == 1 else f"{s['seeds']} seeds, band: min-max"


def plot_over_seeds(ax: Any, table: pd.DataFrame, x: str, value: str, *, color: Any, style: str = "-",
                    **kw: Any) -> None:
    """Plot ``value`` against ``x`` from a table with one row per (x, seed): the mean over seeds as a line
    and, with several seeds, a band from the min to the max."""
    per = table.pivot(index=x, columns="seed", values=value)
    ax.plot(per.index, per.mean(axis=1), style, color=color, **kw)
    if per.shape[1] > 1:
        ax.fill_between(per.index, per.min(axis=1), per.max(axis=1), color=color, alpha=0.2, lw=0)


def single_axes() -> tuple[Figure, Any]:
    """A figure with one panel, the size of Figures 1 and 2, and its axes."""
    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    return fig, fig.subplots()


def log_panel(ax: Any, xlabel: str, ylabel: str, title: str, **legend: Any) -> None:
    """A log-scale y axis, the axis labels, the title and the legend of one panel."""
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(**legend)


def save_figure(fig: Figure, folder: Path, stem: str) -> list[str]:
    """Write ``fig`` as ``folder/stem.png`` and ``folder/stem.pdf`` (atomically); return the file names.

    Figures are made with ``layout="constrained"``, which fits labels inside the canvas at draw time.
    """
    names = []
    for suffix, kw in ((".png", {"dpi": 150}), (".pdf", {})):
        atomic_write(folder / f"{stem}{suffix}", lambda fh: fig.savefig(fh, format=suffix[1:], **kw))
        names.append(f"{stem}{suffix}")
    return names


def write_csv(table: pd.DataFrame, folder: Path, stem: str) -> str:
    """Write ``table`` as ``folder/stem.csv`` (no index, atomically); return the file name."""
    atomic_write(folder / f"{stem}.csv", lambda fh: table.to_csv(fh, index=False))
    return f"{stem}.csv"


def final_and_curves(runs: pd.DataFrame, history: Callable[[str], pd.DataFrame], key: pd.DataFrame,
                     quantities: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables of a study trained in process (:func:`train_in_process`): one row per run of ``key`` (its
    grid columns) with the final ``quantities``, the rate fit and the zero predictor's test error, and the
    histories of every run (step, time and ``quantities``) under the same grid columns."""
    final = key.assign(**{q: runs[f"final_{q}"].to_numpy(dtype=float) for q in quantities},
                       rate=runs["rate"].to_numpy(dtype=float), rate_r2=runs["rate_r2"].to_numpy(dtype=float),
                       zero_error=runs["zero_test_error"].to_numpy(dtype=float))
    curves = pd.concat([history(rid)[["step", "time", *quantities]].assign(**k)
                        for (_, k), rid in zip(key.iterrows(), runs["run_id"])], ignore_index=True)
    return final, curves[[*key.columns, "step", "time", *quantities]]


# ------------------------------------------------------------------------------------------- runs in this process
#: counted flops of the missing runs from which :func:`train_in_process` spreads them over worker processes:
#: about 20 s of one core's work at the 23 GFLOP/s the richness study's runs reach, against about 4 s to start
#: the workers (importing torch)
POOL_MIN_FLOPS = 5e11


def in_process_workers(configs: Sequence[dict[str, Any]], flops: float) -> int:
    """How many processes :func:`train_in_process` trains the runs ``configs`` on, whose counted work is ``flops``:
    one per core this process may use (at most one per run) when the work reaches :data:`POOL_MIN_FLOPS` and
    every run trains on the CPU (one process per core would each open a GPU), else 1, this process."""
    from ..sweep.dask_runner import available_cores

    workers = min(available_cores(), len(configs))
    on_cpu = all(parse_device(c["train"].get("device", "cpu")).type == "cpu" for c in configs)
    return workers if workers > 1 and on_cpu and flops >= POOL_MIN_FLOPS else 1


def train_in_process(name: str, configs: Sequence[dict[str, Any]], train_one: Callable[[dict[str, Any]], Any],
                     store: str | Path, *, progress: bool = True) -> tuple[pd.DataFrame, int]:
    """Train, with ``train_one(config) -> RunOutput``, every run of ``configs`` missing from the results store
    ``store`` (runs that need a callback during training, which the sweep does not take); return the results
    table of all of them (one row per run, as :func:`wideflow.sweep.run_sweep`'s) and how many were trained
    now. A failed run is recorded with its error, like a sweep's; each finished run is written at once, so an
    interrupted command loses nothing.

    When :func:`in_process_workers` gives several processes for the missing runs (their counted work by
    :func:`wideflow.sweep.batched.task_cost`), they run longest first on that many spawned worker processes, one
    torch thread each, as the sweep's workers do (so ``train_one`` must be a module-level function, and a script
    that calls this at import needs the ``if __name__ == "__main__":`` guard, as for the sweep's LocalCluster)."""
    import sys

    from tqdm.auto import tqdm

    from ..io import json_digest
    from ..sweep.batched import task_cost
    from ..sweep.store import Store

    st = Store(store)
    ids = [json_digest(c) for c in configs]
    missing = [(rid, c) for rid, c in zip(ids, configs) if not st.finished(rid)]
    costs = {rid: task_cost([_at_infinite_D(c)]) for rid, c in missing}
    workers = in_process_workers([c for _, c in missing], sum(costs.values()))
    bar = tqdm(total=len(missing), desc=name, unit="run", disable=not progress, file=sys.stderr)
    if workers > 1:
        _train_on_workers(sorted(missing, key=lambda rc: -costs[rc[0]]), train_one, st, workers, bar)
    else:
        for rid, config in missing:
            _record(st, rid, config, partial(train_one, config))
            bar.update()
    bar.close()
    return st.table(ids), len(missing)


def _record(st: Any, rid: str, config: dict[str, Any], output: Callable[[], Any]) -> None:
    """Write run ``rid``'s ``output()`` to the store ``st``, or, if it raises, the run as failed with its error and
    traceback: a failed run must not stop the others."""
    from ..sweep.runner import Outcome, failed_outcome

    try:
        st.write(Outcome(rid, config, output=output()))
    except Exception as exc:  # the run's own error, or BrokenProcessPool when a worker died
        st.write(failed_outcome(rid, config, exc))


def _at_infinite_D(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the JSON spelling ``D = "inf"`` of the limits' runs read as ``math.inf``, for the cost."""
    if config["model"].get("D") != "inf":
        return config
    return {**config, "model": {**config["model"], "D": math.inf}}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _train_on_workers(missing: Sequence[tuple[str, dict[str, Any]]], train_one: Callable[[dict[str, Any]], Any],
                      st: Any, workers: int, bar: Any) -> None:
    """:func:`train_in_process`'s runs on ``workers`` spawned processes, each result written as it arrives. A run
    that raised is recorded failed with its error and the others go on; if a worker process dies, the pool is
    broken and the runs not yet finished are recorded failed with that error (the next command trains every
    failed run again). On an interrupt the queued runs are cancelled, and what was written stays."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread)
    try:
        futures = {pool.submit(train_one, config): (rid, config) for rid, config in missing}
        for future in as_completed(futures):
            rid, config = futures[future]
            _record(st, rid, config, future.result)
            bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
