"""``wideflow reproduce``: presets, the verdict logic over tables, and the tiny preset end to end (CI smoke test)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wideflow.cli import main
from wideflow.errors import InvalidArgument, InvalidType, UnknownName
from wideflow.experiments import EXPERIMENTS, RunsFailed, exp1, exp2, exp3, load_preset, reproduce
from wideflow.experiments.common import experiment_settings, plot_over_seeds
from wideflow.fits import loglinear_fit, loglog_slope

KEYS = {name: mod.KEYS for name, mod in EXPERIMENTS.items()}


def settings(preset: str = "quick", config: Path | None = None, **kw) -> dict:
    return load_preset(preset, config, experiment_keys=KEYS, **kw)


# --------------------------------------------------------------------------------------- presets
def test_builtin_presets_load_and_paper_has_the_papers_settings() -> None:
    for name in ("quick", "paper", "tiny"):
        s = settings(name)
        for exp in EXPERIMENTS:
            assert EXPERIMENTS[exp].configs(experiment_settings(s, exp))
    paper = settings("paper")
    run = paper["run"]
    assert (run["step_size"], run["n_test"], run["reduction"], run["c_hat"]) == (1.0, 500, "mean", 1.0)
    assert all(paper[e]["steps"] == 50_000 for e in EXPERIMENTS)
    assert paper["exp1"]["d"] == 20 and paper["exp1"]["n"] == [20, 40, 80, 160]
    assert paper["exp2"]["m"] == 8192 and paper["exp2"]["d"] == 30 and paper["exp2"]["m_teacher"] == 5
    configs = exp3.configs(experiment_settings(paper, "exp3"))
    assert all(c["model"]["D"] == c["model"]["m"] for c in configs)
    assert {c["model"]["scaling"] for c in configs} == {"ours", "ntk", "mf"}


def test_config_file_overrides_the_preset_and_seeds_repeat_settings(tmp_path) -> None:
    (tmp_path / "mine.toml").write_text("[exp1]\nm = 64\nn = [5, 10]\n[run]\nseeds = 2\n")
    s = settings("tiny", tmp_path / "mine.toml")
    assert s["exp1"]["m"] == 64 and s["exp1"]["steps"] == settings("tiny")["exp1"]["steps"]
    assert s["preset"] == "tiny+mine.toml"
    configs = exp1.configs(experiment_settings(s, "exp1"))
    assert [(c["data"]["n"], c["model"]["seed"], c["data"]["seed"]) for c in configs] == [
        (5, 0, 0), (5, 1, 1), (10, 0, 0), (10, 1, 1)]
    s = settings("tiny", tmp_path / "mine.toml", seeds=3, device="cpu")
    assert len(exp1.configs(experiment_settings(s, "exp1"))) == 6
    (tmp_path / "mine.toml").write_text("[exp2]\nseeds = 2\n")
    s = settings("tiny", tmp_path / "mine.toml", seeds=3)  # --seeds wins over a per-experiment value too
    assert experiment_settings(s, "exp2")["seeds"] == 3


def test_preset_errors_name_file_table_and_key(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[exp1]\nstep = 10\n")
    with pytest.raises(UnknownName, match=r"unknown key 'step' in \[exp1\] of .*bad.toml.*Did you mean 'steps'"):
        settings("tiny", bad)
    bad.write_text("[exp4]\nm = 1\n")
    with pytest.raises(UnknownName, match=r"table \[exp4\]"):
        settings("tiny", bad)
    bad.write_text("[exp3]\nn = [64, 32]\n")
    with pytest.raises(InvalidArgument, match=r"bad.toml.*exp3.n must be strictly increasing"):
        settings("tiny", bad)
    bad.write_text("[exp2]\nm = 'wide'\n")
    with pytest.raises(InvalidType, match=r"bad.toml.*exp2.m must be an integer >= 1; got str 'wide'"):
        settings("tiny", bad)
    bad.write_text("[run]\nreduction = 'avg'\n")
    with pytest.raises(UnknownName, match=r"run.reduction='avg' is not known"):
        settings("tiny", bad)
    bad.write_text("[exp3]\nfig4_n = 12\n")
    with pytest.raises(InvalidArgument, match=r"exp3.fig4_n=12 must be one of exp3.n=\[8, 16\]"):
        exp3.configs(experiment_settings(settings("tiny", bad), "exp3"))
    bad.write_text("[run]\nn_test = 0\n")
    for exp in (exp2, exp3):
        with pytest.raises(InvalidArgument, match=f"{exp.NAME}.n_test=0: Figure"):
            exp.configs(experiment_settings(settings("tiny", bad), exp.NAME))
    bad.write_text("[exp1\n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        settings("tiny", bad)
    with pytest.raises(FileNotFoundError):
        settings("tiny", tmp_path / "missing.toml")


# --------------------------------------------------------------------------------------- fits
def test_loglinear_fit_tells_linear_from_sublinear() -> None:
    t = np.linspace(0, 1000, 101)
    exact = loglinear_fit(t, 0.3 * np.exp(-0.01 * t))
    # an exact exponential: the least-squares slope is exact up to float64 round-off of log (1e-16 relative)
    assert exact["rate"] == pytest.approx(0.01, rel=1e-10) and exact["r2"] == pytest.approx(1.0, abs=1e-12)
    assert exact["constancy"] == pytest.approx(1.0, rel=1e-9)
    # a power law: late/early = 0.378 whatever the exponent (the number behind LINEAR_CONSTANCY = 0.5)
    for p in (0.5, 1.0, 3.0):
        assert loglinear_fit(t, (1.0 + t) ** -p)["constancy"] == pytest.approx(0.3788, abs=1e-3)
    # two exponentials: the rate falls from the fast mode's towards the slow one's, but stays linear
    mixture = loglinear_fit(t, np.exp(-0.01 * t) + np.exp(-0.002 * t))
    assert 0.5 < mixture["constancy"] < 0.9
    floored = loglinear_fit(t, np.maximum(np.exp(-0.1 * t), 1e-40))
    assert floored["rate"] == pytest.approx(0.1, rel=1e-10)  # the points below 1e-25 are left out
    assert math.isnan(loglinear_fit(t[:3], np.ones(3))["rate"])
    assert loglog_slope([10, 100, 1000], [1.0, 0.1, 0.01]) == pytest.approx(-1.0, rel=1e-12)


def test_plot_over_seeds_draws_the_mean_and_a_band_only_with_several_seeds() -> None:
    from matplotlib.figure import Figure

    table = pd.DataFrame({"n": [1, 1, 2, 2], "seed": [0, 1, 0, 1], "err": [1.0, 3.0, 2.0, 4.0]})
    ax = Figure().subplots()
    plot_over_seeds(ax, table, "n", "err", color="k")
    assert ax.lines[0].get_ydata().tolist() == [2.0, 3.0] and len(ax.collections) == 1
    ax = Figure().subplots()
    plot_over_seeds(ax, table[table["seed"] == 0], "n", "err", color="k")
    assert ax.lines[0].get_ydata().tolist() == [1.0, 2.0] and not ax.collections


# --------------------------------------------------------------------------------------- verdicts
def _rates(values: dict[int, tuple[float, float, float]]) -> dict[str, pd.DataFrame]:
    rows = [{"n": n, "seed": 0, "rate": r, "r2": r2, "constancy": c, "drop": 1e-9} for n, (r, r2, c) in values.items()]
    return {"fig1_rates": pd.DataFrame(rows)}


def test_exp1_verdicts() -> None:
    s = {"d": 20}
    good = {c.id: c for c in exp1.claims(_rates({20: (1e-2, 0.999, 0.98), 40: (3e-3, 0.99, 0.8), 80: (1e-3, 0.9, 0.3)}), s)}
    assert good["exp1.linear_rate"].reproduced and good["exp1.rate_falls_with_n"].reproduced
    assert good["exp1.linear_rate"].measured["per_n"][20]["r2"] == 0.999
    # late/early 0.35 is below what a power law L ∝ t^-p gives over the window; the criterion asks for ≥ 0.5
    bad = {c.id: c for c in exp1.claims(_rates({20: (1e-2, 0.999, 0.35), 40: (3e-2, 0.99, 0.8)}), s)}
    assert not bad["exp1.linear_rate"].reproduced and not bad["exp1.rate_falls_with_n"].reproduced
    none_small = exp1.claims(_rates({40: (3e-3, 0.999, 1.0)}), s)[0]
    assert not none_small.reproduced and "cannot be checked" in none_small.criterion


def test_exp2_verdict() -> None:
    def table(quad: list[float]) -> dict[str, pd.DataFrame]:
        rows = [{"model": "shallow", "n": n, "seed": 0, "test_error": 0.1} for n in (50, 100)]
        rows += [{"model": "quadratic", "n": n, "seed": 0, "test_error": q} for n, q in zip((50, 100), quad)]
        return {"fig2_test_error": pd.DataFrame(rows)}

    (win,) = exp2.claims(table([0.05, 0.08]), {})
    assert win.reproduced and win.measured["per_n"][50]["ratio"] == pytest.approx(0.5)
    (lose,) = exp2.claims(table([0.05, 0.12]), {})
    assert not lose.reproduced and "lower at 1/2 n" in lose.headline


def _exp3_tables(ours_err: float, move_ntk: float, mf_h0: float) -> dict[str, pd.DataFrame]:
    fig3 = []
    for m in (256, 1024):
        for n in (16, 64, 256):
            errors = {"ours": ours_err * 64 / n, "ntk": 0.4 * (64 / n) ** 0.2, "mf": 0.2 * 64 / n}
            fig3 += [{"scaling": sc, "m": m, "n": n, "seed": 0, "test_error": e} for sc, e in errors.items()]
    stats = []
    for m in (256, 1024):
        for sc, move, h0 in (("ours", 1.5, 0.4), ("ntk", move_ntk, 0.4), ("mf", 1.6, mf_h0)):
            stats.append({"scaling": sc, "m": m, "seed": 0, "movement": move, "rms_h0": h0, "rms_hT": 2.0,
                          "rate": 1e-3, "r2": 0.999, "constancy": 0.95, "drop": 1e-4})
    return {"fig3_test_error": pd.DataFrame(fig3), "feature_stats": pd.DataFrame(stats)}


def test_exp3_verdicts() -> None:
    s = {"scalings": ["ours", "ntk", "mf"], "fig4_n": 64}
    good = {c.id: c for c in exp3.claims(_exp3_tables(0.1, 0.05, 0.02), s)}
    assert all(c.reproduced for c in good.values()), {k: c.headline for k, c in good.items()}
    assert good["exp3.mf_falls_faster_than_ntk"].measured["slope"][256]["mf"] == pytest.approx(-1.0)
    assert good["exp3.features_move_ours_not_ntk"].measured["mean_abs_displacement"][1024]["ratio"] == 30.0
    bad = {c.id: c for c in exp3.claims(_exp3_tables(0.3, 0.5, 0.1), s)}
    assert not bad["exp3.ours_lowest_test_error"].reproduced  # MF (0.2·64/n) beats ours (0.3·64/n) everywhere
    assert "ours lowest in 0/6" in bad["exp3.ours_lowest_test_error"].headline
    assert not bad["exp3.features_move_ours_not_ntk"].reproduced  # ratio 3 < 10
    assert not bad["exp3.mf_features_start_near_zero_and_spread"].reproduced  # 0.1/0.4 > 0.1
    only = exp3.claims(_exp3_tables(0.1, 0.05, 0.02), {"scalings": ["ours", "mf"], "fig4_n": 64})
    assert [c.id for c in only] == ["exp3.mf_features_start_near_zero_and_spread", "exp3.ours_linear_rate"]


# --------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("repro")
    code = main(["reproduce", "all", "--preset", "tiny", "--out", str(out), "--no-progress"])
    return out, code


@pytest.mark.integration
def test_tiny_preset_end_to_end_writes_every_file(tiny) -> None:
    out, code = tiny
    assert code == 0
    s = settings("tiny")
    expected = {
        "exp1": (["fig1_training_loss"], {"fig1_training_loss": ["n", "seed", "step", "time", "train_loss"],
                                          "fig1_rates": ["n", "seed", "rate", "r2", "constancy"]}),
        "exp2": (["fig2_test_error"], {"fig2_test_error": ["model", "n", "seed", "test_error"]}),
        "exp3": (["fig3_test_error", "fig4_dynamics_features"],
                 {"fig3_test_error": ["scaling", "m", "n", "seed", "test_error"],
                  "fig4_curves": ["scaling", "m", "seed", "time", "train_loss", "test_error"],
                  "fig4_features": ["scaling", "m", "neuron", "h0_train", "h0_test", "hT_train", "hT_test"],
                  "feature_stats": ["scaling", "m", "movement", "rms_h0", "rms_hT"]}),
    }
    for name, (figs, tables) in expected.items():
        folder = out / name
        summary = json.loads((folder / "summary.json").read_text())
        n_runs = len(EXPERIMENTS[name].configs(experiment_settings(s, name)))
        assert summary["runs"] == {**summary["runs"], "total": n_runs, "computed_now": n_runs, "failed": 0}
        assert summary["settings"] == experiment_settings(s, name) | {"n": s[name]["n"]}
        assert summary["claims"] and all(
            set(c) >= {"id", "statement", "criterion", "measured", "reproduced", "headline"}
            and isinstance(c["reproduced"], bool) for c in summary["claims"])
        for fig in figs:
            assert (folder / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (folder / f"{fig}.pdf").read_bytes()[:5] == b"%PDF-"
        runs = pd.read_csv(folder / "runs.csv")
        assert len(runs) == n_runs and (runs["status"] == "ok").all()
        assert {"run_id", "data.n", "model.m", "final_train_loss", "final_test_error"} <= set(runs.columns)
        for stem, columns in tables.items():
            table = pd.read_csv(folder / f"{stem}.csv")
            assert set(columns) <= set(table.columns) and len(table) > 0 and table[columns].notna().all().all()
    # Figure 1: one curve per n, each with steps/log_every + 1 logged points
    curves = pd.read_csv(out / "exp1" / "fig1_training_loss.csv")
    assert curves.groupby("n").size().to_dict() == {n: 200 // 10 + 1 for n in (4, 8, 16)}
    # Figure 4's scatter: every neuron of every width at fig4_n
    feats = pd.read_csv(out / "exp3" / "fig4_features.csv")
    assert feats.groupby(["scaling", "m"]).size().to_dict() == {(sc, m): m for sc in ("ours", "ntk", "mf")
                                                               for m in (16, 32)}
    report = (out / "REPORT.md").read_text()
    assert "| Experiment | Claim of the paper | Measured | Criterion | Reproduced |" in report
    n_claims = sum(len(json.loads((out / e / "summary.json").read_text())["claims"]) for e in EXPERIMENTS)
    assert report.count("| exp") == n_claims and f"of {n_claims} claims reproduced" in report


@pytest.mark.integration
def test_rerun_computes_nothing_and_gives_the_same_verdicts(tiny) -> None:
    out, _ = tiny
    before = {e: json.loads((out / e / "summary.json").read_text()) for e in EXPERIMENTS}
    tables = (out / "exp3" / "fig3_test_error.csv").read_bytes()
    assert main(["reproduce", "all", "--preset", "tiny", "--out", str(out), "--no-progress"]) == 0
    for e in EXPERIMENTS:
        after = json.loads((out / e / "summary.json").read_text())
        assert after["runs"]["computed_now"] == 0 and after["runs"]["reused"] == before[e]["runs"]["total"]
        assert after["claims"] == before[e]["claims"]
    assert (out / "exp3" / "fig3_test_error.csv").read_bytes() == tables


@pytest.mark.integration
def test_failed_runs_are_reported_and_the_rest_still_written(tiny, tmp_path) -> None:
    """A step size far above 2N/λ_max diverges; the command names the failed runs and exits non-zero."""
    out, _ = tiny
    cfg = tmp_path / "diverge.toml"
    cfg.write_text("[exp1]\nn = [4]\nstep_size = 1e6\n")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with pytest.raises(RunsFailed, match=r"(?s)1 run\(s\) failed.*exp1.*TrainingDiverged"):
            reproduce(["exp1", "exp2"], out, preset="tiny", config=cfg, scheduler=client, progress=False)
    summary = json.loads((out / "exp1" / "summary.json").read_text())
    assert summary["runs"]["failed"] == 1 and summary["claims"] == []
    assert "TrainingDiverged" in summary["failed_runs"][0]["error"]
    assert json.loads((out / "exp2" / "summary.json").read_text())["claims"]
    assert "no verdicts: 1 run(s) failed" in (out / "REPORT.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["reproduce", "exp1", "--preset", "tiny", "--out", str(tmp_path),
                 "--config", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wideflow: error: FileMissing:") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["reproduce", "exp9", "--out", str(tmp_path)])
