r"""The m → ∞ limit at D = ∞ (docs/theory.md §9): how training under ours and NTK approaches its infinite-width
limit on Experiment 3's task.

Data: axis-XOR (Appendix I.3, :func:`wideflow.data.axis_xor`). Model: the P-3L net (4)-(5) with an infinite
random embedding, ``wf.P3L(d, m, D=math.inf)`` (the features are Gaussian processes with covariance Ḡ,
:mod:`wideflow.infinite`), under ours and NTK (Table 1), at the widths m of the preset, over seeds; GD with step δ
(eq. (9)) on the kernel-space engine. At every logging step a run records, beside the training loss and the test
error,

- ``displacement`` = ‖H_t − H_0‖_F / ‖H_0‖_F over the m neurons and the n training inputs, the relative feature
  displacement (O(1) under ours: feature learning; O(m^(−1/2)) under NTK: lazy training, docs/theory.md §3);
- ``ntk_gap``: the rms over the test inputs of f_t(x) − f^lin_t(x), f^lin the NTK-limit predictor
  (:func:`wideflow.ntk.gradient_descent_mse` with Θ of :func:`wideflow.ntk.ntk_kernel_of`, ``limit="both"``, from
  the run's own outputs at t = 0), i.e. how far the net is from its m, D → ∞ linearization.

Each quantity is extrapolated to m = ∞ at every time point by v(m) = v_∞ + a·(m/m_1)^(−p) with the exponent
fitted and bootstrap intervals over seeds (:mod:`.limits_fit`). Claims:

1. ``limits.ours_rate_survives`` (Theorem 3 at m → ∞): under ours the linear rate r of the training loss (the slope
   of log L_t over t ∈ [0.1T, T], :func:`wideflow.fits.loglinear_fit`) does not vanish as m grows: at the largest
   width it is at least :data:`.limits_fit.RATE_FRACTION` times the rate at the smallest (paired over seeds), and so is the
   extrapolated r_∞ (bootstrap interval).
2. ``limits.displacement_exponents``: the final displacement scales as m^q with q = 0 under ours and q = −1/2
   under NTK: the 95 % interval of q (per-seed slopes of log displacement against log m) lies within
   :data:`.limits_fit.EXPONENT_MARGIN` of the prediction.
3. ``limits.ntk_approaches_predictor``: under NTK the final ``ntk_gap`` falls with m (the mean per-seed slope of
   its log against log m is negative, t-test over seeds); its exponent is reported (−1/2 is expected).

The runs are trained in this process (:func:`run`) and kept in the reproduction's store under their own ids, so
a repeated command computes only what is missing; :func:`configs` gives the sweep nothing to run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ..errors import InvalidArgument
from ..fits import loglinear_fit
from ..model import P3L
from ..ntk import gradient_descent_mse, ntk_kernel_of
from ..registry import make_data
from ..sweep.runner import RunOutput
from ..training import TrainState, train
from .common import (
    check_even_widths,
    final_and_curves,
    int_list,
    palette,
    positive_int,
    save_figure,
    seed_list,
    train_in_process,
)
from .compare import COLORS
from .limits_fit import SCALINGS, claims, cube, extrapolate, seed_slopes
from .stats import paired_test

__all__ = ["NAME", "TITLE", "KEYS", "configs", "run_configs", "run", "train_run", "tables", "figures", "claims",
           "extras"]

NAME = "limits"
TITLE = "The m → ∞ limit at D = ∞: training loss, test error, feature displacement and the NTK predictor"
QUANTITIES = {"train_loss": "training loss", "test_error": "test error",
              "displacement": "‖H_t − H_0‖_F / ‖H_0‖_F", "ntk_gap": "rms test gap to the NTK predictor"}


def widths(key: str, value: Any) -> list[int]:
    """The widths m: a strictly increasing list of at least 3 even integers (3 fit v_∞, a and p; NTK's
    symmetrized initialization pairs neuron i with i + m/2)."""
    out = int_list(key, value)
    if len(out) < 3:
        raise InvalidArgument(f"{key}={out} has {len(out)} width(s); the fit v(m) = v_∞ + a·m^(−p) needs at least 3.")
    check_even_widths(key, out, SCALINGS)
    return out


KEYS = {"d": positive_int, "n": positive_int, "m": widths, "steps": positive_int, "log_every": positive_int,
        "resamples": positive_int}


# ------------------------------------------------------------------------------------------- runs
def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Nothing for the sweep: a D = ∞ model is trained by :func:`run` in this process."""
    return []


