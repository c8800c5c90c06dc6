"""Rich display in Jupyter (wideflow.display): training results, the theorem check's report, claims."""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

import wideflow as wf
from wideflow.display import Claims, loss_svg
from wideflow.errors import FileMissing, InvalidType
from wideflow.experiments.common import Claim

VOID = {"br"}


class _Balance(HTMLParser):
    """Checks that every opened tag is closed in order (the HTML Jupyter gets is well nested)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag, tag


def _well_nested(text: str) -> str:
    parser = _Balance()
    parser.feed(text)
    assert parser.stack == []
    return text


def test_train_result_shows_a_table_and_a_loss_plot(one_torch_thread) -> None:
    X, y = wf.data.axis_xor(16, 4, seed=0)
    Xt, yt = wf.data.axis_xor(8, 4, seed=1)
    result = wf.train(wf.P3L(4, 16), X, y, steps=40, log_every=10, X_test=Xt, y_test=yt, progress=False)
    page = _well_nested(result._repr_html_())
    assert "TrainResult" in page and "final test error" in page and f"{result.final_test_error:.4g}" in page
    assert "<th>train_loss</th>" in page and page.count("<polyline") == 2
    svg = ET.fromstring(re.search(r"<svg.*</svg>", page).group(0))  # the SVG is well-formed XML
    points = [p.split(",") for p in svg.find("{http://www.w3.org/2000/svg}polyline").get("points").split()]
    assert len(points) == len(result.history)
    # the curve is monotone like the loss: GD on this model decreases L_t at every logged step, and a larger
    # loss is drawn higher (a smaller y coordinate)
    ys = [float(p[1]) for p in points]
    assert result.history["train_loss"].is_monotonic_decreasing and ys == sorted(ys)


def test_loss_plot_leaves_out_what_a_log_scale_cannot_show() -> None:
    history = pd.DataFrame({"step": [0, 1, 2], "time": [0.0, 1.0, 2.0], "train_loss": [1.0, 0.0, math.inf]})
    assert loss_svg(history).count(",") == 1  # only the point (0, 1.0)
    assert loss_svg(history.iloc[:1]) == ""


def test_check_report_is_a_dict_with_a_table(one_torch_thread) -> None:
    X, y = wf.data.random_labels(12, 5, seed=0)
    report = wf.check(wf.P3L(5, 64), X, y, verbose=False)
    assert isinstance(report, dict) and json.loads(wf.io.to_json(report))["theorem"] == report["theorem"]
    page = _well_nested(report._repr_html_())
    for name in report["conditions"]:
        assert f"<td style='text-align:left'>{html.escape(name)}</td>" in page
    assert f"{report['theorem']}" in page and "guaranteed rate" in page
    assert str(report) == wf.theory.format_check(report)


def _claim(verdict: str, statement: str = "f learns") -> Claim:
    test = {"p_value": 0.01, "n_seeds": 5, "verdict": verdict}
    return Claim("exp9.claim", statement, "Section 9", "paired t-test", "ratio 2.0 [1.5, 2.5]", verdict, test,
                 "runs.csv")


def test_claims_show_their_verdicts(tmp_path: Path) -> None:
    page = _well_nested(_claim("reproduced", "<script>")._repr_html_())
    assert "exp9.claim" in page and ">reproduced</b>" in page and "0.01" in page and "<script>" not in page
    several = {**_claim("inconclusive").to_dict(),
               "test": {"a": {"p_value": 0.2, "n_seeds": 3}, "b": {"p_value": 0.5, "n_seeds": 4}}}
    summary = {"experiment": "exp9", "claims": [_claim("not reproduced").to_dict(), several]}
    view = Claims({"exp9": summary})
    page = _well_nested(view._repr_html_())
    assert "2 claims</b>: 0 reproduced, 1 not reproduced, 1 inconclusive" in page
    assert "<td style='text-align:left'>0.5</td><td style='text-align:left'>3</td>" in page  # largest p, fewest seeds
    assert list(view.to_frame()["verdict"]) == ["not reproduced", "inconclusive"]
    (tmp_path / "exp9").mkdir()
    (tmp_path / "exp9" / "summary.json").write_text(json.dumps(summary))
    assert Claims.load(tmp_path).to_frame().equals(view.to_frame())
    with pytest.raises(FileMissing, match="summary.json"):
        Claims.load(tmp_path / "exp9")
    with pytest.raises(InvalidType, match="summaries"):
        Claims([1, 2])
