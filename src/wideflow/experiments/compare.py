"""The test-error claims of Section 4.3 (Figure 3) as paired tests, shared by Experiment 3, the sensitivity
study and the real-data run (docs/reproductions.md).

Three claims compare the scalings of Table 1 on the test error of the P-3L net:

- **ours beats NTK** (the abstract: better generalization than the NTK counterpart);
- **ours beats MF** (Section 4.3: "the smallest test errors out of all three", its part beyond the abstract);
- **MF's test error falls faster with n than NTK's** (Section 4.3).

Each is a :func:`.stats.paired_test` over runs that share a seed (model draw and training set): the first two
over (seed, cell) pairs of log(test error) differences, the third over (seed, m) pairs of the difference of the
least-squares slopes of log(test error) against log n. Cells where no scaling learns (the rule of
:func:`.stats.judged_cells`) are left out of all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..fits import loglog_slope
from .common import Claim, n_axis, plot_over_seeds, save_figure
from .stats import CHANCE_FRACTION, describe, judged_cells, paired_test

__all__ = ["COLORS", "LABELS", "test_error_claims", "test_error_figure"]

LABELS = {"ours": "ours", "ntk": "NTK", "mf": "MF"}
COLORS = {"ours": "tab:red", "ntk": "tab:blue", "mf": "tab:green"}


def test_error_figure(panels: Sequence[tuple[str, pd.DataFrame]], scalings: Sequence[str], folder: Path, stem: str,
                      title: str, xlabel: str = "training-set size n") -> list[str]:
    """Test error against n (log-log), one panel per (title, table) of ``panels`` and one curve per scaling
    (seed mean, band min-max), the error of f ≡ 0 dotted (Figure 3 and its variants); returns the file names."""
    fig = Figure(figsize=((3.4 + 0.6 * (len(panels) < 4)) * len(panels), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    for ax, (name, part) in zip(axes, panels):
        for scaling in scalings:
            plot_over_seeds(ax, part[part["scaling"] == scaling], "n", "test_error", color=COLORS[scaling],
                            marker="o", label=LABELS[scaling])
        ax.axhline(float(part["zero_error"].mean()), ls=":", color="0.4", label="f ≡ 0")
        n_axis(ax, sorted(part["n"].unique()))
        ax.set_yscale("log")
        ax.set_title(name, fontsize="small" if len(panels) > 3 else "medium")
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("test error")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(title)
    return save_figure(fig, folder, stem)


def test_error_claims(table: pd.DataFrame, *, prefix: str, data: str, source: str,
                      cell: Sequence[str] = ("m", "n")) -> list[Claim]:
    """The claims above that the scalings present in ``table`` allow.

    ``table`` has one row per run: ``scaling`` (ours, ntk, mf), the ``cell`` columns (the last one is n),
    ``seed``, ``test_error`` and ``zero_error`` (the test error of f ≡ 0). ``prefix`` starts the claim ids,
    ``data`` names the CSV the verdicts are recomputed from, ``source`` where the paper says it.
    """
    cell = list(cell)
    cells = judged_cells(table, cell, "scaling")
    keys = cells.loc[cells["judged"], cell]
    judged = table.merge(keys, on=cell) if len(keys) else table.iloc[:0]
    left_out = [tuple(int(v) for v in row) for row in cells.loc[~cells["judged"], cell].itertuples(index=False)]
    rule = (f"cells (m, n) where no scaling's seed-mean test error is below {CHANCE_FRACTION:g}× that of f ≡ 0 are "
            "left out" + (f" (left out: {left_out})" if left_out else ""))
    present = set(table["scaling"])
    out = []
    for other, stated in (("ntk", "Our scaling generalizes better than the NTK scaling: a lower test error "
                                  "(abstract; Figure 3)."),
                          ("mf", "Our scaling has a lower test error than the MF scaling (Section 4.3: ours has "
                                 "\"the smallest test errors out of all three\"; Figure 3).")):
        if {"ours", other} <= present:
            out.append(_beats(judged, cells, cell, other, stated, rule, prefix=prefix, data=data, source=source))
    if {"ntk", "mf"} <= present:
        out.append(_falls_faster(judged, cell, rule, prefix=prefix, data=data, source=source))
    return out


def _beats(judged: pd.DataFrame, cells: pd.DataFrame, cell: list[str], other: str, statement: str, rule: str, *,
           prefix: str, data: str, source: str) -> Claim:
    wide = judged.pivot_table(index=["seed", *cell], columns="scaling", values="test_error").reset_index()
    d = np.log(wide["ours"]) - np.log(wide[other]) if len(wide) else pd.Series(dtype=float)
    test = paired_test(d, "negative", seeds=wide["seed"] if len(wide) else [], log=True,
                       units="(seed, cell) pairs")
    means = judged.groupby(["scaling", *cell])["test_error"].mean()
    return Claim(
        id=f"{prefix}.ours_beats_{other}",
        statement=statement,
        source=source,
        criterion=f"over (seed, {', '.join(cell)}): log(test error ours / {LABELS[other]}) < 0; {rule}",
        headline=f"geometric-mean {describe(test)}; ours lowest seed mean in "
                 f"{int((cells['judged'] & (cells['best'] == 'ours')).sum())}/{int(cells['judged'].sum())} judged cells",
        verdict=test["verdict"], test=test, data=data,
        measured={"cells": cells.to_dict("records"),
                  "seed_mean": [{"scaling": k[0], **dict(zip(cell, map(int, k[1:]))), "test_error": float(v)}
                                for k, v in means.items() if k[0] in ("ours", other)]},
    )


def _falls_faster(judged: pd.DataFrame, cell: list[str], rule: str, *, prefix: str, data: str,
                  source: str) -> Claim:
    n, group = cell[-1], cell[:-1]
    rows = []
    for key, part in judged.groupby(["seed", *group]):
        slope = {sc: loglog_slope(p[n], p["test_error"]) for sc, p in part.groupby("scaling")
                 if sc in ("ntk", "mf") and p[n].nunique() >= 2}
        if len(slope) == 2:
            rows.append({"seed": key[0], **dict(zip(group, key[1:])), "mf": slope["mf"], "ntk": slope["ntk"]})
    slopes = pd.DataFrame(rows, columns=["seed", *group, "mf", "ntk"])
    test = paired_test(slopes["mf"] - slopes["ntk"], "negative", seeds=slopes["seed"], log=False,
                       units=f"(seed, {', '.join(group)}) pairs" if group else "seeds")
    mean = slopes.groupby(group)[["mf", "ntk"]].mean() if group else slopes[["mf", "ntk"]].mean().to_frame().T
    found = "; ".join(f"{'m=' + str(int(k)) + ': ' if group else ''}slope MF {v['mf']:.2f} vs NTK {v['ntk']:.2f}"
                      for k, v in mean.iterrows() if np.isfinite(v["mf"])) or "no m with two judged n"
    return Claim(
        id=f"{prefix}.mf_falls_faster_than_ntk",
        statement="As n grows, the test error decreases faster under the MF scaling than under the NTK scaling "
                  "(Section 4.3, Figure 3).",
        source=source,
        criterion=f"over (seed{''.join(', ' + g for g in group)}): slope of log(test error) against log n (least squares "
                  f"over the judged n) under MF minus that under NTK < 0; {rule}",
        headline=f"{found} | slope difference {describe(test)}",
        verdict=test["verdict"], test=test, data=data,
        measured={"slopes": slopes.to_dict("records")},
    )

