r"""Rich display in Jupyter: HTML tables and a small inline SVG loss curve.

The objects a user looks at in a notebook show themselves as HTML (their ``_repr_html_``, which calls the
functions here): a training result (:class:`wideflow.training.TrainResult`: its settings, final numbers, a
log-scale plot of L_t of eq. (6) against GD time and the last rows of the history), the report of
:func:`wideflow.check` (the assumptions of Section 3, which theorem applies, the rate), and the claims of a
reproduction (:class:`wideflow.experiments.common.Claim`; :class:`Claims` for the summaries that
``wideflow reproduce`` writes). Everything is plain HTML and SVG, with no dependency, and escaped.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import FileMissing, InvalidType

__all__ = ["loss_svg", "table_html", "train_result_html", "check_html", "claims_html", "Claims", "VERDICT_COLORS"]

VERDICT_COLORS = {"reproduced": "#1a7f37", "not reproduced": "#cf222e", "inconclusive": "#9a6700"}
_CURVES = (("train_loss", "train loss", "#1f77b4"), ("test_error", "test error", "#d62728"))


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple | list) and all(isinstance(v, int | float) for v in value):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def table_html(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, *, raw: Iterable[int] = ()) -> str:
    """An HTML table of ``rows`` (cells formatted to 4 significant digits and escaped, except the columns
    ``raw``, which hold HTML already)."""
    raw = set(raw)

    def cell(j: int, v: Any) -> str:
        return str(v) if j in raw else html.escape(_fmt(v))

    head = "" if header is None else "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{cell(j, v)}</td>" for j, v in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def loss_svg(history: pd.DataFrame, *, width: int = 320, height: int = 160) -> str:
    """An inline SVG of ``train_loss`` (and ``test_error`` when present) against ``time`` on a log scale;
    non-positive or non-finite values are left out. Empty when there is nothing to plot."""
    curves = [(history[c].to_numpy(float), label, color) for c, label, color in _CURVES if c in history]
    x = history["time"].to_numpy(float) if "time" in history else history["step"].to_numpy(float)
    logs = [math.log10(v) for values, _, _ in curves for v in values if 0 < v < math.inf]
    if len(x) < 2 or not logs or x[-1] <= x[0]:
        return ""
    lo, hi = min(logs), max(logs)
    hi = hi if hi > lo else lo + 1.0
    pad = 34

    def point(t: float, v: float) -> str:
        px = pad + (t - x[0]) / (x[-1] - x[0]) * (width - pad - 8)
        py = 8 + (hi - math.log10(v)) / (hi - lo) * (height - 30)
        return f"{px:.1f},{py:.1f}"

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
             "style='font: 10px sans-serif'>",
             f"<rect x='{pad}' y='8' width='{width - pad - 8}' height='{height - 30}' fill='none' stroke='#999'/>",
             f"<text x='2' y='14'>1e{hi:.1f}</text><text x='2' y='{height - 22}'>1e{lo:.1f}</text>",
             f"<text x='{pad}' y='{height - 8}'>t = {x[0]:g}</text>"
             f"<text x='{width - 8}' y='{height - 8}' text-anchor='end'>t = {x[-1]:g}</text>"]
    for k, (values, label, color) in enumerate(curves):
        pts = " ".join(point(t, v) for t, v in zip(x, values, strict=True) if 0 < v < math.inf)
        parts.append(f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='1.5'/>")
        parts.append(f"<text x='{width - 12}' y='{22 + 12 * k}' text-anchor='end' fill='{color}'>{label}</text>")
    parts.append("</svg>")
    return "".join(parts)


def train_result_html(result: Any, *, rows: int = 5) -> str:
    """The HTML of a :class:`~wideflow.training.TrainResult`: settings and final numbers, the loss curve and
    the last ``rows`` rows of the history."""
    model = "sharded over processes" if result.model is None else repr(result.model)
    facts = [("model", model), ("loss", result.loss), ("method", result.method), ("steps", result.steps),
             ("step size δ", result.step_size), ("reduction", result.reduction),
             ("final train loss", result.final_train_loss), ("final test error", result.final_test_error),
             ("wall time (s)", result.wall_time)]
    if result.final_test_accuracy is not None:
        facts.append(("final test accuracy", result.final_test_accuracy))
    tail = result.history.tail(rows)
    return ("<div><b>TrainResult</b> (wideflow.train, GD of eq. (9))"
            f"<div style='display:flex; gap:1em; align-items:flex-start'>{table_html(facts)}"
            f"{loss_svg(result.history)}</div>{table_html(tail.to_numpy().tolist(), list(tail.columns))}</div>")


def check_html(report: Mapping[str, Any]) -> str:
    """The HTML of :func:`wideflow.check`'s report: the sizes, each condition with whether it holds, the
    theorem that applies and the guaranteed rate (the same content as :func:`wideflow.theory.format_check`)."""
    marks = {True: "<span style='color:#1a7f37'>yes</span>", False: "<b style='color:#cf222e'>NO</b>",
             None: "<span style='color:#888'>n/a</span>"}
    conditions = [(name, marks[item["holds"]], html.escape(item["detail"]))
                  for name, item in report["conditions"].items()]
    rate = report["guaranteed_rate"]
    rate_text = ("none explicit" if rate is None
                 else f"L_t ≤ L_0 exp(−{rate:.4g} t) from the {report['rate_source']}")
    sizes = (f"n = {report['n']}, d = {report['d']}, D = {report['D']}, m = {report['m']}, scaling = "
             f"{report['scaling']}, reduction = {report['reduction']}, loss = {report.get('loss', 'squared')}")
    constants = ", ".join(f"{k} = {_fmt(v)}" for k, v in report["constants"].items())
    return (f"<div><b>wideflow.check</b>: {html.escape(str(report['model']))}<br>{html.escape(sizes)}"
            f"{table_html(conditions, ['condition', 'holds', 'detail'], raw=(1, 2))}"
            f"<b>applies</b>: {html.escape(str(report['theorem'] or 'none'))} "
            f"({html.escape(str(report['theorem_reason']))})<br><b>guaranteed rate</b>: {html.escape(rate_text)}"
            f"<details><summary>constants</summary>{html.escape(constants)}</details></div>")


def _verdict(verdict: str) -> str:
    return f"<b style='color:{VERDICT_COLORS.get(verdict, '#000')}'>{html.escape(verdict)}</b>"


def claims_html(claims: Sequence[Mapping[str, Any]], experiments: Sequence[str] | None = None) -> str:
    """An HTML table of claims (each a ``Claim.to_dict()``, as in ``summary.json``): the claim's id, where the
    paper makes it, its verdict, the numbers' headline, the p-value and the number of seeds of its test (for
    a claim of several conditions, the largest p-value)."""
    rows = []
    for k, c in enumerate(claims):
        test = c.get("test", {})
        tests = [test] if "p_value" in test else [t for t in test.values() if isinstance(t, Mapping)]
        p = [t["p_value"] for t in tests if t.get("p_value") is not None]
        seeds = [t["n_seeds"] for t in tests if "n_seeds" in t]
        first = [] if experiments is None else [experiments[k]]
        rows.append([*first, html.escape(c["id"]), html.escape(c.get("source", "")), _verdict(c["verdict"]),
                     html.escape(c.get("headline", "")), html.escape(_fmt(max(p) if p else None)),
                     html.escape(_fmt(min(seeds) if seeds else None))])
    header = ["claim", "source", "verdict", "measured", "p", "seeds"]
    header = header if experiments is None else ["experiment", *header]
    counts = {v: sum(c["verdict"] == v for c in claims) for v in VERDICT_COLORS}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    return (f"<div><b>{len(claims)} claims</b>: {summary}"
            f"{table_html(rows, header, raw=range(len(header)))}</div>")


class Claims:
    """The claims of a reproduction, shown as a table in Jupyter.

    ``summaries`` is what :func:`wideflow.experiments.reproduce` returns (``{experiment: summary}``), one
    summary dict, or a list of them; :meth:`load` reads the ``summary.json`` files under a ``--out`` folder.
    :meth:`to_frame` is the tidy table (one row per claim).
    """

    def __init__(self, summaries: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
        if isinstance(summaries, Mapping):
            summaries = [summaries] if "claims" in summaries else list(summaries.values())
        if not isinstance(summaries, Sequence) or not all(isinstance(s, Mapping) and "claims" in s for s in summaries):
            raise InvalidType("summaries must be what wideflow.experiments.reproduce returns ({experiment: summary}), "
                              f"a summary dict with 'claims', or a list of them; got {type(summaries).__name__}.")
        self.summaries = list(summaries)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Claims:
        """The claims of every ``<folder>/<experiment>/summary.json`` (the output of ``wideflow reproduce``)."""
        files = sorted(Path(folder).glob("*/summary.json"))
        if not files:
            raise FileMissing(f"{str(folder)!r} has no <experiment>/summary.json; expected the --out folder of "
                              "'wideflow reproduce'.")
        return cls([json.loads(f.read_text()) for f in files])

    def claims(self) -> list[tuple[str, Mapping[str, Any]]]:
        """(experiment, claim dict) for every claim, in order."""
        return [(str(s.get("experiment", "")), c) for s in self.summaries for c in s["claims"]]

    def to_frame(self) -> pd.DataFrame:
        """One row per claim: experiment, id, verdict, reproduced, headline, source."""
        return pd.DataFrame([{"experiment": e, "id": c["id"], "verdict": c["verdict"],
                              "reproduced": c["verdict"] == "reproduced", "headline": c.get("headline", ""),
                              "source": c.get("source", "")} for e, c in self.claims()])

    def __repr__(self) -> str:
        counts = self.to_frame()["verdict"].value_counts().to_dict() if self.claims() else {}
        return f"Claims({len(self.claims())} claims: {counts})"

    def _repr_html_(self) -> str:
        pairs = self.claims()
        return claims_html([c for _, c in pairs], [e for e, _ in pairs])
