"""Data of the paper's experiments (Section 4), and users' own data sets. Each returns (X, y) as float64 tensors.

Every generator draws from its own ``torch.Generator`` seeded with ``seed``, on the CPU: the same seed
gives the same data on every machine, and training and test sets are drawn with different seeds.
:func:`load_dataset` reads a data set from a ``.npz`` or ``.csv`` file and checks it as strictly as the
models check their inputs (shape, finiteness, named columns). The data kinds of :mod:`wideflow.registry`
(used by the command line, the sweeps and the reproductions) name these functions, and draw a test set with
the seed ``seed +`` :data:`~wideflow.registry.TEST_SEED_OFFSET`.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

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
    check_positive_int,
    check_seed,
)

__all__ = ["random_labels", "quadratic_teacher", "axis_xor", "load_dataset", "FORMATS"]

FORMATS = (".npz", ".csv")


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
    if X.shape[0] == 0:
        raise InvalidShape(f"the data set {where} has no rows; at least one point is needed.")
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
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"could not read {str(path)!r} as a CSV file with a header row: {exc}") from None
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
