"""Sweeps on a real Dask LocalCluster: results, failures, a worker killed mid-task, the driver SIGKILLed.

One LocalCluster of 2 worker processes (1 thread each) is shared by the tests of this module; the CLI test
starts its own embedded LocalCluster, as ``wideflow sweep`` does by default.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wideflow.cli import main
from wideflow.sweep import expand, load_results, run_id, run_one, run_sweep

# the in-process reference runs are tiny: one torch thread (see the fixture)
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.integration]

distributed = pytest.importorskip("distributed")

TINY = {"model": {"kind": "p3l", "d": 5, "m": 16}, "data": {"kind": "axis_xor", "n": 8, "n_test": 10},
        "train": {"steps": 40, "log_every": 10}}
TWELVE = {"base": TINY, "grid": {"model": {"scaling": ["ours", "ntk", "mf"]}, "data": {"n": [8, 12]}}, "seeds": 2}
TWELVE_TOML = """
seeds = 2
[base]
model = { kind = "p3l", d = 5, m = 16 }
data = { kind = "axis_xor", n_test = 10 }
train = { steps = %(steps)d, log_every = 10 }
[grid]
model.scaling = ["ours", "ntk", "mf"]
data.n = [8, 12]
"""


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c



def metric_times(store: Path) -> dict[str, int]:
    """Run id → modification time of its metrics.json, for the finished runs of a store."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (store / "runs").glob("*/metrics.json")}


def test_a_twelve_run_sweep_on_two_workers_matches_one_by_one_runs_and_resumes_to_a_no_op(
        client: distributed.Client, tmp_path: Path) -> None:
    assert len(client.nthreads()) == 2
    configs = expand(TWELVE)
    assert len(configs) == 12
    table = run_sweep(configs, tmp_path / "s", scheduler=client, progress=False)
    assert list(table["run_id"]) == [run_id(c) for c in configs] and (table["status"] == "ok").all()
    for config, (_, row) in zip(configs, table.iterrows(), strict=True):
        ref = run_one(config).metrics
        # the sweep batches these runs; batched and one-by-one runs agree to float64 rounding
        # (tests/test_batched_training.py: ≤ 1.1e-15 measured), 1e-11 leaves room
        for key in ("final_train_loss", "final_test_error", "fitted_rate"):
            assert row[key] == pytest.approx(ref[key], rel=1e-11)
    before = metric_times(tmp_path / "s")
    again = run_sweep(configs + configs[:1], tmp_path / "s", scheduler=client, progress=False)
    assert metric_times(tmp_path / "s") == before  # nothing ran again
    pd.testing.assert_frame_equal(again.iloc[:12], table)
    pd.testing.assert_series_equal(again.iloc[12], table.iloc[0], check_names=False)  # listed twice: two rows
    pd.testing.assert_frame_equal(load_results(tmp_path / "s").set_index("run_id").loc[table["run_id"]].reset_index(),
                                  table)


