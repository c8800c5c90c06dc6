"""Experiment 3 / Figures 3 and 4 (Section 4.3): feature learning against lazy training in the P-3L net.

Data: the axis-XOR distribution of Appendix I.3 (wf.data.axis_xor). Model: the P-3L net (4)-(5) with
D = m under the three scalings of Table 1 (ours, NTK with the symmetrized initialization, MF), all trained
by GD on W with step δ. Figure 3: test error against n for each scaling and several m. Figure 4, at one
n: training loss and test error against time (row 1) and the features (h_i(x_1), h_i(x_2)) of every
neuron i at initialization and at the end (row 2), x_1 the first training input and x_2 the first test
input (the runs record them: ``record.features``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InvalidArgument
from ..fits import LINEAR_CRITERION, is_linear, loglinear_fit, loglog_slope
from .common import (SCALING_NAMES, Claim, choice_list, int_list, model_section, n_axis, palette, plot_over_seeds,
                     positive_int, save_figure, seed_list, seeds_label, train_section)

NAME = "exp3"
TITLE = "Experiment 3 (Figures 3 and 4): P-3L net under ours, NTK and MF scalings"
KEYS = {"d": positive_int, "m": int_list, "n": int_list, "scalings": choice_list(SCALING_NAMES),
        "steps": positive_int, "log_every": positive_int, "fig4_n": positive_int}
COLORS = {"ours": "tab:red", "ntk": "tab:blue", "mf": "tab:green"}
LABELS = {"ours": "ours", "ntk": "NTK", "mf": "MF"}

# "Far more" movement: at least an order of magnitude (NTK features move O(1/√m), docs/theory.md §3).
MOVE_RATIO = 10.0
# MF features "near 0" at init: rms below a tenth of the O(1) rms of ours (it is 1/√D of it, docs/theory.md §8);
# "spread out": the final rms at least ten times the initial one.
MF_INIT_FRACTION = 0.1
MF_SPREAD = 10.0


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (scaling, m, n, seed), P-3L with D = m, features recorded for Figure 4."""
    if s["fig4_n"] not in s["n"]:
        raise InvalidArgument(f"exp3.fig4_n={s['fig4_n']} must be one of exp3.n={s['n']} (Figure 4 uses those runs).")
    if s["n_test"] < 1:
        raise InvalidArgument(f"exp3.n_test={s['n_test']}: Figures 3 and 4 need a test set; give n_test >= 1.")
    odd = [m for m in s["m"] if m % 2]
    if "ntk" in s["scalings"] and odd:
        raise InvalidArgument(f"exp3.m has odd widths {odd}; the NTK scaling's symmetrized initialization needs even m.")
    return [
        {"model": model_section(s, kind="p3l", d=s["d"], m=m, D=m, scaling=scaling, seed=seed),
         "data": {"kind": "axis_xor", "n": n, "n_test": s["n_test"], "seed": seed},
         "train": train_section(s),
         "record": {"features": True},
         "tags": {"experiment": NAME}}
        for scaling in s["scalings"] for m in s["m"] for n in s["n"] for seed in seed_list(s)
    ]


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``fig3_test_error`` (one row per run), and for the runs at n = ``s['fig4_n']``: ``fig4_curves`` (their
    histories), ``fig4_features`` (h_i of the two inputs at init and end, per neuron) and
    ``feature_stats`` (per run: mean |h_T − h_0| over neurons and inputs, rms of h_0 and of h_T)."""
    key = pd.DataFrame({
        "scaling": runs["model.scaling"].to_numpy(),
        "m": runs["model.m"].astype(int).to_numpy(),
        "n": runs["data.n"].astype(int).to_numpy(),
        "seed": runs["model.seed"].astype(int).to_numpy(),
    })
    fig3 = key.assign(test_error=runs["final_test_error"].to_numpy(dtype=float),
                      train_loss=runs["final_train_loss"].to_numpy(dtype=float))
    curves, features, stats = [], [], []
    for (_, k), rid in zip(key.iterrows(), runs["run_id"]):
        if k["n"] != s["fig4_n"]:
            continue
        labels = {"scaling": k["scaling"], "m": k["m"], "seed": k["seed"]}
        h = history(rid)
        curves.append(pd.DataFrame({**labels, "step": h["step"], "time": h["time"],
                                    "train_loss": h["train_loss"], "test_error": h["test_error"]}))
        a = arrays(rid)
        features.append(pd.DataFrame({**labels, "neuron": np.arange(len(a["h0_train"])),
                                      **{name: a[name] for name in ("h0_train", "h0_test", "hT_train", "hT_test")}}))
        h0 = np.concatenate([a["h0_train"], a["h0_test"]])
        hT = np.concatenate([a["hT_train"], a["hT_test"]])
        stats.append({**labels, "movement": float(np.abs(hT - h0).mean()), "rms_h0": float(np.sqrt((h0**2).mean())),
                      "rms_hT": float(np.sqrt((hT**2).mean())),
                      **loglinear_fit(h["time"].to_numpy(), h["train_loss"].to_numpy())})
    order = ["scaling", "m", "seed"]
    return {"fig3_test_error": fig3.sort_values(["scaling", "m", "n", "seed"], ignore_index=True),
            "fig4_curves": pd.concat(curves, ignore_index=True).sort_values([*order, "step"], ignore_index=True),
            "fig4_features": pd.concat(features, ignore_index=True).sort_values([*order, "neuron"], ignore_index=True),
            "feature_stats": pd.DataFrame(stats).sort_values(order, ignore_index=True)}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Figures 3 and 4 (bands: min-max over seeds)."""
    return _figure3(t["fig3_test_error"], folder, s) + _figure4(t["fig4_curves"], t["fig4_features"], folder, s)


