"""One model sharded over processes (wideflow.distributed): torchrun with 2 gloo processes gives the history of
the single-process run, for finite D and D = ∞ under each scaling.

Tolerance: the sharded run sums the outputs of the two blocks of neurons in another order; over 300 float64
steps the histories agree to a relative 1e-15 (measured), so 1e-9 leaves six orders of margin; float32 to 1e-4
(measured 1e-6).
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.errors import InvalidArgument

sys.path.insert(0, str(Path(__file__).parent))
from distributed_worker import CASES, run  # noqa: E402

WORKER = Path(__file__).parent / "distributed_worker.py"


@pytest.mark.integration
def test_two_processes_train_the_single_process_run(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER),
           "cases", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, D, scaling, dtype in CASES:
        sharded = pd.read_csv(tmp_path / f"{name}.csv")
        single = run(D, scaling, dtype, distributed=False).history
        assert list(sharded["step"]) == list(single["step"])
        rtol = 1e-4 if dtype == torch.float32 else 1e-9
        for column in ("train_loss", "test_error"):
            a = torch.tensor(sharded[column].to_numpy(), dtype=torch.float64)
            b = torch.tensor(single[column].to_numpy(), dtype=torch.float64)
            assert torch.allclose(a, b, rtol=rtol, atol=0), (name, column)


def test_any_block_of_neurons_is_drawn_as_in_the_whole_model() -> None:
    """Counter-based draws: the features of a block of neurons, drawn alone, are those rows of the whole model's
    (finite D and D = ∞, plain and symmetrized)."""
    X, _ = wf.data.axis_xor(9, 6, seed=0)
    for D in (40, math.inf):
        for scaling in ("ours", "ntk"):
            whole = wf.P3L(6, 96, D=D, scaling=scaling, seed=2)
            H = whole.features_block(X.double(), keep=False)
            block = wf.P3L(6, 96, D=D, scaling=scaling, seed=2).features_block(X.double(), 16, 32, keep=False)
            half = 48 if scaling == "ntk" else 0
            rows = torch.cat([H[16:32], H[half + 16 : half + 32]]) if half else H[16:32]
            assert torch.equal(block, rows)


def test_sharding_needs_a_process_group() -> None:
    X, y = wf.data.axis_xor(8, 6, seed=0)
    with pytest.raises(InvalidArgument, match="torchrun"):
        wf.train(wf.P3L(6, 32, D=math.inf), X, y, steps=2, distributed=True)
    with pytest.raises(InvalidArgument, match="kernel-space engine"):
        wf.train(wf.Shallow(6, 32), X, y, steps=2, method="weights", distributed=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(out: Path, *options: str) -> list[subprocess.Popen]:
    """Two processes of a sharded run, started directly (no torchrun agent, so that one can die alone)."""
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), "fault", str(out), *options], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.stderr.read()) for p in procs]


@pytest.mark.integration
def test_a_killed_rank_stops_the_other_and_the_resumed_run_is_bit_identical(tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed at step 150 of 300: rank 0 stops with a clear error within a minute (the collective
    timeout, wideflow.distributed.TIMEOUT); rerun with resume=, both resume at the last checkpoint step they
    both have (100) and the history is the uninterrupted run's, bit for bit (float64)."""
    (tmp_path / "ref").mkdir()
    _finish(_launch(tmp_path / "ref"))
    reference = pd.read_csv(tmp_path / "ref" / "rank0.csv")
    ckpt = str(tmp_path / "run.ckpt")
    t0 = time.monotonic()
    (rank0, err0), (rank1, _) = _finish(_launch(tmp_path, "--checkpoint", ckpt, "--kill-rank", "1", "--kill-at", "150"))
    assert time.monotonic() - t0 < 60
    assert rank1 == -9 and rank0 != 0
    assert "lost another process" in err0
    assert [code for code, _ in _finish(_launch(tmp_path, "--checkpoint", ckpt))] == [0, 0]
    resumed = pd.read_csv(tmp_path / "rank0.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns="time"), reference.drop(columns="time"), check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "rank1.csv"), resumed, check_exact=True)


@pytest.mark.integration
def test_divergence_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    results = _finish(_launch(tmp_path, "--step-size", "1e6"))
    assert [code for code, _ in results] == [3, 3], [err[-1500:] for _, err in results]
    reports = [(tmp_path / f"rank{r}.error").read_text().splitlines()[0] for r in range(2)]
    assert reports[0] == reports[1] and reports[0].startswith("TrainingDiverged")


@pytest.mark.integration
def test_processes_given_different_models_are_refused(tmp_path: Path) -> None:
    results = _finish(_launch(tmp_path, "--seed-per-rank"))
    assert [code for code, _ in results] == [3, 3], [err[-1500:] for _, err in results]
    for rank in range(2):
        report = (tmp_path / f"rank{rank}.error").read_text()
        assert report.startswith("DistributedMismatch") and "model" in report


@pytest.mark.integration
def test_the_process_group_wideflow_starts_is_ended_at_exit() -> None:
    """A process that exits with a live gloo group can abort in gloo's teardown ("terminate called without an
    active exception"); wideflow ends the group it started from an exit handler."""
    code = ("import atexit, torch.distributed as dist, wideflow as wf\n"
            "X, y = wf.data.axis_xor(8, 6, seed=0)\n"
            "wf.train(wf.P3L(6, 32, D=24), X, y, steps=2, distributed=True, progress=False)\n"
            "assert dist.is_initialized()\n"
            "atexit._run_exitfuncs()\n"
            "print('ended' if not dist.is_initialized() else 'still initialized')\n")
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ended", done.stderr[-2000:]
