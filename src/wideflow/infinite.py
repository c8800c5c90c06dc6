r"""D = ∞: the infinite random embedding, where training sees Φ only through its limit Gram matrix Ḡ
(docs/theory.md §4 and §8).

With D → ∞ random features φ_j(x) = σ(h_j^{(L-2)}(x)) (eq. (5), Appendix H), G = ΦΦᵀ/D becomes Ḡ
(:func:`wideflow.kernels.limit_gram`) and, under the scalings with s_h = 1/√D (ours, NTK), the features at
initialization h_i(x) = (1/√D) Σ_j W_ij φ_j(x) become m independent Gaussian processes with covariance Ḡ (the
central limit theorem over j, W_ij ~ N(0, 1)). Under mean field (s_h = 1/D) they are 0 exactly.

:class:`InfiniteRandomFeatures` is the embedding (its Φ cannot be formed; its Gram matrix is Ḡ), and
:class:`GaussianFeatures` the random function h^0: values are drawn the first time an input is met, jointly for
the inputs met together and conditionally on everything revealed before (Gaussian conditioning), so that the
model is one consistent random function. Numerics: the conditional covariance is formed through eigenvalue
decompositions in float64 whose eigenvalues below ``EIG_RTOL`` times the largest are taken as 0 (no jitter is
added): near-duplicate, repeated or zero inputs and a numerically singular Ḡ give finite values and a PSD
covariance, and an input met again gets exactly the values it already has.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ._tensor import as_tensor
from .activations import Activation, get_activation
from .embeddings import Embedding, register_embedding_kind
from .errors import InvalidArgument, check_positive_int
from .kernels import limit_gram
from .neurons import draw_normal

__all__ = ["InfiniteRandomFeatures", "GaussianFeatures", "EIG_RTOL", "is_infinite"]

#: eigenvalues below this fraction of the largest one are treated as exactly 0 in the Gaussian conditioning
EIG_RTOL = 1e-12
#: neurons whose Gaussian noise is drawn at once (a multiple of wideflow.neurons.CHUNK)
SLAB = 65536


def is_infinite(D: Any) -> bool:
    """True for D = ∞ (``math.inf``)."""
    return isinstance(D, float) and math.isinf(D) and D > 0


class InfiniteRandomFeatures(Embedding):
    """The D → ∞ limit of :class:`~wideflow.embeddings.RandomFeatures` (``layers=1``, the P-3L net of eq. (5))
    and :class:`~wideflow.embeddings.DeepRandomFeatures` (``layers = L − 2``, Appendix H).

    Φ(x) has infinitely many coordinates and is never formed; :meth:`gram` is Ḡ, the limit Gram matrix of the
    Appendix H recursion with N(0, 1) fixed weights.
    """

    infinite = True

    def __init__(self, d: int, activation: str | Activation = "relu", layers: int = 1) -> None:
        self.d = check_positive_int("d", d)
        self.D = math.inf
        self.activation = get_activation(activation)
        self.layers = check_positive_int("layers", layers)

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        raise InvalidArgument(
            "Φ(x) of a D = ∞ model has infinitely many coordinates and cannot be formed; the model is defined by "
            "its Gram matrix (wf.gram, the limit Ḡ) and its features (model.features(X))."
        )

    def column_blocks(self, X: torch.Tensor, block: int):  # noqa: ANN201 - the base class's signature
        self._embed(X)
        yield X  # unreachable: _embed raises

    def gram(self, X: torch.Tensor, X2: torch.Tensor | None = None) -> torch.Tensor:
        """Ḡ(X, X2) (:func:`~wideflow.kernels.limit_gram`), computed in float64 and cast to the dtype and device
        of ``X``."""
        G = limit_gram(X.double().cpu(), None if X2 is None else X2.double().cpu(), self.activation, self.layers)
        return G.to(dtype=X.dtype, device=X.device)

    @property
    def spec(self) -> dict[str, Any]:
        return {"kind": "infinite", "d": self.d, "activation": self.activation.spec, "layers": self.layers}

    def feature_process(self, count: int, seed: int, zero: bool) -> GaussianFeatures:
        """The random function h^0 of ``count`` independently drawn neurons (:class:`GaussianFeatures`)."""
        return GaussianFeatures(self, count, seed, zero)


register_embedding_kind("infinite", InfiniteRandomFeatures)


class GaussianFeatures:
    """h^0 of a D = ∞ model: ``count`` i.i.d. Gaussian processes over inputs with covariance Ḡ (or 0 when
    ``zero``, mean field), revealed lazily and consistently.

    State: the revealed inputs ``X`` (k, d) and values ``H`` (count, k), float64 on the CPU, and the number of
    draws made so far (each draw uses a fresh event of the counter-based feature stream,
    :func:`wideflow.neurons.draw_normal`, so that any block of neurons is drawn alone as in the whole).
    """

    def __init__(self, embedding: InfiniteRandomFeatures, count: int, seed: int, zero: bool) -> None:
        self.embedding, self.count, self.seed, self.zero = embedding, count, seed, zero
        self.X = torch.zeros(0, embedding.d, dtype=torch.float64)
        self.H = torch.zeros(count, 0, dtype=torch.float64)
        self.events = 0

    def state(self) -> dict[str, Any]:
        """What :meth:`load_state` restores (saved with the model)."""
        return {"X": self.X.clone(), "H": self.H.clone(), "events": self.events}

    def load_state(self, state: dict[str, Any]) -> None:
        self.X, self.H, self.events = state["X"].double(), state["H"].double(), int(state["events"])

    def _index(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the new distinct rows of X, the index of every row of X into the revealed rows once those are
        appended); rows are matched bit for bit."""
        known = {row.numpy().tobytes(): i for i, row in enumerate(self.X)}
        first: dict[bytes, int] = {}
        index = []
        for a, row in enumerate(X):
            key = row.numpy().tobytes()
            if key in known:
                index.append(known[key])
            else:
                index.append(len(known) + len(first) if key not in first else index[first[key]])
                first.setdefault(key, a)
        return X[list(first.values())], torch.tensor(index, dtype=torch.long)

    def _conditional(self, U: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """A draw of rows lo..hi of h^0 at the new inputs U, conditioned on the revealed values (float64)."""
        k = U.shape[0]
        if self.zero or k == 0:
            return torch.zeros(hi - lo, k, dtype=torch.float64)
        K_nn = self.embedding.gram(U)
        mean = torch.zeros(hi - lo, k, dtype=torch.float64)
        if self.X.shape[0]:
            lam, V = torch.linalg.eigh(self.embedding.gram(self.X))
            keep = lam > EIG_RTOL * max(float(lam[-1]), 0.0)
            P = V[:, keep] / lam[keep].sqrt()  # K_rr^+ = P Pᵀ on the kept eigenvectors
            A = P.T @ self.embedding.gram(self.X, U)  # (r, k)
            mean = (self.H[lo:hi] @ P) @ A
            K_nn = K_nn - A.T @ A
        K_nn = 0.5 * (K_nn + K_nn.T)
        mu, Q = torch.linalg.eigh(K_nn)
        mu = torch.where(mu > EIG_RTOL * max(float(mu[-1]), 0.0), mu, torch.zeros_like(mu))
        root = (Q * mu.sqrt()).T
        for start in range(lo, hi, SLAB):  # in slabs of neurons: the noise is never held for all of them at once
            stop = min(start + SLAB, hi)
            noise = draw_normal(self.seed, self.events, self.count, k, start, stop)
            mean[start - lo : stop - lo].addmm_(noise, root)
        return mean

    def reveal(self, X: torch.Tensor) -> torch.Tensor:
        """h^0 at the inputs X (n, d): the values of inputs revealed before, a joint conditional draw for the
        others; returns (count, n) float64 and keeps the new values."""
        X = as_tensor("X", X, ndim=2, dtype=torch.float64, device="cpu", cols=self.embedding.d)
        fresh, index = self._index(X)
        if fresh.shape[0]:
            values = self._conditional(fresh, 0, self.count)
            self.X = torch.cat([self.X, fresh])
            self.H = torch.cat([self.H, values], dim=1) if self.H.shape[1] else values
            self.events += 1
        if index.shape[0] == self.H.shape[1] and torch.equal(index, torch.arange(index.shape[0])):
            return self.H  # all the revealed values in order: no copy (m·n values can be large)
        return self.H[:, index]

    def peek(self, X: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Rows lo..hi of what :meth:`reveal` would return for X (inputs all new or all revealed), without
        keeping anything: the block of neurons one process of a sharded run draws."""
        X = as_tensor("X", X, ndim=2, dtype=torch.float64, device="cpu", cols=self.embedding.d)
        fresh, index = self._index(X)
        if fresh.shape[0] == 0:
            return self.H[lo:hi, index]
        if fresh.shape[0] != len(set(index.tolist())) or int(index.min()) < self.X.shape[0]:
            raise InvalidArgument("a sharded D = ∞ run draws its inputs all at once; reveal them first or none.")
        return self._conditional(fresh, lo, hi)[:, index - self.X.shape[0]]


def warn_mean_field_collapse() -> None:
    """The warning of a mean-field model at D = ∞ (docs/theory.md §6)."""
    warnings.warn(
        "scaling='mf' at D = ∞: the features start at exactly 0 (s_h = 1/D), so all neurons with the same sign of "
        "c follow the same trajectory for ever (the collapse of diversity of mean-field limits); this is the "
        "limit, not a bug (docs/theory.md §6).", UserWarning, stacklevel=3)


class TrainedShift:
    """What GD added to the features of a D = ∞ model: h_t(x) = h^0(x) + Σ_a Z_ia Ḡ(x_a, x) over the training
    inputs x_a (docs/theory.md §8, W_t = W_0 + B_t Φ with Z = s_h D B), and the features H_t on the training
    inputs themselves, as the engine left them (a trained model's features on its training inputs are exactly
    the engine's state)."""

    def __init__(self, X: torch.Tensor, Z: torch.Tensor, H: torch.Tensor) -> None:
        self.X, self.Z, self.H = X, Z, H  # (n, d), (m, n), (m, n)

    def apply(self, embedding: InfiniteRandomFeatures, X: torch.Tensor, H0: torch.Tensor) -> torch.Tensor:
        """h_t at inputs X (n', d) given h^0 there (n', m): shape (n', m)."""
        H = H0 + embedding.gram(X, self.X.to(X)) @ self.Z.T.to(H0)
        same = (X[:, None, :] == self.X.to(X)[None, :, :]).all(dim=2)  # (n', n): exact matches
        rows, cols = same.nonzero(as_tuple=True)
        H[rows] = self.H.T.to(H0)[cols]
        return H

    def state(self) -> dict[str, torch.Tensor]:
        return {"X": self.X.cpu(), "Z": self.Z.cpu(), "H": self.H.cpu()}
