"""One run of a sweep: build the model and the data of a run configuration, train, summarize.

:func:`run_one` is the reference path: the model and the data come from the kinds of :mod:`wideflow.registry`,
and training is :func:`wideflow.train` itself.
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

from .. import registry
from ..fits import fitted_rate
from ..model import WideNet
from ..registry import Data, make_data
from ..training import TrainState, train
from .config import normalize, run_id

__all__ = ["RunOutput", "Outcome", "run_one", "run_guarded", "failed_outcome", "build", "summarize", "fitted_rate",
           "first_features"]

@dataclass
class RunOutput:
    """The result of one run.

    ``metrics``: initial_train_loss, final_train_loss, final_test_error (NaN without a test set),
    final_test_accuracy (for a classification loss with a test set),
    fitted_rate and fitted_r2 (see :func:`wideflow.fits.fitted_rate`), method (the engine that ran), wall_time (s).
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
    """The model of a normalized configuration (:func:`wideflow.registry.build_model`, docs/theory.md §1)."""
    m, t = config["model"], config["train"]
    return registry.build_model(m["kind"], m["d"], m["m"], D=m["D"], depth=m["depth"], activation=m["activation"],
                                scaling=m["scaling"], c_hat=m["c_hat"], seed=m["seed"], dtype=t["dtype"],
                                device=t["device"], train_c=m["train_c"], bias=m["bias"])


def build_data(config: Mapping[str, Any]) -> Data:
    """(X, y, X_test, y_test) of a normalized configuration (:func:`wideflow.registry.make_data`); the test
    set is ``None`` when there is none."""
    data = config["data"]
    return make_data(data["kind"], config["model"]["d"], **{k: v for k, v in data.items() if k != "kind"})


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
                   callbacks=[recorder] if recorder else None, loss=t["loss"])
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
    accuracy = {"final_test_accuracy": float(history["test_accuracy"].iloc[-1])} if "test_accuracy" in history else {}
    return {
        "initial_train_loss": float(history["train_loss"].iloc[0]),
        "final_train_loss": float(history["train_loss"].iloc[-1]),
        "final_test_error": test,
        "fitted_rate": rate,
        "fitted_r2": r2,
        "method": method,
        "wall_time": float(wall_time),
        **accuracy,
    }


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
