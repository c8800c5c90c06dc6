"""A user's own data from the command line and the library: ``--data FILE`` for ``wideflow train``, ``check``
and ``sweep``, a test file or a seeded test fraction, standardization (wideflow.data.load_train_test)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.cli import main
from wideflow.errors import InvalidArgument, InvalidShape
from wideflow.registry import make_data
from wideflow.sweep import expand, load_spec, run_id
from wideflow.sweep.runner import run_one

SMALL = ["-m", "16", "--steps", "20", "--log-every", "10"]


def _cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


def _table(n: int, d: int, seed: int = 0) -> pd.DataFrame:
    """A regression table as a user would write it with pandas: named input columns and a y column."""
    X, _ = wf.data.random_labels(n, d, seed=seed)
    table = pd.DataFrame(X.numpy(), columns=[f"feature_{j}" for j in range(d)])
    table["y"] = np.sin(table["feature_0"]) + 0.5 * table["feature_1"]
    return table


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "mydata.csv"
    _table(40, 3).to_csv(path, index=False)
    return path


def _history(printed: str) -> pd.DataFrame:
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["step"])
    return pd.read_csv(io.StringIO("\n".join(lines[start:-1])), sep=r"\s+")


def test_train_on_a_pandas_csv_with_a_test_fraction(csv: Path, one_torch_thread) -> None:
    printed = _cli("train", "--data", str(csv), "--test-fraction", "0.2", *SMALL)
    assert f"data: file {str(csv)!r}, n = 32, d = 3, n_test = 8" in printed
    history = _history(printed)
    assert list(history["step"]) == [0, 10, 20] and history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    # the same run in Python: the split is load_train_test's, drawn with --seed
    X, y, Xt, yt = wf.data.load_train_test(csv, test_fraction=0.2, seed=0)
    result = wf.train(wf.P3L(3, 16), X, y, steps=20, log_every=10, X_test=Xt, y_test=yt, progress=False)
    # to_string prints 6 significant digits
    assert np.allclose(history["test_error"], result.history["test_error"], rtol=1e-5)


def test_check_on_a_pandas_csv(csv: Path, one_torch_thread) -> None:
    printed = _cli("check", "--data", str(csv), "-m", "64")
    assert printed.startswith(f"data: file {str(csv)!r}, n = 40, d = 3, no test set")
    assert "n = 40, d = 3, D = 64, m = 64" in printed and "applies: Theorem 3" in printed


def test_test_file_with_reordered_columns_is_read_in_the_training_order(csv: Path, tmp_path: Path) -> None:
    test = _table(10, 3, seed=5)
    test[["y", "feature_2", "feature_0", "feature_1"]].to_csv(tmp_path / "test.csv", index=False)
    X, y, Xt, yt = make_data("file", 3, path=str(csv), test_path=str(tmp_path / "test.csv"))
    assert torch.equal(Xt, torch.tensor(test[["feature_0", "feature_1", "feature_2"]].to_numpy()))
    assert torch.equal(yt, torch.tensor(test["y"].to_numpy()))
    test.drop(columns="feature_2").assign(other=1.0).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(InvalidShape, match=r"missing: \['feature_2'\], extra: \['other'\]"):
        make_data("file", 3, path=str(csv), test_path=str(tmp_path / "other.csv"))


def test_split_is_seeded_disjoint_and_keeps_the_order() -> None:
    X = torch.arange(20.0, dtype=torch.float64)[:, None]
    y = X[:, 0] * 10
    a = wf.data.split_dataset(X, y, 0.25, seed=3)
    assert all(torch.equal(u, v) for u, v in zip(a, wf.data.split_dataset(X, y, 0.25, seed=3), strict=True))
    assert not torch.equal(a[2], wf.data.split_dataset(X, y, 0.25, seed=4)[2])
    assert (len(a[0]), len(a[2])) == (15, 5)
    assert sorted(a[0][:, 0].tolist() + a[2][:, 0].tolist()) == X[:, 0].tolist()
    assert torch.all(a[0][1:, 0] > a[0][:-1, 0]) and torch.equal(a[1], a[0][:, 0] * 10)
    with pytest.raises(InvalidArgument, match="leaves 0 test"):
        wf.data.split_dataset(X, y, 0.01)


def test_standardization_uses_the_training_statistics(csv: Path) -> None:
    X, y, Xt, yt = wf.data.load_train_test(csv, test_fraction=0.25, seed=1, standardize="xy")
    raw = wf.data.load_train_test(csv, test_fraction=0.25, seed=1)
    # float64 means and standard deviations of 30 numbers of order 1: 1e-12 is round-off
    assert torch.allclose(X.mean(0), torch.zeros(3, dtype=X.dtype), atol=1e-12) and torch.allclose(X.std(0, correction=0),
                                                                                    torch.ones(3, dtype=X.dtype), atol=1e-12)
    assert abs(float(y.mean())) < 1e-12 and abs(float(y.std(correction=0)) - 1) < 1e-12
    mean, std = raw[0].mean(0), raw[0].std(0, correction=0)
    assert torch.allclose(Xt, (raw[2] - mean) / std, atol=1e-12)
    Xx, yx, _, _ = wf.data.load_train_test(csv, standardize="x")
    assert torch.equal(yx, wf.data.load_dataset(csv)[1])
    const = wf.data.standardized(torch.ones(4, 1, dtype=torch.float64), torch.arange(4.0), which="x")[0]
    assert torch.equal(const, torch.zeros(4, 1, dtype=torch.float64))  # a constant column is only centred


def test_diabetes_csv_end_to_end(tmp_path: Path, one_torch_thread) -> None:
    """scikit-learn's diabetes data (442 patients, 10 inputs, bundled), saved to CSV, trained from the command
    line with a held-out fifth and standardized targets."""
    from sklearn.datasets import load_diabetes

    path = tmp_path / "diabetes.csv"
    load_diabetes(as_frame=True).frame.rename(columns={"target": "y"}).to_csv(path, index=False)
    printed = _cli("train", "--data", str(path), "--test-fraction", "0.2", "--standardize", "xy", "-m", "128",
                   "--steps", "100", "--log-every", "50")
    assert "n = 354, d = 10, n_test = 88, standardized (xy)" in printed
    history = _history(printed)
    # the zero predictor's test error is half the mean square of the standardized test targets, about 0.5; a
    # linear fit explains about half of the variance (R² ≈ 0.5), so a test error below 0.35 means it learned
    # (measured: 0.50 at step 0, 0.26 at step 100)
    assert history["test_error"].iloc[0] > 0.4 and history["test_error"].iloc[-1] < 0.35


def test_npz_with_a_test_file(tmp_path: Path, one_torch_thread) -> None:
    X, y = wf.data.axis_xor(24, 4, seed=0)
    Xt, yt = wf.data.axis_xor(12, 4, seed=1)
    np.savez(tmp_path / "train.npz", X=X.numpy(), y=y.numpy())
    np.savez(tmp_path / "test.npz", X=Xt.numpy(), y=yt.numpy())
    printed = _cli("train", "--data", str(tmp_path / "train.npz"), "--test-data", str(tmp_path / "test.npz"),
                   "-d", "4", *SMALL)
    direct = wf.train(wf.P3L(4, 16), X, y, steps=20, log_every=10, X_test=Xt, y_test=yt, progress=False)
    assert np.allclose(_history(printed)["test_error"], direct.history["test_error"], rtol=1e-5)


def test_generators_keep_working(one_torch_thread) -> None:
    printed = _cli("train", "--data", "random_labels", "-n", "8", "--n-test", "4", "-d", "3", *SMALL)
    X, y, Xt, yt = make_data("random_labels", 3, n=8, n_test=4, seed=0)
    direct = wf.train(wf.P3L(3, 16), X, y, steps=20, log_every=10, X_test=Xt, y_test=yt, progress=False)
    # the table prints 6 decimals: 0.028390 is exact to 5e-7, 1.8e-5 relative
    assert np.allclose(_history(printed)["train_loss"], direct.history["train_loss"], rtol=1e-4)
    assert not printed.startswith("data:")


SPEC = """\
seeds = 2
[base]
model = { kind = "p3l", d = 20, m = 16 }
train = { steps = 20, log_every = 10 }
[grid]
model.scaling = ["ours", "ntk"]
"""


def test_sweep_with_a_data_file_replaces_every_runs_data(csv: Path, tmp_path: Path, one_torch_thread) -> None:
    (tmp_path / "grid.toml").write_text(SPEC)
    printed = _cli("sweep", str(tmp_path / "grid.toml"), "--data", str(csv), "--test-fraction", "0.25",
                   "--dry-run", "--store", str(tmp_path / "store"))
    assert "4 runs (4 to run)" in printed
    from wideflow.cli.sweep_cmd import with_data_file
    from wideflow.cli import build_parser

    args = build_parser().parse_args(["sweep", str(tmp_path / "grid.toml"), "--data", str(csv), "--test-fraction",
                                      "0.25"])
    configs = expand(with_data_file(load_spec(tmp_path / "grid.toml"), args))
    assert all(run_id(c) in printed for c in configs)
    assert {(c["model"]["d"], c["data"]["kind"], c["data"]["seed"]) for c in configs} == {(3, "file", 0), (3, "file", 1)}
    out = run_one(configs[1])  # seed 1: its own split of the 40 rows, 10 held out
    X, y, Xt, yt = wf.data.load_train_test(csv, test_fraction=0.25, seed=1)
    direct = wf.train(wf.P3L(3, 16, seed=1), X, y, steps=20, log_every=10, X_test=Xt, y_test=yt, progress=False)
    assert np.allclose(out.history["test_error"], direct.history["test_error"], rtol=1e-12)
    (tmp_path / "axis.toml").write_text(SPEC + "[[zip]]\ndata.n = [8, 16]\n")
    with pytest.raises(InvalidArgument, match="varies data in an axis"):
        with_data_file(load_spec(tmp_path / "axis.toml"), args)


def test_file_run_ids_do_not_change_with_the_split_keys() -> None:
    """A file configuration written before test_fraction, standardize and data.seed existed keeps its id
    (c54c9eb814e9cd77, computed by the previous release)."""
    config = {"data": {"kind": "file", "path": "x.npz", "test_path": "t.npz"}, "model": {"d": 3, "m": 8}}
    assert run_id(config) == "c54c9eb814e9cd77"
    assert run_id({**config, "data": {**config["data"], "test_path": None, "test_fraction": 0.2}}) != run_id(config)


def test_reproduce_real_on_a_pandas_csv_from_a_config(tmp_path: Path, one_torch_thread) -> None:
    """``[real] data = FILE`` in a ``--config`` file runs Experiment 3's comparison on the user's CSV: d is the
    file's number of inputs, every seed gets its own split, and an edited file is a new data source (its runs are
    computed again, never reused from the old file)."""
    path = tmp_path / "mydata.csv"
    _table(60, 4).to_csv(path, index=False)
    config = tmp_path / "real.toml"
    config.write_text(f"[run]\nn_test = 20\nseeds = 2\n[real]\ndata = '{path.as_posix()}'\nm = [8]\nn = [16, 32]\n"
                      "steps = 20\nlog_every = 10\n")
    out = tmp_path / "out"
    printed = _cli("reproduce", "real", "--preset", "tiny", "--config", str(config), "--out", str(out),
                   "--no-progress")
    assert "12 runs, 12 computed now" in printed  # 3 scalings × 2 n × 2 seeds
    runs = pd.read_csv(out / "real" / "runs.csv")
    assert set(runs["model.d"]) == {4} and set(runs["status"]) == {"ok"}
    table = pd.read_csv(out / "real" / "real_test_error.csv")
    assert len(table) == 12 and np.isfinite(table["test_error"]).all()
    assert "the data file" in (out / "REPORT.md").read_text()
    again = _cli("reproduce", "real", "--preset", "tiny", "--config", str(config), "--out", str(out),
                 "--no-progress")
    assert "12 runs, 0 computed now" in again
    edited = _table(60, 4)
    edited["y"] = -edited["y"]
    edited.to_csv(path, index=False)
    changed = _cli("reproduce", "real", "--preset", "tiny", "--config", str(config), "--out", str(out),
                   "--no-progress")
    assert "12 runs, 12 computed now" in changed
