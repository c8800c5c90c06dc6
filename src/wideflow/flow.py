r"""Gradient flow (10)-(11), integrated with an adaptive error-controlled ODE solver (spec §1.6-1.7, §8).

GD with step δ is the explicit Euler scheme of the gradient flow dW/dt = −(lr factor)·∇_W L, one step per
time δ. The flow lives in the same kernel-space state as the kernel engine of :mod:`wideflow.dynamics`
(spec §8): W_t = W_0 + B_t Φ and H_t = H_0 + s_h D B_t G. With Z = s_h D B (the units of H) the flow is

    dZ/dt = −(γ/N) A(H),  H = H_0 + Z G,  A = (c eᵀ) ⊙ σ'(H),  e = s_o σ(H)ᵀc − y,

which is eq. (11) on the training set (γ = 1, or 1/√m for NTK), with test features H_test = H_test,0 + Z G(X,
X_test). The constants G, G_test, H_0, the coefficient −γ/N and the final W are those of
:class:`~wideflow.dynamics.KernelEngine` at δ = 1. The integrator is torchdiffeq's adaptive Runge-Kutta
(``dopri5`` by default: Dormand-Prince 5(4) with rtol/atol error control), on any device.

Cost: smooth σ (tanh, softplus, smoothed leaky ReLU) take a few dozen right-hand-side evaluations per unit
of the kernel's time scale. Kinked σ (ReLU, leaky ReLU) make the field non-differentiable where a feature
h_i(x_a) crosses the kink, and every crossing costs the error control a few rejected steps: expect thousands
of evaluations per unit time at rtol = 1e-6 for m·n in the thousands, and loosen rtol (1e-4) for long runs.

:func:`flow` is a generator of :class:`~wideflow.dynamics.TrainState` at the requested times (the caller
decides what to log and when to stop); :func:`gradient_flow` collects a history table like
:func:`wideflow.train`; :func:`compare_gd_to_flow` measures how GD with step δ approaches the flow as δ → 0.
"""

from __future__ import annotations

