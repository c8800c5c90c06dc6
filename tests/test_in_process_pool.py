"""Runs that need a training callback (``reproduce richness``, ``reproduce limits``) spread over worker processes by
``train_in_process``: the same table as one after another, failures recorded, finished work kept."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from wideflow.experiments import common, richness
from wideflow.experiments.common import experiment_settings, load_preset, train_in_process
from wideflow.experiments.reproduce import EXPERIMENTS
from wideflow.sweep import dask_runner
from wideflow.sweep.store import Store

pytestmark = pytest.mark.integration


def _configs() -> list[dict[str, Any]]:
    s = experiment_settings(load_preset("tiny", experiment_keys={k: v.KEYS for k, v in EXPERIMENTS.items()}),
                            "richness")
    return richness.run_configs(s)


def _train_or_fail(config: dict[str, Any]) -> Any:
    """``richness.train_run``, except for the runs tagged ``fail``, which raise, naming the process they ran in."""
    if config["tags"].get("fail"):
        raise ValueError(f"this run was told to fail in process {os.getpid()}")
    return richness.train_run(config)


METRICS = ["initial_train_loss", "final_train_loss", "final_test_error", "final_displacement",
           "final_kernel_drift", "rate"]


def test_workers_give_the_table_of_one_run_after_another(tmp_path, monkeypatch) -> None:
    configs = _configs()
    monkeypatch.setattr(common, "POOL_MIN_FLOPS", float("inf"))
    serial, n_serial = train_in_process("richness", configs, richness.train_run, tmp_path / "serial", progress=False)
    monkeypatch.setattr(common, "POOL_MIN_FLOPS", 0.0)
    monkeypatch.setattr(dask_runner, "available_cores", lambda: 2)
    pooled, n_pooled = train_in_process("richness", configs, richness.train_run, tmp_path / "pool", progress=False)
    assert n_serial == n_pooled == len(configs)
    assert list(pooled["run_id"]) == list(serial["run_id"]) and (pooled["status"] == "ok").all()
    # float64 runs of the same seeds on 1 thread (workers) or 2 (here) differ only in the order of a product's
    # partial sums: measured at the quick presets, richness's 100 runs agreed bitwise and limits' 50 to 2.8e-13
    # relative (its NTK gap), so 1e-9 leaves a factor of 3000 for round-off that grows over a run's steps
    np.testing.assert_allclose(pooled[METRICS].to_numpy(float), serial[METRICS].to_numpy(float), rtol=1e-9)
    # a repeated command finds every run and trains nothing
    _, again = train_in_process("richness", configs, richness.train_run, tmp_path / "pool", progress=False)
    assert again == 0


def test_a_run_that_fails_on_a_worker_is_recorded_and_the_others_finish(tmp_path, monkeypatch) -> None:
    configs = _configs()[:4]
    configs[1] = {**configs[1], "tags": {**configs[1]["tags"], "fail": True}}
    monkeypatch.setattr(common, "POOL_MIN_FLOPS", 0.0)
    monkeypatch.setattr(dask_runner, "available_cores", lambda: 2)
    table, computed = train_in_process("richness", configs, _train_or_fail, tmp_path / "store", progress=False)
    assert computed == 4
    assert list(table["status"]) == ["ok", "failed", "ok", "ok"]
    error = table["error"].iloc[1]
    assert error.startswith("ValueError: this run was told to fail in process ")
    assert int(error.rsplit(" ", 1)[1]) != os.getpid()  # it ran on a worker
    # the failed run is the only one the next command trains
    store = Store(tmp_path / "store")
    assert [store.finished(rid) for rid in table["run_id"]] == [True, False, True, True]


def test_runs_on_a_gpu_stay_in_this_process(tmp_path, monkeypatch) -> None:
    # one process per core would each open the GPU; such runs go one after another here (they fail at once in
    # this test, before touching a device, naming the process they ran in)
    configs = [{**c, "train": {**c["train"], "device": "cuda"}, "tags": {**c["tags"], "fail": True}}
               for c in _configs()[:2]]
    monkeypatch.setattr(common, "POOL_MIN_FLOPS", 0.0)
    monkeypatch.setattr(dask_runner, "available_cores", lambda: 2)
    table, _ = train_in_process("richness", configs, _train_or_fail, tmp_path / "store", progress=False)
    assert [int(e.rsplit(" ", 1)[1]) for e in table["error"]] == [os.getpid()] * 2
