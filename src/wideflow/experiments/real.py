"""Experiment 3's comparison on real data: the P-3L net under ours, NTK and MF on scikit-learn's digits, or on
the user's own data file.

Does the advantage of feature learning (Section 4.3, Figure 3) hold off the synthetic axis-XOR task? The
data set is the 8×8 handwritten digits that ship with scikit-learn (``sklearn.datasets.load_digits``, 1797
images, d = 64 pixels), made a binary task: y = +1 for the digits 0-4 and −1 for 5-9 (so f ≡ 0 has test
error ½). For seed k the 1797 images are shuffled with seed k; the first ``n_test`` are the test set and the
next n the training set (so the training sets of one seed are nested). Pixels are standardized with the
mean and standard deviation of that training set (a pixel constant on it is 0 everywhere), so that
‖x‖²/d ≈ 1 as for the synthetic inputs. The files are written to ``<out>/real/data`` and read by the runs
as the ``file`` data kind.

The preset key ``data`` (``[real] data`` of a ``--config`` file) replaces the digits by a user's CSV or NPZ file
(:func:`wideflow.data.load_dataset`: a ``y`` column or array ``y``, every other column an input; a relative
path is taken from the current directory): the same seeded split, test set first, and the same
standardization, with d the file's number of input columns. The files of a data source go to a folder named
by the digest of its contents, so that editing the file never reuses runs trained on the old one. Everything else (P-3L with D = m, the three scalings of Table 1, δ, steps, the
paired tests and the rule for cells that cannot be judged) is that of Experiment 3 (:mod:`.compare`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import FORMATS, load_dataset
from ..errors import InvalidArgument, InvalidType
from ..io import atomic_write, json_digest
from .common import (
    SCALING_NAMES,
    Claim,
    check_even_widths,
    choice_list,
    int_list,
    model_section,
    positive_int,
    seed_list,
    seeds_label,
    train_section,
)
from .compare import test_error_claims, test_error_figure

NAME = "real"
TITLE = "Experiment 3 on real data: P-3L under ours, NTK and MF on scikit-learn's digits (0-4 against 5-9)"
DIGITS = "digits"


def data_source(key: str, value: Any) -> str:
    """``"digits"`` (scikit-learn's, made binary) or the path of a user's ``.csv``/``.npz`` data file."""
    if not isinstance(value, str):
        raise InvalidType(f"{key} must be a string, {DIGITS!r} or the path of a data file; got {value!r}.")
    if value != DIGITS and Path(value).suffix.lower() not in FORMATS:
        raise InvalidArgument(f"{key}={value!r} is neither {DIGITS!r} nor a data file; expected {DIGITS!r} or a "
                              f"path ending in one of {', '.join(FORMATS)} (a y column or array y).")
    return value


KEYS = {"m": int_list, "n": int_list, "scalings": choice_list(SCALING_NAMES), "steps": positive_int,
        "log_every": positive_int, "data": data_source}


def load(source: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The inputs, targets and a short name of a data source: the digits with y = +1 for 0-4 and −1 for 5-9,
    or the user's file (:func:`wideflow.data.load_dataset`)."""
    if source == DIGITS:
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.data.astype(np.float64), np.where(digits.target <= 4, 1.0, -1.0), "digits 0-4 vs 5-9"
    X, y = load_dataset(source)
    return X.numpy(), y.numpy(), Path(source).name


def title(s: dict[str, Any]) -> str:
    """:data:`TITLE`, or the same comparison on the user's data file."""
    if s["data"] == DIGITS:
        return TITLE
    return f"Experiment 3 on real data: P-3L under ours, NTK and MF on the data file {s['data']!r}"


def prepare(s: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Write the train and test files of every (seed, n) under ``folder/data/<digest of the source>``; the
    settings with ``data_dir``, ``d`` (the number of inputs) and ``data_name`` added."""
    X_all, y_all, name = load(s["data"])
    if s["n_test"] + max(s["n"]) > len(y_all):
        raise InvalidArgument(f"real.n_test + max(real.n) = {s['n_test'] + max(s['n'])} exceeds the {len(y_all)} "
                              f"points of the data set {s['data']!r}; lower n_test or n.")
    data = folder / "data" / json_digest([X_all.tolist(), y_all.tolist()])
    for seed in seed_list(s):
        order = np.random.default_rng(seed).permutation(len(y_all))
        test = order[: s["n_test"]]
        for n in s["n"]:
            train = order[s["n_test"]: s["n_test"] + n]
            mean, std = X_all[train].mean(0), X_all[train].std(0)
            scale = np.where(std > 0, std, np.inf)  # a pixel constant on the training set is 0 everywhere
            for part, idx in (("train", train), ("test", test)):
                X = (X_all[idx] - mean) / scale
                atomic_write(data / f"seed{seed}_n{n}_{part}.npz",
                             lambda fh, X=X, y=y_all[idx]: np.savez(fh, X=X, y=y))
    return {**s, "data_dir": str(data.resolve()), "d": int(X_all.shape[1]), "data_name": name}


def configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """One run per (scaling, m, n, seed), P-3L with D = m on the files of :func:`prepare`."""
    if "data_dir" not in s:
        raise InvalidArgument("real.configs needs the data files: call real.prepare(settings, folder) first.")
    check_even_widths("real.m", s["m"], s["scalings"])
    data = Path(s["data_dir"])
    return [
        {"model": model_section(s, kind="p3l", d=s["d"], m=m, D=m, scaling=scaling, seed=seed),
         "data": {"kind": "file", "path": str(data / f"seed{seed}_n{n}_train.npz"),
                  "test_path": str(data / f"seed{seed}_n{n}_test.npz")},
         "train": train_section(s),
         "tags": {"experiment": NAME, "n": n}}
        for scaling in s["scalings"] for m in s["m"] for n in s["n"] for seed in seed_list(s)
    ]


def tables(runs: pd.DataFrame, history: Any, arrays: Any, s: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``real_test_error``: one row per run (scaling, m, n, seed, test error, training loss, error of f ≡ 0)."""
    table = pd.DataFrame({
        "scaling": runs["model.scaling"].to_numpy(),
        "m": runs["model.m"].astype(int).to_numpy(),
        "n": runs["tags.n"].astype(int).to_numpy(),
        "seed": runs["model.seed"].astype(int).to_numpy(),
        "test_error": runs["final_test_error"].to_numpy(dtype=float),
        "train_loss": runs["final_train_loss"].to_numpy(dtype=float),
        "zero_error": runs["zero_test_error"].to_numpy(dtype=float),
    })
    return {"real_test_error": table.sort_values(["scaling", "m", "n", "seed"], ignore_index=True)}


def figures(t: dict[str, pd.DataFrame], folder: Path, s: dict[str, Any]) -> list[str]:
    """Test error against n per scaling, one panel per m (seed mean, band min-max)."""
    table = t["real_test_error"]
    panels = [(f"m = D = {m}", table[table["m"] == m]) for m in sorted(table["m"].unique())]
    return test_error_figure(panels, s["scalings"], folder, "real_test_error",
                             f"P-3L on {s.get('data_name', s['data'])} (d = {s.get('d', '?')}, {seeds_label(s)})")


def claims(t: dict[str, pd.DataFrame], s: dict[str, Any]) -> list[Claim]:
    """The test-error claims of Figure 3 (:func:`.compare.test_error_claims`) on the digits or the user's file."""
    where = "scikit-learn's digits" if s["data"] == DIGITS else f"the data file {s['data']!r}"
    return test_error_claims(t["real_test_error"], prefix=NAME, data="real_test_error.csv",
                             source=f"abstract, Section 4.3 (tested on {where})")
