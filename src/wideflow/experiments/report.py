"""REPORT.md: one table of every claim of the paper checked by a reproduction, with the numbers behind it.

:func:`write_report` reads the ``summary.json`` of every experiment found in a reproduction folder (so
experiments reproduced by separate commands into the same folder share one report) and writes
``REPORT.md`` next to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io import atomic_text, read_json

__all__ = ["write_report", "claims_table"]

ORDER = ("exp1", "exp2", "exp3")

NOTES = """\
## How to read this report

- Each claim is a statement of the paper (Section 4). *Criterion* is the fixed test applied to this run's
  numbers; it is the same for every preset and written in `wideflow/experiments/exp*.py`. *Reproduced* is
  its verdict, not a judgement of the paper: a small preset can miss an effect that needs the paper's widths
  or training times.
- Training is full-batch GD on W with the step convention of eq. (9): one step of size δ is gradient-flow
  time δ. The loss is (1/2N) Σ_a (f(x_a) − y_a)² with the reduction of the preset (the reproductions use
  "mean", N = n, with δ = 1, docs/theory.md §2); the test error is ½·mean of (f − y)² over the test set.
- With several seeds, seed k draws both the model (c, W, z) and the training set; lines are means over
  seeds, bands span min to max, and the claims use the means.
- Settings the paper does not state are documented choices in the preset file listed above.
"""


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claims_table(summaries: list[dict[str, Any]]) -> str:
    """The markdown table of every claim of ``summaries`` (one row per claim)."""
    lines = ["| Experiment | Claim of the paper | Measured | Criterion | Reproduced |", "|---|---|---|---|---|"]
    for summary in summaries:
        for claim in summary["claims"]:
            verdict = "**yes**" if claim["reproduced"] else "**no**"
            lines.append(f"| {summary['experiment']} | {_cell(claim['statement'])} | {_cell(claim['headline'])} | "
                         f"{_cell(claim['criterion'])} | {verdict} |")
        if summary["runs"]["failed"]:
            lines.append(f"| {summary['experiment']} | (no verdicts: {summary['runs']['failed']} run(s) failed) "
                         "| | | |")
    return "\n".join(lines)


def write_report(out: str | Path) -> Path:
    """Write ``out/REPORT.md`` from the ``out/<exp>/summary.json`` files present; return its path."""
    out = Path(out)
    summaries = [read_json(p) for name in ORDER if (p := out / name / "summary.json").is_file()]
    claims = [c for s in summaries for c in s["claims"]]
    done = sum(c["reproduced"] for c in claims)
    parts = ["# Reproduction of Chen, Vanden-Eijnden & Bruna (ICLR 2022): report", ""]
    if summaries:
        first = summaries[0]
        rev = first.get("git_revision")
        code = f"wideflow {first.get('wideflow_version')}" + (
            f", git {rev[:10]}{' with local changes' if first.get('git_dirty') else ''}" if rev else "")
        presets = sorted({s["preset"] for s in summaries})
        parts += [f"Written by `wideflow reproduce` ({code}); preset {', '.join(presets)} "
                  f"({', '.join(sorted({f for s in summaries for f in s['preset_files']}))}).", "",
                  f"**{done} of {len(claims)} claims reproduced.**", "", "## Claims", "", claims_table(summaries), ""]
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
    for fig in s["figures"]:
        if fig.endswith(".png"):
            lines += [f"![{fig}]({name}/{fig})", ""]
    lines += ["Data: " + ", ".join(f"[{t}]({name}/{t})" for t in s["tables"]) + ".", ""]
    for failure in s.get("failed_runs", []):
        lines.append(f"- run `{failure['run_id']}` failed: {_cell(failure['error'])}")
    return lines