def _figure3(table: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    ms = sorted(table["m"].unique())
    fig = Figure(figsize=(4.0 * len(ms), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(ms), sharey=True))
    for ax, m in zip(axes, ms):
        for scaling in s["scalings"]:
            part = table[(table["m"] == m) & (table["scaling"] == scaling)]
            plot_over_seeds(ax, part, "n", "test_error", color=COLORS[scaling], marker="o", label=LABELS[scaling])
        n_axis(ax, sorted(table["n"].unique()))
        ax.set_yscale("log")
        ax.set_title(f"m = D = {m}")
        ax.set_xlabel("training-set size n")
    axes[0].set_ylabel("test error")
    axes[0].legend()
    fig.suptitle(f"P-3L on axis-XOR (d = {s['d']}, {seeds_label(s)})")
    return save_figure(fig, folder, "fig3_test_error")


def _figure4(curves: pd.DataFrame, features: pd.DataFrame, folder: Path, s: dict[str, Any]) -> list[str]:
    scalings = s["scalings"]
    fig = Figure(figsize=(4.2 * len(scalings), 8.0), layout="constrained")
    axes = fig.subplots(2, len(scalings), squeeze=False)
    ms = sorted(curves["m"].unique())
    for col, scaling in enumerate(scalings):
        ax = axes[0, col]
        if col:
            ax.sharey(axes[0, 0])
        for m, color in zip(ms, palette(len(ms), "plasma")):
            part = curves[(curves["scaling"] == scaling) & (curves["m"] == m)]
            for value, style, what in (("train_loss", "-", "training loss"), ("test_error", "--", "test error")):
                plot_over_seeds(ax, part, "time", value, color=color, style=style, label=f"m = {m}, {what}")
        ax.set_yscale("log")
        ax.set_xlabel("time t = step × δ")
        ax.set_title(LABELS[scaling])
        ax.legend(fontsize="x-small")

        m_top = ms[-1]
        pts = features[(features["scaling"] == scaling) & (features["m"] == m_top) & (features["seed"] == 0)]
        ax = axes[1, col]
        ax.scatter(pts["hT_train"], pts["hT_test"], s=4, color=COLORS[scaling], alpha=0.5, label="end", lw=0)
        ax.scatter(pts["h0_train"], pts["h0_test"], s=4, color="0.25", alpha=0.5, label="initialization", lw=0)
        ax.set_xlabel("h_i(x_1), x_1 a training input")
        ax.set_title(f"{LABELS[scaling]}: the m = {m_top} neurons" + (" (seed 0)" if s["seeds"] > 1 else ""))
        ax.legend(fontsize="small", markerscale=3)
    axes[0, 0].set_ylabel("training loss (solid), test error (dashed)")
    axes[1, 0].set_ylabel("h_i(x_2), x_2 a test input")
    fig.suptitle(f"P-3L on axis-XOR, n = {s['fig4_n']}, d = {s['d']}, D = m")
    return save_figure(fig, folder, "fig4_dynamics_features")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """The claims of Figures 3 and 4 (Section 4.3); a claim comparing scalings needs them in the grid."""
    out = []
    scalings = set(s["scalings"])
    test = t["fig3_test_error"].pivot_table(index=["m", "n"], columns="scaling", values="test_error", aggfunc="mean")
    stats = t["feature_stats"].groupby(["scaling", "m"]).mean(numeric_only=True)
    if {"ours", "ntk", "mf"} <= scalings:
        out.append(_ours_lowest(test))
    if {"ntk", "mf"} <= scalings:
        out.append(_mf_faster(test))
    if {"ours", "ntk"} <= scalings:
        out.append(_features_move(stats, s))
    if {"ours", "mf"} <= scalings:
        out.append(_mf_spread(stats, s))
    if "ours" in scalings:
        out.append(_ours_linear(stats, s))
    return out


def _ours_lowest(test: pd.DataFrame) -> Claim:
    cells = [{"m": int(m), "n": int(n), **{k: float(row[k]) for k in ("ours", "ntk", "mf")}}
             for (m, n), row in test.iterrows()]
    lowest = {k: sum(min(("ours", "ntk", "mf"), key=lambda sc: c[sc]) == k for c in cells) for k in ("ours", "ntk", "mf")}
    return Claim(
        id="exp3.ours_lowest_test_error",
        statement="Our scaling has the smallest test error of the three scalings (Figure 3).",
        source="Section 4.3, Figure 3",
        criterion="mean test error over seeds: ours < NTK and ours < MF at every (m, n) of the grid",
        headline=f"ours lowest in {lowest['ours']}/{len(cells)} (m, n) cells, NTK in {lowest['ntk']}, MF in "
                 f"{lowest['mf']}",
        reproduced=lowest["ours"] == len(cells),
        measured={"lowest_count": lowest, "cells": cells},
    )


def _mf_faster(test: pd.DataFrame) -> Claim:
    slopes = {}
    for m, part in test.groupby(level="m"):
        n = part.index.get_level_values("n")
        slopes[int(m)] = {sc: loglog_slope(n, part[sc]) for sc in ("ntk", "mf")}
    faster = [m for m, v in slopes.items() if v["mf"] < v["ntk"]]
    return Claim(
        id="exp3.mf_falls_faster_than_ntk",
        statement="As n grows, the test error decreases faster under the MF scaling than under the NTK scaling "
                  "(Figure 3).",
        source="Section 4.3, Figure 3",
        criterion="at every m: the least-squares slope of log(test error) against log n (seed means) is more "
                  "negative for MF than for NTK",
        headline="; ".join(f"m={m}: slope MF {v['mf']:.2f} vs NTK {v['ntk']:.2f}" for m, v in slopes.items()),
        reproduced=len(faster) == len(slopes),
        measured={"slope": slopes},
    )


def _features_move(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    per_m = {}
    for m in sorted(stats.loc["ours"].index):
        ours, ntk = stats.loc[("ours", m), "movement"], stats.loc[("ntk", m), "movement"]
        per_m[int(m)] = {"ours": float(ours), "ntk": float(ntk), "ratio": float(ours / ntk)}
    return Claim(
        id="exp3.features_move_ours_not_ntk",
        statement="The features move substantially under our scaling (feature learning) and negligibly under the "
                  "NTK scaling (lazy training) (Figure 4, row 2).",
        source="Section 4.3, Figure 4",
        criterion=f"at every m, n = {s['fig4_n']}: mean over neurons and the two inputs of |h_i(T) − h_i(0)|, "
                  f"ours / NTK ≥ {MOVE_RATIO:g}",
        headline="; ".join(f"m={m}: {v['ours']:.3g} vs {v['ntk']:.3g} (×{v['ratio']:.1f})" for m, v in per_m.items()),
        reproduced=all(v["ratio"] >= MOVE_RATIO for v in per_m.values()),
        measured={"mean_abs_displacement": per_m},
    )


def _mf_spread(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    per_m = {}
    for m in sorted(stats.loc["mf"].index):
        mf, ours = stats.loc[("mf", m)], stats.loc[("ours", m)]
        per_m[int(m)] = {"rms_h0_mf": float(mf["rms_h0"]), "rms_h0_ours": float(ours["rms_h0"]),
                         "rms_hT_mf": float(mf["rms_hT"]), "init_fraction": float(mf["rms_h0"] / ours["rms_h0"]),
                         "spread": float(mf["rms_hT"] / mf["rms_h0"])}
    ok = all(v["init_fraction"] <= MF_INIT_FRACTION and v["spread"] >= MF_SPREAD for v in per_m.values())
    return Claim(
        id="exp3.mf_features_start_near_zero_and_spread",
        statement="Under the MF scaling the features are concentrated near 0 at initialization and become diverse "
                  "during training (Figure 4, row 2).",
        source="Section 4.3, Figure 4",
        criterion=f"at every m, n = {s['fig4_n']}: rms of h_i(0) under MF ≤ {MF_INIT_FRACTION:g} × that under ours, "
                  f"and rms of h_i(T) under MF ≥ {MF_SPREAD:g} × rms of h_i(0) under MF",
        headline="; ".join(f"m={m}: rms h0 {v['rms_h0_mf']:.3g} (ours {v['rms_h0_ours']:.3g}) → rms hT "
                           f"{v['rms_hT_mf']:.3g}" for m, v in per_m.items()),
        reproduced=ok,
        measured={"per_m": per_m},
    )


def _ours_linear(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    per_m = {int(m): {"rate": float(row["rate"]), "r2": float(row["r2"]), "constancy": float(row["constancy"]),
                      "drop": float(row["drop"])} for m, row in stats.loc["ours"].iterrows()}
    ok = all(is_linear(v) for v in per_m.values())
    return Claim(
        id="exp3.ours_linear_rate",
        statement="Under our scaling the training loss converges at a linear rate, consistently across m "
                  "(Theorem 3; Figure 4, top left).",
        source="Theorem 3, Section 4.3, Figure 4",
        criterion=f"at every m, n = {s['fig4_n']} (seed means): {LINEAR_CRITERION}",
        headline="; ".join(f"m={m}: r={v['rate']:.2e}, R²={v['r2']:.3f}, late/early={v['constancy']:.2f}"
                           for m, v in per_m.items()),
        reproduced=ok,
        measured={"per_m": per_m},
    )
