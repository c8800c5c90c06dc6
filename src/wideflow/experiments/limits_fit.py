r"""The fits and the claims of the m → ∞ experiment (:mod:`.limits`, docs/theory.md §9): the limit of a quantity
measured at several widths, the exponent of its power law, and the verdicts built on them.

**Extrapolation** (:func:`extrapolate`). A quantity v measured at widths m_1 < … < m_M (one value per seed and
width, and per time point) is fitted by

    v(m) = v_∞ + a·(m/m_1)^(−p),   p ∈ :data:`P_GRID` = [0.1, 2],

by least squares on the seed means: for each p of the grid, v_∞ and a are a linear least-squares problem, and
the p of the smallest residual is kept (variable projection). The exponent is fitted, not assumed (1/m and
1/√m are two points of the grid); a is the correction at the smallest width, v(m_1) − v_∞. The 95 %
intervals of v_∞ and p are the 2.5 and 97.5 percentiles over bootstrap resamples of the seeds (the same seeds
at every width: a seed draws the training set and the neurons). With three widths the fit has no residual
left: it interpolates, and only the bootstrap tells how well the limit is determined.

**Exponents** (:func:`seed_slopes`). The power law v ∝ m^q of a quantity that vanishes or stays of order one:
q is the least-squares slope of log v against log m, one per seed; its 95 % interval is the t-interval of the
mean over seeds (:func:`.stats.paired_test`).

**Claims** (:func:`claims`, from the table ``limits_final``: one row per run with its final values): see
:mod:`.limits`. The rules are fixed here: :data:`RATE_FRACTION`, :data:`EXPONENT_MARGIN`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..fits import loglog_slope
from .common import Claim
from .stats import all_of, describe, paired_test

__all__ = ["P_GRID", "SCALINGS", "RATE_FRACTION", "EXPONENT_MARGIN", "PREDICTED_EXPONENT", "extrapolate", "cube",
           "seed_slopes", "exponent_test", "bootstrap_test", "claims"]

SCALINGS = ("ours", "ntk")
# "Does not vanish": the rate at the largest width (and extrapolated) is at least half the rate at the smallest;
# a rate falling like m^(−1/2) would keep 1/8 of it over a 64-fold range of m.
RATE_FRACTION = 0.5
# An exponent "equals" its prediction when its 95 % interval lies within ±0.1 of it: a fifth of the distance
# between the two predictions (0 under ours, −1/2 under NTK), so that the two cannot be confused.
EXPONENT_MARGIN = 0.1
PREDICTED_EXPONENT = {"ours": 0.0, "ntk": -0.5}

#: the exponents p tried by :func:`extrapolate` (steps of 0.025)
P_GRID = np.linspace(0.1, 2.0, 77)
#: the bootstrap's generator seed: the same settings give the same intervals
BOOTSTRAP_SEED = 0


def _profile_fit(means: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares v = v_∞ + a·x^p over :data:`P_GRID` for ``means`` (..., M) at x = m/m_1 (M,): the
    (v_∞, a, p) of the best p, each of shape (...)."""
    A = np.stack([np.ones((len(P_GRID), len(x))), x[None, :] ** (-P_GRID[:, None])], axis=-1)  # (P, M, 2)
    coef = np.einsum("pkm,...m->...pk", np.linalg.pinv(A), means)  # (..., P, 2)
    rss = ((np.einsum("pmk,...pk->...pm", A, coef) - means[..., None, :]) ** 2).sum(-1)  # (..., P)
    best = np.nanargmin(np.where(np.isfinite(rss), rss, np.inf), axis=-1)[..., None]
    v_inf = np.take_along_axis(coef[..., 0], best, -1)[..., 0]
    a = np.take_along_axis(coef[..., 1], best, -1)[..., 0]
    return v_inf, a, P_GRID[best[..., 0]]


def extrapolate(values: np.ndarray, ms: Sequence[int], *, resamples: int) -> dict[str, np.ndarray]:
    """The fit v(m) = v_∞ + a·(m/m_1)^(−p) of ``values`` (S seeds, M widths ``ms``, T time points) at each
    time point, with bootstrap intervals (module docstring).

    Returns arrays of shape (T,): ``v_inf``, ``v_inf_lo``, ``v_inf_hi``, ``p``, ``p_lo``, ``p_hi``, ``a``,
    and ``v_inf_boot`` (``resamples``, T), the bootstrap estimates of v_∞.
    """
    values = np.asarray(values, dtype=float)
    x = np.asarray(ms, dtype=float) / float(ms[0])
    v_inf, a, p = _profile_fit(np.nanmean(values, axis=0).T, x)  # (T,)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    pick = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
    boot = np.nanmean(values[pick], axis=1)  # (B, M, T)
    b_inf, _, b_p = _profile_fit(np.swapaxes(boot, 1, 2), x)  # (B, T)
    lo_v, hi_v = np.nanpercentile(b_inf, [2.5, 97.5], axis=0)
    lo_p, hi_p = np.nanpercentile(b_p, [2.5, 97.5], axis=0)
    return {"v_inf": v_inf, "v_inf_lo": lo_v, "v_inf_hi": hi_v, "p": p, "p_lo": lo_p, "p_hi": hi_p, "a": a,
            "v_inf_boot": b_inf}


