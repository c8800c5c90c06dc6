"""The command line's data options, shared by ``wideflow train``, ``check`` and ``sweep``.

``--data`` names a generator of the paper's experiments (Section 4, docs/theory.md §9) or a user's file: a CSV
file with a header row and a ``y`` column, or a ``numpy.savez`` archive with arrays ``X`` and ``y``
(:func:`wideflow.data.load_dataset`). A file's test set is a second file (``--test-data``) or a fraction of its
rows held out with ``--seed`` (``--test-fraction``), and ``--standardize`` centres and scales the inputs (and
the targets) by the training part's statistics (:func:`wideflow.data.load_train_test`). Everything goes
through the data kinds of :mod:`wideflow.registry`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..data import FORMATS, STANDARDIZE
from ..errors import InvalidArgument, UnknownName, closest
from ..registry import DATA_KINDS, Data, make_data

# The input dimension of generated data when -d is not given (a file's is its number of input columns).
DEFAULT_D = 20
GENERATORS = tuple(name for name, kind in DATA_KINDS.items() if kind.synthetic)
FILE_KIND = next(name for name, kind in DATA_KINDS.items() if not kind.synthetic)


def add_data_arguments(p: argparse.ArgumentParser, *, n: int, n_test: int | None = None) -> None:
    """--data, -n (and --n-test when ``n_test`` is its default), --test-data, --test-fraction, --standardize."""
    p.add_argument("--data", default="axis_xor", metavar="NAME|FILE",
                   help="; ".join(f"{name}: {DATA_KINDS[name].help}" for name in GENERATORS)
                   + "; or FILE: your own data, a .csv file with a header row and a y column (the other columns are "
                     "the inputs) or a .npz archive with arrays X (n, d) and y (n,)")
    p.add_argument("-n", type=int, default=None,
                   help=f"training points a generator draws (default {n}); a file's rows are its points")
    p.set_defaults(generated_n=n, generated_n_test=n_test)
    if n_test is not None:
        p.add_argument("--n-test", type=int, default=None,
                       help=f"test points a generator draws (default {n_test}); for a file see --test-data and "
                            "--test-fraction")
    add_file_arguments(p)


def add_file_arguments(p: argparse.ArgumentParser) -> None:
    """--test-data, --test-fraction, --standardize: the test set and the standardization of a file's data."""
    own = p.add_argument_group("your own data (--data FILE)")
    own.add_argument("--test-data", default=None, metavar="FILE",
                     help="the test set: a file with the same input columns as --data")
    own.add_argument("--test-fraction", type=float, default=None, metavar="F",
                     help="hold out this fraction (0 < F < 1) of the file's rows as the test set, drawn with --seed")
    own.add_argument("--standardize", choices=STANDARDIZE, default="none",
                     help="centre and scale by the training part's mean and standard deviation: the inputs (x) or "
                          "the inputs and the targets (xy); default none")


def data_file(value: str) -> str | None:
    """``value`` of ``--data`` if it names a file (``None`` for a generator's name), or the error listing both."""
    if value in GENERATORS:
        return None
    path = Path(value)
    if path.suffix or path.exists() or len(path.parts) > 1:
        return value
    raise UnknownName(f"--data={value!r} is neither a generator (one of {', '.join(map(repr, GENERATORS))}) nor a "
                      f"data file (a path ending in {' or '.join(FORMATS)})." + closest(value, GENERATORS))


def data_from_args(args: argparse.Namespace, *, with_test: bool = True) -> Data:
    """(X, y, X_test, y_test) of the options of :func:`add_data_arguments` and ``-d``; a generator draws the
    training set with ``--seed`` and the test set with ``--seed +`` :data:`~wideflow.registry.TEST_SEED_OFFSET`.
    ``with_test=False`` (``wideflow check``) leaves the test set out."""
    path = data_file(args.data)
    n_test_given = getattr(args, "n_test", None)
    if path is None:
        for option, value in (("--test-data", args.test_data), ("--test-fraction", args.test_fraction)):
            if value is not None:
                raise InvalidArgument(f"{option} {value} applies to --data FILE; --data {args.data!r} is a generator, "
                                      "which draws its test set (--n-test).")
        if args.standardize != "none":
            raise InvalidArgument(f"--standardize {args.standardize} applies to --data FILE; --data {args.data!r} is "
                                  "a generator, whose law is the paper's.")
        n = args.generated_n if args.n is None else args.n
        n_test = (args.generated_n_test or 0) if n_test_given is None else n_test_given
        d = DEFAULT_D if args.d is None else args.d
        return make_data(args.data, d, n=n, n_test=n_test if with_test else 0, seed=args.seed)
    options = file_options(args, path)
    X, y, X_test, y_test = make_data(FILE_KIND, args.d, seed=args.seed, **options)
    for option, value in (("-n", args.n), ("--n-test", n_test_given)):
        if value is not None:
            raise InvalidArgument(f"{option} {value} counts the points a generator draws; --data {path!r} is a file, "
                                  "whose rows are the points (a test set: --test-data FILE or --test-fraction F).")
    return (X, y, X_test, y_test) if with_test else (X, y, None, None)


def file_options(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """The options of the ``file`` data kind (:func:`wideflow.registry.make_data`) given by the options of
    :func:`add_file_arguments` for the file ``path``."""
    options: dict[str, Any] = {"path": path, "standardize": args.standardize}
    if args.test_data is not None:
        options["test_path"] = args.test_data
    if args.test_fraction is not None:
        options["test_fraction"] = args.test_fraction
        if args.test_data is not None:
            raise InvalidArgument(f"--test-data {args.test_data} and --test-fraction {args.test_fraction} were both "
                                  "given; expected one way to get a test set.")
        if args.test_fraction <= 0:
            raise InvalidArgument(f"--test-fraction must be strictly between 0 and 1 (the share of the rows held "
                                  f"out); got {args.test_fraction}.")
    return options


def describe_data(args: argparse.Namespace, data: Data) -> str:
    """One line on the data of a run: where it comes from and its sizes."""
    X, _, X_test, _ = data
    test = "no test set" if X_test is None else f"n_test = {X_test.shape[0]}"
    source = args.data if data_file(args.data) is None else f"file {args.data!r}"
    extra = "" if args.standardize == "none" else f", standardized ({args.standardize})"
    return f"data: {source}, n = {X.shape[0]}, d = {X.shape[1]}, {test}{extra}"
