r"""Between lazy and rich (Appendix C, docs/theory.md §7): the richness family r ∈ [0, ½] on Experiment 3's task.

Data: axis-XOR (Appendix I.3, :func:`wideflow.data.axis_xor`). Model: the P-3L net (4)-(5) with D = m, as in
Experiment 3, under ``wf.richness(r, symmetrize=...)``: s_o = m^(−(1−r)), s_h = D^(−½) and the learning-rate
factor m^(1−2r) on W, so that the tangent kernel is of order one for every r while the features move like
m^(−r); r = 0 is the paper's scaling (with the symmetrized initialization when ``symmetrize`` is true, so that
f_0 ≡ 0 at every r and only the exponent changes along the grid) and r = ½ is NTK. GD with step δ (eq. (9)) on
the kernel-space engine, at every width m and seed of the preset; at every logging step a
:class:`wideflow.diagnostics.FeatureTracker` records

- ``displacement`` = ‖H_t − H_0‖_F / ‖H_0‖_F over the m neurons and the n training inputs;
- ``kernel_drift`` = ‖K_t − K_0‖_F / ‖K_0‖_F, K_t the tangent kernel of W (docs/theory.md §3).

The final values are fitted against m per r: the exponent q of v ∝ m^q (per-seed slopes of log v against log m,
t-interval over seeds, :func:`.limits_fit.seed_slopes`) and the m = ∞ extrapolation v_∞ + a·(m/m_1)^(−p)
(:func:`.limits_fit.extrapolate`), also for the test error and the linear rate of the training loss. Claims:

1. ``richness.displacement_exponent``: the features move like m^(−r): for every r the 95 % interval of q lies
   within :data:`.limits_fit.EXPONENT_MARGIN` of −r (:func:`.limits_fit.exponent_test`).
2. ``richness.kernel_drift_bound``: the tangent kernel moves at most like the features (‖K_t − K_0‖ is bounded by a
   constant times the displacement, docs/theory.md §7): for every r the upper end of the 95 % interval of its
   exponent is at most −r + margin; its lower end above that is "not reproduced". The measured exponent may be
   steeper: with c_i = ±ĉ the first-order change of K cancels between neurons (docs/theory.md §7).
3. ``richness.displacement_falls_with_r``: at every width the displacement decreases with r: the per-seed slope
   of log displacement against r is negative (t-test over seeds); −log m is its prediction.
4. ``richness.test_error_against_r``: Figure 3's comparison (ours learns the axis-XOR task better than NTK)
   along the continuum: at the largest width, the per-seed slope of the test error against r is positive
   (lazier is worse); the headline states what was measured at each r, whichever way it goes, and a width at
   which no r beats predicting 0 (:data:`.stats.CHANCE_FRACTION`) cannot tell.

The runs are trained in this process (:func:`run`, the tracker is a training callback) and kept in the
reproduction's store under their own ids, so a repeated command computes only what is missing.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..diagnostics import FeatureTracker
from ..errors import InvalidArgument, InvalidType, WideflowError
from ..fits import loglinear_fit
from ..model import P3L
from ..registry import make_data
from ..scalings import get_scaling, richness
from ..sweep.runner import RunOutput
from .common import Claim, final_and_curves, palette, positive_int, save_figure, seed_list, train_in_process
from .limits import widths
from .limits_fit import EXPONENT_MARGIN, cube, exponent_test, extrapolate, seed_slopes
from .stats import CHANCE_FRACTION, all_of, describe, paired_test

__all__ = ["NAME", "TITLE", "KEYS", "QUANTITIES", "configs", "run_configs", "run", "train_run", "tables", "figures",
           "claims", "extras"]

NAME = "richness"
TITLE = "Between lazy and rich (Appendix C): the richness family r ∈ [0, ½] on Experiment 3's task"
QUANTITIES = {"train_loss": "training loss", "test_error": "test error",
              "displacement": "‖H_t − H_0‖_F / ‖H_0‖_F", "kernel_drift": "‖K_t − K_0‖_F / ‖K_0‖_F"}
#: the final quantities fitted against m (``richness_fits``)
FITTED = ("displacement", "kernel_drift", "test_error", "rate")


def r_grid(key: str, value: Any) -> list[float]:
    """The exponents r: a strictly increasing list of at least 2 reals in [0, ½] (each checked by
    :func:`wideflow.richness`)."""
    if not isinstance(value, list) or len(value) < 2:
        raise InvalidType(f"{key} must be a list of at least 2 exponents r in [0, 1/2] such as [0, 0.25, 0.5]; "
                          f"got {value!r}.")
    out = []
    for v in value:
        try:
            out.append(float(richness(v).r))
        except WideflowError as exc:
            raise type(exc)(f"{key} entry: {exc}") from None
    if any(b <= a for a, b in zip(out, out[1:])):
        raise InvalidArgument(f"{key} must be strictly increasing (each r once); got {out}.")
    return out


def flag(key: str, value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise InvalidType(f"{key} must be true or false; got {value!r}.")
    return value


KEYS = {"d": positive_int, "n": positive_int, "m": widths, "r": r_grid, "symmetrize": flag,
        "steps": positive_int, "log_every": positive_int, "resamples": positive_int}


# ------------------------------------------------------------------------------------------- runs
def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Nothing for the sweep: the runs carry a training callback and are trained by :func:`run`."""
    return []


