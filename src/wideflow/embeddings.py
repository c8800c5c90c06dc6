"""Embeddings Φ: R^d → R^D of the general model (2)-(3) (docs/theory.md §1).

- :class:`Identity`: Φ(x) = x, D = d (the shallow net, eq. (1)).
- :class:`Quadratic`: Φ(x) = vec(x xᵀ), D = d², so G(x, x') = (xᵀx')²/d² (Exp 2, docs/theory.md §4).
- :class:`RandomFeatures`: φ_j(x) = σ(z_jᵀx/√d), z_j ~ N(0, I_d) fixed (the P-3L net, eq. (5)).
- :class:`DeepRandomFeatures`: the fixed random layers of the partially-trained L-layer net of
  Appendix H, φ_j(x) = σ(h_j^{(L-2)}(x)) with h^{(1)} = z x/√d and h^{(l+1)} = W^{(l)} σ(h^{(l)})/√D.
- :class:`Function`: any user callable X ↦ Φ(X).

Random weights are drawn in float64 on the CPU from a generator seeded with ``seed`` and only then cast
to the caller's dtype and device, so the same seed gives the same embedding on every machine.
"""

from __future__ import annotations

import copy
import inspect
import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._tensor import as_tensor
from .activations import Activation, get_activation
from .errors import (
    InvalidArgument,
    InvalidShape,
    InvalidType,
    check_positive_int,
    check_seed,
    closest,
    unknown_name,
)

__all__ = [
    "Embedding",
    "Deterministic",
    "Identity",
    "Quadratic",
    "RandomFeatures",
    "DeepRandomFeatures",
    "Function",
    "as_embedding",
    "from_spec",
    "register_embedding_kind",
]


class Embedding:
    """Base class: a map Φ from inputs (n, d) to embeddings (n, D).

    Subclasses set ``d`` and ``D`` and implement :meth:`_embed`. :meth:`__call__` checks the input.
    """

    d: int
    D: int
    #: True for an embedding with infinitely many coordinates (D = ∞): Φ is never formed, its Gram matrix is
    #: given by ``gram(X, X2)`` (:mod:`wideflow.infinite`)
    infinite = False

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if not isinstance(X, torch.Tensor) or not X.is_floating_point():
            X = as_tensor("X", X, ndim=2, dtype=torch.float64, cols=self.d)
        elif X.ndim != 2 or X.shape[1] != self.d:
            raise InvalidShape(f"X must have shape (n, {self.d}) for this embedding; got {tuple(X.shape)}.")
        return self._embed(X)

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weights(self) -> list[torch.Tensor]:
        """The fixed random weights of the embedding (float64, CPU; saved with a model); none by default."""
        return []

    def column_blocks(self, X: torch.Tensor, block: int) -> Iterator[torch.Tensor]:
        """Yield Φ(X) a block of at most ``block`` columns at a time (memory O(n·block) for random
        embeddings; the whole Φ(X) at once for the others)."""
        yield self(X)

    @property
    def spec(self) -> dict[str, Any] | None:
        """A dict from which :func:`from_spec` rebuilds this embedding (``None`` if it cannot)."""
        return None

    def __repr__(self) -> str:
        spec = self.spec or {}
        args = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "kind")
        return f"{type(self).__name__}({args})"


class Deterministic(Embedding):
    """A fixed, parameter-free embedding of inputs of dimension d, rebuilt from its ``kind`` and d."""

    kind = ""

    def __init__(self, d: int, D: int | None = None) -> None:
        self.d = check_positive_int("d", d)
        self.D = self.d if D is None else D

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "d": self.d}


class Identity(Deterministic):
    """Φ(x) = x, D = d: the shallow mean-field net of eq. (1)."""

    kind = "identity"

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        return X