import math
import sys
import time as _time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._tensor import as_tensor
from .dynamics import REDUCTIONS, KernelEngine, TrainState, make_engine, train
from .errors import (
    InvalidArgument,
    KernelEngineUnavailable,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from .model import WideNet

__all__ = ["flow", "gradient_flow", "FlowResult", "compare_gd_to_flow", "SOLVERS"]

# torchdiffeq's adaptive (error-controlled) Runge-Kutta methods.
SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")


@dataclass
class FlowResult:
    """What :func:`gradient_flow` returns: the history table, the model at the final time, the final state.

    ``history`` has the columns time, train_loss, rate (the instantaneous −d log L/dt), nfe (cumulative
    right-hand-side evaluations), test_error with a test set, and the callbacks' columns.
    """

    history: pd.DataFrame
    model: WideNet
    final_state: TrainState
    wall_time: float
    settings: dict[str, Any] = field(default_factory=dict)


class _Flow:
    """The flow's state Z (m × n) on the kernel engine's constants, advanced by torchdiffeq."""

    def __init__(self, model: WideNet, X: Any, y: Any, X_test: Any, y_test: Any, reduction: str, rtol: float,
                 atol: float, solver: str) -> None:
        if not isinstance(model, WideNet):
            raise InvalidArgument(f"model must be a wideflow WideNet; got {type(model).__name__}.")
        reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.rtol = check_positive_float("rtol", rtol)
        self.atol = check_positive_float("atol", atol)
        self.solver = check_choice("solver", solver, SOLVERS)
        if model.dtype == torch.float32 and self.rtol < 1e-5:
            raise InvalidArgument(
                f"rtol={rtol} is below what float32 can resolve (eps ≈ 1.2e-7 per step); use rtol >= 1e-5 "
                "for a float32 model, or convert it with model.to(dtype=torch.float64)."
            )
        Xt = model._input(X)
        yt = as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=Xt.shape[0])
        if (X_test is None) != (y_test is None):
            raise InvalidArgument("X_test and y_test must be given together (or neither).")
        Xs = None
        self.y_test: torch.Tensor | None = None
        if X_test is not None:
            Xs = model._input(X_test, "X_test")
            self.y_test = as_tensor("y_test", y_test, ndim=1, dtype=model.dtype, device=model.device,
                                    rows=Xs.shape[0])
        N = float(Xt.shape[0]) if reduction == "mean" else 1.0
        if model.train_c or model.bias:
            raise KernelEngineUnavailable(
                f"the gradient flow integrates the kernel-space state of spec §8, which only moves W; {model!r} "
                "also trains c or biases. Use wideflow.train with a small step_size instead."
            )
        engine = make_engine("kernel", model, Xt, yt, Xs, N, 1.0)  # δ = 1: coef_H is the rate per unit time
        assert isinstance(engine, KernelEngine)
        self.engine = engine
        self.H0 = engine.H.clone()
        self.Z = torch.zeros_like(self.H0)
        self.calls = 0

    def features(self, Z: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.H0, Z, self.engine.G)

    def velocity(self, t: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        """dZ/dt = coef_H · A(H_0 + Z G), the right-hand side handed to the solver."""
        self.calls += 1
        H = self.features(Z)
        e = self.engine.outputs(H) - self.engine.y
        return self.engine.coefficient(H, e).mul_(self.engine.coef_H)

    def advance(self, t0: float, t1: float) -> None:
        from torchdiffeq import odeint  # imported here: it loads SciPy's integrators (~0.6 s of import time)

        span = torch.tensor([t0, t1], dtype=self.Z.dtype, device=self.Z.device)
        self.Z = odeint(self.velocity, self.Z, span, rtol=self.rtol, atol=self.atol, method=self.solver)[-1]

    def run(self, grid: np.ndarray) -> Iterator[TrainState]:
        """Advance through the times of ``grid`` (the first is the current time), yielding the state at each."""
        for k, tk in enumerate(grid):
            if k > 0:
                self.advance(float(grid[k - 1]), float(tk))
            yield self.state(k, float(tk))

    def state(self, k: int, tk: float) -> TrainState:
        eng = self.engine
        H = self.features(self.Z)
        f = eng.outputs(H)
        e = f - eng.y
        H_test = f_test = None
        test_error = None
        if self.y_test is not None:
            assert eng.H_test0 is not None and eng.G_test is not None
            H_test = torch.addmm(eng.H_test0, self.Z, eng.G_test)
            f_test = eng.outputs(H_test)
            test_error = float(0.5 * ((f_test - self.y_test) ** 2).mean())
        return TrainState(step=k, time=tk, train_loss=float(0.5 * (e @ e) / eng.N), test_error=test_error, f=f,
                          H=H, f_test=f_test, H_test=H_test, c=eng.c.clone(), b=None)

    def rate(self) -> float:
        """−d log L/dt = −2 eᵀ(df/dt)/(eᵀe), df/dt = s_o Σ_i c_i σ'(H_i) dH_i/dt, dH/dt = (dZ/dt) G (eq. (14))."""
        eng = self.engine
        H = self.features(self.Z)
        e = eng.outputs(H) - eng.y
        dH = eng.coefficient(H, e).mul_(eng.coef_H) @ eng.G
        df = eng.s_o * ((eng.act.deriv(H) * eng.c[:, None]) * dH).sum(dim=0)
        ee = float(e @ e)
        return -2 * float(e @ df) / ee if ee > 0 else math.inf

    def finish(self) -> WideNet:
        """The model at the current time: W = W_0 + B Φ with B = Z/(s_h D), formed lazily (spec §8)."""
        eng = self.engine
        eng.B = self.Z / (eng.s_h * eng.model.D)
        eng.H = self.features(self.Z)
        return eng.finish()


def _times(t: float | None, times: Sequence[float] | None, points: int) -> np.ndarray:
    if (t is None) == (times is None):
        raise InvalidArgument("give either t (the final time) or times (an increasing sequence), not both.")
    if times is None:
        t = check_positive_float("t", t)
        points = check_positive_int("points", points, minimum=2)
        return np.linspace(0.0, t, points)
    grid = np.asarray(times, dtype=np.float64).reshape(-1)
    if grid.size == 0 or not np.all(np.isfinite(grid)) or grid[0] < 0 or np.any(np.diff(grid) <= 0):
        raise InvalidArgument(f"times must be a non-empty, finite, strictly increasing sequence >= 0; got {times!r}.")
    return grid if grid[0] == 0 else np.concatenate([[0.0], grid])


def flow(
    model: WideNet,
    X: Any,
    y: Any,
    t: float | None = None,
    *,
    times: Sequence[float] | None = None,
    points: int = 101,
    X_test: Any = None,
    y_test: Any = None,
    reduction: str = "mean",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    solver: str = "dopri5",
) -> Generator[TrainState, None, WideNet]:
    """Integrate the gradient flow (11) and yield a :class:`~wideflow.dynamics.TrainState` at each time.

    The grid is ``points`` equally spaced times in [0, t], or the given ``times`` (0 is prepended). Each
    state's ``step`` is its index in the grid and ``time`` its GF time. The model is not modified; the
    generator's return value (``StopIteration.value``) is the model at the last time.
    """
    integrator = _Flow(model, X, y, X_test, y_test, reduction, rtol, atol, solver)
    yield from integrator.run(_times(t, times, points))
    return integrator.finish()


def gradient_flow(
    model: WideNet,
    X: Any,
    y: Any,
    t: float | None = None,
    *,
    times: Sequence[float] | None = None,
    points: int = 101,
    X_test: Any = None,
    y_test: Any = None,
    reduction: str = "mean",
    rtol: float = 1e-6,
    atol: float = 1e-9,
    solver: str = "dopri5",
    callbacks: list[Callable[[TrainState], dict[str, float]]] | None = None,
    progress: bool | None = None,
) -> FlowResult:
    """Integrate the gradient flow (10)-(11) of ``model`` on (X, y) up to time ``t`` (grid as in :func:`flow`).

    The history has a row per time of the grid with time, train_loss (= (1/2N) Σ_a e_a²), rate (the
    instantaneous −d log L/dt of eq. (14)), nfe (cumulative solver evaluations), test_error with a test set,
    and the columns returned by ``callbacks`` (functions of the state, as in :func:`wideflow.train`).
    """
    grid = _times(t, times, points)
    integrator = _Flow(model, X, y, X_test, y_test, reduction, rtol, atol, solver)
    callbacks = list(callbacks or [])
    bar = _progress(progress, float(grid[-1]))
    rows: list[dict[str, float]] = []
    t0 = _time.perf_counter()
    try:
        for state in integrator.run(grid):
            row = {"time": state.time, "train_loss": state.train_loss, "rate": integrator.rate(),
                   "nfe": integrator.calls}
            if state.test_error is not None:
                row["test_error"] = state.test_error
            for cb in callbacks:
                row.update(cb(state))
            rows.append(row)
            if bar is not None:
                bar.update(state.time - bar.n)
                bar.set_postfix(loss=f"{state.train_loss:.3e}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    settings = {"t": float(grid[-1]), "points": len(grid), "reduction": reduction, "rtol": rtol, "atol": atol,
                "solver": solver, "model": model.config}
    return FlowResult(pd.DataFrame(rows), integrator.finish(), state, _time.perf_counter() - t0, settings)


def _progress(progress: bool | None, total: float) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="GF", unit="time", dynamic_ncols=True)