def run_configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (r, m, seed): P-3L with D = m on axis-XOR under ``richness(r, symmetrize)``, seed k drawing the
    neurons and the data."""
    if s["n_test"] < 1:
        raise InvalidArgument(f"richness.n_test={s['n_test']}: the test error needs a test set; give n_test >= 1.")
    if s["symmetrize"] and (odd := [m for m in s["m"] if m % 2]):
        raise InvalidArgument(f"richness.m={s['m']} has odd widths {odd}; symmetrize = true pairs neuron i with "
                              "i + m/2 and needs even m.")
    train_keys = ("steps", "step_size", "reduction", "method", "log_every", "dtype", "device", "loss")
    return [{"model": {"kind": "p3l", "d": s["d"], "m": m, "D": m,
                       "scaling": richness(r, symmetrize=s["symmetrize"]).config,
                       "activation": s["activation"], "c_hat": s["c_hat"], "seed": seed},
             "data": {"kind": "axis_xor", "n": s["n"], "n_test": s["n_test"], "seed": seed},
             "train": {key: s[key] for key in train_keys},
             "tags": {"experiment": NAME, "r": r}}
            for r in s["r"] for m in s["m"] for seed in seed_list(s)]


def train_run(config: dict[str, Any]) -> RunOutput:
    """Train one run of :func:`run_configs` with a :class:`~wideflow.diagnostics.FeatureTracker`; its metrics are
    the final values, the rate fit and the wall time."""
    from ..training import train

    mc, dc, tc = config["model"], config["data"], config["train"]
    X, y, X_test, y_test = make_data("axis_xor", mc["d"], n=dc["n"], n_test=dc["n_test"], seed=dc["seed"])
    model = P3L(mc["d"], mc["m"], D=mc["D"], scaling=get_scaling(mc["scaling"]), activation=mc["activation"],
                c_hat=mc["c_hat"], seed=mc["seed"], dtype=tc["dtype"], device=tc["device"])
    tracker = FeatureTracker(model, X, y)
    t0 = time.perf_counter()
    result = train(model, X, y, steps=tc["steps"], step_size=tc["step_size"], X_test=X_test, y_test=y_test,
                   reduction=tc["reduction"], method=tc["method"], loss=tc["loss"], log_every=tc["log_every"],
                   progress=False, callbacks=[tracker])
    wall = time.perf_counter() - t0
    h = result.history.rename(columns={"relative_feature_displacement": "displacement"})
    h = h[["step", "time", *QUANTITIES]]
    fit = loglinear_fit(h["time"].to_numpy(), h["train_loss"].to_numpy())
    last = h.iloc[-1]
    metrics = {"initial_train_loss": float(h["train_loss"].iloc[0]), "final_train_loss": float(last["train_loss"]),
               "final_test_error": float(last["test_error"]), "final_displacement": float(last["displacement"]),
               "final_kernel_drift": float(last["kernel_drift"]), "zero_test_error": 0.5 * float((y_test**2).mean()),
               "rate": fit["rate"], "rate_r2": fit["r2"], "method": result.method, "wall_time": wall}
    return RunOutput(metrics, h)


def run(s: dict[str, Any], store: str | Path, *, progress: bool = True) -> tuple[pd.DataFrame, int]:
    """Train every run of :func:`run_configs` missing from the results store ``store``; return the results table
    of all of them and how many were trained now (:func:`.common.train_in_process`)."""
    return train_in_process(NAME, run_configs(s), train_run, store, progress=progress)


# ------------------------------------------------------------------------------------------- tables
def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``richness_final`` (one row per run), ``richness_curves`` (the histories), ``richness_phase`` (seed means
    per (r, m): the phase figure's data) and ``richness_fits`` (per r and final quantity: the exponent against m
    with its interval and the m = ∞ extrapolation)."""
    key = pd.DataFrame({"r": runs["tags.r"].to_numpy(dtype=float), "m": runs["model.m"].astype(int).to_numpy(),
                        "seed": runs["model.seed"].astype(int).to_numpy()})
    final, curves = final_and_curves(runs, history, key, QUANTITIES)
    values = [*QUANTITIES, "rate", "zero_error"]
    phase = final.groupby(["r", "m"], as_index=False)[values].mean()
    fits = [{"r": r, "quantity": q, **_fit(final[final["r"] == r], q, r, s)} for r in s["r"] for q in FITTED]
    order = ["r", "m", "seed"]
    return {"richness_final": final.sort_values(order, ignore_index=True),
            "richness_curves": curves.sort_values([*order, "step"], ignore_index=True),
            "richness_phase": phase, "richness_fits": pd.DataFrame(fits)}