class Quadratic(Deterministic):
    """Φ(x) = vec(x xᵀ) ∈ R^{d²} (Exp 2); then h_i(x) = xᵀ W_i x / d with W_i the reshaped row."""

    kind = "quadratic"

    def __init__(self, d: int) -> None:
        d = check_positive_int("d", d)
        super().__init__(d, d * d)

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        return (X[:, :, None] * X[:, None, :]).reshape(X.shape[0], self.D)


class _Seeded(Embedding):
    """Shared machinery of the random embeddings: float64 master weights, cast copies per dtype/device."""

    def __init__(self, seed: int) -> None:
        self.seed = check_seed("seed", seed)
        self._cache: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}

    def weights(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def _cast(self, X: torch.Tensor) -> list[torch.Tensor]:
        key = (X.dtype, X.device)
        if key not in self._cache:
            self._cache[key] = [w.to(device=X.device, dtype=X.dtype) for w in self.weights()]
        return self._cache[key]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the float64 master weights only; the cast copies are rebuilt on first use."""
        return {**self.__dict__, "_cache": {}}


class RandomFeatures(_Seeded):
    """φ_j(x) = σ(z_jᵀx / √d), j = 1..D, with z_j ~ N(0, I_d) i.i.d. and fixed (eq. (5), P-3L)."""

    def __init__(self, d: int, D: int, activation: str | Activation = "relu", seed: int = 0) -> None:
        super().__init__(seed)
        self.d = check_positive_int("d", d)
        self.D = check_positive_int("D", D)
        self.activation = get_activation(activation)
        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn(self.D, self.d, generator=gen, dtype=torch.float64)

    def weights(self) -> list[torch.Tensor]:
        return [self.z]

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        (z,) = self._cast(X)
        return self.activation(X @ z.T / math.sqrt(self.d))

    def column_blocks(self, X: torch.Tensor, block: int) -> Iterator[torch.Tensor]:
        (z,) = self._cast(X)
        for start in range(0, self.D, block):
            yield self.activation(X @ z[start : start + block].T / math.sqrt(self.d))

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "random_features", "d": self.d, "D": self.D, "activation": self.activation.spec,
                "seed": self.seed}


class DeepRandomFeatures(_Seeded):
    """The fixed random layers of the partially-trained L-layer net (Appendix H).

    ``layers`` = L − 2 random layers: z ∈ R^{D×d} and then L − 3 matrices W^{(l)} ∈ R^{D×D}, all N(0, 1):
    h^{(1)} = z x/√d, h^{(l+1)} = W^{(l)} σ(h^{(l)})/√D, Φ(x) = σ(h^{(L-2)}(x)). ``layers=1`` is the
    P-3L embedding :class:`RandomFeatures`, drawn from the same generator so both agree exactly.
    """

    def __init__(self, d: int, D: int, layers: int = 2, activation: str | Activation = "relu", seed: int = 0) -> None:
        super().__init__(seed)
        self.d = check_positive_int("d", d)
        self.D = check_positive_int("D", D)
        self.layers = check_positive_int("layers", layers)
        self.activation = get_activation(activation)
        gen = torch.Generator().manual_seed(seed)
        self.z = torch.randn(self.D, self.d, generator=gen, dtype=torch.float64)
        self.hidden = [torch.randn(self.D, self.D, generator=gen, dtype=torch.float64) for _ in range(self.layers - 1)]

    def weights(self) -> list[torch.Tensor]:
        return [self.z, *self.hidden]

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        return torch.cat(list(self.column_blocks(X, self.D)), dim=1)

    def column_blocks(self, X: torch.Tensor, block: int) -> Iterator[torch.Tensor]:
        z, *hidden = self._cast(X)
        phi = self.activation(X @ z.T / math.sqrt(self.d))
        if not hidden:
            yield from (phi[:, s : s + block] for s in range(0, self.D, block))
            return
        for w in hidden[:-1]:
            phi = self.activation(phi @ w.T / math.sqrt(self.D))
        last = hidden[-1]
        for start in range(0, self.D, block):
            yield self.activation(phi @ last[start : start + block].T / math.sqrt(self.D))

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "deep_random_features", "d": self.d, "D": self.D, "layers": self.layers,
                "activation": self.activation.spec, "seed": self.seed}


class Function(Embedding):
    """A user callable X (n, d) ↦ Φ(X) (n, D). D is found by calling it once on two points."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], d: int) -> None:
        if not callable(fn):
            raise InvalidType(f"fn must be callable X -> Phi(X); got {type(fn).__name__}.")
        self.fn = fn
        self.d = check_positive_int("d", d)
        probe = fn(torch.zeros(2, self.d, dtype=torch.float64))
        if not isinstance(probe, torch.Tensor) or probe.ndim != 2 or probe.shape[0] != 2:
            got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise InvalidShape(f"the embedding callable must map (n, d) to a tensor of shape (n, D); got {got}.")
        self.D = int(probe.shape[1])
        if self.D == 0:
            raise InvalidShape("the embedding callable returned D = 0 features.")

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        out = self.fn(X)
        if not isinstance(out, torch.Tensor) or out.shape != (X.shape[0], self.D):
            raise InvalidShape(f"the embedding callable must return shape ({X.shape[0]}, {self.D}).")
        if out.dtype != X.dtype or out.device != X.device:
            raise InvalidType(
                f"the embedding callable returned a {out.dtype} tensor on {out.device} for inputs of dtype "
                f"{X.dtype} on {X.device}; it must keep the dtype and device of its input."
            )
        return out

    def __getstate__(self) -> dict[str, Any]:
        """The state for pickling; it pickles iff the user callable does (a lambda or a local function does not)."""
        try:
            pickle.dumps(self.fn)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise InvalidType(
                f"cannot pickle this Function embedding: its callable {self.fn!r} does not pickle ({exc}); "
                "define it as a module-level function (or a picklable callable object) to pickle the model."
            ) from None
        return dict(self.__dict__)

    def __deepcopy__(self, memo: dict[int, Any]) -> Function:
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def __repr__(self) -> str:
        return f"Function({getattr(self.fn, '__name__', 'fn')}, d={self.d}, D={self.D})"


_KINDS: dict[str, type[Embedding]] = {
    "identity": Identity,
    "quadratic": Quadratic,
    "random_features": RandomFeatures,
    "deep_random_features": DeepRandomFeatures,
}


def register_embedding_kind(kind: str, cls: type[Embedding]) -> None:
    """Let :func:`from_spec` rebuild embeddings whose spec has ``kind`` (for embeddings defined in other
    modules, such as the D = ∞ one of :mod:`wideflow.infinite`)."""
    _KINDS[kind] = cls


def from_spec(spec: dict[str, Any]) -> Embedding:
    """Rebuild an embedding from its :attr:`Embedding.spec`."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in _KINDS:
        raise unknown_name("embedding kind", kind, _KINDS)
    accepted = [p for p in inspect.signature(_KINDS[kind]).parameters if p != "self"]
    unknown = sorted(set(spec) - set(accepted))
    if unknown:
        raise InvalidArgument(
            f"embedding kind {kind!r} does not take {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(map(repr, accepted))}.{closest(unknown[0], accepted)}"
        )
    return _KINDS[kind](**spec)


def as_embedding(embedding: Embedding | Callable | dict, d: int | None = None) -> Embedding:
    """Accept an :class:`Embedding`, a spec dict or a callable (which then needs ``d``)."""
    if isinstance(embedding, Embedding):
        return embedding
    if isinstance(embedding, dict):
        return from_spec(embedding)
    if callable(embedding):
        if d is None:
            raise InvalidArgument(
                "embedding is a plain callable, so its input dimension is unknown; pass d=... "
                "(or wrap it as wideflow.embeddings.Function(fn, d))."
            )
        return Function(embedding, d)
    raise InvalidType(f"embedding must be an Embedding, a spec dict or a callable; got {type(embedding).__name__}.")
