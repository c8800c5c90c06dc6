"""``wideflow train`` with the library's reach: losses, model kinds, --out DIR, checkpoints killed and resumed."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.cli import main

SMALL = ["-n", "24", "--n-test", "16", "-d", "4", "-m", "16", "--steps", "20", "--log-every", "10"]


def _run(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", *SMALL, *argv]) == 0
    return out.getvalue()


@pytest.mark.parametrize("model", ["shallow", "quadratic", "p3l", "deep"])
@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
def test_every_model_kind_and_scaling_with_the_logistic_loss(model: str, scaling: str, one_torch_thread) -> None:
    printed = _run("--model", model, "--scaling", scaling, "--loss", "logistic")
    assert "train_accuracy" in printed and "test_accuracy" in printed


def test_out_writes_history_model_and_figure(tmp_path: Path, one_torch_thread) -> None:
    _run("--out", str(tmp_path / "out"), "--loss", "logistic")
    history = pd.read_csv(tmp_path / "out" / "history.csv")
    assert list(history["step"]) == [0, 10, 20] and "test_accuracy" in history
    model = wf.load(tmp_path / "out" / "model.pt")
    X, y, _, _ = wf.registry.make_data("axis_xor", 4, n=24, n_test=0, seed=0)
    again = wf.train(wf.registry.build_model("p3l", 4, 16, seed=0), X, y, steps=20, log_every=10, loss="logistic",
                     progress=False)
    assert torch.equal(model(X), again.model(X))
    assert (tmp_path / "out" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_killed_run_resumed_writes_the_same_history(tmp_path: Path) -> None:
    """SIGKILL a run once its first checkpoint exists; the rerun with --resume writes the history.csv of an
    uninterrupted run, byte for byte (float64, resumed state restored exactly)."""
    args = [sys.executable, "-m", "wideflow", "train", "-n", "128", "-m", "256", "--n-test", "64", "--steps", "3000",
            "--log-every", "50", "--loss", "logistic"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, capture_output=True, env=env, timeout=600)
    ckpt = tmp_path / "run.ckpt"
    proc = subprocess.Popen([*args, "--checkpoint", str(ckpt), "--checkpoint-every", "50", "--out", str(tmp_path / "cut")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    step = torch.load(ckpt, weights_only=False)["step"]
    assert 0 < step < 3000 and not (tmp_path / "cut").exists()  # killed mid-run
    subprocess.run([*args, "--resume", str(ckpt), "--checkpoint-every", "50", "--out", str(tmp_path / "cut")], check=True, capture_output=True,
                   env=env, timeout=600)
    assert (tmp_path / "cut" / "history.csv").read_bytes() == (tmp_path / "full" / "history.csv").read_bytes()
