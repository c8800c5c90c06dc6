"""Smoke tests: every script in examples/ runs at its tiny size and writes what it says it writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

# Files each example writes (relative to its working directory) at its default --out.
OUTPUTS = {
    "feature_vs_lazy.py": ["out/examples/feature_vs_lazy.png", "out/examples/feature_vs_lazy.csv"],
}


def test_the_examples_are_there() -> None:
    assert {p.name for p in SCRIPTS} >= {"quickstart.py", "feature_vs_lazy.py", "check_theorem.py"}


def run_example(script: Path, cwd: Path, *args: str) -> str:
    """Run ``script`` at its tiny size in a fresh interpreter; return its standard output."""
    env = dict(os.environ, WIDEFLOW_TINY="1", MPLBACKEND="Agg",
               # tiny matrices: one torch thread (see conftest.one_torch_thread for the measured reason)
               OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"{script.name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    assert out.stdout.strip(), f"{script.name} printed nothing"
    return out.stdout


@pytest.mark.integration
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_runs_at_tiny_size(script: Path, tmp_path: Path) -> None:
    run_example(script, tmp_path)
    for rel in OUTPUTS.get(script.name, []):
        assert (tmp_path / rel).stat().st_size > 0, f"{script.name} did not write {rel}"


@pytest.mark.integration
def test_check_theorem_on_a_users_csv(tmp_path: Path) -> None:
    """The documented way to bring one's own data: a CSV with a header row and a column y."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 4))
    y = np.sin(X[:, 0]) - X[:, 1] * X[:, 2]
    header = ",".join([f"x{k}" for k in range(4)] + ["y"])
    np.savetxt(tmp_path / "mine.csv", np.column_stack([X, y]), delimiter=",", header=header, comments="")
    out = run_example(EXAMPLES / "check_theorem.py", tmp_path, "--data", "mine.csv")
    assert "n = 10, d = 4" in out
    # the PL bound (leaky ReLU, docs/theory.md §5) is a lower bound on the decay rate of the flow; GD at a quarter of
    # its stability limit beat it by ~10x on the demo data, so a violation here would be a real defect
    assert "holds at every logged time" in out
