r"""Gradient flow (10)-(11), integrated with an adaptive error-controlled ODE solver (docs/theory.md §2, §8).

GD with step δ is the explicit Euler scheme of the gradient flow dW/dt = −(lr factor)·∇_W L, one step per
time δ. The flow lives in the kernel-space state of :class:`~wideflow.engines.KernelEngine`:
W_t = W_0 + B_t Φ and H_t = H_0 + s_h D B_t G. With Z = s_h D B (the units of H) the flow is

    dZ/dt = −(γ/N) A(H),  H = H_0 + Z G,  A = (c eᵀ) ⊙ σ'(H),  e = s_o σ(H)ᵀc − y,

which is eq. (11) on the training set (γ = 1, or 1/√m for NTK); for another loss (``loss="logistic"``) e is
∂ℓ/∂f (docs/theory.md §8), with test features H_test = H_test,0 + Z G(X,
X_test). The field is the engine's own (:meth:`~wideflow.engines.KernelEngine.velocity`: the same readout,
residual and slope as a GD step) on the problem that :func:`wideflow.engines.prepare` builds. The integrator is
torchdiffeq's adaptive Runge-Kutta (``dopri5`` by default: Dormand-Prince 5(4) with rtol/atol error control),
on any device.

Smooth σ (tanh, softplus, smoothed leaky ReLU) take a few dozen right-hand-side evaluations per unit of the
kernel's time scale. Kinked σ (ReLU, leaky ReLU) make the field non-differentiable where a feature h_i(x_a)
crosses the kink, and every crossing costs the error control a few rejected steps: loosen rtol (1e-4) for
long runs with them.

:func:`flow` is a generator of :class:`~wideflow.training.TrainState` at the requested times (the caller
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

from .engines import KernelEngine, prepare
from .errors import InvalidArgument, KernelEngineUnavailable, check_choice, check_positive_float, check_positive_int
from .losses import get_loss
from .model import WideNet, check_model
from .training import TrainState, train
from .training.loop import Snapshot

__all__ = ["flow", "gradient_flow", "FlowResult", "GradientFlow", "compare_gd_to_flow", "SOLVERS"]

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


class GradientFlow:
    """The flow's state Z (1, m, n) on a kernel engine prepared with δ = 1, advanced by torchdiffeq."""

    def __init__(self, model: WideNet, X: Any, y: Any, *, X_test: Any = None, y_test: Any = None,
                 reduction: str = "mean", rtol: float = 1e-6, atol: float = 1e-9, solver: str = "dopri5",
                 loss: str = "squared") -> None:
        check_model(model)
        self.rtol = check_positive_float("rtol", rtol)
        self.atol = check_positive_float("atol", atol)
        self.solver = check_choice("solver", solver, SOLVERS)
        if model.dtype == torch.float32 and self.rtol < 1e-5:
            raise InvalidArgument(
                f"rtol={rtol} is below what float32 can resolve (eps ≈ 1.2e-7 per step); use rtol >= 1e-5 "
                "for a float32 model, or convert it with model.to(dtype=torch.float64)."
            )
        if model.train_c or model.bias:
            raise KernelEngineUnavailable(
                f"the gradient flow integrates the kernel-space state (docs/theory.md §8), which only moves W; "
                f"{model!r} also trains c or biases. Use wideflow.train with a small step_size instead."
            )
        self.settings = {"reduction": reduction, "rtol": rtol, "atol": atol, "solver": solver,
                         "model": model.config, "loss": get_loss(loss).name}
        self.engine = KernelEngine(prepare(model, X, y, X_test, y_test, reduction=reduction, step_size=1.0,
                                           loss=loss))
        self.H0 = self.engine.H.clone()
        self.Z = torch.zeros_like(self.H0)
        self.calls = 0

    def velocity(self, t: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        """dZ/dt, the right-hand side handed to the solver (:meth:`KernelEngine.velocity`)."""
        self.calls += 1
        return self.engine.velocity(self.H0, Z)

    def advance(self, t0: float, t1: float) -> None:
        # imported here: torchdiffeq loads SciPy's integrators, slow to import
        from torchdiffeq import odeint

        span = torch.tensor([t0, t1], dtype=self.Z.dtype, device=self.Z.device)
        self.Z = odeint(self.velocity, self.Z, span, rtol=self.rtol, atol=self.atol, method=self.solver)[-1]

    def run(self, grid: np.ndarray) -> Iterator[TrainState]:
        """Advance through the times of ``grid`` (the first is the current time), yielding the state at each."""
        for k, tk in enumerate(grid):
            if k > 0:
                self.advance(float(grid[k - 1]), float(tk))
            yield self.state(k, float(tk))

    def state(self, k: int, tk: float) -> TrainState:
        """The state at the current Z, as index ``k`` of the grid at time ``tk`` (tensors are copies)."""
        eng = self.engine
        eng.set_flow_state(self.H0, self.Z)
        f, e = eng.residual()
        state = Snapshot(eng, k, f, e, eng.losses(e, f)).state(0).copy()
        state.time = tk
        return state

    def rate(self) -> float:
        """−d log L/dt = −2 eᵀ(df/dt)/(eᵀe), df/dt = s_o Σ_i c_i σ'(H_i) dH_i/dt, dH/dt = (dZ/dt) G (eq. (14));
        for another loss −(1/N) eᵀ(df/dt)/L with e = ∂ℓ/∂f."""
        eng = self.engine
        dH = torch.bmm(eng.velocity(self.H0, self.Z), eng.G)
        e = eng.e.clone()
        df = eng.reduce_outputs((eng.slope(eng.H, torch.empty_like(dH)) * dH).sum(dim=1) * eng.s_o)
        if eng.loss.name != "squared":
            L = eng.losses(e, eng.f)[0]
            return -float((e * df).sum()) / (float(eng.N[0]) * L) if L > 0 else math.inf
        ee = float((e * e).sum())
        return -2 * float((e * df).sum()) / ee if ee > 0 else math.inf

    def finish(self) -> WideNet:
        """The model at the current time: W = W_0 + B Φ with B = Z/(s_h D), formed lazily (docs/theory.md §8)."""
        self.engine.set_flow_state(self.H0, self.Z)
        return self.engine.finish()[0]


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
    loss: str = "squared",
) -> Generator[TrainState, None, WideNet]:
    """Integrate the gradient flow (11) and yield a :class:`~wideflow.training.TrainState` at each time.

    The grid is ``points`` equally spaced times in [0, t], or the given ``times`` (0 is prepended). Each
    state's ``step`` is its index in the grid and ``time`` its GF time. ``reduction`` is N of the loss (6)
    ("mean", the default, or "sum"); rtol/atol are the solver's error tolerances and ``solver`` one of
    :data:`SOLVERS`; ``loss`` is "squared" (eq. (6)) or "logistic" (:mod:`wideflow.losses`). The model is not
    modified; the generator's return value (``StopIteration.value``) is the model at the last time.
    """
    grid = _times(t, times, points)
    integrator = GradientFlow(model, X, y, X_test=X_test, y_test=y_test, reduction=reduction, rtol=rtol,
                              atol=atol, solver=solver, loss=loss)
    yield from integrator.run(grid)
    return integrator.finish()


