r"""One training problem: (model, data, settings) turned into the tensors GD needs (docs/theory.md §8).

:func:`prepare` is the one place where the inputs of a run are checked and where the loss reduction and the
step coefficients are computed; :func:`wideflow.train`, the batched sweeps and the gradient flow all start
from the :class:`Problem` it returns. :meth:`Problem.stack` puts R problems of equal shapes on a leading
batch axis, which is the form the engines run (R = 1 for a single run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._tensor import as_tensor
from ..activations import Activation
from ..errors import (
    InvalidArgument,
    KernelEngineUnavailable,
    check_choice,
    check_positive_float,
)
from ..kernels import embedding_gram
from ..losses import Loss, SquaredLoss, get_loss
from ..model import WideNet, check_model
from ..neurons import COLUMNS

__all__ = ["Problem", "prepare", "build", "check_data", "REDUCTIONS", "BLOCK", "initial_features"]

REDUCTIONS = ("mean", "sum")
#: Columns of Φ (and of a drawn W_0) formed at a time for Gram matrices and initial features: memory
#: O((n + m)·BLOCK) whatever D is; the column blocks of the counter-based draws of W_0.
BLOCK = COLUMNS


def check_data(model: WideNet, X: Any, y: Any, X_test: Any = None, y_test: Any = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(X, y, X_test, y_test) as tensors of the model's dtype and device, each checked once: X (n, d), y (n,),
    the test pair given together or not at all."""
    Xt = model.input(X)
    n = Xt.shape[0]
    yt = as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=n, rows_what="one per row of X")
    if (X_test is None) != (y_test is None):
        raise InvalidArgument("X_test and y_test must be given together (or neither); got only "
                              f"{'X_test' if y_test is None else 'y_test'}.")
    if X_test is None:
        return Xt, yt, None, None
    Xs = model.input(X_test, "X_test")
    ys = as_tensor("y_test", y_test, ndim=1, dtype=model.dtype, device=model.device, rows=Xs.shape[0],
                   rows_name="n_test", rows_what="one per row of X_test")
    return Xt, yt, Xs, ys


def initial_features(model: WideNet, X: torch.Tensor, neurons: tuple[int, int] | None = None, *,
                     keep: bool = True) -> torch.Tensor:
    """H_0 = s_h W_0 Φ(X)ᵀ, shape (m, n), eq. (3), over ``BLOCK`` columns of Φ at a time
    (:meth:`wideflow.model.WideNet.features_block`); of a block of ``neurons`` (lo, hi) of the drawn ones when
    given. A symmetrized model's two halves are bitwise equal, so f_0 = 0 exactly (docs/theory.md §6). At
    D = ∞ the Gaussian-process features, the inputs revealed in the model when ``keep``."""
    lo, hi = neurons if neurons is not None else (0, None)
    return model.features_block(X, lo, hi, keep=keep, block=BLOCK)


@dataclass
class Problem:
    r"""Everything GD on W needs, for R runs on a leading batch axis (docs/theory.md §8).

    Per run r: the model and its checked data, the reduction N_r, the step size δ_r and the coefficient of one
    step, coef_H = −δγ/N: the change of Z = s_h D B (with W_t = W_0 + B_t Φ) per unit of c ⊙ σ′(H) ⊙ e, and of
    H per unit of [c ⊙ σ′(H) ⊙ e] G. In kernel space (``space="kernel"``) also G = Φ Φᵀ/D (R, n, n),
    G(X, X_test) (R, n, n_test), H_0 (R, m, n) and H_test,0 (R, m, n_test); in weight space these are ``None``
    and the engine forms Φ itself. An engine takes these tensors over (H_0 becomes its state): build one engine
    per problem. ``neurons`` is the block (lo, hi) of the drawn neurons this problem holds (a sharded run,
    :mod:`wideflow.distributed`), with their output weights ``c_block``; ``None`` for all of them.
    """

    models: list[WideNet]
    X: list[torch.Tensor]
    X_test: list[torch.Tensor | None]
    y: torch.Tensor
    y_test: torch.Tensor | None
    reductions: list[str]
    N: list[float]
    step_sizes: list[float]
    coef_H: list[float]
    space: str
    G: torch.Tensor | None = None
    G_test: torch.Tensor | None = None
    H0: torch.Tensor | None = None
    H_test0: torch.Tensor | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    loss: Loss = field(default_factory=SquaredLoss)  # ℓ of L = (1/N) Σ_a ℓ(f_a, y_a) (wideflow.losses)
    neurons: tuple[int, int] | None = None
    c_block: torch.Tensor | None = None

    @property
    def R(self) -> int:
        """Number of runs."""
        return len(self.models)

    @property
    def m(self) -> int:
        """Neurons held (all m of the model, or the block's)."""
        return self.models[0].m if self.c_block is None else int(self.c_block.shape[1])

    @property
    def n(self) -> int:
        return int(self.y.shape[1])

    @property
    def n_test(self) -> int:
        return 0 if self.y_test is None else int(self.y_test.shape[1])

    @property
    def activation(self) -> Activation:
        return self.models[0].activation

    @property
    def paired(self) -> list[bool]:
        """Which runs read out pairwise (NTK symmetrization, docs/theory.md §6)."""
        return [model.paired for model in self.models]

    @property
    def c(self) -> torch.Tensor:
        """Output weights c (R, m) of the neurons held."""
        return torch.stack([model.c for model in self.models]) if self.c_block is None else self.c_block

    @classmethod
    def stack(cls, problems: Sequence[Problem]) -> Problem:
        """R single-run problems as one batch. They need equal m, n, n_test, activation, dtype, device and
        space; the runs that read out plainly come before the symmetrized (NTK) ones."""
        first = problems[0]
        for i, p in enumerate(problems):
            same = (p.m, p.n, p.n_test, p.space, p.activation.spec, p.y.dtype, p.y.device, p.loss) == (
                first.m, first.n, first.n_test, first.space, first.activation.spec, first.y.dtype, first.y.device,
                first.loss)
            if not same:
                raise InvalidArgument(
                    f"problems[0] and problems[{i}] cannot share a batch: batched runs need equal m, n, n_test, "
                    "activation, dtype, device, engine space and loss.")
        paired = [pair for p in problems for pair in p.paired]
        if paired != sorted(paired):
            raise InvalidArgument("a batch needs its plainly read-out runs before the symmetrized (NTK) ones; "
                                  "sort the problems by model.paired.")

        def cat(name: str) -> Any:
            values = [getattr(p, name) for p in problems]
            return None if values[0] is None else torch.cat(values)

        def join(name: str) -> list[Any]:
            return [v for p in problems for v in getattr(p, name)]

        return cls(models=join("models"), X=join("X"), X_test=join("X_test"), y=cat("y"), y_test=cat("y_test"),
                   reductions=join("reductions"), N=join("N"), step_sizes=join("step_sizes"),
                   coef_H=join("coef_H"), space=first.space, G=cat("G"),
                   G_test=cat("G_test"), H0=cat("H0"), H_test0=cat("H_test0"), loss=first.loss)


