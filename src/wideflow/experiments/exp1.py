"""Experiment 1 / Figure 1 (Section 4): random labels fitted by the shallow net (1), linear rate for n ≤ d.

x_a ~ N(0, I_d), y_a ~ U[−½, ½] independent of x (wf.data.random_labels); the shallow mean-field net
f(x) = (1/m) Σ_i c_i σ(W_iᵀx/√d) trained by GD on W with step δ (eq. (9)). Corollary 1: when the
inputs are linearly independent (n ≤ d) the training loss converges to zero at a linear rate. The paper
observes a nearly linear rate for n = 20 and 40 at d = 20 and a rate that decreases as n grows.
Labels are random, so there is no test error to measure: the runs have no test set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..fits import LINEAR_CONSTANCY, LINEAR_R2, loglinear_fit
from .common import (
    Claim,
    int_list,
    log_panel,
    model_section,
    palette,
    plot_over_seeds,
    positive_int,
    save_figure,
    seed_list,
    seeds_label,
    single_axes,
    train_section,
)
from .stats import all_of, describe, describe_each, paired_test

NAME = "exp1"
TITLE = "Experiment 1 (Figure 1): random labels, shallow net, nearly linear rate at small n"
KEYS = {"d": positive_int, "m": positive_int, "n": int_list, "linear_n": int_list, "steps": positive_int,
        "log_every": positive_int}


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
    """A nearly linear rate at the n the paper names (``linear_n``: 20 and 40), and the rate falling as n
    grows, in the units of the plotted mean loss and in those of the sum loss (free of the mean's 1/n)."""
    rates = t["fig1_rates"]
    per_n = {int(n): {k: float(v) for k, v in row.items()}
             for n, row in rates.groupby("n")[["rate", "r2", "constancy", "drop"]].mean().iterrows()}
    named = rates[rates["n"].isin(s["linear_n"])]
    linear = {"r2": paired_test(np.log(named["r2"]) - np.log(LINEAR_R2), "positive", seeds=named["seed"], log=True,
                                units="(seed, n) pairs"),
              "constancy": paired_test(np.log(named["constancy"]) - np.log(LINEAR_CONSTANCY), "positive",
                                       seeds=named["seed"], log=True, units="(seed, n) pairs")}
    missing = sorted(set(s["linear_n"]) - set(per_n))

    def digest(n: int) -> str:
        f = per_n[n]
        return f"n={n}: r={f['rate']:.2e}, R²={f['r2']:.4f}, late/early={f['constancy']:.2f}"

    out = [Claim(
        id="exp1.linear_rate",
        statement=f"The training loss converges at a nearly linear rate for n = {', '.join(map(str, s['linear_n']))} "
                  f"(Figure 1, d = {s['d']}; Corollary 1 proves it for n ≤ d).",
        source="Section 4, Figure 1, Corollary 1",
        criterion=f"over (seed, n) with n in {s['linear_n']}: log(R²/{LINEAR_R2}) > 0 and "
                  f"log(late/early rate / {LINEAR_CONSTANCY}) > 0 (the fit of log L_t over t ∈ [0.1T, T]; a power law "
                  "gives late/early 0.38)" + (f"; n = {missing} not in the grid" if missing else ""),
        headline="; ".join(digest(n) for n in s["linear_n"] if n in per_n) + " | "
                 + describe_each(linear),
        verdict=all_of(linear) if not missing else "inconclusive",
        test=linear, data="fig1_rates.csv", measured={"per_n": per_n, "d": s["d"]},
    )]
    ns = sorted(per_n)
    steps = pd.DataFrame([{"seed": seed, "n": a, "next": b,
                           "d_mean": math.log(part.loc[b, "rate"] / part.loc[a, "rate"]),
                           "d_sum": math.log(b * part.loc[b, "rate"] / (a * part.loc[a, "rate"]))}
                          for seed, part in rates.set_index("n").groupby("seed") for a, b in zip(ns, ns[1:])])
    for units, column, what in (("mean", "d_mean", "r (time of the mean loss, as plotted)"),
                                ("sum", "d_sum", "n·r (the rate of the sum loss's gradient flow)")):
        test = paired_test(steps[column] if len(steps) else [], "negative", seeds=steps["seed"] if len(steps) else [],
                           log=True, units="(seed, consecutive n) pairs")
        scale = {n: per_n[n]["rate"] * (n if units == "sum" else 1) for n in ns}
        out.append(Claim(
            id="exp1.rate_falls_with_n" + ("_sum_units" if units == "sum" else ""),
            statement="The convergence rate decreases as n grows (Figure 1)"
                      + (", in units free of the mean loss's 1/n." if units == "sum" else "."),
            source="Section 4, Figure 1",
            criterion=f"over (seed, consecutive n of the grid): log of the ratio of the fitted rates {what} "
                      "at the larger and the smaller n is < 0",
            headline=", ".join(f"n={n}: {v:.2e}" for n, v in scale.items()) + " | " + describe(test),
            verdict=test["verdict"], test=test, data="fig1_rates.csv",
            measured={"rate": scale, "units": units},
        ))
    return out
