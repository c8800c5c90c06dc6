"""Experiment 2 / Figure 2 (Section 4): the benefit of an input embedding.

Target y = f*(x) = (1/5) Σ_{i≤5} c*_i σ(xᵀW*_i x/d), x ~ N(0, I_d) (wf.data.quadratic_teacher). Two
students of width m, both the general model (2)-(3) trained by GD on W with step δ: the plain shallow net
(Φ(x) = x, D = d) and the shallow net augmented with the quadratic embedding Φ(x) = vec(xxᵀ) (D = d²).
The paper finds the augmented model has the lower test error at every training-set size n.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidArgument
from .common import (
    Claim,
    int_list,
    log_panel,
    model_section,
    n_axis,
    nonneg_int,
    plot_over_seeds,
    positive_int,
    save_figure,
    seed_list,
    seeds_label,
    single_axes,
    train_section,
)
from .stats import CHANCE_FRACTION, describe, judged_cells, paired_test

NAME = "exp2"
TITLE = "Experiment 2 (Figure 2): quadratic embedding against the plain shallow net"
KEYS = {"d": positive_int, "m": positive_int, "n": int_list, "m_teacher": positive_int,
        "teacher_seed": nonneg_int, "steps": positive_int, "log_every": positive_int}
MODELS = {"shallow": "plain shallow net, Φ(x) = x", "quadratic": "quadratic embedding, Φ(x) = vec(xxᵀ)"}


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (model, n, seed); the teacher is the same in every run (``teacher_seed``)."""
    if s["n_test"] < 1:
        raise InvalidArgument(f"exp2.n_test={s['n_test']}: Figure 2 plots the test error; give n_test >= 1.")
    return [
        {"model": model_section(s, kind=kind, d=s["d"], m=s["m"], scaling="ours", seed=seed),
         "data": {"kind": "quadratic_teacher", "n": n, "n_test": s["n_test"], "seed": seed,
                  "m_teacher": s["m_teacher"], "teacher_seed": s["teacher_seed"]},
         "train": train_section(s),
         "tags": {"experiment": NAME}}
        for kind in MODELS for n in s["n"] for seed in seed_list(s)
    ]


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``fig2_test_error``: one row per run (model, n, seed, final test error and training loss)."""
    table = pd.DataFrame({
        "model": runs["model.kind"].to_numpy(),
        "n": runs["data.n"].astype(int).to_numpy(),
        "seed": runs["model.seed"].astype(int).to_numpy(),
        "test_error": runs["final_test_error"].to_numpy(dtype=float),
        "train_loss": runs["final_train_loss"].to_numpy(dtype=float),
        "zero_error": runs["zero_test_error"].to_numpy(dtype=float),
    })
    return {"fig2_test_error": table.sort_values(["model", "n", "seed"], ignore_index=True)}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Figure 2: test error against n, plain against embedded (log-log; band: min-max over seeds)."""
    table = t["fig2_test_error"]
    fig, ax = single_axes()
    for (kind, label), color, marker in zip(MODELS.items(), ("tab:gray", "tab:red"), ("s", "o")):
        plot_over_seeds(ax, table[table["model"] == kind], "n", "test_error", color=color, marker=marker, label=label)
    n_axis(ax, sorted(table["n"].unique()))
    log_panel(ax, "training-set size n", "test error",
              f"Quadratic teacher (d = {s['d']}, m = {s['m']}, {seeds_label(s)})")
    return save_figure(fig, folder, "fig2_test_error")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """The embedded model beats the plain one at every n (Figure 2): a paired test over (seed, n), the cells
    where neither model beats f ≡ 0 left out (:func:`.stats.judged_cells`)."""
    table = t["fig2_test_error"]
    cells = judged_cells(table, ["n"], "model")
    judged = table[table["n"].isin(cells.loc[cells["judged"], "n"])]
    wide = judged.pivot_table(index=["seed", "n"], columns="model", values="test_error").reset_index()
    test = paired_test(np.log(wide["quadratic"]) - np.log(wide["shallow"]), "negative", seeds=wide["seed"], log=True,
                       units="(seed, n) pairs")
    means = table.pivot_table(index="n", columns="model", values="test_error", aggfunc="mean")
    per_n = {int(n): {"plain": float(row["shallow"]), "quadratic": float(row["quadratic"]),
                      "ratio": float(row["quadratic"] / row["shallow"])} for n, row in means.iterrows()}
    left_out = [int(n) for n in cells.loc[~cells["judged"], "n"]]
    return [
        Claim(
            id="exp2.embedding_beats_plain",
            statement="The shallow net augmented with the quadratic embedding has a lower test error than the "
                      "plain shallow net at every training-set size (Figure 2).",
            source="Section 4, Figure 2",
            criterion="over (seed, n): log(test error quadratic / plain) < 0; n where neither model's seed-mean "
                      f"test error is below {CHANCE_FRACTION:g}× that of f ≡ 0 are left out"
                      + (f" (left out: n = {left_out})" if left_out else ""),
            headline="seed-mean ratio quadratic/plain " + ", ".join(f"{v['ratio']:.2f} (n={n})" for n, v in per_n.items())
                     + " | " + describe(test),
            verdict=test["verdict"], test=test, data="fig2_test_error.csv",
            measured={"per_n": per_n, "cells": cells.to_dict("records")},
        )
    ]