def compare_gd_to_flow(
    model: WideNet,
    X: Any,
    y: Any,
    t: float,
    step_sizes: Sequence[float] = (0.4, 0.2, 0.1, 0.05),
    *,
    reduction: str = "mean",
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> pd.DataFrame:
    """GD with step δ against the gradient flow at time ``t``, for each δ in ``step_sizes``.

    Returns a table with step_size, steps (= t/δ), max_abs_f (max_a |f_GD(x_a) − f_GF(x_a)| at time t),
    loss_gd, loss_flow and rel_loss (|L_GD − L_GF|/L_GF). GD is the Euler scheme of the flow, so the
    differences fall like δ (first order) as δ → 0.
    """
    t = check_positive_float("t", t)
    final = gradient_flow(model, X, y, times=[t], reduction=reduction, rtol=rtol, atol=atol, progress=False)
    f_flow, loss_flow = final.final_state.f, final.final_state.train_loss
    rows = []
    for delta in step_sizes:
        delta = check_positive_float("step_sizes", delta)
        steps = round(t / delta)
        if not math.isclose(steps * delta, t, rel_tol=1e-9):
            raise InvalidArgument(f"t={t} is not a multiple of the step size {delta}; pick step sizes that divide t.")
        res = train(model, X, y, steps=steps, step_size=delta, reduction=reduction, method="kernel",
                    log_every=steps, progress=False)
        f_gd = res.final_state.f
        rows.append({"step_size": delta, "steps": steps, "max_abs_f": float((f_gd - f_flow).abs().max()),
                     "loss_gd": res.final_train_loss, "loss_flow": loss_flow,
                     "rel_loss": abs(res.final_train_loss - loss_flow) / loss_flow})
    return pd.DataFrame(rows)
