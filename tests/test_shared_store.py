"""One results store, two drivers, and stores that cannot be written (the rules are in wideflow.sweep.claims and
the fault-tolerance list of wideflow.sweep.dask_runner)."""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from wideflow.errors import OutputError
from wideflow.sweep import Store, expand, load_results, run_id, run_one, run_sweep
from wideflow.sweep import claims as claims_module
from wideflow.sweep import dask_runner, store as store_module
from wideflow.sweep.claims import Claims

TINY = {"model": {"kind": "p3l", "d": 5, "m": 16}, "data": {"kind": "axis_xor", "n": 8, "n_test": 10},
        "train": {"steps": 40, "log_every": 10}}
SIXTEEN_TOML = """
seeds = 4
[base]
model = { kind = "p3l", d = 5, m = 16 }
data = { kind = "axis_xor", n = 16, n_test = 10 }
train = { steps = %(steps)d, log_every = 500, method = "weights" }
[grid]
model.scaling = ["ours", "ntk"]
model.activation = ["relu", "tanh"]
"""


def test_a_claim_excludes_every_other_driver_until_released(tmp_path: Path) -> None:
    Store(tmp_path / "s")
    with Claims(tmp_path / "s") as a, Claims(tmp_path / "s") as b:
        assert a.take("r1") and a.take("r1")  # taking again what one holds is a no-op
        assert not b.take("r1") and b.take("r2") and not a.take("r2")
        a.release("r1")
        assert b.take("r1")
    with Claims(tmp_path / "s") as c:  # leaving the context released everything
        assert c.take("r1") and c.take("r2")


class _ReadOnlyLock:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def acquire(self) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def test_a_read_only_store_fails_before_any_run_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the suite may run as root, which writes through any permission bit: the read-only disk is simulated where
    # the first write of a sweep happens, the claim of its runs
    store = tmp_path / "s"
    Store(store)
    monkeypatch.setattr(claims_module, "FileLock", _ReadOnlyLock)

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cluster was started for a store that cannot be written")

    monkeypatch.setattr(dask_runner, "_client", no_cluster)
    with pytest.raises(OutputError, match=f"cannot write to the results store '{store}'.*Read-only file system"):
        run_sweep([TINY], store, progress=False)
    assert list((store / "runs").iterdir()) == []


def test_a_new_store_on_a_read_only_disk_names_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(OutputError, match=r"could not make '.*new/runs': Read-only file system"):
        Store(tmp_path / "new")


def test_a_finished_sweep_reads_from_a_read_only_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s")
    config = expand({"base": TINY})[0]
    from wideflow.sweep.runner import Outcome

    store.write(Outcome(run_id(config), config, output=run_one(config)))
    monkeypatch.setattr(claims_module, "FileLock", _ReadOnlyLock)
    table = run_sweep([config], tmp_path / "s", progress=False)  # nothing to compute: nothing to write
    assert list(table["status"]) == ["ok"] and table.attrs["computed"] == 0


@pytest.mark.integration
def test_a_full_disk_stops_the_sweep_and_keeps_the_finished_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 one_torch_thread: None) -> None:
    distributed = pytest.importorskip("distributed")
    configs = expand({"base": TINY, "grid": {"model": {"scaling": ["ours", "ntk"]}}, "seeds": 3})
    real = store_module.atomic_json
    written = {"metrics": 0}

    def full_after_two(path: Path, value: object) -> Path:
        if path.name == "metrics.json":
            if written["metrics"] == 2:
                raise OutputError(f"could not write {str(path)!r}: {os.strerror(errno.ENOSPC)}.")
            written["metrics"] += 1
        return real(path, value)

    monkeypatch.setattr(store_module, "atomic_json", full_after_two)
    store = tmp_path / "s"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        with pytest.raises(OutputError, match=r"the sweep stopped: could not write .*No space left on device\. "
                                              r"The 2 finished runs in .* are kept"):
            run_sweep(configs, store, scheduler=client, progress=False, batch=False)
        monkeypatch.setattr(store_module, "atomic_json", real)
        assert sum(Store(store).finished(run_id(c)) for c in configs) == 2
        table = run_sweep(configs, store, scheduler=client, progress=False, batch=False)
    assert (table["status"] == "ok").all() and table.attrs["computed"] == 4
    assert not list(store.rglob("*.tmp"))


@pytest.mark.integration
def test_two_sweep_commands_on_one_store_compute_every_run_once(tmp_path: Path) -> None:
    """Two ``wideflow sweep`` processes started together on one store: 16 runs, each computed by exactly one of
    them (the counts they print add up to 16), each present once and whole, none failed."""
    spec = tmp_path / "grid.toml"
    spec.write_text(SIXTEEN_TOML % {"steps": 4000})
    store = tmp_path / "store"
    command = [sys.executable, "-m", "wideflow", "sweep", str(spec), "--store", str(store), "--workers", "1",
               "--torch-threads", "1", "--no-batch", "--no-progress"]
    drivers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
               for _ in range(2)]
    outputs = [driver.communicate(timeout=600) for driver in drivers]
    for driver, (out, err) in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, err[-2000:]
        assert "16 runs in" in out and "16 ok, 0 failed" in out
    computed = [int(re.search(r"\((\d+) computed by this command\)", out).group(1)) for out, _ in outputs]
    assert sum(computed) == 16, computed
    table = load_results(store)
    assert len(table) == 16 and table["run_id"].is_unique and (table["status"] == "ok").all()
    assert sorted(p.parent.name for p in (store / "runs").glob("*/metrics.json")) == sorted(table["run_id"])
    assert not list(store.rglob("error.json")) and not list(store.rglob("*.tmp"))
    configs = expand(__import__("tomllib").loads(spec.read_text()))
    one = next(c for c in configs if c["model"]["scaling"] == "ntk" and c["model"]["seed"] == 3)
    row = table.set_index("run_id").loc[run_id(one)]
    assert row["final_train_loss"] == pytest.approx(run_one(one).metrics["final_train_loss"], rel=1e-12)
