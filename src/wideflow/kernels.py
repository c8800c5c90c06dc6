"""Gram matrices, their infinite-width limits and tangent kernels (eqs. (12), (15), Appendix H; docs/theory.md §3-§4).

- :func:`gram`: the empirical G(x, x') = Φ(x)·Φ(x')/D of eq. (12), unnormalized (G_aa is the variance of
  h_i^0(x_a) under the paper's scaling), formed in column blocks of Φ.
- :func:`limit_gram`: its D → ∞ limit Ḡ for the random-feature embeddings with N(0, 1) fixed weights,
  through the layer-by-layer recursion of Appendix H (docs/theory.md §4):
  Σ^(1)(x, x') = xᵀx'/d,  Σ^(l+1)(x, x') = E[σ(u)σ(v)], (u, v) ~ N(0, [[Σ^(l)(x,x), Σ^(l)(x,x')], [·, Σ^(l)(x',x')]]).
- :func:`dual_kernel`: one step of that recursion, E[σ(u)σ(v)] (or E[σ'(u)σ'(v)]) for a Gaussian pair, by
  the closed form the activation declares (ReLU: arc-cosine of order 1; leaky ReLU; erf: arcsin formula;
  linear) and by 2-D quadrature for every other activation, user-registered ones included: Gauss-Hermite where
  it is accurate, a composite Gauss-Legendre rule refined around σ's argument 0 where it is not (large variances,
  kinks), within 1e-6·√(E σ(u)² E σ(v)²) for smooth σ at variances 1e-4 to 1e2 (docs/reproductions.md).
- :func:`tangent_kernel`: K_ab = (1/m) Σ_i c_i² σ'(h_i(x_a)) σ'(h_i(x_b)) G_ab, so that one GD step moves the
  training outputs by −(δ/N) K e to first order, in all three scalings.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from ._tensor import as_tensor, check_shape, resolve_dtype
from .activations import Activation, get_activation
from .embeddings import DeepRandomFeatures, Embedding, Identity, RandomFeatures
from .errors import InvalidArgument, InvalidShape, InvalidType, NonFiniteInput, check_choice, check_positive_int, not_a_model

__all__ = ["gram", "embedding_gram", "limit_gram", "expected_gram", "limit_depth", "dual_kernel", "tangent_kernel", "has_closed_form", "max_stable_step_size"]

# Gauss-Hermite points per dimension of the first rule tried (docs/theory.md §4). A pair whose result moves by
# more than QUAD_RTOL between FAST_CHECK_NODES and DEFAULT_NODES points (large variances, where σ(√q x) is
# sharp on the scale of the nodes, and kinks) is computed again by the composite rule below.
DEFAULT_NODES = 64
FAST_CHECK_NODES = 48
QUAD_RTOL = 1e-9
# The composite rule: Gauss-Legendre panels of _GL_POINTS points in the standard normal variable on
# [−_TAIL, _TAIL] (the N(0, 1) mass outside is 2e-17), refined in a window of ±_WINDOW in σ's argument around
# where σ's argument is 0, with a panel edge there (a kink at 0 is integrated exactly).
_GL_POINTS = 8
_SIDE_PANELS, _HALF_PANELS = 3, 5
_TAIL, _WINDOW = 8.5, 8.0
# Elements of the (pairs × nodes × nodes) quadrature tensor evaluated at once: 32 MiB in float64.
_QUAD_CHUNK = 1 << 22


def _embedding_and_dtype(model: Any) -> tuple[Embedding, torch.dtype, torch.device]:
    if isinstance(model, Embedding):
        return model, torch.float64, torch.device("cpu")
    if not isinstance(getattr(model, "embedding", None), Embedding):
        raise not_a_model("model", model)
    return model.embedding, model.dtype, model.device


def gram(model: Any, X: Any, X2: Any = None, *, block: int = 2048) -> torch.Tensor:
    """Empirical Gram matrix G(X, X2) = Φ(X) Φ(X2)ᵀ / D of eq. (12)/(15), shape (n, n2).

    Φ is formed ``block`` columns at a time for random embeddings, so memory stays O((n + n2)·block)
    whatever D is. ``model`` is a :class:`~wideflow.model.WideNet` (its dtype and device are used) or an
    :class:`~wideflow.embeddings.Embedding` (float64, CPU).
    """
    emb, dtype, device = _embedding_and_dtype(model)
    block = check_positive_int("block", block)
    X = as_tensor("X", X, ndim=2, dtype=dtype, device=device, cols=emb.d)
    X2 = None if X2 is None else as_tensor("X2", X2, ndim=2, dtype=dtype, device=device, cols=emb.d)
    return embedding_gram(emb, X, X2, block)


def embedding_gram(emb: Embedding, X: torch.Tensor, X2: torch.Tensor | None = None, block: int = 2048) -> torch.Tensor:
    """:func:`gram` for inputs already checked and converted (the training engines call it once per run):
    Φ(X) Φ(X2)ᵀ / D accumulated over ``block`` columns of Φ at a time, in the dtype and device of ``X``."""
    if emb.infinite:
        return emb.gram(X, X2)
    same = X2 is None
    X2 = X if X2 is None else X2
    G = torch.zeros(X.shape[0], X2.shape[0], dtype=X.dtype, device=X.device)
    if same:
        for P in emb.column_blocks(X, block):
            G.addmm_(P, P.T)
    else:
        for P, Q in zip(emb.column_blocks(X, block), emb.column_blocks(X2, block), strict=True):
            G.addmm_(P, Q.T)
    return G / emb.D


def limit_gram(
    X: Any,
    X2: Any = None,
    activation: str | Activation = "relu",
    depth: int = 1,
    *,
    nodes: int = DEFAULT_NODES,
    dtype: torch.dtype | str = torch.float64,
) -> torch.Tensor:
    r"""The D → ∞ limit Ḡ(X, X2) of the Gram matrix of a random-feature embedding, shape (n, n2).

    ``depth`` is the number of fixed random layers (Appendix H): 1 is the P-3L embedding of
    eq. (5), Ḡ^(1)(x, x') = E_z[σ(zᵀx/√d) σ(zᵀx'/√d)], z ~ N(0, I_d); ``depth = L − 2`` matches
    :class:`~wideflow.model.PartiallyTrained` of depth L; 0 is the identity embedding of the shallow net,
    G^(0) = XX2ᵀ/d. Each layer applies :func:`dual_kernel` to the previous covariance (closed forms where they
    exist, quadrature otherwise (see :func:`dual_kernel`)). ReLU at depth 1 is the arc-cosine kernel of
    order 1, Ḡ = ‖x‖‖x'‖ (sin θ + (π − θ) cos θ) / (2π d).

    Computed in float64; the result is cast to ``dtype`` at the end.
    """
    act = get_activation(activation)
    depth = check_positive_int("depth", depth, minimum=0)
    out_dtype = resolve_dtype(dtype)
    X = as_tensor("X", X, ndim=2, dtype=torch.float64)
    same = X2 is None
    X2 = X if same else as_tensor("X2", X2, ndim=2, dtype=torch.float64, cols=X.shape[1])
    d = X.shape[1]
    q1 = (X * X).sum(dim=1) / d
    q2 = q1 if same else (X2 * X2).sum(dim=1) / d
    cov = X @ X2.T / d
    for _ in range(depth):
        new_cov = dual_kernel(cov, q1, q2, act, nodes=nodes, symmetric=same)
        q1 = dual_kernel(q1, q1, q1, act, nodes=nodes)
        q2 = q1 if same else dual_kernel(q2, q2, q2, act, nodes=nodes)
        cov = new_cov
    return cov.to(out_dtype)


def limit_depth(model: Any) -> int | None:
    """The ``depth`` of :func:`limit_gram` that is the D → ∞ limit of this model's (or embedding's) Gram
    matrix: 0 for :class:`~wideflow.embeddings.Identity`, 1 for
    :class:`~wideflow.embeddings.RandomFeatures`, ``layers`` for
    :class:`~wideflow.embeddings.DeepRandomFeatures`; ``None`` for a deterministic embedding without one."""
    emb, _, _ = _embedding_and_dtype(model)
    if isinstance(emb, Identity):
        return 0
    if isinstance(emb, DeepRandomFeatures) or emb.infinite:
        return emb.layers
    if isinstance(emb, RandomFeatures):
        return 1
    return None


def expected_gram(model: Any, X: Any, X2: Any = None, *, nodes: int = DEFAULT_NODES) -> torch.Tensor:
    """Ḡ for this model's embedding: the expectation of G over its random fixed layers, i.e. the D → ∞
    limit (:func:`limit_gram` with the embedding's activation and depth, docs/theory.md §4); for a deterministic
    embedding (Identity, Quadratic, a user function) it is G itself. In the model's dtype and device."""
    emb, dtype, device = _embedding_and_dtype(model)
    depth = limit_depth(emb)
    if depth is None:
        return gram(model, X, X2)
    activation = getattr(emb, "activation", "linear")
    X = as_tensor("X", X, ndim=2, dtype=torch.float64, cols=emb.d)
    X2 = None if X2 is None else as_tensor("X2", X2, ndim=2, dtype=torch.float64, cols=emb.d)
    return limit_gram(X, X2, activation, depth, nodes=nodes).to(device=device, dtype=dtype)


def dual_kernel(
    cov: torch.Tensor,
    var1: torch.Tensor,
    var2: torch.Tensor,
    activation: str | Activation,
    *,
    derivative: bool = False,
    nodes: int = DEFAULT_NODES,
    symmetric: bool = False,
) -> torch.Tensor:
    r"""E[g(u) g(v)] for (u, v) ~ N(0, [[var1_a, cov_ab], [cov_ab, var2_b]]), elementwise over (a, b).

    g = σ, or σ' with ``derivative=True`` (the factor of the NTK-regime kernel, docs/theory.md §3). ``cov`` has
    shape (n1, n2) (or any shape broadcastable against ``var1[:, None]``, ``var2[None, :]``; pass equal-shape
    vectors for a diagonal). Correlations are clamped to [−1, 1] and a zero variance makes that variable
    identically 0. An activation that declares the closed form (:attr:`~wideflow.activations.Activation.dual`,
    ``dual_deriv``) is evaluated by it: linear, ReLU (arc-cosine of order 1 and its derivative form
    (π − θ)/(2π)), leaky ReLU (σ = s x + (1 − s) relu(x)), erf ((2/π) arcsin(2c/√((1+2q₁)(1+2q₂))) and
    (4/π)/√((1+2q₁)(1+2q₂) − 4c²)), and user activations registered with one; every other σ uses
    2-D quadrature in the variables u = √q₁ x, v = √q₂ (ρ x + √(1−ρ²) y): ``nodes``-point Gauss-Hermite, and
    for the pairs where it disagrees with a coarser rule (large variances, kinks) composite Gauss-Legendre
    panels refined where σ's argument is near 0 (``nodes`` > 64 refines them), within 1e-6·√(E g(u)² E g(v)²)
    for smooth σ bounded or asymptotically linear at variances from 1e-4 to 1e2.
    ``symmetric=True`` (a square ``cov`` with var1 = var2) evaluates the upper triangle only.
    """
    act = get_activation(activation)
    nodes = check_positive_int("nodes", nodes, minimum=2)
    if not isinstance(cov, torch.Tensor) or not isinstance(var1, torch.Tensor) or not isinstance(var2, torch.Tensor):
        raise InvalidType("cov, var1 and var2 must be tensors.")
    dtype = torch.float64
    cov, var1, var2 = cov.to(dtype), var1.to(dtype), var2.to(dtype)
    if cov.ndim == 2:
        if var1.shape != (cov.shape[0],) or var2.shape != (cov.shape[1],):
            raise InvalidShape(
                f"var1 and var2 must have shapes ({cov.shape[0]},) and ({cov.shape[1]},) to match cov "
                f"{tuple(cov.shape)}; got {tuple(var1.shape)} and {tuple(var2.shape)}."
            )
        q1, q2 = var1[:, None].expand_as(cov), var2[None, :].expand_as(cov)
    elif cov.shape == var1.shape == var2.shape:
        q1, q2 = var1, var2
    else:
        raise InvalidShape(f"cov must be (n1, n2), or match var1 and var2 in shape; got {tuple(cov.shape)}, "
                           f"{tuple(var1.shape)}, {tuple(var2.shape)}.")
    if bool((var1 < 0).any()) or bool((var2 < 0).any()):
        raise InvalidArgument("var1 and var2 must be variances (>= 0); got a negative entry.")
    q1, q2 = q1.clamp_min(0), q2.clamp_min(0)
    closed = act.dual_deriv if derivative else act.dual
    if closed is not None:
        return closed(q1, cov, q2)
    if symmetric and cov.ndim == 2 and cov.shape[0] == cov.shape[1]:
        rows, cols = torch.triu_indices(cov.shape[0], cov.shape[1], device=cov.device)
        upper = _quadrature(act, derivative, q1[rows, cols], q2[rows, cols], cov[rows, cols], nodes)
        out = torch.empty_like(cov)
        out[rows, cols] = upper
        out[cols, rows] = upper
        return out
    flat = _quadrature(act, derivative, q1.reshape(-1), q2.reshape(-1), cov.reshape(-1), nodes)
    return flat.reshape(cov.shape)


def has_closed_form(activation: str | Activation, derivative: bool = False) -> bool:
    """Whether :func:`dual_kernel` uses a closed form (not quadrature) for this activation: whether it declares
    :attr:`~wideflow.activations.Activation.dual` (or ``dual_deriv`` with ``derivative=True``)."""
    act = get_activation(activation)
    return (act.dual_deriv if derivative else act.dual) is not None


def tangent_kernel(H: torch.Tensor, c: torch.Tensor, activation: str | Activation, G: torch.Tensor) -> torch.Tensor:
    """K_ab = (1/m) Σ_i c_i² σ'(H_ia) σ'(H_ib) G_ab for features H of shape (m, n) (docs/theory.md §3).

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


# ------------------------------------------------------------------------------------------ quadrature
@functools.lru_cache(maxsize=8)
def _hermite(nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilists' Gauss-Hermite nodes and weights normalized to the N(0, 1) law."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    return torch.from_numpy(x), torch.from_numpy(w / math.sqrt(2 * math.pi))


def _quadrature(act: Activation, derivative: bool, q1: torch.Tensor, q2: torch.Tensor, c: torch.Tensor,
                nodes: int) -> torch.Tensor:
    """E[g(u)g(v)] over flat vectors of pairs, with u = √q₁ x, v = √q₂ (ρ x + √(1−ρ²) y), x, y ~ N(0, 1).

    Gauss-Hermite with ``nodes`` points per dimension, checked against :data:`FAST_CHECK_NODES` points; the
    pairs where the two differ by more than :data:`QUAD_RTOL` times √(E g(u)² E g(v)²) are computed by
    :func:`_composite`.
    """
    g = act.deriv if derivative else act.fn
    s1, s2 = torch.sqrt(q1), torch.sqrt(q2)
    outer = s1 * s2
    rho = torch.where(outer > 0, c / outer.clamp_min(torch.finfo(outer.dtype).tiny), torch.zeros_like(c))
    rho = rho.clamp(-1.0, 1.0)
    perp = torch.sqrt((1 - rho * rho).clamp_min(0))
    out = _hermite_pairs(g, s1, s2, rho, perp, nodes)
    check = _hermite_pairs(g, s1, s2, rho, perp, min(FAST_CHECK_NODES, max(2, (3 * nodes) // 4)))
    x, w = (t.to(c.device) for t in _hermite(nodes))
    size = torch.sqrt((g(s1[:, None] * x) ** 2 @ w) * (g(s2[:, None] * x) ** 2 @ w))  # √(E g(u)² E g(v)²)
    hard = ~((out - check).abs() <= QUAD_RTOL * torch.maximum(size, out.abs()))
    if bool(hard.any()):
        out[hard] = _composite(g, s1[hard], s2[hard], rho[hard], perp[hard], nodes)
    return out


def _hermite_pairs(g: Any, s1: torch.Tensor, s2: torch.Tensor, rho: torch.Tensor, perp: torch.Tensor,
                   nodes: int) -> torch.Tensor:
    x, w = (t.to(s1.device) for t in _hermite(nodes))
    out = torch.empty_like(s1)
    chunk = max(1, _QUAD_CHUNK // (nodes * nodes))
    for start in range(0, s1.numel(), chunk):
        sl = slice(start, start + chunk)
        gu = g(s1[sl, None] * x[None, :])  # (p, Q)
        v = s2[sl, None, None] * (rho[sl, None, None] * x[None, :, None] + perp[sl, None, None] * x[None, None, :])
        inner = g(v) @ w  # (p, Q): E_y[g(v) | x]
        out[sl] = (gu * inner) @ w
    return out


@functools.lru_cache(maxsize=8)
def _legendre(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes on [0, 1] and their weights (summing to 1)."""
    t, w = np.polynomial.legendre.leggauss(points)
    return torch.from_numpy((t + 1) / 2), torch.from_numpy(w / 2)


def _panel_rule(center: torch.Tensor, half: torch.Tensor, panels: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Gauss-Legendre nodes and weights (times the N(0, 1) density) on [−_TAIL, _TAIL], shape
    (*center.shape, K): ``panels = (side, half_panels)``, ``side`` panels on each side of the window
    [center − half, center + half] (clipped to the interval) and ``half_panels`` on each half of it, so that
    ``center`` is a panel edge."""
    side, half_panels = panels
    t, w = (a.to(center.device) for a in _legendre(_GL_POINTS))
    lo_tail = torch.full_like(center, -_TAIL)
    c = center.clamp(-_TAIL, _TAIL)
    lo, hi = (center - half).clamp(-_TAIL, _TAIL), (center + half).clamp(-_TAIL, _TAIL)
    xs, ws = [], []
    for a, b, count in ((lo_tail, lo, side), (lo, c, half_panels), (c, hi, half_panels), (hi, -lo_tail, side)):
        h = (b - a) / count
        j = torch.arange(count, dtype=center.dtype, device=center.device)
        x = a[..., None, None] + (j[:, None] + t[None, :]) * h[..., None, None]  # (..., count, points)
        xs.append(x.flatten(-2))
        ws.append((h[..., None, None] * w * torch.exp(-0.5 * x * x)).flatten(-2))
    return torch.cat(xs, -1), torch.cat(ws, -1) / math.sqrt(2 * math.pi)


def _composite(g: Any, s1: torch.Tensor, s2: torch.Tensor, rho: torch.Tensor, perp: torch.Tensor,
               nodes: int) -> torch.Tensor:
    """The pairs of :func:`_quadrature` by composite Gauss-Legendre in x and, for each x, in y, each refined
    where σ's argument is within ±_WINDOW of 0: u = 0 at x = 0 (width 1/max(√q₁, √q₂|ρ|)) and v = 0 at
    y = −√q₂ρx/s, s = √q₂·√(1−ρ²) (width 1/s). ``nodes`` scales the panels (``nodes``/64 times the default)."""
    scale = max(1, nodes // DEFAULT_NODES)
    panels = (_SIDE_PANELS * scale, _HALF_PANELS * scale)
    tiny = torch.finfo(s1.dtype).tiny
    s = s2 * perp
    K = 2 * sum(panels) * _GL_POINTS
    out = torch.empty_like(s1)
    chunk = max(1, _QUAD_CHUNK // (K * K))
    for start in range(0, s1.numel(), chunk):
        sl = slice(start, start + chunk)
        a1, a2, r, sy = s1[sl], s2[sl], rho[sl], s[sl]
        x, wx = _panel_rule(torch.zeros_like(a1), _WINDOW / torch.maximum(a1, a2 * r.abs()).clamp_min(tiny), panels)
        mean = (a2 * r)[:, None] * x  # (p, K): √q₂ρx
        center = (-mean / sy.clamp_min(tiny)[:, None]).clamp(-2 * _TAIL, 2 * _TAIL)
        y, wy = _panel_rule(center, (_WINDOW / sy.clamp_min(tiny))[:, None].expand_as(center), panels)
        inner = (g(mean[..., None] + sy[:, None, None] * y) * wy).sum(-1)  # (p, K): E_y[g(v) | x]
        out[sl] = (g(a1[:, None] * x) * inner * wx).sum(-1)
    return out


def max_stable_step_size(model: Any, X: Any, reduction: str = "mean") -> float:
    r"""δ_max = 2N/λ_max(K_0): the largest step size for which GD linearized at initialization is stable.

    To first order one GD step moves the training residual by e ← e − (δ/N) K_0 e (eq. (13), docs/theory.md
    §3), so the linearized dynamics converge iff δ·λ_max(K_0)/N < 2 (neural-tangents' ``max_learning_rate``
    does the same). K_0 is the tangent kernel of every trained parameter at initialization, in GD-step units:

    - W (always): K_ab = (1/m) Σ_i c_i² σ'(h_ia) σ'(h_ib) G_ab, :func:`tangent_kernel`;
    - c (``train_c``): s_o²·(lr factor of c)·Σ_i σ(h_ia) σ(h_ib);
    - b (``bias``): s_o²·(lr factor of b)·Σ_i c_i² σ'(h_ia) σ'(h_ib).

    Returns ``inf`` when K_0 = 0 (e.g. every ReLU neuron inactive on the data).
    """
    _embedding_and_dtype(model)  # the one "not a model" error
    reduction = check_choice("reduction", reduction, ("mean", "sum"))
    Xt = model.input(X)
    N = float(Xt.shape[0]) if reduction == "mean" else 1.0
    H = model.features(Xt).T  # (m, n)
    K = tangent_kernel(H, model.c, model.activation, gram(model, Xt))
    neuron = model.s_o**2 * model.scaling.neuron_lr_factor(model.m)
    if model.train_c:
        S = model.activation(H)
        K = K + neuron * (S.T @ S)
    if model.bias:
        S = model.activation.deriv(H) * model.c[:, None]
        K = K + neuron * (S.T @ S)
    if not bool(torch.isfinite(K).all()):
        raise NonFiniteInput(
            "the tangent kernel K_0 has NaN or Inf entries: the embedding Φ(X) or the features h(X) of this model "
            "are not finite on X."
        )
    lam = float(torch.linalg.eigvalsh(K.double())[-1])
    return 2 * N / lam if lam > 0 else math.inf