def run_configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (scaling, m, seed): P-3L with D = ∞ on axis-XOR, seed k drawing the neurons and the data."""
    if s["n_test"] < 1:
        raise InvalidArgument(f"limits.n_test={s['n_test']}: the test error and the NTK gap need a test set; "
                              "give n_test >= 1.")
    if s["loss"] != "squared":
        raise InvalidArgument(f"limits.loss={s['loss']!r}: the NTK-limit predictor is that of the squared loss; "
                              "give loss = \"squared\".")
    train_keys = ("steps", "step_size", "reduction", "method", "log_every", "dtype", "device")
    return [{"model": {"kind": "p3l", "d": s["d"], "m": m, "D": "inf", "scaling": scaling,
                       "activation": s["activation"], "c_hat": s["c_hat"], "seed": seed},
             "data": {"kind": "axis_xor", "n": s["n"], "n_test": s["n_test"], "seed": seed},
             "train": {key: s[key] for key in train_keys},
             "tags": {"experiment": NAME}}
            for scaling in SCALINGS for m in s["m"] for seed in seed_list(s)]


class _Probe:
    """A :func:`wideflow.train` callback adding ``displacement`` and ``ntk_gap`` (module docstring)."""

    def __init__(self, model: P3L, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor, reduction: str,
                 step_size: float) -> None:
        self.theta = ntk_kernel_of(model, X, limit="both").double().cpu()
        self.theta_test = ntk_kernel_of(model, X_test, X, limit="both").double().cpu()
        self.y, self.reduction, self.step_size = y.double(), reduction, step_size
        self.H0: torch.Tensor | None = None

    def __call__(self, state: TrainState) -> dict[str, float]:
        assert state.f_test is not None
        if self.H0 is None:  # the first logged state is t = 0
            self.H0 = state.H.clone()
            self.predictor = gradient_descent_mse(
                self.theta, self.y, reduction=self.reduction, step_size=self.step_size,
                f_train_0=state.f.double().cpu(), k_test_train=self.theta_test, f_test_0=state.f_test.double().cpu())
        displacement = float(torch.linalg.norm(state.H - self.H0) / torch.linalg.norm(self.H0))
        f_lin = self.predictor(state.time)[1]
        gap = float(((state.f_test.double().cpu() - f_lin) ** 2).mean().sqrt())
        return {"displacement": displacement, "ntk_gap": gap}


def train_run(config: dict[str, Any]) -> RunOutput:
    """Train one run of :func:`run_configs`; its metrics are the final values, the rate fit and the wall time."""
    mc, dc, tc = config["model"], config["data"], config["train"]
    X, y, X_test, y_test = make_data("axis_xor", mc["d"], n=dc["n"], n_test=dc["n_test"], seed=dc["seed"])
    model = P3L(mc["d"], mc["m"], D=math.inf, scaling=mc["scaling"], activation=mc["activation"],
                c_hat=mc["c_hat"], seed=mc["seed"], dtype=tc["dtype"], device=tc["device"])
    probe = _Probe(model, X, y, X_test, tc["reduction"], tc["step_size"])
    t0 = time.perf_counter()
    result = train(model, X, y, steps=tc["steps"], step_size=tc["step_size"], X_test=X_test, y_test=y_test,
                   reduction=tc["reduction"], method=tc["method"], log_every=tc["log_every"], progress=False,
                   callbacks=[probe])
    wall = time.perf_counter() - t0
    h = result.history
    fit = loglinear_fit(h["time"].to_numpy(), h["train_loss"].to_numpy())
    last = h.iloc[-1]
    metrics = {"initial_train_loss": float(h["train_loss"].iloc[0]), "final_train_loss": float(last["train_loss"]),
               "final_test_error": float(last["test_error"]), "final_displacement": float(last["displacement"]),
               "final_ntk_gap": float(last["ntk_gap"]), "zero_test_error": 0.5 * float((y_test**2).mean()),
               "rate": fit["rate"], "rate_r2": fit["r2"], "rate_constancy": fit["constancy"],
               "method": result.method, "wall_time": wall}
    return RunOutput(metrics, h)


def run(s: dict[str, Any], store: str | Path, *, progress: bool = True) -> tuple[pd.DataFrame, int]:
    """Train every run of :func:`run_configs` missing from the results store ``store``; return the results table
    of all of them and how many were trained now (:func:`.common.train_in_process`)."""
    return train_in_process(NAME, run_configs(s), train_run, store, progress=progress)


# ------------------------------------------------------------------------------------------- tables
def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``limits_final`` (one row per run: final values, rate fit), ``limits_curves`` (the histories),
    ``limits_extrapolated`` (the m = ∞ curve of each scaling and quantity at every logged time, with bootstrap
    intervals) and ``limits_fits`` (per scaling and final quantity: seed means per m, v_∞, p and the log-log
    exponent with their intervals)."""
    key = pd.DataFrame({"scaling": runs["model.scaling"].to_numpy(), "m": runs["model.m"].astype(int).to_numpy(),
                        "seed": runs["model.seed"].astype(int).to_numpy()})
    final, curves = final_and_curves(runs, history, key, QUANTITIES)
    extrapolated, fits = [], []
    for scaling in SCALINGS:
        part = curves[curves["scaling"] == scaling]
        times = np.sort(part["time"].unique())
        for q in QUANTITIES:
            ext = extrapolate(cube(part, q, "time"), s["m"], resamples=s["resamples"])
            extrapolated.append(pd.DataFrame({"scaling": scaling, "quantity": q, "time": times,
                                              **{k: v for k, v in ext.items() if k != "v_inf_boot"}}))
        for q in (*QUANTITIES, "rate"):
            fits.append({"scaling": scaling, "quantity": q, **_final_fit(final[final["scaling"] == scaling], q, s)})
    order = ["scaling", "m", "seed"]
    return {"limits_final": final.sort_values(order, ignore_index=True),
            "limits_curves": curves.sort_values([*order, "step"], ignore_index=True),
            "limits_extrapolated": pd.concat(extrapolated, ignore_index=True),
            "limits_fits": pd.DataFrame(fits)}


