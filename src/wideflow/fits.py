"""Every curve fit of wideflow: least-squares lines through log-losses and log-log points.

- :func:`linear_fit`: the one least-squares line y ≈ a + b x with its R², under all the others;
- :func:`fit_rate`: the linear rate r of log L_t ≈ a − r t over a window (``wf.fit_rate``);
- :func:`fitted_rate`: the sweep's summary, the slope of log L_t over the second half of a history;
- :func:`loglinear_fit` / :func:`is_linear`: the reproductions' test of a linear rate (docs/theory.md §9);
- :func:`fit_power` / :func:`loglog_slope`: y ≈ C x^p (e.g. ‖G − Ḡ‖ against D, a test error against n).

A linear rate L_t ≤ L_0 e^{−rt} (Theorems 1-3, docs/theory.md §5) is a straight line of slope −r in log L_t.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidArgument, InvalidType, check_positive_float

__all__ = ["linear_fit", "fit_rate", "fitted_rate", "fit_power", "loglog_slope", "loglinear_fit", "is_linear",
           "LINEAR_R2", "LINEAR_CONSTANCY", "LINEAR_CRITERION"]


def linear_fit(x: np.ndarray, y: np.ndarray, *, flat_r2: float = 1.0) -> tuple[float, float, float]:
    """Least-squares y ≈ a + b x: (b, a, R²). R² = 1 for an exact line; ``flat_r2`` when y is constant
    (R² = 1 − SS_res/SS_tot is then 0/0). Raises :class:`~wideflow.errors.InvalidArgument` below 2 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2:
        raise InvalidArgument(f"a fit needs at least 2 points; got {x.size}.")
    b, a = np.polyfit(x, y, 1)
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else flat_r2
    return float(b), float(a), r2


def fit_power(x: Any, y: Any) -> dict[str, float]:
    """Fit y ≈ C x^p on a log-log scale (e.g. the decay of ‖G − Ḡ‖ with D, or a diagnostic with m):
    returns exponent p, prefactor C and R² of the log-log line. Repeated x (seeds) are averaged first."""
    df = pd.DataFrame({"x": np.asarray(x, dtype=float), "y": np.asarray(y, dtype=float)})
    if (df["x"] <= 0).any() or (df["y"] <= 0).any():
        raise InvalidArgument("fit_power needs positive x and y (it fits a line to log y against log x).")
    mean = df.groupby("x", sort=True)["y"].mean()
    p, log_c, r2 = linear_fit(np.log(mean.index.to_numpy()), np.log(mean.to_numpy()))
    return {"exponent": p, "prefactor": math.exp(log_c), "r2": r2}


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (how fast y falls with x: y ∝ x^slope); NaN below 2 points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    return linear_fit(np.log(x), np.log(y))[0]


def fit_rate(
    history: pd.DataFrame,
    window: tuple[float, float] | None = None,
    *,
    time: str = "time",
    loss: str = "train_loss",
    floor: float = 1e-24,
) -> dict[str, float]:
    """The linear rate r of log L_t ≈ a − r t, fitted by least squares over ``window`` = (t_start, t_end).

    Points with L ≤ ``floor``·L_0 are dropped (float64 round-off makes log L flat near 1e-30·L_0, which would
    bias the slope). Returns rate, intercept (= a), r2 (goodness of fit of the line), t_start, t_end, points.
    """
    if not isinstance(history, pd.DataFrame):
        raise InvalidType(f"history must be a pandas DataFrame (such as wf.train(...).history); got "
                          f"{type(history).__name__} {history!r}.")
    for col in (time, loss):
        if col not in history:
            raise InvalidArgument(f"history has no column {col!r}; its columns are {list(history.columns)}.")
    floor = check_positive_float("floor", floor)
    t = history[time].to_numpy(dtype=float)
    L = history[loss].to_numpy(dtype=float)
    keep = np.isfinite(L) & (L > floor * L[0])
    if window is not None:
        lo, hi = window
        if not lo < hi:
            raise InvalidArgument(f"window must be (t_start, t_end) with t_start < t_end; got {window!r}.")
        keep &= (t >= lo) & (t <= hi)
    if keep.sum() < 2:
        raise InvalidArgument(f"fewer than 2 points of {loss!r} are in the window {window!r} above the floor.")
    slope, intercept, r2 = linear_fit(t[keep], np.log(L[keep]))
    return {"rate": -slope, "intercept": intercept, "r2": r2, "t_start": float(t[keep][0]),
            "t_end": float(t[keep][-1]), "points": int(keep.sum())}


