"""Sensitivity of Experiment 3's verdicts to the choices the paper does not state (docs/reproductions.md).

The test-error claims of Figure 3 (:mod:`.compare`) are tested again under each **reading** of an unstated
choice, one choice changed at a time from the defaults of the presets:

- ``defaults``: MF's learning-rate factor m·D (Table 1 as implemented), the preset's σ, the mean loss, the
  quick length ``steps``;
- ``mf_lr_sqrtD``, ``mf_lr_m``: MF trained with the factor m·√D or m (eq. (9) applied literally), the
  scalings of the same names in :mod:`wideflow.scalings`; ours and NTK as in ``defaults``;
- ``activation``: σ = ``other_activation`` instead of the preset's;
- ``long``, ``long_mf_lr_m``: the paper's 50000 steps (``long_steps``) instead of the quick length, MF with
  the factor m·D or m;
- ``sum``: the sum loss (1/2) Σ (f − y)² at the paper's δ = 1. It is not trained: GD on it is unstable when
  δ exceeds δ_max = 2/λ_max(K_0) (:func:`wideflow.kernels.max_stable_step_size`), reported per run.

With MF's factor m·D, MF is exactly ours started from W_0/√D (:mod:`wideflow.scalings`), which the
``defaults`` reading includes. A reading is **consistent with the paper** when training at δ = 1 is
stable and none of the paper's statements (the three claims) is "not reproduced" under it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..kernels import max_stable_step_size
from ..sweep import normalize, run_id
from ..sweep.runner import build
from .common import (
    activation_name,
    int_list,
    model_section,
    positive_int,
    seed_list,
    train_section,
)
from .compare import test_error_claims, test_error_figure
from .stats import describe

NAME = "sensitivity"
TITLE = "Sensitivity of Experiment 3's verdicts to the paper's unstated choices"
KEYS = {"d": positive_int, "m": int_list, "n": int_list, "steps": positive_int, "log_every": positive_int,
        "long_steps": positive_int, "long_log_every": positive_int,
        "other_activation": lambda key, value: activation_name(key, value)}


def readings(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each reading: what it changes (text), the scaling trained for each role, σ, steps, log interval."""
    base = {"roles": {"ours": "ours", "ntk": "ntk", "mf": "mf"}, "activation": s["activation"],
            "steps": s["steps"], "log_every": s["log_every"]}
    long = {"steps": s["long_steps"], "log_every": s["long_log_every"]}
    return {
        "defaults": {**base, "what": f"MF lr factor m·D, σ = {s['activation']}, mean loss, {s['steps']} steps"},
        "mf_lr_sqrtD": {**base, "roles": {**base["roles"], "mf": "mf_lr_sqrtD"}, "what": "MF lr factor m·√D"},
        "mf_lr_m": {**base, "roles": {**base["roles"], "mf": "mf_lr_m"}, "what": "MF lr factor m (eq. (9) as written)"},
        "activation": {**base, "activation": s["other_activation"], "what": f"σ = {s['other_activation']}"},
        "long": {**base, **long, "what": f"{s['long_steps']} steps (the paper's length)"},
        "long_mf_lr_m": {**base, **long, "roles": {**base["roles"], "mf": "mf_lr_m"},
                         "what": f"{s['long_steps']} steps, MF lr factor m"},
    }


def _config(s: dict[str, Any], r: dict[str, Any], scaling: str, m: int, n: int, seed: int) -> dict[str, Any]:
    return {"model": model_section({**s, "activation": r["activation"]}, kind="p3l", d=s["d"], m=m, D=m,
                                   scaling=scaling, seed=seed),
            "data": {"kind": "axis_xor", "n": n, "n_test": s["n_test"], "seed": seed},
            "train": train_section({**s, "steps": r["steps"], "log_every": r["log_every"]}),
            "tags": {"experiment": NAME}}


