"""float32 against float64 over the paper's 50000 steps (GPU precision), for both GD engines.

The paper trains for 50000 steps of δ = 1 (Appendix I) on GPUs, where float32 is the fast precision. This
experiment trains the P-3L net of Experiment 3 at a quick size in float32 and in float64, with the weights
engine (GD on W, eq. (9)) and the kernel-space engine (docs/theory.md §8), and reports how far the final
training loss and test error of float32 runs are from the float64 run of the same seed and engine, and
how far the two engines are from each other in float64. It makes no claim of the paper; its table is in
``summary.json`` (``precision``) and ``REPORT.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .common import (
    SCALING_NAMES,
    choice_list,
    model_section,
    positive_int,
    save_figure,
    seed_list,
    train_section,
)

NAME = "precision"
TITLE = "float32 against float64 over the paper's 50000 steps, weights and kernel engines"
KEYS = {"d": positive_int, "m": positive_int, "n": positive_int, "scalings": choice_list(SCALING_NAMES),
        "steps": positive_int, "log_every": positive_int}
METHODS = ("weights", "kernel")
DTYPES = ("float32", "float64")


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (scaling, engine, dtype, seed), P-3L with D = m on axis-XOR."""
    return [
        {"model": model_section(s, kind="p3l", d=s["d"], m=s["m"], D=s["m"], scaling=scaling, seed=seed),
         "data": {"kind": "axis_xor", "n": s["n"], "n_test": s["n_test"], "seed": seed},
         "train": {**train_section(s), "method": method, "dtype": dtype},
         "tags": {"experiment": NAME}}
        for scaling in s["scalings"] for method in METHODS for dtype in DTYPES for seed in seed_list(s)
    ]


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``precision_curves``: the histories; ``precision``: per (scaling, engine, seed) the final training loss
    and test error in float32 and float64 and their relative differences."""
    curves = []
    for rid, scaling, method, dtype, seed in runs[["run_id", "model.scaling", "train.method", "train.dtype",
                                                   "model.seed"]].itertuples(index=False, name=None):
        h = history(rid)
        curves.append(pd.DataFrame({"scaling": scaling, "engine": method, "dtype": dtype, "seed": int(seed),
                                    "step": h["step"], "train_loss": h["train_loss"], "test_error": h["test_error"]}))
    curves = pd.concat(curves, ignore_index=True)
    final = curves.loc[curves.groupby(["scaling", "engine", "dtype", "seed"])["step"].idxmax()]
    wide = final.pivot_table(index=["scaling", "engine", "seed"], columns="dtype",
                             values=["train_loss", "test_error"]).reset_index()
    wide.columns = ["_".join(c for c in col if c) for col in wide.columns]
    for what in ("train_loss", "test_error"):
        wide[f"{what}_rel_diff"] = (wide[f"{what}_float32"] - wide[f"{what}_float64"]).abs() / wide[f"{what}_float64"]
    return {"precision_curves": curves, "precision": wide}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Training loss and test error against steps, float32 (dashed) against float64 (solid), per engine."""
    curves = t["precision_curves"]
    fig = Figure(figsize=(4.2 * len(METHODS), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(METHODS), sharey=True))
    for ax, method in zip(axes, METHODS):
        for (scaling, dtype), part in curves[curves["engine"] == method].groupby(["scaling", "dtype"]):
            mean = part.groupby("step")[["train_loss", "test_error"]].mean()
            style = "-" if dtype == "float64" else "--"
            ax.plot(mean.index, mean["train_loss"], style, label=f"{scaling} {dtype} train")
            ax.plot(mean.index, mean["test_error"], style, alpha=0.6, label=f"{scaling} {dtype} test")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{method} engine")
    axes[0].set_ylabel("loss (seed mean)")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(f"float32 vs float64, P-3L m = D = {s['m']}, n = {s['n']}, {s['steps']} steps")
    return save_figure(fig, folder, "precision_curves")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Any]:
    """No claim of the paper; the numbers are in :func:`extras`."""
    return []


def extras(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> dict[str, Any]:
    """``precision``: per (scaling, engine) the largest relative difference float32 against float64 over seeds."""
    wide = t["precision"]
    rows = []
    for (scaling, method), part in wide.groupby(["scaling", "engine"]):
        rows.append({"scaling": scaling, "engine": method, "seeds": len(part),
                     **{f"{w}_{dt}": float(part[f"{w}_{dt}"].mean()) for w in ("train_loss", "test_error")
                        for dt in DTYPES},
                     "max_rel_diff_train_loss": float(part["train_loss_rel_diff"].max()),
                     "max_rel_diff_test_error": float(part["test_error_rel_diff"].max())})
    return {"precision": rows}