def fitted_rate(history: pd.DataFrame) -> tuple[float, float]:
    """Least-squares slope of log(train_loss) against time over the second half of the history, and R².

    A linear rate L_t ∝ e^{−rt} gives a slope of −r and R² near 1. Rows whose loss is not positive are
    left out; fewer than two rows left (or a single time) give NaN, and so does R² for a constant loss.
    """
    tail = history.iloc[len(history) // 2 :]
    keep = tail["train_loss"] > 0
    t = tail["time"][keep].to_numpy(dtype=float)
    logl = np.log(tail["train_loss"][keep].to_numpy(dtype=float))
    if len(t) < 2 or np.ptp(t) == 0:
        return math.nan, math.nan
    slope, _, r2 = linear_fit(t, logl, flat_r2=math.nan)
    return slope, r2


def loglinear_fit(time: np.ndarray, loss: np.ndarray, *, start: float = 0.1, floor: float = 1e-25) -> dict[str, float]:
    """Fit log L_t = a − r t by least squares, the shape of a linear rate (Corollary 1, docs/theory.md §5).

    The window is t ≥ ``start``·T (the first tenth is the transient before the rate settles), without
    the points where L < ``floor`` (float64 round-off of f, |y| ≤ 1, leaves L near 1e-32). Returns the rate
    r, the R² of the fit, the rates fitted on the first and second halves of the window and their ratio
    ``constancy`` = r_late / r_early (1 for an exact linear rate, small for a sublinear one), and the drop
    L_T/L_0. NaN where fewer than 4 points are left.
    """
    time = np.asarray(time, dtype=float)
    loss = np.asarray(loss, dtype=float)
    keep = (loss > floor) & np.isfinite(loss)
    t, logl = time[keep], np.log(loss[keep])
    out = {"rate": math.nan, "r2": math.nan, "early_rate": math.nan, "late_rate": math.nan,
           "constancy": math.nan, "drop": float(loss[-1] / loss[0]) if loss[0] > 0 else math.nan}
    if len(t) < 4:
        return out
    window = t >= start * t[-1]
    t, logl = t[window], logl[window]
    if len(t) < 4:
        return out
    slope, _, r2 = linear_fit(t, logl, flat_r2=math.nan)
    mid = 0.5 * (t[0] + t[-1])
    early, late = t <= mid, t >= mid
    r_early = -linear_fit(t[early], logl[early])[0] if early.sum() >= 2 else math.nan
    r_late = -linear_fit(t[late], logl[late])[0] if late.sum() >= 2 else math.nan
    out.update(rate=-slope, r2=r2, early_rate=float(r_early), late_rate=float(r_late),
               constancy=float(r_late / r_early) if r_early > 0 else math.nan)
    return out


# A linear rate (L_t ≤ L_0 e^{−rt}, Theorems 1-3) on a finite window: log L_t is close to a straight line, and
# its local rate does not die out. Over the window [0.1T, T], a power law L ∝ t^{−p} has a late/early rate
# ratio of 0.38 whatever p (least squares on 101 points; ln(1/0.55)/ln(5.5) = 0.35 from the end points), a
# single exponential 1, and a mixture of exponentials (a linear rate set by the slowest mode once the fast ones
# are gone) lies in between: late/early ≥ 0.5 rejects every power law. It cannot tell a stretched
# exponential e^{−a√t} (0.62) from a linear rate on one window; the figures show the whole curves.
LINEAR_R2 = 0.98
LINEAR_CONSTANCY = 0.5
LINEAR_CRITERION = (f"log L_t fits a line over t ∈ [0.1T, T] with R² ≥ {LINEAR_R2} and the rate fitted on the "
                    f"second half of that window is ≥ {LINEAR_CONSTANCY}× that of the first half (a power law "
                    "L ∝ t^-p gives 0.38)")


def is_linear(fit: Mapping[str, float]) -> bool:
    """Whether a :func:`loglinear_fit` result shows a linear rate (see :data:`LINEAR_CRITERION`)."""
    return bool(fit["r2"] >= LINEAR_R2 and fit["constancy"] >= LINEAR_CONSTANCY)