def _final_fit(final: pd.DataFrame, q: str, s: dict[str, Any]) -> dict[str, Any]:
    """The extrapolation and the per-seed log-log exponent of one final quantity of one scaling."""
    values = cube(final, q)
    ext = {k: float(v[0]) for k, v in extrapolate(values[:, :, None], s["m"], resamples=s["resamples"]).items()
           if k != "v_inf_boot"}
    slopes = seed_slopes(values, s["m"])
    test = paired_test(slopes, "negative", seeds=range(len(slopes)), log=False, units="seeds")
    means = dict(zip(s["m"], np.nanmean(values, axis=0).tolist()))
    return {"mean_per_m": json.dumps({str(m): v for m, v in means.items()}), **ext, "exponent": test["mean"],
            "exponent_lo": test["interval"][0], "exponent_hi": test["interval"][1]}


def extras(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> dict[str, Any]:
    """``limits``: per scaling and final quantity, the m = ∞ extrapolation and the exponent (``limits_fits``)."""
    rows = t["limits_fits"].to_dict(orient="records")
    for row in rows:
        row["mean_per_m"] = json.loads(row["mean_per_m"])
    return {"limits": rows}


# ------------------------------------------------------------------------------------------- figures
def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """``limits_curves``: every quantity against time, one curve per m (seed means) and the m = ∞ extrapolation
    with its bootstrap band; ``limits_vs_m``: the final displacement, the NTK gap and the rate against m."""
    return _curves(t["limits_curves"], t["limits_extrapolated"], folder, s) + _against_m(t["limits_final"], folder, s)


def _curves(curves: pd.DataFrame, ext: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    fig = Figure(figsize=(4.0 * len(QUANTITIES), 3.4 * len(SCALINGS)), layout="constrained")
    axes = fig.subplots(len(SCALINGS), len(QUANTITIES), squeeze=False)
    colors = palette(len(s["m"]), "plasma")
    for row, scaling in enumerate(SCALINGS):
        for col, (q, label) in enumerate(QUANTITIES.items()):
            ax = axes[row, col]
            part = curves[curves["scaling"] == scaling]
            for m, color in zip(s["m"], colors):
                mean = part[part["m"] == m].groupby("time")[q].mean()
                ax.plot(mean.index, mean.to_numpy(), color=color, lw=1.2, label=f"m = {m}")
            lim = ext[(ext["scaling"] == scaling) & (ext["quantity"] == q)]
            ax.plot(lim["time"], lim["v_inf"], "--", color="k", lw=1.5, label="m = ∞ (fit)")
            ax.fill_between(lim["time"], lim["v_inf_lo"], lim["v_inf_hi"], color="k", alpha=0.15, lw=0)
            if q != "test_error":
                ax.set_yscale("log", nonpositive="mask")
            ax.set_title(f"{scaling}: {label}", fontsize="medium")
            ax.set_xlabel("time t = step × δ")
    axes[0, 0].legend(fontsize="x-small")
    fig.suptitle(f"P-3L, D = ∞, axis-XOR (d = {s['d']}, n = {s['n']}); lines: seed means ({s['seeds']} seeds); "
                 "band: bootstrap 95 % interval of the m = ∞ fit v_∞ + a·m^−p")
    return save_figure(fig, folder, "limits_curves")


def _against_m(final: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    fig = Figure(figsize=(13.0, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    ms = np.asarray(s["m"], dtype=float)
    for scaling in SCALINGS:
        part = final[final["scaling"] == scaling]
        for ax, q in zip(axes[:2], ("displacement", "ntk_gap")):
            values = cube(part, q)
            ax.plot(np.repeat(ms[None, :], len(values), 0).ravel(), values.ravel(), ".", color=COLORS[scaling],
                    alpha=0.4, ms=4)
            slope = float(np.nanmean(seed_slopes(values, s["m"])))
            mean = np.nanmean(values, axis=0)
            ax.plot(ms, mean, "o", color=COLORS[scaling])
            geo = float(np.exp(np.nanmean(np.log(mean) - slope * np.log(ms))))
            ax.plot(ms, geo * ms**slope, "-", color=COLORS[scaling], label=f"{scaling}: m^{slope:.2f}")
        rate = cube(part, "rate")
        axes[2].plot(np.repeat(ms[None, :], len(rate), 0).ravel(), rate.ravel(), ".", color=COLORS[scaling], alpha=0.4)
        axes[2].plot(ms, np.nanmean(rate, axis=0), "o-", color=COLORS[scaling], label=scaling)
        ext = extrapolate(rate[:, :, None], s["m"], resamples=s["resamples"])
        axes[2].axhspan(float(ext["v_inf_lo"][0]), float(ext["v_inf_hi"][0]), color=COLORS[scaling], alpha=0.15,
                        lw=0, label=f"{scaling}: m = ∞ (fit)")
    ref = float(np.nanmean(cube(final[final["scaling"] == "ntk"], "displacement")[:, 0]))
    axes[0].plot(ms, ref * (ms / ms[0]) ** -0.5, ":", color="0.4", label="m^-1/2")
    for ax, title in zip(axes, ("final displacement ‖H_T − H_0‖_F/‖H_0‖_F", "final rms test gap to the NTK predictor",
                                "linear rate of the training loss")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width m")
        ax.set_title(title, fontsize="medium")
        ax.legend(fontsize="x-small")
    for ax in axes[:2]:
        ax.set_yscale("log")
    fig.suptitle(f"P-3L, D = ∞, axis-XOR (d = {s['d']}, n = {s['n']}, T = {s['steps'] * s['step_size']:g}); "
                 f"dots: {s['seeds']} seeds, circles: their means, lines: m^q with q the mean per-seed slope")
    return save_figure(fig, folder, "limits_vs_m")
