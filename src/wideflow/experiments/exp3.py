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
from ..fits import LINEAR_CONSTANCY, LINEAR_R2, loglinear_fit
from .common import (
    SCALING_NAMES,
    Claim,
    check_even_widths,
    choice_list,
    int_list,
    model_section,
    palette,
    plot_over_seeds,
    positive_int,
    save_figure,
    seed_list,
    seeds_label,
    train_section,
)
from .compare import COLORS, LABELS, test_error_claims, test_error_figure
from .stats import all_of, describe, describe_each, paired_test

NAME = "exp3"
TITLE = "Experiment 3 (Figures 3 and 4): P-3L net under ours, NTK and MF scalings"
KEYS = {"d": positive_int, "m": int_list, "n": int_list, "scalings": choice_list(SCALING_NAMES),
        "steps": positive_int, "log_every": positive_int, "fig4_n": positive_int}

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
    check_even_widths("exp3.m", s["m"], s["scalings"])
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
                      train_loss=runs["final_train_loss"].to_numpy(dtype=float),
                      zero_error=runs["zero_test_error"].to_numpy(dtype=float))
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
    panels = [(f"m = D = {m}", table[table["m"] == m]) for m in sorted(table["m"].unique())]
    return test_error_figure(panels, s["scalings"], folder, "fig3_test_error",
                             f"P-3L on axis-XOR (d = {s['d']}, {seeds_label(s)})")


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
    out = test_error_claims(t["fig3_test_error"], prefix=NAME, data="fig3_test_error.csv",
                            source="abstract, Section 4.3, Figure 3")
    scalings = set(s["scalings"])
    stats = t["feature_stats"]
    if {"ours", "ntk"} <= scalings:
        out.append(_features_move(stats, s))
    if {"ours", "mf"} <= scalings:
        out.append(_mf_spread(stats, s))
    if "ours" in scalings:
        out.append(_ours_linear(stats, s))
    return out


def _per_seed(stats: pd.DataFrame, a: str, b: str, column_a: str, column_b: str | None = None) -> pd.DataFrame:
    """(seed, m) rows with ``column_a`` of scaling ``a`` and ``column_b`` (default the same) of scaling ``b``."""
    left = stats[stats["scaling"] == a][["seed", "m", column_a]].rename(columns={column_a: "a"})
    right = stats[stats["scaling"] == b][["seed", "m", column_b or column_a]].rename(columns={column_b or column_a: "b"})
    return left.merge(right, on=["seed", "m"])


def _features_move(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    pairs = _per_seed(stats, "ours", "ntk", "movement")
    test = paired_test(np.log(pairs["a"] / pairs["b"]) - np.log(MOVE_RATIO), "positive", seeds=pairs["seed"],
                       log=True, units="(seed, m) pairs")
    per_m = {int(m): {"ours": float(g["a"].mean()), "ntk": float(g["b"].mean()),
                      "ratio": float(np.exp(np.log(g["a"] / g["b"]).mean()))} for m, g in pairs.groupby("m")}
    return Claim(
        id="exp3.features_move_ours_not_ntk",
        statement="The features move substantially under our scaling (feature learning) and negligibly under the "
                  "NTK scaling (lazy training) (Figure 4, row 2).",
        source="Section 4.3, Figure 4",
        criterion=f"over (seed, m) at n = {s['fig4_n']}: log(movement ours / NTK) − log {MOVE_RATIO:g} > 0, movement the "
                  "mean over neurons and the two inputs of |h_i(T) − h_i(0)|",
        headline="; ".join(f"m={m}: {v['ours']:.3g} vs {v['ntk']:.3g} (×{v['ratio']:.1f})" for m, v in per_m.items())
                 + f" | (ratio/{MOVE_RATIO:g}) " + describe(test),
        verdict=test["verdict"], test=test, data="feature_stats.csv",
        measured={"mean_abs_displacement": per_m},
    )


def _mf_spread(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    init = _per_seed(stats, "mf", "ours", "rms_h0")
    grow = _per_seed(stats, "mf", "mf", "rms_hT", "rms_h0")
    tests = {"near_zero": paired_test(np.log(init["a"] / init["b"]) - np.log(MF_INIT_FRACTION), "negative",
                                      seeds=init["seed"], log=True, units="(seed, m) pairs"),
             "spread": paired_test(np.log(grow["a"] / grow["b"]) - np.log(MF_SPREAD), "positive", seeds=grow["seed"],
                                   log=True, units="(seed, m) pairs")}
    per_m = {int(m): {"rms_h0_mf": float(g["a"].mean()), "rms_h0_ours": float(g["b"].mean())}
             for m, g in init.groupby("m")}
    for m, g in grow.groupby("m"):
        per_m[int(m)]["rms_hT_mf"] = float(g["a"].mean())
    return Claim(
        id="exp3.mf_features_start_near_zero_and_spread",
        statement="Under the MF scaling the features are concentrated near 0 at initialization and become diverse "
                  "during training (Figure 4, row 2).",
        source="Section 4.3, Figure 4",
        criterion=f"over (seed, m) at n = {s['fig4_n']}: log(rms h_i(0) under MF / under ours) − log {MF_INIT_FRACTION:g} "
                  f"< 0 and log(rms h_i(T) / rms h_i(0) under MF) − log {MF_SPREAD:g} > 0",
        headline="; ".join(f"m={m}: rms h0 {v['rms_h0_mf']:.3g} (ours {v['rms_h0_ours']:.3g}) → rms hT "
                           f"{v.get('rms_hT_mf', float('nan')):.3g}" for m, v in per_m.items())
                 + " | " + describe_each(tests),
        verdict=all_of(tests), test=tests, data="feature_stats.csv",
        measured={"per_m": per_m},
    )


def _ours_linear(stats: pd.DataFrame, s: dict[str, Any]) -> Claim:
    ours = stats[stats["scaling"] == "ours"]
    tests = {"r2": paired_test(np.log(ours["r2"]) - np.log(LINEAR_R2), "positive", seeds=ours["seed"], log=True,
                               units="(seed, m) pairs"),
             "constancy": paired_test(np.log(ours["constancy"]) - np.log(LINEAR_CONSTANCY), "positive",
                                      seeds=ours["seed"], log=True, units="(seed, m) pairs")}
    per_m = {int(m): {k: float(v) for k, v in row.items()}
             for m, row in ours.groupby("m")[["rate", "r2", "constancy", "drop"]].mean().iterrows()}
    return Claim(
        id="exp3.ours_linear_rate",
        statement="Under our scaling the training loss converges at a linear rate, consistently across m "
                  "(Theorem 3; Figure 4, top left).",
        source="Theorem 3, Section 4.3, Figure 4",
        criterion=f"over (seed, m) at n = {s['fig4_n']}: log(R²/{LINEAR_R2}) > 0 and log(late/early rate / "
                  f"{LINEAR_CONSTANCY}) > 0 (fit of log L_t over t ∈ [0.1T, T]; a power law gives late/early 0.38)",
        headline="; ".join(f"m={m}: r={v['rate']:.2e}, R²={v['r2']:.3f}, late/early={v['constancy']:.2f}"
                           for m, v in per_m.items()) + " | " + describe_each(tests),
        verdict=all_of(tests), test=tests, data="feature_stats.csv",
        measured={"per_m": per_m},
    )
