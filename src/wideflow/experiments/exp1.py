"""Experiment 1 / Figure 1 (Section 4): random labels fitted by the shallow net (1), linear rate for n ≤ d.

x_a ~ N(0, I_d), y_a ~ U[−½, ½] independent of x (wf.data.random_labels); the shallow mean-field net
f(x) = (1/m) Σ_i c_i σ(W_iᵀx/√d) trained by GD on W with step δ (eq. (9)). Corollary 1: when the
inputs are linearly independent (n ≤ d) the training loss converges to zero at a linear rate. The paper
observes a nearly linear rate for n = 20 and 40 at d = 20 and a rate that decreases as n grows.
Labels are random, so there is no test error to measure: the runs have no test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..fits import LINEAR_CRITERION, is_linear, loglinear_fit
from .common import (Claim, int_list, log_panel, model_section, palette, plot_over_seeds, positive_int, save_figure,
                     seed_list, seeds_label, single_axes, train_section)

NAME = "exp1"
TITLE = "Experiment 1 (Figure 1): random labels, shallow net, linear rate for n ≤ d"
KEYS = {"d": positive_int, "m": positive_int, "n": int_list, "steps": positive_int, "log_every": positive_int}


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (n, seed): shallow net, random labels, no test set."""
    return [
        {"model": model_section(s, kind="shallow", d=s["d"], m=s["m"], scaling="ours", seed=seed),
         "data": {"kind": "random_labels", "n": n, "n_test": 0, "seed": seed},
         "train": train_section(s),
         "tags": {"experiment": NAME}}
        for n in s["n"] for seed in seed_list(s)
    ]


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``fig1_training_loss``: the loss curves (n, seed, step, time, train_loss); ``fig1_rates``: the fit of
    each curve (see :func:`wideflow.fits.loglinear_fit`)."""
    curves, rates = [], []
    for rid, n, seed in runs[["run_id", "data.n", "model.seed"]].itertuples(index=False, name=None):
        h = history(rid)
        n, seed = int(n), int(seed)
        curves.append(pd.DataFrame({"n": n, "seed": seed, "step": h["step"], "time": h["time"],
                                    "train_loss": h["train_loss"]}))
        rates.append({"n": n, "seed": seed, **loglinear_fit(h["time"].to_numpy(), h["train_loss"].to_numpy())})
    return {"fig1_training_loss": pd.concat(curves, ignore_index=True).sort_values(["n", "seed", "step"]),
            "fig1_rates": pd.DataFrame(rates).sort_values(["n", "seed"])}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Figure 1: training loss against GF time t = kδ on a log scale, one curve per n (band: min-max over seeds)."""
    curves = t["fig1_training_loss"]
    fig, ax = single_axes()
    ns = sorted(curves["n"].unique())
    for n, color in zip(ns, palette(len(ns))):
        plot_over_seeds(ax, curves[curves["n"] == n], "time", "train_loss", color=color, label=f"n = {n}")
    log_panel(ax, "time t = step × δ", "training loss",
              f"Shallow net, random labels (d = {s['d']}, m = {s['m']}, {seeds_label(s)})")
    return save_figure(fig, folder, "fig1_training_loss")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """Corollary 1 (linear rate for n ≤ d) and the rate falling as n grows (Figure 1)."""
    fits = t["fig1_rates"].groupby("n")[["rate", "r2", "constancy", "drop"]].mean()
    per_n = {int(n): {k: float(v) for k, v in row.items()} for n, row in fits.iterrows()}
    small = [n for n in per_n if n <= s["d"]]
    linear = bool(small) and all(is_linear(per_n[n]) for n in small)
    rates = [per_n[n]["rate"] for n in sorted(per_n)]
    falling = len(rates) >= 2 and all(b < a for a, b in zip(rates, rates[1:]))

    def digest(n: int) -> str:
        f = per_n[n]
        return f"n={n}: r={f['rate']:.2e}, R²={f['r2']:.4f}, late/early={f['constancy']:.2f}"

    return [
        Claim(
            id="exp1.linear_rate",
            statement=f"For n ≤ d (linearly independent inputs) the training loss converges at a linear rate "
                      f"(Corollary 1; Figure 1, d = {s['d']}).",
            source="Corollary 1, Figure 1",
            criterion=f"at every n ≤ d (seed means): {LINEAR_CRITERION}"
                      + ("" if small else "; the grid has no n ≤ d, so the claim cannot be checked"),
            headline="; ".join(digest(n) for n in small) or "no n ≤ d in the grid",
            reproduced=linear,
            measured={"per_n": per_n, "d": s["d"]},
        ),
        Claim(
            id="exp1.rate_falls_with_n",
            statement="The convergence rate decreases as n grows (Figure 1).",
            source="Figure 1",
            criterion="the fitted rate r (slope of −log L_t over [0.1T, T], seed mean) strictly decreases along "
                      "the n grid",
            headline=", ".join(f"r(n={n})={per_n[n]['rate']:.2e}" for n in sorted(per_n)),
            reproduced=falling,
            measured={"rate": {n: per_n[n]["rate"] for n in sorted(per_n)}},
        ),
    ]