def seed_slopes(values: np.ndarray, ms: Sequence[int]) -> np.ndarray:
    """The slope of log v against log m per seed, for ``values`` (S seeds, M widths) of a positive quantity."""
    return np.array([loglog_slope(ms, row) if np.all(np.asarray(row) > 0) else math.nan for row in values])


def exponent_test(slopes: np.ndarray, seeds: Sequence[Any], predicted: float, margin: float) -> dict[str, Any]:
    """Whether the exponent q (one slope per seed) equals ``predicted`` up to ``margin``: the t-interval of the
    mean of q − predicted over seeds (:func:`.stats.paired_test`) lies inside [−margin, margin]:
    "reproduced"; outside it: "not reproduced"; across an end of it: "inconclusive". ``p_value`` is that of
    the two-sided test of q = predicted, and the test's ``predicted`` reads "within ±margin"."""
    test = paired_test(np.asarray(slopes) - predicted, "positive", seeds=seeds, log=False, units="seeds")
    lo, hi = test["interval"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        verdict = "inconclusive"
    elif -margin <= lo and hi <= margin:
        verdict = "reproduced"
    elif hi < -margin or lo > margin:
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return {**test, "predicted": f"within ±{margin:g} of {predicted:g}", "exponent": predicted + test["mean"],
            "exponent_interval": [predicted + lo, predicted + hi], "verdict": verdict}


def bootstrap_test(boot: np.ndarray, estimate: float, threshold: float, n_seeds: int) -> dict[str, Any]:
    """Whether an extrapolated value exceeds ``threshold``: its bootstrap 95 % interval (``boot``, the
    bootstrap estimates) above it: "reproduced"; below it: "not reproduced"; across it: "inconclusive".
    ``p_value`` is twice the smaller bootstrap tail beyond the threshold. In the fields of
    :func:`.stats.paired_test`, for the difference estimate − threshold."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    out: dict[str, Any] = {"predicted": "positive", "units": "seeds (bootstrap)", "n_pairs": n_seeds,
                           "n_seeds": n_seeds, "log_ratio": False, "mean": estimate - threshold,
                           "interval": [math.nan, math.nan], "p_value": math.nan, "p_seed_level": math.nan,
                           "verdict": "inconclusive", "threshold": threshold}
    if n_seeds < 2 or not len(boot):
        return out
    lo, hi = np.percentile(boot, [2.5, 97.5])
    tail = min(float((boot <= threshold).mean()), float((boot >= threshold).mean()))
    out.update(interval=[float(lo - threshold), float(hi - threshold)], p_value=min(1.0, 2 * tail))
    if lo > threshold:
        out["verdict"] = "reproduced"
    elif hi < threshold:
        out["verdict"] = "not reproduced"
    return out


def cube(table: pd.DataFrame, value: str, over: str | None = None) -> np.ndarray:
    """``value`` of a table with one row per (seed, m[, over]) as an array (seeds, widths) or, with ``over`` (a
    time column), (seeds, widths, times), each axis sorted."""
    if over is None:
        return table.pivot(index="seed", columns="m", values=value).sort_index().sort_index(axis=1).to_numpy(float)
    wide = table.pivot_table(index=["seed", "m"], columns=over, values=value, dropna=False).sort_index()
    return wide.to_numpy(dtype=float).reshape(table["seed"].nunique(), table["m"].nunique(), -1)


# ------------------------------------------------------------------------------------------- claims
def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """The three claims of :mod:`.limits`, from ``limits_final``."""
    final = t["limits_final"]
    return [_rate(final, s), _displacement(final, s), _ntk_gap(final, s)]


def _per_m(values: np.ndarray, ms: Sequence[int]) -> str:
    return ", ".join(f"{m}: {v:.3g}" for m, v in zip(ms, np.nanmean(values, axis=0)))


def _rate(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    ours = final[final["scaling"] == "ours"]
    seeds = sorted(ours["seed"].unique())
    r = cube(ours, "rate")
    with np.errstate(invalid="ignore", divide="ignore"):
        largest = paired_test(np.log(r[:, -1] / r[:, 0]) - math.log(RATE_FRACTION), "positive", seeds=seeds,
                              log=True, units="seeds")
    ext = extrapolate(r[:, :, None], s["m"], resamples=s["resamples"])
    threshold = RATE_FRACTION * float(np.nanmean(r[:, 0]))
    limit = {k: float(v[0]) for k, v in ext.items() if k != "v_inf_boot"}
    tests = {"largest_m": largest,
             "extrapolated": bootstrap_test(ext["v_inf_boot"][:, 0], limit["v_inf"], threshold, len(seeds))}
    return Claim(
        id="limits.ours_rate_survives",
        statement="Under our scaling the training loss converges at a linear rate that does not vanish as m → ∞ "
                  "(Theorem 3: the rate's lower bound does not depend on m).",
        source="Theorem 3, Section 3",
        criterion=f"ours, D = ∞, n = {s['n']}: r = the rate of log L_t over t ∈ [0.1T, T]; over seeds, "
                  f"log(r(m_max)/r(m_1)) − log {RATE_FRACTION:g} > 0 (t-test), and the bootstrap 95 % interval of "
                  f"r_∞ (fit r = r_∞ + a·(m/m_1)^−p) above {RATE_FRACTION:g}·r(m_1)",
        headline=f"r(m): {_per_m(r, s['m'])}; r_∞ = {limit['v_inf']:.3g} [{limit['v_inf_lo']:.3g}, "
                 f"{limit['v_inf_hi']:.3g}] (p = {limit['p']:.2g}) | r(m_max)/r(m_1) = "
                 f"{_ratio(largest)} (threshold {RATE_FRACTION:g}); "
                 f"extrapolated: r_∞ − {threshold:.3g} {describe(tests['extrapolated'])}",
        verdict=all_of(tests), test=tests, data="limits_final.csv",
        measured={"rate_per_m": dict(zip(s["m"], np.nanmean(r, axis=0).tolist())), "rate_limit": limit},
    )


def _ratio(test: dict[str, Any]) -> str:
    """The geometric-mean ratio of a log-ratio test of log(x) − log(RATE_FRACTION), with its interval and p."""
    if test["n_pairs"] < 2:
        return describe(test)
    lo, hi = (RATE_FRACTION * v for v in test["ratio_interval"])
    return (f"{RATE_FRACTION * test['ratio']:.3g} [{lo:.3g}, {hi:.3g}], p = {test['p_value']:.2g}, "
            f"{test['n_seeds']} seeds")


def _displacement(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    tests, parts, limits = {}, [], {}
    for scaling in SCALINGS:
        part = final[final["scaling"] == scaling]
        values = cube(part, "displacement")
        tests[scaling] = exponent_test(seed_slopes(values, s["m"]), sorted(part["seed"].unique()),
                                       PREDICTED_EXPONENT[scaling], EXPONENT_MARGIN)
        ext = extrapolate(values[:, :, None], s["m"], resamples=s["resamples"])
        limits[scaling] = {k: float(v[0]) for k, v in ext.items() if k != "v_inf_boot"}
        lo, hi = tests[scaling]["exponent_interval"]
        parts.append(f"{scaling}: q = {tests[scaling]['exponent']:.3f} [{lo:.3f}, {hi:.3f}] (predicted "
                     f"{PREDICTED_EXPONENT[scaling]:g}); displacement {_per_m(values, s['m'])}; m = ∞: "
                     f"{limits[scaling]['v_inf']:.3g} [{limits[scaling]['v_inf_lo']:.3g}, "
                     f"{limits[scaling]['v_inf_hi']:.3g}]")
    return Claim(
        id="limits.displacement_exponents",
        statement="The features move by O(1) under our scaling (feature learning) and by O(m^-1/2) under the NTK "
                  "scaling (lazy training).",
        source="Section 2 (feature learning), Section 4.3, Figure 4",
        criterion=f"D = ∞, n = {s['n']}: q = slope of log(‖H_T − H_0‖_F/‖H_0‖_F) against log m per seed; the 95 % "
                  f"t-interval of mean q lies within ±{EXPONENT_MARGIN:g} of 0 (ours) and of −1/2 (NTK); outside: "
                  "not reproduced",
        headline=" | ".join(parts),
        verdict=all_of(tests), test=tests, data="limits_final.csv",
        measured={"displacement_limit": limits},
    )


def _ntk_gap(final: pd.DataFrame, s: dict[str, Any]) -> Claim:
    slopes, values = {}, {}
    for scaling in SCALINGS:
        part = final[final["scaling"] == scaling]
        values[scaling] = cube(part, "ntk_gap")
        slopes[scaling] = seed_slopes(values[scaling], s["m"])
    ntk = final[final["scaling"] == "ntk"]
    test = paired_test(slopes["ntk"], "negative", seeds=sorted(ntk["seed"].unique()), log=False, units="seeds")
    contrast = {k: float(np.nanmean(v)) for k, v in slopes.items()}
    return Claim(
        id="limits.ntk_approaches_predictor",
        statement="The NTK-scaled net approaches the NTK-limit predictor (kernel regression with the infinite-width "
                  "tangent kernel Θ) as m grows.",
        source="Section 2 (lazy training), Table 1",
        criterion=f"NTK, D = ∞, n = {s['n']}: gap = rms over the test set of f_T − f^lin_T (f^lin: "
                  "wideflow.ntk.gradient_descent_mse with Θ and the net's f_0); the per-seed slope of log gap "
                  "against log m is negative (t-test over seeds)",
        headline=f"NTK gap {_per_m(values['ntk'], s['m'])}; exponent {describe(test)} (−1/2 expected) | ours' gap "
                 f"{_per_m(values['ours'], s['m'])}, exponent {contrast['ours']:.3f}",
        verdict=test["verdict"], test=test, data="limits_final.csv",
        measured={"exponent": contrast},
    )