def test_a_failed_run_is_reported_and_the_others_finish(client: distributed.Client, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(
        '[base]\nmodel = { kind = "p3l", d = 5, m = 16 }\ndata = { kind = "axis_xor", n = 8, n_test = 10 }\n'
        'train = { steps = 40, log_every = 10 }\n[grid]\ntrain.step_size = [1.0, 1e6, 0.5]\n')
    store = tmp_path / "s"
    code = main(["sweep", str(spec), "--store", str(store), "--scheduler", client.scheduler.address])
    out, err = capsys.readouterr()
    assert code == 1  # not every run succeeded
    assert "3 runs in" in out and "2 ok, 1 failed" in out and "TrainingDiverged" in out
    assert '"step_size": 1000000.0' in out  # the failed run's configuration
    assert "failed: TrainingDiverged" in err and "3/3" in err and "<" in err  # progress bar with its ETA
    table = load_results(store)
    assert sorted(table["status"]) == ["failed", "ok", "ok"]
    bad = table[table["status"] == "failed"].iloc[0]
    assert bad["train.step_size"] == 1e6 and "diverged" in bad["error"]
    assert (store / "runs" / bad["run_id"] / "error.json").exists()


def test_a_worker_killed_mid_task_has_its_task_run_elsewhere(client: distributed.Client, tmp_path: Path) -> None:
    configs = expand({"base": {**TINY, "train": {"steps": 4000, "log_every": 1000}},
                      "grid": {"model": {"scaling": ["ours", "mf"]}}})  # 2 runs of ~0.5 s, one per worker
    pids = client.run(os.getpid)
    done: dict[str, pd.DataFrame] = {}
    sweep = threading.Thread(target=lambda: done.update(table=run_sweep(
        configs, tmp_path / "s", scheduler=client, batch=False, progress=False)))
    sweep.start()
    victim, key = None, None
    deadline = time.monotonic() + 120
    while victim is None and time.monotonic() < deadline:
        running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
        victim, key = next(((a, k) for a, keys in running.items() for k in keys if k.startswith("wideflow-run")),
                           (None, None))
        time.sleep(0.02)
    assert victim is not None, "no task started within 120 s"
    os.kill(pids[victim], signal.SIGKILL)
    sweep.join(timeout=180)
    assert not sweep.is_alive()
    table = done["table"]
    assert len(table) == 2 and (table["status"] == "ok").all()
    killed_run = key.removeprefix("wideflow-run-")[:16]
    row = table.set_index("run_id").loc[killed_run]
    config = next(c for c in configs if run_id(c) == killed_run)
    assert row["final_train_loss"] == run_one(config).metrics["final_train_loss"]  # the same code path: bitwise
    client.wait_for_workers(2, timeout=120)  # the nanny started a new worker in its place
    assert pids[victim] not in client.run(os.getpid).values()


def test_sigkill_of_the_driver_then_resume_gives_the_uninterrupted_table(client: distributed.Client,
                                                                         tmp_path: Path) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(TWELVE_TOML % {"steps": 1000})  # 12 runs of ~0.2 s on 2 workers
    configs = expand(tomllib.loads(spec.read_text()))
    store = tmp_path / "killed"
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "wideflow", "sweep", str(spec), "--store", str(store),
                               "--scheduler", client.scheduler.address, "--no-batch"], stdout=log, stderr=log)
    deadline = time.monotonic() + 180
    while len(metric_times(store)) < 3:
        assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    log.close()
    before = metric_times(store)
    assert 3 <= len(before) < 12, "the driver was not killed mid-sweep"

    resumed = run_sweep(configs, store, scheduler=client, batch=False, progress=False)
    reference = run_sweep(configs, tmp_path / "uninterrupted", scheduler=client, batch=False, progress=False)
    after = metric_times(store)
    assert {k: after[k] for k in before} == before  # runs finished before the kill were not run again
    assert len(after) == 12 and len(list((store / "runs").iterdir())) == 12  # none lost, none duplicated
    # everything but when and by which code revision: the driver subprocess reads the git revision when it
    # starts, the resumed and the reference sweep when this process first wrote a store; a commit landing
    # in between changes that column (and only it)
    session = ["wall_time", "git_revision"]
    pd.testing.assert_frame_equal(resumed.drop(columns=session), reference.drop(columns=session), check_exact=True)


def test_the_sweep_command_runs_twelve_runs_on_an_embedded_local_cluster(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(TWELVE_TOML % {"steps": 40})
    store = tmp_path / "s"
    assert main(["sweep", str(spec), "--store", str(store), "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert "12 runs in" in out and "12 ok, 0 failed" in out
    assert "12/12" in err and "<" in err  # the progress bar over runs, with its ETA
    table = load_results(store)
    assert len(table) == 12 and (table["status"] == "ok").all()
    assert np.isfinite(table["final_test_error"]).all()