def _cells(s: dict[str, Any]) -> Iterator[tuple[str, str, str, int, int, int, dict[str, Any]]]:
    """(reading, role, scaling trained, m, n, seed, configuration) of every run of every reading."""
    for name, r in readings(s).items():
        for role, scaling in r["roles"].items():
            for m, n, seed in itertools.product(s["m"], s["n"], seed_list(s)):
                yield name, role, scaling, m, n, seed, _config(s, r, scaling, m, n, seed)


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of every reading, each once (readings share the runs they have in common)."""
    out: dict[str, dict[str, Any]] = {}
    for *_, config in _cells(s):
        out.setdefault(run_id(config), config)
    return list(out.values())


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``sensitivity_test_error``: one row per (reading, role, m, n, seed) with the run's test error;
    ``sensitivity_sum_stability``: δ_max of GD on the sum loss at initialization, per (scaling, m, n, seed)."""
    by_id = runs.set_index("run_id")
    rows = []
    for name, role, scaling, m, n, seed, config in _cells(s):
        run = by_id.loc[run_id(config)]
        rows.append({"reading": name, "scaling": role, "trained_as": scaling, "m": m, "n": n, "seed": seed,
                     "test_error": float(run["final_test_error"]), "train_loss": float(run["final_train_loss"]),
                     "zero_error": float(run["zero_test_error"])})
    stability = []
    for name, role, _, m, n, seed, config in _cells(s):
        if name == "defaults":
            model, (X, _, _, _) = build(normalize(config))
            sum_step = max_stable_step_size(model, X, reduction="sum")  # 2/λ_max(K_0); the mean loss's is n times it
            stability.append({"scaling": role, "m": m, "n": n, "seed": seed, "max_step_sum": sum_step,
                              "max_step_mean": n * sum_step})
    return {"sensitivity_test_error": pd.DataFrame(rows), "sensitivity_sum_stability": pd.DataFrame(stability)}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Test error against n under each reading (largest m; seed mean, band min-max)."""
    table = t["sensitivity_test_error"]
    m = max(s["m"])
    panels = [(name, table[(table["reading"] == name) & (table["m"] == m)]) for name in readings(s)]
    return test_error_figure(panels, ("ours", "ntk", "mf"), folder, "sensitivity_test_error",
                             f"P-3L on axis-XOR under each reading (d = {s['d']}, m = D = {m}, {s['seeds']} seeds, "
                             "band: min-max)", xlabel="n")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Any]:
    """No claims of its own: the verdicts under each reading are in :func:`extras`."""
    return []


def extras(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> dict[str, Any]:
    """``sensitivity``: one row per (reading, claim) with the verdict and its test, and per reading whether
    it is consistent with the paper; the ``sum`` reading has its stability instead of verdicts."""
    table = t["sensitivity_test_error"]
    rows = []
    for name, r in readings(s).items():
        found = test_error_claims(table[table["reading"] == name], prefix=name, data="sensitivity_test_error.csv",
                                  source="abstract, Section 4.3, Figure 3")
        consistent = all(c.verdict != "not reproduced" for c in found)
        for c in found:
            rows.append({"reading": name, "what": r["what"], "claim": c.id.split(".", 1)[1], "verdict": c.verdict,
                         "test": describe(c.test), "p_value": c.test["p_value"], "consistent": consistent})
    stab = t["sensitivity_sum_stability"]
    unstable = int((stab["max_step_sum"] < 1.0).sum())
    rows.append({"reading": "sum", "what": "sum loss (1/2) Σ (f − y)² at δ = 1", "claim": "training at δ = 1",
                 "verdict": "not trained: GD unstable" if unstable else "not trained",
                 "test": f"δ_max = 2/λ_max(K_0) from {stab['max_step_sum'].min():.3g} to {stab['max_step_sum'].max():.3g}; "
                         f"below δ = 1 (GD diverges) in {unstable} of {len(stab)} runs (mean loss: δ_max ≥ "
                         f"{stab['max_step_mean'].min():.3g})",
                 "p_value": None, "consistent": unstable == 0})
    return {"sensitivity": rows}