def prepare(model: WideNet, X: Any, y: Any, X_test: Any = None, y_test: Any = None, *, reduction: str = "mean",
            step_size: float = 1.0, space: str = "kernel", loss: str | Loss = "squared") -> Problem:
    r"""Check one run's inputs and compute what training needs: a :class:`Problem` with R = 1.

    ``reduction`` is N in L = (1/2N) Σ_a (f(x_a) − y_a)² ("mean": N = n, "sum": N = 1; docs/theory.md §2).
    ``space="kernel"`` forms G, G(X, X_test), H_0 and H_test,0 over column blocks of Φ (memory independent of
    D); ``space="weights"`` leaves Φ to the weights engine. ``loss`` is ℓ (:mod:`wideflow.losses`); the
    targets are checked against it.
    """
    check_model(model)
    return build(model, *check_data(model, X, y, X_test, y_test), reduction=reduction, step_size=step_size,
                 space=space, loss=loss)


def build(model: WideNet, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None, y_test: torch.Tensor | None,
          *, reduction: str = "mean", step_size: float = 1.0, space: str = "kernel",
          loss: str | Loss = "squared", neurons: tuple[int, int] | None = None) -> Problem:
    """:func:`prepare` for data that :func:`check_data` has already checked and converted; ``neurons`` restricts
    it to a block (lo, hi) of the drawn neurons (:meth:`wideflow.model.WideNet.neuron_block`)."""
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    step_size = check_positive_float("step_size", step_size)
    space = check_choice("space", space, ("kernel", "weights"))
    loss = get_loss(loss)
    loss.check_targets("y", y)
    if y_test is not None:
        loss.check_targets("y_test", y_test, training=False)
    N = float(X.shape[0]) if reduction == "mean" else 1.0
    coef_H = -step_size * model.scaling.gamma(model.m, model.D) / N
    problem = Problem(models=[model], X=[X], X_test=[X_test], y=y[None],
                      y_test=None if y_test is None else y_test[None], reductions=[reduction], N=[N],
                      step_sizes=[step_size], coef_H=[coef_H], space=space, loss=loss)
    if neurons is not None:
        problem.neurons = neurons
        problem.c_block = model.neuron_block(model.c, *neurons)[None]
    if space == "kernel":
        # the training and test inputs at once: at D = ∞ their features are one joint Gaussian draw
        both = X if X_test is None else torch.cat([X, X_test])
        H = initial_features(model, both, neurons, keep=neurons is None)
        problem.G = embedding_gram(model.embedding, X, None, BLOCK)[None]
        problem.H0 = H[:, : X.shape[0]].contiguous()[None]
        if X_test is not None:
            problem.G_test = embedding_gram(model.embedding, X, X_test, BLOCK)[None]
            problem.H_test0 = H[:, X.shape[0] :].contiguous()[None]
    elif model.embedding.infinite:
        raise KernelEngineUnavailable(
            "method='weights' needs W, which has infinitely many columns at D = ∞; use method='kernel' or 'auto'.")
    return problem

