"""One run of a sweep: build the model and the data of a run configuration, train, summarize.

:func:`run_one` is the reference path: the model comes from the constructors of :mod:`wideflow.model`,
the data from :mod:`wideflow.data`, and training is :func:`wideflow.train` itself.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..dynamics import TrainState, train
from ..embeddings import Quadratic
from ..model import P3L, PartiallyTrained, Shallow, WideNet
from .config import DEFAULTS, GENERATORS, normalize, run_id

__all__ = ["RunOutput", "Outcome", "run_one", "run_guarded", "failed_outcome", "build", "summarize", "fitted_rate",
           "first_features"]

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


@dataclass
class RunOutput:
    """The result of one run.

    ``metrics``: initial_train_loss, final_train_loss, final_test_error (NaN without a test set),
    fitted_rate and fitted_r2 (see :func:`fitted_rate`), method (the engine that ran), wall_time (s).
    ``history``: the :func:`wideflow.train` history (step, time, train_loss, test_error).
    ``arrays``: with ``record.features``, h_i(x) over the m neurons for the first training input and the
    first test input at initialization and at the end: ``h0_train``, ``hT_train``, ``h0_test``, ``hT_test``.
    """

    metrics: dict[str, Any]
    history: pd.DataFrame
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a worker hands back for one run: its output, or the error that stopped it."""

    run_id: str
    config: dict[str, Any]
    output: RunOutput | None = None
    error: str | None = None
    traceback: str | None = None
    batch_size: int = 1

    @property
    def ok(self) -> bool:
        return self.output is not None


def build_model(config: Mapping[str, Any]) -> WideNet:
    """The model of a normalized configuration, from the named constructors (spec §1.2-1.5)."""
    m, t = config["model"], config["train"]
    kw = dict(activation=m["activation"], scaling=m["scaling"], c_hat=m["c_hat"], seed=m["seed"],
              dtype=t["dtype"], device=t["device"], train_c=m["train_c"], bias=m["bias"])
    if m["kind"] == "shallow":
        return Shallow(m["d"], m["m"], **kw)
    if m["kind"] == "quadratic":
        return WideNet(Quadratic(m["d"]), m["m"], **kw)
    if m["kind"] == "p3l":
        return P3L(m["d"], m["m"], m["D"], **kw)
    return PartiallyTrained(m["d"], m["m"], m["D"], depth=m["depth"], **kw)


def build_data(config: Mapping[str, Any]) -> Data:
    """(X, y, X_test, y_test) of a normalized configuration; the test set is ``None`` when n_test = 0."""
    data, d = config["data"], config["model"]["d"]
    if data["kind"] == "file":
        from ..data import load_dataset  # added by the reproductions issue

        options = {k: v for k, v in data.items() if k not in ("kind", "path", "test_path")}
        X, y = load_dataset(data["path"], d=d, **options)
        if data["test_path"] is None:
            return X, y, None, None
        return (X, y, *load_dataset(data["test_path"], d=d, **options))
    gen = GENERATORS[data["kind"]]
    extra = {k: v for k, v in data.items() if k not in DEFAULTS["data"]}
    X, y = gen(data["n"], d, seed=data["seed"], **extra)
    if data["n_test"] == 0:
        return X, y, None, None
    return (X, y, *gen(data["n_test"], d, seed=data["test_seed"], **extra))


def build(config: Mapping[str, Any]) -> tuple[WideNet, Data]:
    """The model and the data of a (normalized) run configuration."""
    return build_model(config), build_data(config)


def run_one(config: Mapping[str, Any], *, progress: bool = False) -> RunOutput:
    """Train the run described by ``config`` with :func:`wideflow.train` and summarize it.

    Raises whatever building or training raises (e.g. :class:`~wideflow.errors.TrainingDiverged`);
    :func:`run_guarded` turns that into a failed :class:`Outcome`.
    """
    config = normalize(config)
    model, (X, y, Xt, yt) = build(config)
    t = config["train"]
    recorder = _FeatureRecorder() if config["record"]["features"] else None
    t0 = time.perf_counter()
    result = train(model, X, y, steps=t["steps"], step_size=t["step_size"], X_test=Xt, y_test=yt,
                   reduction=t["reduction"], method=t["method"], log_every=t["log_every"], progress=progress,
                   callbacks=[recorder] if recorder else None)
    wall = time.perf_counter() - t0
    arrays = recorder.finish(result.final_state) if recorder else {}
    return RunOutput(summarize(result.history, result.method, wall), result.history, arrays)


def run_guarded(config: Mapping[str, Any]) -> Outcome:
    """:func:`run_one`, with an exception caught and returned as a failed :class:`Outcome`."""
    config = normalize(config)
    rid = run_id(config)
    try:
        return Outcome(rid, config, output=run_one(config))
    except Exception as exc:  # a failed run must not stop the sweep; it is reported with its traceback
        return failed_outcome(rid, config, exc)


def failed_outcome(rid: str, config: dict[str, Any], exc: BaseException, batch_size: int = 1) -> Outcome:
    """A failed :class:`Outcome` for ``exc``, raised while running ``config``."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Outcome(rid, config, error=f"{type(exc).__name__}: {exc}", traceback=tb, batch_size=batch_size)


def summarize(history: pd.DataFrame, method: str, wall_time: float) -> dict[str, Any]:
    """The final metrics of a run from its history (see :class:`RunOutput`)."""
    rate, r2 = fitted_rate(history)
    test = float(history["test_error"].iloc[-1]) if "test_error" in history else math.nan
    return {
        "initial_train_loss": float(history["train_loss"].iloc[0]),
        "final_train_loss": float(history["train_loss"].iloc[-1]),
        "final_test_error": test,
        "fitted_rate": rate,
        "fitted_r2": r2,
        "method": method,
        "wall_time": float(wall_time),
    }


def fitted_rate(history: pd.DataFrame) -> tuple[float, float]:
    """Least-squares slope of log(train_loss) against time over the second half of the history, and R².

    A linear rate L_t ∝ e^{−rt} (spec §1.8, Theorems 1-3) gives a slope of −r and R² near 1. Rows whose
    loss is not positive are left out; fewer than two rows left give NaN.
    """
    tail = history.iloc[len(history) // 2 :]
    keep = tail["train_loss"] > 0
    t = tail["time"][keep].to_numpy(dtype=float)
    logl = np.log(tail["train_loss"][keep].to_numpy(dtype=float))
    if len(t) < 2 or np.ptp(t) == 0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(t, logl, 1)
    residual = logl - (slope * t + intercept)
    total = float(((logl - logl.mean()) ** 2).sum())
    r2 = 1.0 - float((residual**2).sum()) / total if total > 0 else math.nan
    return float(slope), r2


class _FeatureRecorder:
    """A :func:`wideflow.train` callback keeping h_i(x_1) of the first train and test inputs at step 0."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, state: TrainState) -> dict[str, float]:
        if state.step == 0:
            self.arrays.update(first_features(state.H, state.H_test, "0"))
        return {}

    def finish(self, final: TrainState) -> dict[str, np.ndarray]:
        return {**self.arrays, **first_features(final.H, final.H_test, "T")}


def first_features(H: torch.Tensor, H_test: torch.Tensor | None, when: str) -> dict[str, np.ndarray]:
    """h_i(x_1) for i = 1..m from features H of shape (m, n) (and the test features)."""
    out = {f"h{when}_train": H[:, 0].detach().cpu().numpy().copy()}
    if H_test is not None:
        out[f"h{when}_test"] = H_test[:, 0].detach().cpu().numpy().copy()
    return out
