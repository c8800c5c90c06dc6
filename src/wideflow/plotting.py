"""Matplotlib figures over the tidy tables of :mod:`wideflow.theory`, :mod:`wideflow.diagnostics` and
:mod:`wideflow.gradflow`. Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (so it
works under any backend, Agg included, and never opens a window); pass ``ax`` to draw into an existing axes,
and save with :func:`save_figure`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .errors import InvalidArgument

__all__ = [
    "plot_loss",
    "plot_concentration",
    "plot_width_sweep",
    "plot_feature_scatter",
    "plot_displacement",
    "plot_gd_vs_flow",
    "save_figure",
]


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5.0, 3.6)) -> tuple[Figure, Axes]:
    if ax is not None:
        fig = ax.get_figure()
        assert isinstance(fig, Figure)
        return fig, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _require(df: pd.DataFrame, *columns: str) -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise InvalidArgument(f"the table has no column(s) {missing}; its columns are {list(df.columns)}.")


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_loss(history: pd.DataFrame, *, ax: Axes | None = None, label: str | None = None,
              time: str = "time") -> Figure:
    """Training loss (solid) and test error (dashed) against time on a log scale, as in Figure 4, row 1."""
    _require(history, time, "train_loss")
    fig, ax = _axes(ax)
    (line,) = ax.semilogy(history[time], history["train_loss"], label=label or "train loss")
    if "test_error" in history:
        ax.semilogy(history[time], history["test_error"], "--", color=line.get_color(),
                    label=None if label else "test error")
    ax.set_xlabel("GF time t" if time == "time" else time)
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return fig


def plot_concentration(df: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Condition 1 (:func:`wideflow.theory.concentration`): ‖G − Ḡ‖ against D, per seed and mean, with the
    reference slope D^{-1/2} and the level λ_min(Ḡ)/2."""
    _require(df, "D", "op_error", "lambda_min_Gbar")
    fig, ax = _axes(ax)
    ax.loglog(df["D"], df["op_error"], ".", color="0.6", label="one seed")
    mean = df.groupby("D")["op_error"].mean()
    ax.loglog(mean.index, mean.to_numpy(), "o-", label="mean over seeds")
    D = mean.index.to_numpy(dtype=float)
    ax.loglog(D, mean.iloc[0] * np.sqrt(D[0] / D), ":", color="k", label=r"$\propto D^{-1/2}$")
    ax.axhline(df["lambda_min_Gbar"].iloc[0] / 2, color="C3", ls="--", label=r"$\lambda_{\min}(\bar G)/2$")
    ax.set_xlabel("D")
    ax.set_ylabel(r"$\|G - \bar G\|_2$")
    ax.legend(fontsize="small")
    return fig


def plot_width_sweep(df: pd.DataFrame, metric: str = "kernel_drift", *, time: float | None = None,
                     ax: Axes | None = None) -> Figure:
    """A metric of :func:`wideflow.diagnostics.width_sweep` at ``time`` (default: the last) against m, one
    line per scaling (seeds averaged), log-log."""
    _require(df, "scaling", "m", "time", metric)
    fig, ax = _axes(ax)
    t = df["time"].max() if time is None else time
    at = df[(df["time"] - t).abs() <= 1e-9 * max(1.0, abs(t))]
    for scaling, g in at.groupby("scaling"):
        mean = g.groupby("m")[metric].mean()
        ax.loglog(mean.index, mean.to_numpy(), "o-", label=str(scaling))
    ax.set_xlabel("width m")
    ax.set_ylabel(f"{metric} at t = {t:g}")
    ax.legend(fontsize="small")
    return fig


def plot_feature_scatter(df: pd.DataFrame, *, ax: Axes | None = None, **scatter_kw: Any) -> Figure:
    """Figure 4, row 2: each neuron i at (h_i(x_1), h_i(x_2)), one colour per recorded time
    (:meth:`wideflow.diagnostics.FeatureTracker.scatter`)."""
    _require(df, "time", "h_x1", "h_x2")
    fig, ax = _axes(ax, (4.2, 4.0))
    kw = {"s": 4, "alpha": 0.6, **scatter_kw}
    for t, g in df.groupby("time"):
        ax.scatter(g["h_x1"], g["h_x2"], label=f"t = {t:g}", **kw)
    ax.set_xlabel(r"$h_i(x_1)$")
    ax.set_ylabel(r"$h_i(x_2)$")
    ax.legend(fontsize="small", markerscale=3)
    return fig


def plot_displacement(df: pd.DataFrame, *, ax: Axes | None = None, bins: int = 40,
                      column: str = "displacement") -> Figure:
    """Histogram of the per-neuron feature displacement (:meth:`FeatureTracker.per_neuron`)."""
    _require(df, column)
    fig, ax = _axes(ax)
    ax.hist(df[column], bins=bins)
    ax.set_xlabel(r"$\mathrm{RMS}_a |h_i^t(x_a) - h_i^0(x_a)|$" if column == "displacement" else column)
    ax.set_ylabel("neurons")
    return fig


def plot_gd_vs_flow(df: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """:func:`wideflow.compare_gd_to_flow`: max |f_GD − f_GF| against the step δ, with a slope-1 guide."""
    _require(df, "step_size", "max_abs_f")
    fig, ax = _axes(ax)
    ax.loglog(df["step_size"], df["max_abs_f"], "o-", label=r"$\max_a |f_{GD} - f_{GF}|$")
    delta = df["step_size"].to_numpy(dtype=float)
    ax.loglog(delta, df["max_abs_f"].iloc[0] * delta / delta[0], ":", color="k", label=r"$\propto \delta$")
    ax.set_xlabel(r"step size $\delta$")
    ax.set_ylabel("distance to the flow")
    ax.legend(fontsize="small")
    return fig
