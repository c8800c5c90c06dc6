"""The one vocabulary of model kinds and data kinds, used by the command line, the sweeps, the
reproductions and the scikit-learn estimator.

A **model kind** names one family of the general model (2)-(3) by its embedding Φ:

- ``shallow``: Φ(x) = x, D = d, the shallow net of eq. (1) (:class:`~wideflow.model.Shallow`);
- ``quadratic``: Φ(x) = vec(xxᵀ), D = d², the embedded shallow net of Experiment 2;
- ``p3l``: the partially-trained 3-layer net of eqs. (4)-(5) (:class:`~wideflow.model.P3L`), D free;
- ``deep``: the partially-trained L-layer net of Appendix H (:class:`~wideflow.model.PartiallyTrained`),
  D and the depth L ≥ 3 free.

A **data kind** names where (X, y) comes from: a generator of :mod:`wideflow.data` (``random_labels``,
``quadratic_teacher``, ``axis_xor``, the data of Experiments 1-3, docs/theory.md §9) or a user's ``file``
(:func:`wideflow.data.load_dataset`). A generated test set is drawn with the seed ``seed +``
:data:`TEST_SEED_OFFSET` unless a ``test_seed`` is given, so training and test points are independent.

A new kind is one entry of :data:`MODEL_KINDS` or :data:`DATA_KINDS` below; every consumer reads these
dicts (choices, defaults, help texts, builders).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

from . import data as wfdata
from .embeddings import Quadratic
from .errors import InvalidArgument, InvalidType, check_choice, check_positive_int, unknown_name
from .model import P3L, PartiallyTrained, Shallow, WideNet

__all__ = ["ModelKind", "DataKind", "MODEL_KINDS", "DATA_KINDS", "TEST_SEED_OFFSET", "DEFAULT_DEPTH",
           "model_kind", "data_kind", "model_shape", "build_model", "make_data", "Data"]

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]

# The test set of a generated data set is drawn with seed + TEST_SEED_OFFSET unless test_seed is given.
TEST_SEED_OFFSET = 10_000
# The depth L of the P-3L net; the default of the kinds that take a depth.
DEFAULT_DEPTH = 3


@dataclass(frozen=True)
class ModelKind:
    """One model kind: ``build(d, m, D, depth, **settings)`` makes the model, where ``settings`` are the
    keyword arguments of :class:`~wideflow.model.WideNet` (activation, scaling, c_hat, seed, dtype, device,
    train_c, bias).

    ``fixed_D`` maps d to the embedding dimension when d fixes it (``fixed_D_text`` says how, e.g. "d²");
    ``None`` means D is free and defaults to m. ``depth`` is the default depth L of a kind that has one,
    ``None`` for a kind without.
    """

    name: str
    help: str
    build: Callable[..., WideNet]
    fixed_D: Callable[[int], int] | None = None
    fixed_D_text: str = ""
    depth: int | None = None


@dataclass(frozen=True)
class DataKind:
    """One data kind. A generator (``synthetic``) is called as ``source(n, d, seed=..., **options)``; a
    file kind as ``source(path, d=d, **options)``. ``options`` are its keyword options and their defaults
    (read from ``source``'s signature, so the two never disagree)."""

    name: str
    help: str
    source: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    synthetic: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


def _keyword_defaults(fn: Callable[..., Any], skip: tuple[str, ...], *,
                      keyword_only: bool = False) -> Mapping[str, Any]:
    params = inspect.signature(fn).parameters.items()
    return MappingProxyType({name: p.default for name, p in params if name not in skip
                             and (not keyword_only or p.kind is inspect.Parameter.KEYWORD_ONLY)})


def _shallow(d: int, m: int, D: int, depth: int | None, **settings: Any) -> WideNet:
    return Shallow(d, m, **settings)


def _quadratic(d: int, m: int, D: int, depth: int | None, **settings: Any) -> WideNet:
    return WideNet(Quadratic(d), m, **settings)


def _p3l(d: int, m: int, D: int, depth: int | None, **settings: Any) -> WideNet:
    return P3L(d, m, D, **settings)


def _deep(d: int, m: int, D: int, depth: int | None, **settings: Any) -> WideNet:
    return PartiallyTrained(d, m, D, depth=depth, **settings)


def _file_kind() -> DataKind:
    split = _keyword_defaults(wfdata.load_train_test, ("seed", "d"), keyword_only=True)
    options = {"path": None, "test_path": None, **split,
               **_keyword_defaults(wfdata.load_dataset, ("d",), keyword_only=True)}
    return DataKind("file", "a user's .npz or .csv file (path; a test set from test_path or a seeded test_fraction; "
                    "standardize; see wf.data.load_train_test)", wfdata.load_train_test, synthetic=False,
                    options=MappingProxyType(options))


def _generated(name: str, help: str) -> DataKind:
    gen = getattr(wfdata, name)
    return DataKind(name, help, gen, options=_keyword_defaults(gen, ("n", "d", "seed")))


MODEL_KINDS: Mapping[str, ModelKind] = MappingProxyType({
    "shallow": ModelKind("shallow", "shallow net of eq. (1): Φ(x) = x, D = d", _shallow, lambda d: d, "d"),
    "quadratic": ModelKind("quadratic", "shallow net on the quadratic embedding Φ(x) = vec(xxᵀ), D = d² (Exp 2)",
                           _quadratic, lambda d: d * d, "d²"),
    "p3l": ModelKind("p3l", "partially-trained 3-layer net of eqs. (4)-(5), D random features (default m)", _p3l),
    "deep": ModelKind("deep", "partially-trained L-layer net of Appendix H (depth L >= 3, D default m)", _deep,
                      depth=DEFAULT_DEPTH),
})

DATA_KINDS: Mapping[str, DataKind] = MappingProxyType({
    "random_labels": _generated("random_labels", "Exp 1: x ~ N(0, I_d), labels ~ U[-1/2, 1/2] independent of x"),
    "quadratic_teacher": _generated("quadratic_teacher", "Exp 2: x ~ N(0, I_d), y from a quadratic-embedding teacher"),
    "axis_xor": _generated("axis_xor", "Exp 3: the axis-XOR distribution of Appendix I.3 (d >= 2)"),
    "file": _file_kind(),
})


def model_kind(name: Any, argument: str = "kind") -> ModelKind:
    """The registered model kind ``name``; :class:`~wideflow.errors.UnknownName` lists the valid ones."""
    return MODEL_KINDS[check_choice(argument, name, MODEL_KINDS)]


def data_kind(name: Any, argument: str = "kind") -> DataKind:
    """The registered data kind ``name``; :class:`~wideflow.errors.UnknownName` lists the valid ones."""
    return DATA_KINDS[check_choice(argument, name, DATA_KINDS)]


def model_shape(kind: str, d: Any, m: Any, D: Any = None, depth: Any = None, *,
                prefix: str = "") -> tuple[int, int, int, int | None]:
    """The checked (d, m, D, depth) of a model of ``kind``: D is written out (d or d² where d fixes it,
    m when left ``None``), depth is ``None`` for a kind without one and the kind's default when ``None``.

    ``prefix`` is put before every argument name of an error (e.g. "model." for a run configuration).
    A depth equal to :data:`DEFAULT_DEPTH` is accepted for every kind (it is the depth of the P-3L net).
    """
    spec = model_kind(kind, f"{prefix}kind")
    d = check_positive_int(f"{prefix}d", d)
    m = check_positive_int(f"{prefix}m", m)
    if spec.fixed_D is not None:
        fixed = spec.fixed_D(d)
        if D is not None and D != fixed:
            raise InvalidArgument(
                f"{prefix}D={D!r} does not fit {prefix}kind={kind!r}, whose embedding has D = {fixed} "
                f"({spec.fixed_D_text}); leave {prefix}D out."
            )
        D = fixed
    else:
        D = m if D is None else check_positive_int(f"{prefix}D", D)
    if spec.depth is not None:
        depth = check_positive_int(f"{prefix}depth", spec.depth if depth is None else depth, minimum=3)
    elif depth not in (None, DEFAULT_DEPTH):
        deep = " or ".join(f"{prefix}kind={k!r}" for k, s in MODEL_KINDS.items() if s.depth is not None)
        raise InvalidArgument(f"{prefix}depth={depth!r} only applies to {deep}; got {prefix}kind={kind!r}.")
    else:
        depth = None
    return d, m, D, depth


def build_model(kind: str, d: int, m: int, *, D: int | None = None, depth: int | None = None,
                **settings: Any) -> WideNet:
    """The model of ``kind`` (see :data:`MODEL_KINDS`) for inputs of dimension d, width m; ``settings``
    are the keyword arguments of :class:`~wideflow.model.WideNet`."""
    d, m, D, depth = model_shape(kind, d, m, D, depth)
    return MODEL_KINDS[kind].build(d, m, D, depth, **settings)


def make_data(kind: str, d: int | None, *, n: int | None = None, n_test: int = 0, seed: int = 0,
              test_seed: int | None = None, **options: Any) -> Data:
    """(X, y, X_test, y_test) of a data kind (see :data:`DATA_KINDS`) with inputs of dimension d.

    A generator draws n training points with ``seed`` and, when n_test > 0, n_test test points with
    ``test_seed`` (default ``seed +`` :data:`TEST_SEED_OFFSET`); ``options`` are its keyword options
    (e.g. ``m_teacher``). The ``file`` kind reads ``path`` with :func:`wideflow.data.load_train_test`: its test
    set comes from ``test_path`` or a ``test_fraction`` held out with ``seed``, ``d`` (``None``: any) is
    checked against the file's inputs. The test set is ``(None, None)`` when there is none.
    """
    spec = data_kind(kind)
    for key in options:
        if key not in spec.options:
            raise unknown_name(f"option of data kind {kind!r}", key, spec.options)
    opts = {**spec.options, **options}
    if not spec.synthetic:
        path, test_path = opts.pop("path"), opts.pop("test_path")
        if not isinstance(path, str | bytes) and not hasattr(path, "__fspath__"):
            raise InvalidType(f"path must be the path of a .npz or .csv file; got {path!r}.")
        return spec.source(path, test_path, seed=seed, d=d, **opts)
    if n is None or d is None:
        raise InvalidArgument(f"data kind {kind!r} draws its points: give n, the number of training points, and d, "
                              f"their dimension; got n={n!r}, d={d!r}.")
    X, y = spec.source(n, d, seed=seed, **opts)
    if check_positive_int("n_test", n_test, minimum=0) == 0:
        return X, y, None, None
    test_seed = seed + TEST_SEED_OFFSET if test_seed is None else test_seed
    return (X, y, *spec.source(n_test, d, seed=test_seed, **opts))
