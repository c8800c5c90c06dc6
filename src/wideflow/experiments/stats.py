"""The statistics behind every verdict of a reproduction: one paired t-test, three verdicts (docs/reproductions.md).

A claim of the paper is turned into a vector of **paired differences** d_k, one per unit k (a seed, or a
(seed, cell) pair where a cell is one point of the grid, e.g. (m, n)), whose sign the claim predicts:

- a comparison "A has a lower test error than B" has d_k = log(error_A) − log(error_B) (A and B trained on the
  same training set from the same seed), predicted negative;
- a threshold "x is at least 10" has d_k = log(x_k) − log(10) (or x_k − threshold), predicted positive.

The rule (:func:`paired_test`), the same for every claim and preset:

- the two-sided one-sample t-test of mean(d) = 0 (``scipy.stats.ttest_1samp(d, 0)``), p-value p;
- **reproduced** if p < :data:`ALPHA` and mean(d) has the predicted sign;
- **not reproduced** if p < :data:`ALPHA` and mean(d) has the opposite sign (the opposite holds significantly);
- **inconclusive** otherwise (including fewer than 2 units).

The 95 % interval of mean(d) is mean ± t_{0.975, k−1}·sd/√k; p < 0.05 exactly when it excludes 0. For
log-differences exp(mean) is the geometric-mean ratio and exp(interval) its interval. A claim made of
several conditions (e.g. "near 0 at init and spread at the end") is reproduced when every condition is,
not reproduced when any is, inconclusive otherwise (:func:`all_of`). (seed, cell) pairs of one seed share
the seed's draw of the model; the per-seed test (cells averaged within each seed) is reported beside it
as ``p_seed_level``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "ALPHA",
    "CHANCE_FRACTION",
    "RULE",
    "VERDICTS",
    "all_of",
    "describe",
    "describe_each",
    "judged_cells",
    "paired_test",
]

ALPHA = 0.05
VERDICTS = ("reproduced", "not reproduced", "inconclusive")
# A grid cell is judged only where the best model learns: its seed-mean test error is below this fraction
# of the test error of the predictor f ≡ 0 (½·mean y² over the test set).
CHANCE_FRACTION = 0.9
RULE = (f"two-sided one-sample t-test of the mean paired difference (scipy.stats.ttest_1samp(d, 0)); "
        f"reproduced if p < {ALPHA} with the predicted sign, not reproduced if p < {ALPHA} with the opposite "
        "sign, inconclusive otherwise")


def paired_test(d: Sequence[float], predicted: str, *, seeds: Sequence[Any], log: bool,
                units: str) -> dict[str, Any]:
    """The verdict of paired differences ``d`` whose sign the claim predicts (``predicted``: "negative" or
    "positive"); ``seeds`` is the seed of each unit (for the seed count and the per-seed test), ``log``
    whether d is a log-ratio (the estimate is then also given as a ratio), ``units`` what a unit is."""
    d = np.asarray(d, dtype=float)
    seeds = np.asarray(seeds)
    keep = np.isfinite(d)
    d, seeds = d[keep], seeds[keep]
    k = len(d)
    out: dict[str, Any] = {"predicted": predicted, "units": units, "n_pairs": k, "n_seeds": len(set(seeds.tolist())),
                           "log_ratio": log, "mean": math.nan, "interval": [math.nan, math.nan],
                           "p_value": math.nan, "p_seed_level": math.nan, "verdict": "inconclusive"}
    if k < 2:
        return out
    mean, p, lo, hi = _t(d)
    per_seed = pd.Series(d).groupby(seeds).mean().to_numpy()
    out.update(mean=mean, interval=[lo, hi], p_value=p,
               p_seed_level=_t(per_seed)[1] if len(per_seed) >= 2 else math.nan)
    if log:
        out.update(ratio=math.exp(mean), ratio_interval=[math.exp(lo), math.exp(hi)])
    if p < ALPHA:
        right = mean < 0 if predicted == "negative" else mean > 0
        out["verdict"] = "reproduced" if right else "not reproduced"
    return out


def _t(d: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, two-sided t-test p-value and 95 % interval of the mean of ``d`` (a constant d: p = 0 or 1)."""
    k, mean, sd = len(d), float(d.mean()), float(d.std(ddof=1))
    if np.ptp(d) == 0.0:  # identical differences: no spread to test against
        return mean, (0.0 if mean != 0 else 1.0), mean, mean
    with warnings.catch_warnings():  # nearly equal differences (R² ≈ 1 in every run) make scipy warn; p is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(sps.ttest_1samp(d, 0.0).pvalue)
    half = float(sps.t.ppf(0.975, k - 1)) * sd / math.sqrt(k)
    return mean, p, mean - half, mean + half


def all_of(tests: dict[str, dict[str, Any]]) -> str:
    """The verdict of a claim made of several conditions: reproduced when all are, not reproduced when any
    is not, else inconclusive."""
    verdicts = [t["verdict"] for t in tests.values()]
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in verdicts else "inconclusive"


def describe(test: dict[str, Any]) -> str:
    """One line of a test for tables: the estimate, its 95 % interval, p and the units."""
    if test["n_pairs"] < 2:
        return f"{test['n_pairs']} {test['units']}: too few to test"
    if test["log_ratio"]:
        lo, hi = test["ratio_interval"]
        est = f"ratio {test['ratio']:.3g} [{lo:.3g}, {hi:.3g}]"
    else:
        lo, hi = test["interval"]
        est = f"mean {test['mean']:.3g} [{lo:.3g}, {hi:.3g}]"
    return f"{est}, p = {test['p_value']:.2g}, {test['n_pairs']} {test['units']} ({test['n_seeds']} seeds)"


def describe_each(tests: dict[str, dict[str, Any]]) -> str:
    """:func:`describe` of each named test of a claim of several conditions, on one line."""
    return "; ".join(f"{name}: {describe(test)}" for name, test in tests.items())


def judged_cells(table: pd.DataFrame, cell: Sequence[str], model: str) -> pd.DataFrame:
    """Which cells of a results table can be judged (the rule of :data:`CHANCE_FRACTION`).

    ``table`` has one row per run with the columns ``cell``, ``model`` (the compared models), ``seed``,
    ``test_error`` and ``zero_error`` (the test error of f ≡ 0 on that run's test set). Returns one row per
    cell: the best model, its seed-mean test error, the seed-mean zero error and ``judged``.
    """
    means = table.groupby([*cell, model])[["test_error", "zero_error"]].mean().reset_index()
    rows = []
    for key, part in means.groupby(list(cell)):
        best = part.loc[part["test_error"].idxmin()]
        rows.append({**dict(zip(cell, key if isinstance(key, tuple) else (key,))), "best": best[model],
                     "best_error": float(best["test_error"]), "zero_error": float(part["zero_error"].mean()),
                     "judged": bool(best["test_error"] < CHANCE_FRACTION * part["zero_error"].mean())})
    return pd.DataFrame(rows)
