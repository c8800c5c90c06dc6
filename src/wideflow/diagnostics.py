r"""Feature-learning diagnostics as tidy tables (the feature-learning remark of Section 2, Figure 4).

:class:`FeatureTracker` is a callback for :func:`wideflow.train` and :func:`wideflow.gradient_flow`: at each
logged state it adds the columns

- ``feature_displacement``: the mean over neurons of the RMS over training points of |h_i^t(x_a) − h_i^0(x_a)|,
  and ``relative_feature_displacement`` = ‖H_t − H_0‖_F / ‖H_0‖_F;
- ``weight_change``: ‖W_t − W_0‖_F / ‖W_0‖_F, computed from the features alone: W_t − W_0 = B_t Φ and
  H_t − H_0 = s_h D B_t G (docs/theory.md §8), so ‖W_t − W_0‖_F² = tr(ΔH G⁺ ΔHᵀ) / (s_h² D), exact for
  every engine;
- ``kernel_drift``: ‖K_t − K_0‖_F / ‖K_0‖_F for the tangent kernel K_t of docs/theory.md §3 (O(1) under the
  paper's scaling, O(1/√m) under NTK);
- ``kernel_alignment``: the kernel-target alignment yᵀK_t y / (‖K_t‖_F ‖y‖²) (Cristianini et al.);
- ``eta``: η_t = min_a (1/m) #{i : h_i^t(x_a) ∈ I} of Lemma 1.

It also keeps the per-neuron displacements of the last state (:meth:`FeatureTracker.per_neuron`) and the
(h_i(x_1), h_i(x_2)) pairs of Figure 4 at chosen times (:meth:`FeatureTracker.scatter`). :func:`width_sweep`
runs a grid over widths m, scalings and seeds and returns one tidy table of all of these. Plots of these
tables are in :mod:`wideflow.plotting`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from ._tensor import as_tensor, check_shape
from .errors import InvalidArgument, InvalidShape, InvalidType, check_non_empty, check_positive_int, check_seed
from .fits import fit_power
from .kernels import gram, tangent_kernel
from .model import WideNet, check_model
from .theory import active_fraction
from .training import TrainState, train

__all__ = [
    "FeatureTracker",
    "kernel_drift",
    "kernel_target_alignment",
    "relative_weight_change",
    "neuron_displacement",
    "width_sweep",
    "sweep_exponents",
    "METRICS",
]

METRICS = ("feature_displacement", "relative_feature_displacement", "weight_change", "kernel_drift",
           "kernel_alignment", "eta")


def _matrix(argument: str, value: Any, names: str, *, square: bool = False) -> torch.Tensor:
    """``value`` if it is a floating-point tensor with two dimensions (equal ones with ``square``)."""
    if not isinstance(value, torch.Tensor):
        raise InvalidType(f"{argument} must be a torch.Tensor of shape {names}; got {type(value).__name__}.")
    if value.ndim != 2 or (square and value.shape[0] != value.shape[1]):
        kind = "a square matrix" if square else "a matrix"
        raise InvalidShape(f"{argument} must be {kind} of shape {names}; got shape {tuple(value.shape)}.")
    return check_shape(argument, value, tuple(value.shape), names)


def kernel_drift(K0: torch.Tensor, Kt: torch.Tensor) -> float:
    """‖K_t − K_0‖_F / ‖K_0‖_F (docs/theory.md §3)."""
    K0 = _matrix("K0", K0, "(n, n)", square=True)
    Kt = check_shape("Kt", Kt, tuple(K0.shape), "(n, n)", " to match K0")
    return float(torch.linalg.matrix_norm(Kt - K0) / torch.linalg.matrix_norm(K0))


def kernel_target_alignment(K: torch.Tensor, y: torch.Tensor) -> float:
    """A(K, y) = yᵀK y / (‖K‖_F ‖y‖²) ∈ [−1, 1]: 1 when K ∝ y yᵀ (Cristianini et al., 2002)."""
    K = _matrix("K", K, "(n, n)", square=True)
    y = check_shape("y", y, K.shape[:1], "(n,)", f" to match K of shape {tuple(K.shape)}")
    return float(y @ K @ y / (torch.linalg.matrix_norm(K) * (y @ y)))


def relative_weight_change(model_0: WideNet, model_t: WideNet) -> float:
    """‖W_t − W_0‖_F / ‖W_0‖_F from two models (materializes both W)."""
    check_model(model_0, "model_0")
    check_model(model_t, "model_t")
    if (model_t.m, model_t.D) != (model_0.m, model_0.D):
        raise InvalidShape(
            f"model_t has W of shape (m, D) = ({model_t.m}, {model_t.D}); expected ({model_0.m}, {model_0.D}) to "
            "match model_0 (the same network at another time)."
        )
    return float(torch.linalg.matrix_norm(model_t.W - model_0.W) / torch.linalg.matrix_norm(model_0.W))


def neuron_displacement(H0: torch.Tensor, Ht: torch.Tensor) -> pd.DataFrame:
    """Per neuron i (rows of the (m, n) feature matrices): displacement = RMS_a |h_i^t(x_a) − h_i^0(x_a)| and
    relative = displacement / RMS_a |h_i^0(x_a)| (∞ for a neuron that starts at 0)."""
    H0 = _matrix("H0", H0, "(m, n)")
    Ht = check_shape("Ht", Ht, tuple(H0.shape), "(m, n)", " to match H0")
    disp = ((Ht - H0) ** 2).mean(dim=1).sqrt().cpu()
    scale = (H0**2).mean(dim=1).sqrt().cpu()
    rel = torch.where(scale > 0, disp / scale.clamp_min(torch.finfo(scale.dtype).tiny), torch.full_like(disp, math.inf))
    return pd.DataFrame({"neuron": range(H0.shape[0]), "displacement": disp.numpy(), "relative": rel.numpy()})


class FeatureTracker:
    """A ``callbacks`` entry for :func:`wideflow.train` / :func:`wideflow.gradient_flow` (module docstring).

    Parameters
    ----------
    model: the model at initialization (the one handed to train).
    X, y: the training set of the run; y is needed for ``kernel_alignment`` only.
    scatter_times: times at which to record (h_i(x_1), h_i(x_2)) for every neuron (Figure 4); a logged state
        is recorded when its time is within 1e-9 of one of them.
    scatter_points: (a, b): x_1 = X[a], and x_2 = X_test[b] (a test input, as in Figure 4) when the state
        carries test features, else X[b].
    interval: the interval I of η_t (default: σ's active interval).
    """

    def __init__(self, model: WideNet, X: Any, y: Any = None, *, scatter_times: Iterable[float] = (),
                 scatter_points: tuple[int, int] = (0, 1), interval: tuple[float, float] | None = None) -> None:
        X = check_model(model).input(X)
        n = X.shape[0]
        self.y = None if y is None else as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=n)
        self.act = model.activation
        self.H0 = model.features(X).T.contiguous()
        self.b0 = None if model.b is None else model.b.clone()
        self.G = gram(model, X)
        self.K0 = tangent_kernel(self.H0, model.c, self.act, self.G)
        lam, V = torch.linalg.eigh(self.G)
        keep = lam > lam[-1].clamp_min(0) * n * torch.finfo(lam.dtype).eps
        self.G_pinv = (V[:, keep] / lam[keep]) @ V[:, keep].T
        self.weight_scale = model.s_h**2 * model.D * float(torch.linalg.matrix_norm(model.W)) ** 2
        self.interval = self.act.interval if interval is None else tuple(map(float, interval))
        self.scatter_times = sorted(float(t) for t in scatter_times)
        a, b = scatter_points
        self.scatter_points = (check_positive_int("scatter_points[0]", a, minimum=0),
                               check_positive_int("scatter_points[1]", b, minimum=0))
        if a >= n:
            raise InvalidArgument(f"scatter_points[0]={a} is not a training point index (n = {n}).")
        self._scatter: list[pd.DataFrame] = []
        self._last: pd.DataFrame | None = None

    def __call__(self, state: TrainState) -> dict[str, float]:
        H = state.H
        dH = H - self.H0
        if self.b0 is not None and state.b is not None:
            dH = dH - (state.b - self.b0)[:, None]  # the bias moves h without moving W
        K = tangent_kernel(H, state.c, self.act, self.G)
        row = {
            "feature_displacement": float((dH**2).mean(dim=1).sqrt().mean()),
            "relative_feature_displacement": float(torch.linalg.matrix_norm(dH) / torch.linalg.matrix_norm(self.H0)),
            "weight_change": math.sqrt(max(float(((dH @ self.G_pinv) * dH).sum()), 0.0) / self.weight_scale),
            "kernel_drift": kernel_drift(self.K0, K),
            "eta": float(active_fraction(H, self.interval).min()),
        }
        if self.y is not None:
            row["kernel_alignment"] = kernel_target_alignment(K, self.y)
        self._last = neuron_displacement(self.H0, H).assign(time=state.time)
        if any(abs(state.time - t) <= 1e-9 * max(1.0, abs(t)) for t in self.scatter_times):
            self._record_scatter(state)
        return row

    def _record_scatter(self, state: TrainState) -> None:
        a, b = self.scatter_points
        if state.H_test is not None:
            if b >= state.H_test.shape[1]:
                raise InvalidArgument(f"scatter_points[1]={b} is not a test point index "
                                      f"(n_test = {state.H_test.shape[1]}).")
            second, where = state.H_test[:, b], "test"
        else:
            if b >= state.H.shape[1]:
                raise InvalidArgument(f"scatter_points[1]={b} is not a training point index (n = {state.H.shape[1]}).")
            second, where = state.H[:, b], "train"
        self._scatter.append(pd.DataFrame({
            "time": state.time, "neuron": range(state.H.shape[0]), "h_x1": state.H[:, a].cpu().numpy(),
            "h_x2": second.cpu().numpy(), "x2_from": where,
        }))

    def per_neuron(self) -> pd.DataFrame:
        """Per-neuron displacement at the last logged state: neuron, displacement, relative, time."""
        if self._last is None:
            raise InvalidArgument("the tracker has not seen a state yet; pass it in callbacks=[...] to a run first.")
        return self._last

    def scatter(self) -> pd.DataFrame:
        """The Figure-4 scatter data: time, neuron, h_x1 = h_i(x_1), h_x2 = h_i(x_2), x2_from ("test"/"train")."""
        if not self._scatter:
            return pd.DataFrame(columns=["time", "neuron", "h_x1", "h_x2", "x2_from"])
        return pd.concat(self._scatter, ignore_index=True)


def width_sweep(
    make_model: Callable[[int, str, int], WideNet],
    X: Any,
    y: Any,
    widths: Sequence[int],
    scalings: Sequence[str] = ("ours", "ntk", "mf"),
    *,
    seeds: Sequence[int] = (0,),
    steps: int = 1000,
    step_size: float = 1.0,
    reduction: str = "mean",
    log_every: int = 100,
    X_test: Any = None,
    y_test: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Train ``make_model(m, scaling, seed)`` for every width, scaling and seed, with a :class:`FeatureTracker`.

    Returns one tidy table: scaling, m, seed, step, time, train_loss (test_error), and the tracker's
    columns (:data:`METRICS`). :func:`sweep_exponents` reads off how each one moves with m.
    """
    from tqdm.auto import tqdm

    if not callable(make_model):
        raise InvalidType(f"make_model must be a callable (m, scaling, seed) -> WideNet; got {make_model!r}.")
    widths = [check_positive_int("widths", m) for m in check_non_empty("widths", widths, "widths m >= 1")]
    scalings = check_non_empty("scalings", scalings, "scaling names")
    seeds = [check_seed("seeds", seed) for seed in check_non_empty("seeds", seeds, "integer seeds")]
    grid = [(s, m, seed) for s in scalings for m in widths for seed in seeds]
    frames = []
    for scaling, m, seed in tqdm(grid, desc="width sweep", disable=None if progress is None else not progress):
        model = make_model(m, scaling, seed)
        tracker = FeatureTracker(model, X, y)
        res = train(model, X, y, steps=steps, step_size=step_size, X_test=X_test, y_test=y_test,
                    reduction=reduction, log_every=log_every, callbacks=[tracker], progress=False)
        frames.append(res.history.assign(scaling=scaling, m=m, seed=seed))
    df = pd.concat(frames, ignore_index=True)
    first = ["scaling", "m", "seed"]
    return df[first + [c for c in df.columns if c not in first]]


def sweep_exponents(sweep: pd.DataFrame, metric: str = "kernel_drift", time: float | None = None) -> pd.DataFrame:
    """For each scaling, the exponent p of metric ≈ C m^p at ``time`` (default: the last logged time), from
    :func:`wideflow.fits.fit_power` over widths (seeds averaged): scaling, exponent, prefactor, r2."""
    if metric not in sweep:
        raise InvalidArgument(f"sweep has no column {metric!r}; its columns are {list(sweep.columns)}.")
    t = sweep["time"].max() if time is None else time
    at = sweep[(sweep["time"] - t).abs() <= 1e-9 * max(1.0, abs(t))]
    if at.empty:
        raise InvalidArgument(f"no row of the sweep is at time {t!r}.")
    rows = [{"scaling": s, "metric": metric, **fit_power(g["m"], g[metric])} for s, g in at.groupby("scaling")]
    return pd.DataFrame(rows)