def gradient_flow(model: WideNet, X: Any, y: Any, t: float | None = None, *,
                  callbacks: list[Callable[[TrainState], dict[str, float]]] | None = None,
                  progress: bool | None = None, **options: Any) -> FlowResult:
    """Integrate the gradient flow (10)-(11) of ``model`` on (X, y) up to time ``t`` (grid as in :func:`flow`).

    ``options`` are the keywords of :func:`flow` (times, points, X_test, y_test, reduction, rtol, atol,
    solver, loss). The history has a row per time of the grid with time, train_loss (= (1/2N) Σ_a e_a², or
    (1/N) Σ_a ℓ(f_a, y_a) for another loss), rate (the instantaneous −d log L/dt of eq. (14)), nfe (cumulative
    solver evaluations), test_error with a test set, train_accuracy and test_accuracy for the logistic loss,
    and the columns returned by ``callbacks`` (functions of the state, as in :func:`wideflow.train`).
    """
    grid = _times(t, options.pop("times", None), options.pop("points", 101))
    integrator = GradientFlow(model, X, y, **options)
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
            row.update(_accuracies(integrator.engine, state))
            for cb in callbacks:
                row.update(cb(state))
            rows.append(row)
            if bar is not None:
                bar.update(state.time - bar.n)
                bar.set_postfix(loss=f"{state.train_loss:.3e}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    settings = {"t": float(grid[-1]), "points": len(grid), **integrator.settings}
    return FlowResult(pd.DataFrame(rows), integrator.finish(), state, _time.perf_counter() - t0, settings)


def _accuracies(engine: KernelEngine, state: TrainState) -> dict[str, float]:
    """train_accuracy and test_accuracy of a classification loss (nothing for the squared loss)."""
    if not engine.loss.classification:
        return {}
    out = {"train_accuracy": engine.accuracies(state.f[None], engine.y)[0]}
    if state.f_test is not None and engine.y_test is not None:
        out["test_accuracy"] = engine.accuracies(state.f_test[None], engine.y_test)[0]
    return out


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
    loss: str = "squared",
) -> pd.DataFrame:
    """GD with step δ against the gradient flow at time ``t``, for each δ in ``step_sizes``.

    Returns a table with step_size, steps (= t/δ), max_abs_f (max_a |f_GD(x_a) − f_GF(x_a)| at time t),
    loss_gd, loss_flow and rel_loss (|L_GD − L_GF|/L_GF). GD is the Euler scheme of the flow, so the
    differences fall like δ (first order) as δ → 0.
    """
    t = check_positive_float("t", t)
    final = gradient_flow(model, X, y, times=[t], reduction=reduction, rtol=rtol, atol=atol, progress=False,
                          loss=loss)
    f_flow, loss_flow = final.final_state.f, final.final_state.train_loss
    rows = []
    for delta in step_sizes:
        delta = check_positive_float("step_sizes", delta)
        steps = round(t / delta)
        if not math.isclose(steps * delta, t, rel_tol=1e-9):
            raise InvalidArgument(f"t={t} is not a multiple of the step size {delta}; pick step sizes that divide t.")
        res = train(model, X, y, steps=steps, step_size=delta, reduction=reduction, method="kernel",
                    log_every=steps, progress=False, loss=loss)
        f_gd = res.final_state.f
        rows.append({"step_size": delta, "steps": steps, "max_abs_f": float((f_gd - f_flow).abs().max()),
                     "loss_gd": res.final_train_loss, "loss_flow": loss_flow,
                     "rel_loss": abs(res.final_train_loss - loss_flow) / loss_flow})
    return pd.DataFrame(rows)
