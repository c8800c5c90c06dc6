"""The data sets of the paper's Section 4 and the loader of users' data files (wideflow.data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.errors import InvalidArgument, InvalidShape, InvalidType, NonFiniteInput, UnknownName
from wideflow.registry import DATA_KINDS, TEST_SEED_OFFSET, make_data


# --------------------------------------------------------------------------------------- generators
@pytest.mark.parametrize(
    "gen", [wf.data.random_labels, wf.data.quadratic_teacher, wf.data.axis_xor], ids=lambda g: g.__name__
)
def test_generators_are_deterministic_float64_and_seed_dependent(gen) -> None:
    X, y = gen(50, 6, seed=3)
    X2, y2 = gen(50, 6, seed=3)
    X3, _ = gen(50, 6, seed=4)
    assert X.shape == (50, 6) and y.shape == (50,)
    assert X.dtype == y.dtype == torch.float64
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(X, X3)


def test_generators_keep_their_numbers() -> None:
    """Pinned values: a change here silently changes every figure and stored sweep (all exact in float64)."""
    X, y = wf.data.random_labels(2, 3, seed=0)
    assert X[0].tolist() == [1.5409961082440433, -0.2934289057609464, -2.1787893820745574]
    assert y.tolist() == [-0.32139382479924905, -0.1488923756060716]
    _, y = wf.data.quadratic_teacher(2, 3, seed=0)
    assert y.tolist() == [0.20781131663104682, -0.23611635177341253]
    X, y = wf.data.axis_xor(2, 3, seed=0)
    assert X.tolist() == [[1.0, 0.0, 0.4156397287995759], [0.0, -1.0, -0.08123411374509826]]
    assert y.tolist() == [1.0, -1.0]


def test_random_labels_law() -> None:
    """Exp 1: y ~ U[-1/2, 1/2] independent of x ~ N(0, I). With 20000 samples the standard error of the
    mean of y is sqrt(1/12/20000) = 0.002 and of the mean of x is 0.007, so 0.02 is > 2.8 standard errors."""
    X, y = wf.data.random_labels(20_000, 3, seed=1)
    assert float(y.min()) >= -0.5 and float(y.max()) <= 0.5
    assert abs(float(y.mean())) < 0.01 and abs(float(y.var()) - 1 / 12) < 0.005
    assert abs(float(X.mean())) < 0.02 and abs(float(X.var()) - 1) < 0.03
    assert abs(float(torch.corrcoef(torch.stack([X[:, 0], y]))[0, 1])) < 0.03


def test_quadratic_teacher_is_the_formula_and_shared_between_seeds() -> None:
    """Exp 2: y = (1/5) Σ c*_i relu(xᵀW*_i x / d), with the teacher fixed by teacher_seed only."""
    d = 4
    X, y = wf.data.quadratic_teacher(30, d, seed=0)
    Xt, yt = wf.data.quadratic_teacher(30, d, seed=1)
    gen = torch.Generator().manual_seed(0)
    c = torch.randint(0, 2, (5,), generator=gen).double() * 2 - 1
    W = torch.randn(5, d, d, generator=gen, dtype=torch.float64)
    for inputs, target in ((X, y), (Xt, yt)):
        h = torch.stack([torch.stack([x @ W[i] @ x / d for i in range(5)]) for x in inputs])
        torch.testing.assert_close(target, torch.relu(h) @ c / 5, rtol=1e-13, atol=1e-15)
    _, y_other_teacher = wf.data.quadratic_teacher(30, d, seed=0, teacher_seed=1)
    assert not torch.equal(y, y_other_teacher)


def test_axis_xor_distribution() -> None:
    """Exp 3 (Appendix I.3): (x1, x2) on the four axis points, y = x1² − x2², x3.. ~ U[-1, 1]."""
    X, y = wf.data.axis_xor(4000, 5, seed=2)
    corners = {(1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)}
    assert {tuple(r) for r in X[:, :2].tolist()} == corners
    torch.testing.assert_close(y, X[:, 0] ** 2 - X[:, 1] ** 2, rtol=0, atol=0)
    assert float(X[:, 2:].abs().max()) <= 1.0
    # each corner has probability 1/4: binomial standard deviation sqrt(4000·3/16) ≈ 27, so ±150 is > 5 sd
    counts = [int(((X[:, 0] == a) & (X[:, 1] == b)).sum()) for a, b in corners]
    assert all(abs(c - 1000) < 150 for c in counts)
    with pytest.raises(InvalidArgument, match="d must be an integer >= 2"):
        wf.data.axis_xor(10, 1)


# --------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("kind", [k for k, v in DATA_KINDS.items() if v.synthetic])
def test_make_data_draws_the_generator_with_the_test_seed_offset(kind: str) -> None:
    gen = getattr(wf.data, kind)
    X, y, Xt, yt = make_data(kind, 4, n=6, n_test=5, seed=2)
    assert torch.equal(X, gen(6, 4, seed=2)[0]) and torch.equal(y, gen(6, 4, seed=2)[1])
    X_test, y_test = gen(5, 4, seed=2 + TEST_SEED_OFFSET)
    assert torch.equal(Xt, X_test) and torch.equal(yt, y_test)
    assert make_data(kind, 4, n=6, seed=2)[2:] == (None, None)  # n_test = 0: no test set
    assert torch.equal(make_data(kind, 4, n=6, n_test=5, seed=2, test_seed=9)[2], gen(5, 4, seed=9)[0])


def test_make_data_reads_files_and_refuses_unknown_options(tmp_path) -> None:
    X, y = wf.data.random_labels(7, 3, seed=1)
    np.savez(tmp_path / "d.npz", inputs=X.numpy(), y=y.numpy())
    X2, y2, Xt, yt = make_data("file", 3, path=str(tmp_path / "d.npz"), test_path=tmp_path / "d.npz", x_key="inputs")
    assert torch.equal(X2, X) and torch.equal(yt, y)
    assert DATA_KINDS["quadratic_teacher"].options == {"m_teacher": 5, "teacher_seed": 0, "activation": "relu"}
    with pytest.raises(UnknownName, match="m_teacher"):
        make_data("axis_xor", 3, n=4, m_teacher=2)
    with pytest.raises(UnknownName, match="'axis_xor'"):
        make_data("axis_xro", 3, n=4)


# --------------------------------------------------------------------------------------- load_dataset
def test_npz_round_trip(tmp_path) -> None:
    X, y = wf.data.random_labels(7, 3)
    np.savez(tmp_path / "d.npz", X=X.numpy(), y=y.numpy())
    X2, y2 = wf.data.load_dataset(tmp_path / "d.npz", d=3)
    assert torch.equal(X, X2) and torch.equal(y, y2) and X2.dtype == torch.float64
    np.savez(tmp_path / "k.npz", inputs=X.numpy().astype(np.float32), labels=np.arange(7))
    X3, y3 = wf.data.load_dataset(tmp_path / "k.npz", x_key="inputs", y_key="labels")
    assert X3.dtype == y3.dtype == torch.float64 and y3.tolist() == list(range(7))


def test_csv_round_trip_and_column_choice(tmp_path) -> None:
    table = pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": [0.5, -0.5, 0.0], "b": [4.0, 5.0, 6.0]})
    table.to_csv(tmp_path / "d.csv", index=False)
    X, y = wf.data.load_dataset(tmp_path / "d.csv", y_column="target")
    assert X.tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]] and y.tolist() == [0.5, -0.5, 0.0]
    X, _ = wf.data.load_dataset(tmp_path / "d.csv", y_column="target", x_columns=["b", "a"])
    assert X.tolist() == [[4.0, 1.0], [5.0, 2.0], [6.0, 3.0]]


def test_loaded_data_trains_a_model(tmp_path) -> None:
    X, y = wf.data.axis_xor(12, 4)
    pd.DataFrame({**{f"x{j}": X[:, j].numpy() for j in range(4)}, "y": y.numpy()}).to_csv(tmp_path / "x.csv",
                                                                                           index=False)
    X2, y2 = wf.data.load_dataset(tmp_path / "x.csv", d=4)
    result = wf.train(wf.P3L(4, 16), X2, y2, steps=5, log_every=5, progress=False)
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]


def test_load_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(InvalidArgument, match=r"suffix '\.txt'; expected one of \.npz, \.csv"):
        wf.data.load_dataset(tmp_path / "d.txt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        wf.data.load_dataset(tmp_path / "nothing.npz")

    np.savez(tmp_path / "nokey.npz", X=np.ones((3, 2)), labels=np.ones(3))
    with pytest.raises(InvalidArgument, match=r"no array 'y'; it holds \['X', 'labels'\]"):
        wf.data.load_dataset(tmp_path / "nokey.npz")

    np.savez(tmp_path / "y2d.npz", X=np.ones((3, 2)), y=np.ones((3, 1)))
    with pytest.raises(InvalidShape, match=r"must have shape \(n,\); got shape \(3, 1\).*reshape"):
        wf.data.load_dataset(tmp_path / "y2d.npz")

    np.savez(tmp_path / "x1d.npz", X=np.ones(3), y=np.ones(3))
    with pytest.raises(InvalidShape, match=r"must have shape \(n, d\); got shape \(3,\)"):
        wf.data.load_dataset(tmp_path / "x1d.npz")

    np.savez(tmp_path / "rows.npz", X=np.ones((3, 2)), y=np.ones(4))
    with pytest.raises(InvalidShape, match="3 inputs but 4 targets"):
        wf.data.load_dataset(tmp_path / "rows.npz")

    with pytest.raises(InvalidShape, match="d=2 columns; expected d=5"):
        wf.data.load_dataset(tmp_path / "nokey.npz", y_key="labels", d=5)

    X = np.ones((4, 2))
    X[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.ones(4))
    with pytest.raises(NonFiniteInput, match=r"1 NaN.*\['X\[:, 1\]'\]; first on data row 3"):
        wf.data.load_dataset(tmp_path / "nan.npz")

    np.savez(tmp_path / "str.npz", X=np.array([["a", "b"]]), y=np.ones(1))
    with pytest.raises(InvalidType, match="must hold real numbers; got dtype <U1"):
        wf.data.load_dataset(tmp_path / "str.npz")

    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(InvalidArgument, match="could not read .* as a numpy .npz archive"):
        wf.data.load_dataset(tmp_path / "bad.npz")


def test_csv_errors_name_the_problem(tmp_path) -> None:
    (tmp_path / "noy.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(InvalidArgument, match=r"no column\(s\) \['y'\]; its header has \['a', 'b'\]"):
        wf.data.load_dataset(tmp_path / "noy.csv")
    with pytest.raises(InvalidArgument, match=r"no column\(s\) \['c'\]"):
        wf.data.load_dataset(tmp_path / "noy.csv", y_column="a", x_columns=["c"])

    (tmp_path / "empty.csv").write_text("a,y\n1,2\n,4\n5,6\n")
    with pytest.raises(NonFiniteInput, match=r"1 NaN, Inf or empty value\(s\), in \['a'\]; first on data row 2"):
        wf.data.load_dataset(tmp_path / "empty.csv")

    (tmp_path / "text.csv").write_text("a,y\n1,2\nabc,4\n")
    with pytest.raises(InvalidType, match="column 'a' .* first bad value 'abc' on data row 2"):
        wf.data.load_dataset(tmp_path / "text.csv")

    (tmp_path / "onlyy.csv").write_text("y\n1\n2\n")
    with pytest.raises(InvalidShape, match="no input columns besides the target 'y'"):
        wf.data.load_dataset(tmp_path / "onlyy.csv")

    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(InvalidArgument, match="could not read .* as a CSV file"):
        wf.data.load_dataset(tmp_path / "blank.csv")
