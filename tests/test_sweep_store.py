"""One run (wideflow.sweep.runner) and the results store (wideflow.sweep.store), without Dask."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.cli import main
from wideflow.errors import InvalidArgument, TrainingDiverged
from wideflow.registry import TEST_SEED_OFFSET
from wideflow.sweep import Outcome, Store, load_arrays, load_history, load_results, normalize, run_id, run_one
from wideflow.sweep.runner import run_guarded

# tiny problems: one torch thread (see the fixture); module fixtures set it themselves
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"model": {"kind": "p3l", "d": 5, "m": 16}, "data": {"kind": "axis_xor", "n": 8, "n_test": 10},
        "train": {"steps": 60, "log_every": 10}, "record": {"features": True}}


@pytest.fixture(scope="module")
def tiny_output() -> wf.sweep.RunOutput:
    torch.set_num_threads(1)
    return run_one(TINY)


def test_run_one_is_wideflow_train_on_the_configured_model_and_data(tiny_output: wf.sweep.RunOutput) -> None:
    model = wf.P3L(5, 16, seed=0)
    X, y = wf.data.axis_xor(8, 5, seed=0)
    Xt, yt = wf.data.axis_xor(10, 5, seed=TEST_SEED_OFFSET)  # the test set is drawn with data.seed + the offset
    ref = wf.train(model, X, y, steps=60, X_test=Xt, y_test=yt, log_every=10)
    pd.testing.assert_frame_equal(tiny_output.history, ref.history)  # same code path: bitwise
    m = tiny_output.metrics
    assert m["final_train_loss"] == ref.final_train_loss and m["final_test_error"] == ref.final_test_error
    assert m["initial_train_loss"] == ref.history["train_loss"].iloc[0] and m["method"] == ref.method
    # h_0 = s_h W_0 Φ(x_1)ᵀ: the engine forms it by another matmul, so equal up to float64 rounding of a sum
    # of D = 16 terms (~16 ulp; 1e-13 relative is generous, atol for entries near 0)
    np.testing.assert_allclose(tiny_output.arrays["h0_train"], model.features(X)[0].numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(tiny_output.arrays["h0_test"], model.features(Xt)[0].numpy(), rtol=1e-13, atol=1e-15)
    # h_T: the trained model's features, up to the rounding of W_T = W_0 + B Φ (float64, 60 steps)
    np.testing.assert_allclose(tiny_output.arrays["hT_train"], ref.model.features(X)[0].numpy(), rtol=1e-10,
                               atol=1e-12)
    assert {k: v.shape for k, v in tiny_output.arrays.items()} == {k: (16,) for k in
                                                                    ("h0_train", "hT_train", "h0_test", "hT_test")}


def test_fitted_rate_is_the_least_squares_slope_of_the_log_loss_over_the_second_half(
        tiny_output: wf.sweep.RunOutput) -> None:
    h = tiny_output.history.iloc[len(tiny_output.history) // 2:]
    slope, intercept = np.polyfit(h["time"], np.log(h["train_loss"]), 1)
    assert tiny_output.metrics["fitted_rate"] == pytest.approx(slope, rel=1e-12)  # float64 least squares
    pure = pd.DataFrame({"time": np.arange(10.0), "train_loss": 3.0 * np.exp(-0.25 * np.arange(10.0))})
    rate, r2 = wf.sweep.fitted_rate(pure)
    assert rate == pytest.approx(-0.25, rel=1e-12) and r2 == pytest.approx(1.0, abs=1e-12)


def test_a_diverging_run_is_a_failed_outcome_with_its_error() -> None:
    config = {**TINY, "train": {"steps": 50, "log_every": 5, "step_size": 1e9}}
    with pytest.raises(TrainingDiverged):
        run_one(config)
    outcome = run_guarded(config)
    assert not outcome.ok and outcome.error.startswith("TrainingDiverged: training diverged")
    assert "Traceback" in outcome.traceback and outcome.config == normalize(config)


def test_store_round_trip_and_tidy_table(tmp_path: Path, tiny_output: wf.sweep.RunOutput) -> None:
    store = Store(tmp_path / "s")
    cfg = normalize(TINY)
    rid = run_id(cfg)
    store.write(Outcome(rid, cfg, output=tiny_output, batch_size=1))
    assert store.finished(rid)
    pd.testing.assert_frame_equal(load_history(tmp_path / "s", rid), tiny_output.history)
    arrays = load_arrays(tmp_path / "s", rid)
    for key, value in tiny_output.arrays.items():
        np.testing.assert_array_equal(arrays[key], value)
    table = wf.load_results(tmp_path / "s")
    row = table.iloc[0]
    assert (row["run_id"], row["status"], row["model.m"], row["data.n"]) == (rid, "ok", 16, 8)
    assert row["final_train_loss"] == tiny_output.metrics["final_train_loss"]
    assert row["wideflow_version"] == wf.__version__
    long = load_results(tmp_path / "s", histories=True)
    assert len(long) == len(tiny_output.history) and {"step", "train_loss", "model.m"} <= set(long.columns)
    meta = json.loads((tmp_path / "s" / "store.json").read_text())
    assert meta["wideflow_version"] == wf.__version__
    assert re.fullmatch(r"[0-9a-f]{40}", meta["git_revision"])  # the tests run from a git checkout


def test_a_half_written_run_is_not_finished_and_is_rewritten(tmp_path: Path, tiny_output: wf.sweep.RunOutput) -> None:
    store = Store(tmp_path / "s")
    cfg = normalize(TINY)
    rid = run_id(cfg)
    folder = store.folder(rid)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "history.parquet").write_bytes(b"truncated")  # a writer killed mid-way, before metrics.json
    (folder / ".metrics.json.123.abcd.tmp").write_text("{")
    assert not store.finished(rid) and store.table([rid]).empty
    store.write(Outcome(rid, cfg, output=tiny_output))
    assert store.finished(rid)
    pd.testing.assert_frame_equal(load_history(tmp_path / "s", rid), tiny_output.history)


def test_failures_are_recorded_and_never_overwrite_a_finished_run(tmp_path: Path,
                                                                  tiny_output: wf.sweep.RunOutput) -> None:
    store = Store(tmp_path / "s")
    cfg = normalize(TINY)
    rid = run_id(cfg)
    store.write(Outcome(rid, cfg, error="RuntimeError: boom", traceback="Traceback ..."))
    row = store.table([rid]).iloc[0]
    assert row["status"] == "failed" and row["error"] == "RuntimeError: boom" and math.isnan(row.get("wall_time", np.nan))
    error = json.loads((store.folder(rid) / "error.json").read_text())
    assert error["traceback"] == "Traceback ..."
    store.write(Outcome(rid, cfg, output=tiny_output))
    assert not (store.folder(rid) / "error.json").exists()
    store.write(Outcome(rid, cfg, error="RuntimeError: late duplicate"))
    assert store.table([rid]).iloc[0]["status"] == "ok"


def test_no_test_set_gives_nan_metrics_that_survive_the_store(tmp_path: Path) -> None:
    cfg = normalize({**TINY, "data": {"kind": "axis_xor", "n": 8, "n_test": 0}, "record": {"features": False}})
    out = run_one(cfg)
    assert math.isnan(out.metrics["final_test_error"]) and out.arrays == {}
    store = Store(tmp_path / "s")
    store.write(Outcome(run_id(cfg), cfg, output=out))
    assert math.isnan(load_results(tmp_path / "s").iloc[0]["final_test_error"])


def test_a_store_is_never_created_over_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgument, match="not empty and not a wideflow results store"):
        Store(tmp_path)
    with pytest.raises(InvalidArgument, match="no store.json"):
        load_results(tmp_path / "missing")


def test_results_command_prints_and_exports(tmp_path: Path, tiny_output: wf.sweep.RunOutput,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "s")
    for seed in (0, 1):
        cfg = normalize({**TINY, "model": {**TINY["model"], "seed": seed}})
        store.write(Outcome(run_id(cfg), cfg, output=tiny_output))
    assert main(["results", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "model.seed" in out and "model.m" not in out  # only the columns that tell runs apart
    assert main(["results", str(tmp_path / "s"), "--histories", "--csv", str(tmp_path / "h.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "h.csv")) == 2 * len(tiny_output.history)


def test_file_data_runs_through_load_dataset(tmp_path: Path) -> None:
    X, y = wf.data.random_labels(12, 3, seed=4)
    Xt, yt = wf.data.random_labels(7, 3, seed=5)
    np.savez(tmp_path / "train.npz", X=X.numpy(), y=y.numpy())
    np.savez(tmp_path / "test.npz", X=Xt.numpy(), y=yt.numpy())
    cfg = {"model": {"kind": "shallow", "d": 3, "m": 8}, "train": {"steps": 20, "log_every": 10},
           "data": {"kind": "file", "path": str(tmp_path / "train.npz"), "test_path": str(tmp_path / "test.npz")}}
    out = run_one(cfg)
    ref = wf.train(wf.Shallow(3, 8), X, y, steps=20, X_test=Xt, y_test=yt, log_every=10)
    pd.testing.assert_frame_equal(out.history, ref.history)  # the same data reach wideflow.train: bitwise
