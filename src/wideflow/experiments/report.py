"""REPORT.md: one table of every claim of the paper checked by a reproduction, with the numbers behind it.

:func:`write_report` reads the ``summary.json`` of every experiment found in a reproduction folder (so
experiments reproduced by separate commands into the same folder share one report) and writes
``REPORT.md`` next to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_text, read_json
from .stats import ALPHA, CHANCE_FRACTION, RULE, VERDICTS

__all__ = ["claims_table", "write_report"]

ORDER = ("exp1", "exp2", "exp3", "sensitivity", "real", "richness", "precision", "limits")

NOTES = f"""\
## How to read this report

- Each claim is a statement of the paper (Section 4). *Criterion* names the paired differences d_k tested,
  one per unit (a seed, or a (seed, cell) pair, runs of one seed sharing the model draw and the training set),
  and the sign the claim predicts; it is the same for every preset and written in
  `wideflow/experiments/`. The rule, the same for every claim: {RULE} (α = {ALPHA}). A claim of several
  conditions is reproduced when all are, not reproduced when any is. *Reproduced* in `summary.json` is true
  only for "reproduced". Every verdict is recomputed from the CSV named in the claim's `data` field of
  `summary.json` (docs/reproductions.md shows how).
- "not reproduced" means the opposite of the claim holds significantly at this preset; "inconclusive" that
  this preset cannot tell. Neither is a judgement of the paper at its scale.
- Cells (m, n) where no model's seed-mean test error is below {CHANCE_FRACTION:g}× that of predicting 0 cannot be
  judged and are left out of the comparisons (listed in each criterion).
- Training is full-batch GD on W with the step convention of eq. (9): one step of size δ is gradient-flow
  time δ. The loss is (1/2N) Σ_a (f(x_a) − y_a)² with the reduction of the preset (the reproductions use
  "mean", N = n, with δ = 1, docs/theory.md §2); the test error is ½·mean of (f − y)² over the test set.
- Seed k draws both the model (c, W, z) and the training set; lines are means over seeds, bands span min to
  max.
- Settings the paper does not state are marked [?] in the preset file listed above; the sensitivity table
  shows which verdicts depend on them.
"""


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_table(summaries: list[dict[str, Any]]) -> str:
    """The markdown table of every claim of ``summaries`` (one row per claim)."""
    lines = ["| Experiment | Claim of the paper | Measured | Criterion | Verdict | p | Seeds |",
             "|---|---|---|---|---|---|---|"]
    for summary in summaries:
        for claim in summary["claims"]:
            tests = [claim["test"]] if "verdict" in claim["test"] else list(claim["test"].values())
            p = max((t["p_value"] for t in tests if t["p_value"] is not None), default=None)
            seeds = min(t["n_seeds"] for t in tests)
            lines.append(f"| {summary['experiment']} | {_cell(claim['statement'])} | {_cell(claim['headline'])} | "
                         f"{_cell(claim['criterion'])} | **{claim['verdict']}** | "
                         f"{'n/a' if p is None else f'{p:.2g}'} | {seeds} |")
        if summary["runs"]["failed"]:
            lines.append(f"| {summary['experiment']} | (no verdicts: {summary['runs']['failed']} run(s) failed) "
                         "| | | | | |")
    return "\n".join(lines)


def _sensitivity(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["### Verdicts under each reading of the unstated choices", "",
             "| Reading | What changes | Claim | Verdict | Test | Consistent with the paper |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['reading']} | {_cell(r['what'])} | {r['claim']} | {r['verdict']} | {_cell(r['test'])} | "
                     f"{'yes' if r['consistent'] else 'no'} |")
    return [*lines, "", "A reading is consistent with the paper when GD at δ = 1 is stable under it and none of the "
            "paper's statements is \"not reproduced\" under it.", ""]


def _precision(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["### float32 against float64", "",
             "| Scaling | Engine | Seeds | Train loss f64 | Train loss f32 | Test error f64 | Test error f32 | "
             "max rel. diff train | max rel. diff test |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scaling']} | {r['engine']} | {r['seeds']} | {r['train_loss_float64']:.4g} | "
                     f"{r['train_loss_float32']:.4g} | {r['test_error_float64']:.4g} | {r['test_error_float32']:.4g} | "
                     f"{r['max_rel_diff_train_loss']:.2g} | {r['max_rel_diff_test_error']:.2g} |")
    return [*lines, ""]


def write_report(out: str | Path) -> Path:
    """Write ``out/REPORT.md`` from the ``out/<exp>/summary.json`` files present; return its path."""
    out = Path(out)
    summaries = [read_json(p) for name in ORDER if (p := out / name / "summary.json").is_file()]
    claims = [c for s in summaries for c in s["claims"]]
    count = {v: sum(c["verdict"] == v for c in claims) for v in VERDICTS}
    parts = ["# Reproduction of Chen, Vanden-Eijnden & Bruna (ICLR 2022): report", ""]
    if summaries:
        first = summaries[0]
        rev = first.get("git_revision")
        code = f"wideflow {first.get('wideflow_version')}" + (
            f", git {rev[:10]}{' with local changes' if first.get('git_dirty') else ''}" if rev else "")
        presets = sorted({s["preset"] for s in summaries})
        parts += [f"Written by `wideflow reproduce` ({code}); preset {', '.join(presets)} "
                  f"({', '.join(sorted({f for s in summaries for f in s['preset_files']}))}).", "",
                  f"**{len(claims)} claims: {count['reproduced']} reproduced, {count['not reproduced']} not reproduced, "
                  f"{count['inconclusive']} inconclusive.**", "", "## Claims", "", claims_table(summaries), ""]
    else:
        parts += ["No experiment has been reproduced in this folder yet.", ""]
    for s in summaries:
        parts += _section(s)
    parts.append(NOTES)
    return atomic_text(out / "REPORT.md", "\n".join(parts))


def _section(s: dict[str, Any]) -> list[str]:
    runs = s["runs"]
    name = s["experiment"]
    settings = ", ".join(f"{k} = {v}" for k, v in s["settings"].items())
    lines = [f"## {s['title']}", "",
             f"Settings ({s['preset']}): {settings}.", "",
             f"Runs: {runs['total']} ({runs['computed_now']} computed by the last command, {runs['reused']} read "
             f"from the store, {runs['failed']} failed); training time {runs['training_time_s']:.1f} s summed over "
             f"runs; the last command ({' '.join(s['command']['experiments'])}) took "
             f"{s['command']['wall_time_s']:.1f} s of wall time, {s['command']['sweep_wall_time_s']:.1f} s of it "
             "running the grid.", ""]
    if s.get("sensitivity"):
        lines += _sensitivity(s["sensitivity"])
    if s.get("precision"):
        lines += _precision(s["precision"])
    for fig in s["figures"]:
        if fig.endswith(".png"):
            lines += [f"![{fig}]({name}/{fig})", ""]
    lines += ["Data: " + ", ".join(f"[{t}]({name}/{t})" for t in s["tables"]) + ".", ""]
    for failure in s.get("failed_runs", []):
        lines.append(f"- run `{failure['run_id']}` failed: {_cell(failure['error'])}")
    return lines