def _fit(part: pd.DataFrame, q: str, r: float, s: dict[str, Any]) -> dict[str, Any]:
    """The per-seed log-log exponent of one final quantity against m and its m = ∞ extrapolation."""
    values = cube(part, q)
    slopes = seed_slopes(values, s["m"])
    test = paired_test(slopes, "negative", seeds=range(len(slopes)), log=False, units="seeds")
    ext = {k: float(v[0]) for k, v in extrapolate(values[:, :, None], s["m"], resamples=s["resamples"]).items()
           if k != "v_inf_boot"}
    means = dict(zip(s["m"], np.nanmean(values, axis=0).tolist()))
    return {"predicted_exponent": -r if q in ("displacement", "kernel_drift") else math.nan,
            "exponent": test["mean"], "exponent_lo": test["interval"][0], "exponent_hi": test["interval"][1],
            "mean_per_m": json.dumps({str(m): v for m, v in means.items()}), **ext}


def extras(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> dict[str, Any]:
    """``richness``: per r and final quantity, the exponent against m and the m = ∞ extrapolation."""
    rows = t["richness_fits"].to_dict(orient="records")
    for row in rows:
        row["mean_per_m"] = json.loads(row["mean_per_m"])
    return {"richness": rows}


# ------------------------------------------------------------------------------------------- claims
def _label(r: float) -> str:
    return f"r={r:g}"


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """The four claims of the module docstring, from ``richness_final``."""
    final = t["richness_final"]
    return [_displacement_exponent(final, s), _kernel_bound(final, s), _falls_with_r(final, s),
            _test_error(final, s)]


def _exponents(final: pd.DataFrame, q: str, s: dict[str, Any]) -> dict[float, np.ndarray]:
    return {r: seed_slopes(cube(final[final["r"] == r], q), s["m"]) for r in s["r"]}


def _interval(test: dict[str, Any]) -> str:
    lo, hi = test["exponent_interval"]
    return f"{test['exponent']:.3f} [{lo:.3f}, {hi:.3f}]"


def _displacement_exponent(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    seeds = sorted(final["seed"].unique())
    tests = {_label(r): exponent_test(q, seeds, -r, EXPONENT_MARGIN)
             for r, q in _exponents(final, "displacement", s).items()}
    return Claim(
        id="richness.displacement_exponent",
        statement="Along the richness family the features move like m^(−r) while the function moves by Θ(1): "
                  "r = 0 (ours) learns features, r = ½ (NTK) is lazy (Appendix C).",
        source="Appendix C (abc-parameterizations, the feature-learning exponent r)",
        criterion=f"P-3L, D = m, n = {s['n']}, T = {s['steps'] * s['step_size']:g}: q = slope of "
                  "log(‖H_T − H_0‖_F/‖H_0‖_F) against log m per seed; for every r the 95 % t-interval of mean q "
                  f"lies within ±{EXPONENT_MARGIN:g} of −r; wholly outside: not reproduced",
        headline="q: " + "; ".join(f"{k}: {_interval(v)}" for k, v in tests.items()),
        verdict=all_of(tests), test=tests, data="richness_final.csv",
        measured={"exponent": {k: v["exponent"] for k, v in tests.items()}},
    )


def _kernel_bound(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    seeds = sorted(final["seed"].unique())
    tests = {}
    for r, q in _exponents(final, "kernel_drift", s).items():
        test = exponent_test(q, seeds, -r, EXPONENT_MARGIN)
        lo, hi = test["exponent_interval"]
        verdict = ("inconclusive" if not (math.isfinite(lo) and math.isfinite(hi)) else
                   "reproduced" if hi <= -r + EXPONENT_MARGIN else
                   "not reproduced" if lo > -r + EXPONENT_MARGIN else "inconclusive")
        tests[_label(r)] = {**test, "predicted": f"at most {-r + EXPONENT_MARGIN:g} (−r + {EXPONENT_MARGIN:g})",
                            "verdict": verdict}
    return Claim(
        id="richness.kernel_drift_bound",
        statement="The tangent kernel moves at most as fast as the features: its drift falls at least like m^(−r), "
                  "so the kernel stays fixed in the limit for every r > 0 (Appendix C).",
        source="Appendix C; docs/theory.md §7",
        criterion=f"P-3L, D = m, n = {s['n']}: q_K = slope of log(‖K_T − K_0‖_F/‖K_0‖_F) against log m per seed; "
                  f"for every r the upper end of the 95 % t-interval of mean q_K is at most −r + {EXPONENT_MARGIN:g}; "
                  "its lower end above that: not reproduced",
        headline="q_K: " + "; ".join(f"{k}: {_interval(v)}" for k, v in tests.items()),
        verdict=all_of(tests), test=tests, data="richness_final.csv",
        measured={"exponent": {k: v["exponent"] for k, v in tests.items()}},
    )


def _r_slopes(final: pd.DataFrame, q: str, m: int, s: dict[str, Any], *, log: bool) -> np.ndarray:
    """Per seed, the least-squares slope against r of ``q`` (or of its log) at width ``m``."""
    at = final[final["m"] == m].pivot(index="seed", columns="r", values=q).sort_index().sort_index(axis=1)
    v = at.to_numpy(dtype=float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log(v)
    rs = np.asarray(at.columns, dtype=float)
    return np.array([np.polyfit(rs, row, 1)[0] if np.all(np.isfinite(row)) else math.nan for row in v])


def _per_r(final: pd.DataFrame, q: str, m: int) -> str:
    means = final[final["m"] == m].groupby("r")[q].mean()
    return ", ".join(f"{r:g}: {v:.3g}" for r, v in means.items())


def _falls_with_r(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    seeds = sorted(final["seed"].unique())
    tests = {f"m={m}": paired_test(_r_slopes(final, "displacement", m, s, log=True), "negative", seeds=seeds,
                                   log=False, units="seeds") for m in s["m"]}
    slopes = {k: v["mean"] for k, v in tests.items()}
    m_max = s["m"][-1]
    return Claim(
        id="richness.displacement_falls_with_r",
        statement="At a fixed width the features move less the larger r is: the family runs monotonically from "
                  "rich (r = 0) to lazy (r = ½).",
        source="Appendix C",
        criterion="at every width m: per seed, the least-squares slope of log displacement against r over the grid "
                  "of r; negative (t-test over seeds); its prediction is −log m",
        headline=f"m = {m_max}: displacement {_per_r(final, 'displacement', m_max)}; d log(displacement)/dr "
                 + ", ".join(f"{k}: {v:.2f} (−log m = {-math.log(int(k[2:])):.2f})" for k, v in slopes.items()),
        verdict=all_of(tests), test=tests, data="richness_final.csv", measured={"slope": slopes},
    )


def _test_error(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    m_max = s["m"][-1]
    seeds = sorted(final["seed"].unique())
    at = final[final["m"] == m_max]
    best = float(at.groupby("r")["test_error"].mean().min())
    chance = float(at["zero_error"].mean())
    slopes = _r_slopes(final, "test_error", m_max, s, log=False)
    test = paired_test(slopes, "positive", seeds=seeds, log=False, units="seeds")
    judged = best < CHANCE_FRACTION * chance
    if not judged:
        test = {**test, "verdict": "inconclusive"}
    direction = ("rises" if test["mean"] > 0 else "falls") + " with r"
    rate = _per_r(final, "rate", m_max)
    return Claim(
        id="richness.test_error_against_r",
        statement="Figure 3's comparison along the continuum: on the axis-XOR task the richer the training (the "
                  "smaller r), the lower the test error.",
        source="Section 4.3, Figure 3; Appendix C",
        criterion=f"at the largest width m = {m_max}: per seed, the least-squares slope of the final test error "
                  f"against r; positive (t-test over seeds); if no r has a seed-mean test error below "
                  f"{CHANCE_FRACTION:g}× that of predicting 0, this scale cannot tell (inconclusive)",
        headline=f"test error at m = {m_max}: {_per_r(final, 'test_error', m_max)} (predicting 0: {chance:.3g}); "
                 f"measured: it {direction}, slope {describe(test)}"
                 + ("" if judged else f"; no r beats {CHANCE_FRACTION:g}× the zero predictor")
                 + f" | linear rate of the loss: {rate}",
        verdict=test["verdict"], test=test, data="richness_final.csv",
        measured={"slope": test["mean"], "judged": judged,
                  "test_error_per_r": at.groupby("r")["test_error"].mean().to_dict(),
                  "rate_per_r": at.groupby("r")["rate"].mean().to_dict()},
    )


# ------------------------------------------------------------------------------------------- figures
def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """``richness_phase`` (r against m, coloured by the test error and by the displacement), ``richness_vs_m``
    (displacement and kernel drift against m per r, and the fitted exponents against r with the prediction −r)
    and ``richness_curves`` (training loss and test error against time per r at the largest width)."""
    return (_phase(t["richness_phase"], folder, s) + _against_m(t["richness_final"], t["richness_fits"], folder, s)
            + _curves(t["richness_curves"], folder, s))


def _caption(s: dict[str, Any]) -> str:
    return (f"P-3L, D = m, axis-XOR (d = {s['d']}, n = {s['n']}, T = {s['steps'] * s['step_size']:g}), "
            f"richness(r{', symmetrize=True' if s['symmetrize'] else ''}); {s['seeds']} seeds")


def _phase(phase: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    from matplotlib.colors import LogNorm

    fig = Figure(figsize=(12.0, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, (q, label, norm) in zip(axes, (("test_error", "test error", None),
                                           ("displacement", QUANTITIES["displacement"], LogNorm()),
                                           ("kernel_drift", QUANTITIES["kernel_drift"], LogNorm()))):
        grid = phase.pivot(index="r", columns="m", values=q).sort_index().sort_index(axis=1)
        image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", norm=norm,
                          cmap="viridis_r" if q == "test_error" else "magma")
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            red, green, blue, _ = image.cmap(image.norm(v))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize="x-small", color="k" if light else "w")
        ax.set_xticks(range(grid.shape[1]), [str(m) for m in grid.columns])
        ax.set_yticks(range(grid.shape[0]), [f"{r:g}" for r in grid.index])
        ax.set_xlabel("width m (= D)")
        ax.set_ylabel("r (0: ours, ½: NTK)")
        ax.set_title(f"final {label}, seed mean", fontsize="medium")
        fig.colorbar(image, ax=ax)
    fig.suptitle(_caption(s))
    return save_figure(fig, folder, "richness_phase")


def _against_m(final: pd.DataFrame, fits: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    fig = Figure(figsize=(13.0, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    ms = np.asarray(s["m"], dtype=float)
    colors = palette(len(s["r"]), "plasma")
    for r, color in zip(s["r"], colors):
        part = final[final["r"] == r]
        for ax, q in zip(axes[:2], ("displacement", "kernel_drift")):
            values = cube(part, q)
            slope = float(np.nanmean(seed_slopes(values, s["m"])))
            mean = np.nanmean(values, axis=0)
            ax.plot(ms, mean, "o", color=color)
            geo = float(np.exp(np.nanmean(np.log(mean) - slope * np.log(ms))))
            ax.plot(ms, geo * ms**slope, "-", color=color, label=f"r = {r:g}: m^{slope:.2f}")
            ax.plot(ms, mean[0] * (ms / ms[0]) ** -r, ":", color=color, lw=1)
    for ax, q in zip(axes[:2], ("displacement", "kernel_drift")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width m (= D)")
        ax.set_title(f"final {QUANTITIES[q]} (dotted: m^−r)", fontsize="medium")
        ax.legend(fontsize="x-small")
    rs = np.asarray(s["r"], dtype=float)
    for q, marker in (("displacement", "o"), ("kernel_drift", "s")):
        part = fits[fits["quantity"] == q].sort_values("r")
        err = np.vstack([part["exponent"] - part["exponent_lo"], part["exponent_hi"] - part["exponent"]])
        axes[2].errorbar(part["r"], part["exponent"], yerr=err, fmt=marker, capsize=3, label=QUANTITIES[q])
    axes[2].plot(rs, -rs, "k-", lw=1, label="prediction −r")
    axes[2].fill_between(rs, -rs - EXPONENT_MARGIN, -rs + EXPONENT_MARGIN, color="k", alpha=0.1, lw=0,
                         label=f"±{EXPONENT_MARGIN:g}")
    axes[2].set_xlabel("r")
    axes[2].set_ylabel("exponent q of m^q")
    axes[2].set_title("fitted exponents, 95 % intervals over seeds", fontsize="medium")
    axes[2].legend(fontsize="x-small")
    fig.suptitle(_caption(s))
    return save_figure(fig, folder, "richness_vs_m")


def _curves(curves: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    fig = Figure(figsize=(12.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    at = curves[curves["m"] == s["m"][-1]]
    for r, color in zip(s["r"], palette(len(s["r"]), "plasma")):
        mean = at[at["r"] == r].groupby("time")[["train_loss", "test_error", "displacement"]].mean()
        for ax, q in zip(axes, ("train_loss", "test_error", "displacement")):
            ax.plot(mean.index, mean[q].to_numpy(), color=color, lw=1.3, label=f"r = {r:g}")
    for ax, q in zip(axes, ("train_loss", "test_error", "displacement")):
        if q != "test_error":
            ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("time t = step × δ")
        ax.set_title(f"{QUANTITIES[q]}, m = {s['m'][-1]}", fontsize="medium")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(_caption(s) + "; lines: seed means")
    return save_figure(fig, folder, "richness_curves")
