"""Gram matrices and tangent kernels (spec §1.7, §1.10).

- :func:`gram`: the empirical G(x, x') = Φ(x)·Φ(x')/D of eq. (12), unnormalized (G_aa is the variance of
  h_i^0(x_a) under the paper's scaling).
- :func:`limit_gram`: its D → ∞ limit Ḡ for random-feature embeddings with z ~ N(0, I_d).
- :func:`tangent_kernel`: K_ab = (1/m) Σ_i c_i² σ'(h_i(x_a)) σ'(h_i(x_b)) G_ab, so that one GD step moves the
  training outputs by −(δ/N) K e to first order, in all three scalings.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ._tensor import as_tensor, check_shape
from .activations import Activation, get_activation
from .embeddings import Embedding
from .errors import InvalidType, check_positive_int

__all__ = ["gram", "limit_gram", "tangent_kernel"]


def _embedding_and_dtype(model: Any) -> tuple[Embedding, torch.dtype, torch.device]:
    from .model import WideNet

    if isinstance(model, WideNet):
        return model.embedding, model.dtype, model.device
    if isinstance(model, Embedding):
        return model, torch.float64, torch.device("cpu")
    raise InvalidType(f"model must be a WideNet or an Embedding; got {type(model).__name__}.")


def gram(model: Any, X: Any, X2: Any = None, *, block: int = 2048) -> torch.Tensor:
    """Empirical Gram matrix G(X, X2) = Φ(X) Φ(X2)ᵀ / D of eq. (12)/(15), shape (n, n2).

    Φ is formed ``block`` columns at a time for random embeddings, so memory stays O((n + n2)·block)
    whatever D is. ``model`` is a :class:`~wideflow.model.WideNet` (its dtype and device are used) or an
    :class:`~wideflow.embeddings.Embedding` (float64, CPU).
    """
    emb, dtype, device = _embedding_and_dtype(model)
    block = check_positive_int("block", block)
    X = as_tensor("X", X, ndim=2, dtype=dtype, device=device, cols=emb.d)
    same = X2 is None
    X2 = X if same else as_tensor("X2", X2, ndim=2, dtype=dtype, device=device, cols=emb.d)
    G = torch.zeros(X.shape[0], X2.shape[0], dtype=dtype, device=device)
    if same:
        for P in emb.column_blocks(X, block):
            G.addmm_(P, P.T)
    else:
        for P, Q in zip(emb.column_blocks(X, block), emb.column_blocks(X2, block), strict=True):
            G.addmm_(P, Q.T)
    return G / emb.D


def limit_gram(X: Any, X2: Any = None, activation: str | Activation = "relu") -> torch.Tensor:
    """The D → ∞ limit Ḡ(x, x') = E_z[σ(zᵀx/√d) σ(zᵀx'/√d)], z ~ N(0, I_d) (spec §1.10), float64.

    ReLU: the arc-cosine kernel of order 1, Ḡ = ‖x‖‖x'‖ (sin θ + (π − θ) cos θ) / (2π d).
    """
    act = get_activation(activation)
    X = as_tensor("X", X, ndim=2, dtype=torch.float64)
    X2 = X if X2 is None else as_tensor("X2", X2, ndim=2, dtype=torch.float64, cols=X.shape[1])
    if act.name != "relu":
        raise NotImplementedError(f"limit_gram has no closed form for {act.name!r} yet")
    return _relu_limit(X, X2)


def tangent_kernel(H: torch.Tensor, c: torch.Tensor, activation: str | Activation, G: torch.Tensor) -> torch.Tensor:
    """K_ab = (1/m) Σ_i c_i² σ'(H_ia) σ'(H_ib) G_ab for features H of shape (m, n) (spec §1.7).

    This is the tangent kernel of the trained layer in GD-step units: e ← e − (δ/N) K e to first order,
    for every scaling (the learning-rate factor of Table 1 absorbs the output multiplier).
    """
    act = get_activation(activation)
    if not isinstance(H, torch.Tensor) or H.ndim != 2:
        got = tuple(H.shape) if isinstance(H, torch.Tensor) else type(H).__name__
        raise InvalidShape(f"H must be the features h_i(x_a), a tensor of shape (m, n); got {got}.")
    m, n = H.shape
    check_shape("c", c, (m,), "(m,)", f" to match H of shape (m, n) = {(m, n)}")
    check_shape("G", G, (n, n), "(n, n)", f" to match H of shape (m, n) = {(m, n)}")
    S = act.deriv(H) * c[:, None]
    return (S.T @ S) * G / m


def _relu_limit(X: torch.Tensor, X2: torch.Tensor) -> torch.Tensor:
    d = X.shape[1]
    n1, n2 = X.norm(dim=1), X2.norm(dim=1)
    outer = n1[:, None] * n2[None, :]
    cos = torch.where(outer > 0, (X @ X2.T) / outer.clamp_min(torch.finfo(X.dtype).tiny), torch.zeros_like(outer))
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    return outer * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi * d)
