"""Data of the paper's experiments (Section 4), and users' own data sets. Each returns (X, y) as float64 tensors.

Every generator draws from its own ``torch.Generator`` seeded with ``seed``, on the CPU: the same seed
gives the same data on every machine, and training and test sets are drawn with different seeds.
:func:`load_dataset` reads a data set from a ``.npz`` or ``.csv`` file and checks it as strictly as the
models check their inputs (shape, finiteness, named columns); :func:`load_train_test` adds a test set (a second
file with the same inputs, or a seeded random fraction, :func:`split_dataset`) and optional standardization by
the training set's statistics (:func:`standardized`). The data kinds of :mod:`wideflow.registry`
(used by the command line, the sweeps and the reproductions) name these functions, and draw a test set with
the seed ``seed +`` :data:`~wideflow.registry.TEST_SEED_OFFSET`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .activations import Activation, get_activation
from .errors import (
    FileMissing,
    InvalidArgument,
    InvalidShape,
    InvalidType,
    NonFiniteInput,
    check_choice,
    check_positive_int,
    check_seed,
)

__all__ = ["random_labels", "quadratic_teacher", "axis_xor", "load_dataset", "load_train_test", "split_dataset",
           "standardized", "FORMATS", "STANDARDIZE"]

FORMATS = (".npz", ".csv")
# What standardize= centres and scales: nothing, the inputs, or the inputs and the targets.
STANDARDIZE = ("none", "x", "xy")


def _generator(seed: int, argument: str = "seed") -> torch.Generator:
    return torch.Generator().manual_seed(check_seed(argument, seed))


def random_labels(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 1 (Figure 1): x_a ~ N(0, I_d) and labels y_a ~ Uniform[−½, ½], independent of x."""
    n, d = check_positive_int("n", n), check_positive_int("d", d)
    gen = _generator(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.rand(n, generator=gen, dtype=torch.float64) - 0.5
    return X, y


def quadratic_teacher(
    n: int,
    d: int,
    m_teacher: int = 5,
    seed: int = 0,
    *,
    teacher_seed: int = 0,
    activation: str | Activation = "relu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 2 (Figure 2): x ~ N(0, I_d), y = f*(x) = (1/m*) Σ_i c*_i σ(xᵀW*_i x / d).

    The teacher is a shallow net with quadratic embedding and m* = ``m_teacher`` neurons; c*_i Rademacher and
    W*_i ∈ R^{d×d} with N(0, 1) entries (the student's initial law; the paper's is not recovered). The
    teacher depends on ``teacher_seed`` only, so training and test sets (different ``seed``) share it.
    """
    n, d = check_positive_int("n", n), check_positive_int("d", d)
    m_teacher = check_positive_int("m_teacher", m_teacher)
    act = get_activation(activation)
    tgen = _generator(teacher_seed, "teacher_seed")
    c_star = torch.randint(0, 2, (m_teacher,), generator=tgen).to(torch.float64) * 2 - 1
    W_star = torch.randn(m_teacher, d, d, generator=tgen, dtype=torch.float64)
    X = torch.randn(n, d, generator=_generator(seed), dtype=torch.float64)
    h = torch.einsum("na,iab,nb->ni", X, W_star, X) / d
    return X, act(h) @ c_star / m_teacher


def axis_xor(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 3 (Appendix I.3): (x_1, x_2, y) uniform on {(±1, 0, +1), (0, ±1, −1)},
    x_3..x_d i.i.d. Uniform[−1, 1]; so y = x_1² − x_2² (a 45°-rotated XOR). Needs d ≥ 2."""
    n, d = check_positive_int("n", n), check_positive_int("d", d, minimum=2)
    gen = _generator(seed)
    corners = torch.tensor([[1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0, -1.0], [0.0, -1.0, -1.0]],
                           dtype=torch.float64)
    pick = torch.randint(0, 4, (n,), generator=gen)
    rest = torch.rand(n, d - 2, generator=gen, dtype=torch.float64) * 2 - 1
    X = torch.cat([corners[pick, :2], rest], dim=1)
    return X, corners[pick, 2].clone()


def load_dataset(
    path: str | os.PathLike,
    *,
    x_key: str = "X",
    y_key: str = "y",
    y_column: str = "y",
    x_columns: list[str] | None = None,
    d: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a user's data set (inputs x_a ∈ R^d, real targets y_a) as float64 tensors ``(X, y)``.

    Formats, chosen by the file's suffix:

    - ``.npz`` (``numpy.savez``): an array ``x_key`` of shape (n, d) and an array ``y_key`` of shape (n,).
    - ``.csv`` with a header row: the target column ``y_column``; the inputs are the columns ``x_columns``
      in that order, or every other column when ``x_columns`` is None.

    ``d``, when given, is the input dimension the caller expects (the model's d). Raises
    :class:`~wideflow.errors.InvalidArgument` for an unknown suffix or a missing array/column,
    :class:`~wideflow.errors.InvalidShape` for wrong shapes or mismatched lengths,
    :class:`~wideflow.errors.InvalidType` for non-numeric entries and
    :class:`~wideflow.errors.NonFiniteInput` for NaN, Inf or empty CSV cells (with their positions);
    :class:`~wideflow.errors.FileMissing` (also a ``FileNotFoundError``) if ``path`` does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidArgument(
            f"path={str(path)!r} has suffix {path.suffix!r}; expected one of {', '.join(FORMATS)} "
            "(a numpy.savez archive with arrays X and y, or a CSV file with a header row)."
        )
    if not path.exists():
        raise FileMissing(f"data file {str(path)!r} does not exist; expected a {suffix} file.")
    if path.is_dir():
        raise InvalidArgument(f"path={str(path)!r} is a folder; expected a {suffix} file.")
    if suffix == ".npz":
        X, y = _read_npz(path, x_key, y_key)
        x_names = [f"{x_key}[:, {j}]" for j in range(X.shape[1])] if X.ndim == 2 else []
        y_name = y_key
    else:
        X, y, x_names = _read_csv(path, y_column, x_columns)
        y_name = y_column
    where = f"in {str(path)!r}"
    if X.ndim != 2:
        raise InvalidShape(f"inputs {x_key!r} {where} must have shape (n, d); got shape {X.shape}.")
    if y.ndim != 1:
        hint = " (use y.reshape(-1) before saving)" if y.ndim == 2 and 1 in y.shape else ""
        raise InvalidShape(f"targets {y_key!r} {where} must have shape (n,); got shape {y.shape}{hint}.")
    if X.shape[0] < 2:
        rows = "no rows" if X.shape[0] == 0 else "one row"
        raise InvalidShape(f"the data set {where} has {rows}; at least 2 points (rows) are needed (a CSV file has "
                           "one row per point under its header row).")
    if X.shape[0] != y.shape[0]:
        raise InvalidShape(
            f"the data set {where} has {X.shape[0]} inputs but {y.shape[0]} targets; expected equal numbers."
        )
    if d is not None and X.shape[1] != check_positive_int("d", d):
        raise InvalidShape(f"the inputs {where} have d={X.shape[1]} columns; expected d={d}.")
    _check_finite(X, x_names, where)
    _check_finite(y[:, None], [y_name], where)
    return torch.from_numpy(X.astype(np.float64)), torch.from_numpy(y.astype(np.float64))


def _read_npz(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InvalidArgument(f"could not read {str(path)!r} as a numpy .npz archive: {exc}") from None
    with archive:
        for key in (x_key, y_key):
            if key not in archive.files:
                raise InvalidArgument(
                    f"{str(path)!r} has no array {key!r}; it holds {sorted(archive.files)}. Save the data with "
                    f"numpy.savez(path, {x_key}=X, {y_key}=y), or pass x_key=/y_key= to name the arrays."
                )
        arrays = [archive[x_key], archive[y_key]]
    for key, arr in zip((x_key, y_key), arrays, strict=True):
        if arr.dtype.kind not in "fiu":
            raise InvalidType(f"array {key!r} in {str(path)!r} must hold real numbers; got dtype {arr.dtype}.")
    return arrays[0], arrays[1]


def _read_csv(path: Path, y_column: str, x_columns: list[str] | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    table = _read_table(path)
    present = [str(c) for c in table.columns]
    wanted = [y_column] + (list(x_columns) if x_columns is not None else [])
    missing = [c for c in wanted if c not in present]
    if missing:
        raise InvalidArgument(
            f"{str(path)!r} has no column(s) {missing}; its header has {present}. Name the target with "
            "y_column= and the inputs with x_columns=."
        )
    names = list(x_columns) if x_columns is not None else [c for c in present if c != y_column]
    if not names:
        raise InvalidShape(f"{str(path)!r} has no input columns besides the target {y_column!r}.")
    for name in [*names, y_column]:
        if not (pd.api.types.is_numeric_dtype(table[name]) and not pd.api.types.is_bool_dtype(table[name])):
            bad = table[name][pd.to_numeric(table[name], errors="coerce").isna() & table[name].notna()]
            first = f"; first bad value {bad.iloc[0]!r} on data row {bad.index[0] + 1}" if len(bad) else ""
            raise InvalidType(f"column {name!r} of {str(path)!r} must hold real numbers{first}.")
    return table[names].to_numpy(), table[y_column].to_numpy(), names


def _check_finite(A: np.ndarray, names: list[str], where: str) -> None:
    bad = ~np.isfinite(A)
    if bad.any():
        rows, cols = np.nonzero(bad)
        columns = sorted({names[c] for c in cols})
        raise NonFiniteInput(
            f"the data set {where} has {int(bad.sum())} NaN, Inf or empty value(s), in {columns}; first on data "
            f"row {int(rows[0]) + 1}. All entries must be finite."
        )


def split_dataset(X: torch.Tensor, y: torch.Tensor, test_fraction: float, *,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X, y, X_test, y_test): a random ``test_fraction`` of the n points (round(test_fraction·n) of them) held
    out as a test set, drawn with a ``torch.Generator`` seeded with ``seed`` (the same split on every machine);
    both parts keep the points in their original order. Each part must get at least one point."""
    n = X.shape[0]
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float):
        raise InvalidType(f"test_fraction must be a number between 0 and 1; got {test_fraction!r}.")
    if not 0 < test_fraction < 1:
        raise InvalidArgument(f"test_fraction must be a number strictly between 0 and 1 (the share of the points "
                              f"held out as a test set); got {test_fraction!r}.")
    n_test = round(test_fraction * n)
    if not 1 <= n_test <= n - 1:
        raise InvalidArgument(f"test_fraction={test_fraction!r} of n={n} points leaves {n_test} test and "
                              f"{n - n_test} training points; expected at least one of each.")
    order = torch.randperm(n, generator=_generator(seed))
    test, keep = order[:n_test].sort().values, order[n_test:].sort().values
    return X[keep], y[keep], X[test], y[test]


def standardized(X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None = None,
                 y_test: torch.Tensor | None = None, *, which: str = "xy") -> tuple[torch.Tensor, ...]:
    """(X, y, X_test, y_test) centred and scaled by the training set's mean and standard deviation (ddof 0,
    as scikit-learn's ``StandardScaler``): the input columns for ``which="x"``, the targets as well for
    ``"xy"`` (``"none"`` leaves both). The test set, when given, gets the training set's statistics, so no
    information flows from it into training; a constant column is only centred. The test set is
    ``(None, None)`` when there is none."""
    if check_choice("which", which, STANDARDIZE) == "none":
        return X, y, X_test, y_test

    def scaler(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, std = A.mean(dim=0), A.std(dim=0, correction=0)
        return mean, torch.where(std > 0, std, torch.ones_like(std))

    mx, sx = scaler(X)
    X, X_test = (X - mx) / sx, None if X_test is None else (X_test - mx) / sx
    if which == "xy":
        my, sy = scaler(y)
        y, y_test = (y - my) / sy, None if y_test is None else (y_test - my) / sy
    return X, y, X_test, y_test


def load_train_test(
    path: str | os.PathLike,
    test_path: str | os.PathLike | None = None,
    *,
    test_fraction: float = 0.0,
    seed: int = 0,
    standardize: str = "none",
    d: int | None = None,
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(X, y, X_test, y_test) of a user's data: ``path`` read by :func:`load_dataset` (``options`` are its
    keyword options, ``d`` the input dimension the caller expects), and a test set from ``test_path`` (a file
    with the same inputs: a CSV the same input columns, read in the training file's order, any other file
    the same d) or, with ``0 < test_fraction < 1``, from a seeded split (:func:`split_dataset`); the test set
    is ``(None, None)`` when neither is given. ``standardize`` (:data:`STANDARDIZE`) is then applied with the
    training part's statistics (:func:`standardized`). Used by the ``file`` data kind of
    :mod:`wideflow.registry`, and so by ``wideflow train/check --data FILE`` and sweeps."""
    which = check_choice("standardize", standardize, STANDARDIZE)
    if test_path is not None and test_fraction:
        raise InvalidArgument(f"test_path={str(test_path)!r} and test_fraction={test_fraction!r} were both given; "
                              "expected one way to get a test set: a test file or a fraction held out.")
    X, y = load_dataset(path, d=d, **options)
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None
    if test_path is not None:
        names = _matching_inputs(Path(path), Path(test_path), options)
        test_options = {**options, "x_columns": names} if names is not None else options
        X_test, y_test = load_dataset(test_path, **test_options)
        if X_test.shape[1] != X.shape[1]:
            raise InvalidShape(f"the test file {str(test_path)!r} has d={X_test.shape[1]} input columns but the "
                               f"training file {str(path)!r} has d={X.shape[1]}; expected the same inputs.")
    elif test_fraction:
        X, y, X_test, y_test = split_dataset(X, y, test_fraction, seed=seed)
    return standardized(X, y, X_test, y_test, which=which)


def _matching_inputs(path: Path, test_path: Path, options: dict[str, Any]) -> list[str] | None:
    """The training file's input columns, which the test CSV file must have too (``None`` unless both are CSV
    files: then only d is compared)."""
    if path.suffix.lower() != ".csv" or test_path.suffix.lower() != ".csv" or not test_path.is_file():
        return None
    y_column = str(options.get("y_column", "y"))
    given = options.get("x_columns")
    if given is not None:
        return list(given)
    names = [c for c in _header(path) if c != y_column]
    test_names = [c for c in _header(test_path) if c != y_column]
    if set(names) != set(test_names):
        missing = [c for c in names if c not in test_names]
        extra = [c for c in test_names if c not in names]
        raise InvalidShape(
            f"the test file {str(test_path)!r} has input columns {test_names} but the training file {str(path)!r} "
            f"has {names}; expected the same input columns (missing: {missing}, extra: {extra})."
        )
    return names


def _header(path: Path) -> list[str]:
    return [str(c) for c in _read_table(path, nrows=0).columns]


def _read_table(path: Path, **read: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **read)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"could not read {str(path)!r} as a CSV file with a header row: {exc}") from None
