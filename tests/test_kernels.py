"""Gram matrices, their D → ∞ limits and the NTK-regime kernel, against Monte-Carlo estimates (Appendix H,
docs/theory.md §4)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import wideflow as wf
from wideflow import activations
from wideflow.activations import available_activations, register_activation
from wideflow.embeddings import DeepRandomFeatures, Identity, RandomFeatures
from wideflow.errors import InvalidArgument, InvalidShape, UnknownName
from wideflow.kernels import (
    dual_kernel,
    expected_gram,
    has_closed_form,
    limit_depth,
    limit_gram,
)
from wideflow.ntk import ntk_kernel, ntk_kernel_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small matrices: OpenMP sync costs more than the work

BUILTIN = available_activations()
D_MC = 20_000  # random features for the depth-1 Monte Carlo estimate
SEEDS_MC, D_DEEP = 12, 600  # independent depth-2 networks and their width


def _inputs() -> torch.Tensor:
    """Six points in R^4 with a zero-norm input (row 4) and a parallel pair (rows 0, 1): the clamped cases."""
    X = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    X[1] = 2 * X[0]
    X[4] = 0
    return X


@pytest.fixture
def user_activations(monkeypatch: pytest.MonkeyPatch) -> dict[str, wf.Activation]:
    """Two user activations, registered in a copy of the registry that is restored after the test."""
    monkeypatch.setattr(activations, "_FACTORIES", dict(activations._FACTORIES))
    return {
        "test_sin": register_activation("test_sin", torch.sin, torch.cos, lipschitz=1.0),
        "test_erf_copy": register_activation("test_erf_copy", torch.erf,
                                             lambda x: 2 / math.sqrt(math.pi) * torch.exp(-x * x),
                                             lipschitz=2 / math.sqrt(math.pi)),
    }


@pytest.mark.parametrize("activation", BUILTIN + ["test_sin"])
@pytest.mark.usefixtures("user_activations")
def test_depth1_limit_matches_monte_carlo(activation: str) -> None:
    # G^(1) is a mean of D i.i.d. terms φ_j(x_a)φ_j(x_b): each entry's error is ~N(0, se²) with se = std_j/√D.
    # |z| <= 5 has probability 1 − 6e-7 per entry (21 entries), so a failure means a wrong formula.
    X = _inputs()
    Phi = RandomFeatures(4, D_MC, activation=activation, seed=3)(X)
    terms = Phi.T[:, :, None] * Phi.T[:, None, :]  # (D, n, n)
    G_mc, se = terms.mean(0), terms.std(0) / math.sqrt(D_MC)
    G_bar = limit_gram(X, activation=activation)
    assert torch.allclose(G_mc, wf.gram(RandomFeatures(4, D_MC, activation=activation, seed=3), X), atol=1e-12)
    # 1e-12: entries whose terms are all equal (both inputs zero) have se = 0 and agree to float64 round-off
    assert ((G_mc - G_bar).abs() <= 5 * se + 1e-12).all(), ((G_mc - G_bar) / se).abs().max()


@pytest.mark.parametrize("activation", BUILTIN + ["test_sin"])
@pytest.mark.usefixtures("user_activations")
def test_depth2_limit_matches_monte_carlo(activation: str) -> None:
    # Ḡ^(2) against the mean of 12 independent depth-2 embeddings of width 600. Each entry's standard error is
    # estimated from the spread of the 12 networks: |t| <= 7 has probability 1 − 2e-5 per entry under a
    # t-distribution with 11 degrees of freedom; the O(1/D) bias of the nonlinear recursion is ~0.1 se here.
    X = _inputs()
    Gs = torch.stack([wf.gram(DeepRandomFeatures(4, D_DEEP, layers=2, activation=activation, seed=100 + s), X)
                      for s in range(SEEDS_MC)])
    mean, se = Gs.mean(0), Gs.std(0) / math.sqrt(SEEDS_MC)
    G_bar = limit_gram(X, activation=activation, depth=2)
    assert ((mean - G_bar).abs() <= 7 * se + 1e-12).all(), ((mean - G_bar) / se).abs().max()


def test_relu_is_the_arc_cosine_kernel() -> None:
    X = _inputs()
    d = X.shape[1]
    G = limit_gram(X)
    norms = X.norm(dim=1)
    assert torch.allclose(torch.diagonal(G), norms**2 / (2 * d), atol=1e-15)  # the diagonal is ‖x‖²/(2d)
    # the parallel pair: θ = 0 after clamping, so Ḡ = ‖x_0‖‖x_1‖/(2d) with no NaN from arccos(1 + ε)
    assert G[0, 1] == pytest.approx(float(norms[0] * norms[1]) / (2 * d), rel=1e-14)
    assert torch.equal(G[4], torch.zeros(6, dtype=torch.float64))


def test_quadrature_matches_exact_formulas(user_activations: dict[str, wf.Activation]) -> None:
    # For σ = sin, E[sin u sin v] = e^{-(q1+q2)/2} sinh(c); sin is entire, so 64-node Gauss-Hermite is exact
    # to ~1e-14 at these variances (q ≤ 4). An erf registered under another name takes the quadrature path and
    # must reproduce the closed arcsin form (measured error ≤ 3e-9 at q ≤ 3).
    X = _inputs()
    d = X.shape[1]
    q = (X * X).sum(1) / d
    c = X @ X.T / d
    exact = torch.exp(-(q[:, None] + q[None, :]) / 2) * torch.sinh(c)
    _SIN, _ERF_COPY = user_activations["test_sin"], user_activations["test_erf_copy"]
    assert not has_closed_form(_SIN)
    assert torch.allclose(limit_gram(X, activation=_SIN), exact, atol=1e-13)
    assert not has_closed_form(_ERF_COPY) and has_closed_form("erf") and has_closed_form("erf", derivative=True)
    for deriv in (False, True):
        quad = dual_kernel(c, q, q, _ERF_COPY, derivative=deriv)
        closed = dual_kernel(c, q, q, "erf", derivative=deriv)
        assert torch.allclose(quad, closed, atol=1e-8)


def test_a_user_function_under_a_builtin_name_is_not_mistaken_for_it() -> None:
    impostor = wf.Activation("relu", torch.tanh, lambda x: 1 - torch.tanh(x) ** 2, 1.0, (-1.0, 1.0), 0.4)
    assert not has_closed_form(impostor) and has_closed_form("relu")
    X = _inputs()
    assert torch.allclose(limit_gram(X, activation=impostor), limit_gram(X, activation="tanh"), atol=1e-15)


@pytest.mark.parametrize("activation", BUILTIN)
def test_derivative_kernel_matches_monte_carlo(activation: str) -> None:
    # E[σ'(u)σ'(v)] for Gaussian pairs, against 100k sampled pairs per entry; |z| <= 5 as above.
    X = _inputs()
    d = X.shape[1]
    q = (X * X).sum(1) / d
    c = X @ X.T / d
    act = wf.get_activation(activation)
    L = torch.linalg.cholesky(c + 1e-12 * torch.eye(6, dtype=torch.float64))
    Z = torch.randn(100_000, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64) @ L.T
    S = act.deriv(Z)
    terms = S[:, :, None] * S[:, None, :]
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(Z.shape[0])
    exact = dual_kernel(c, q, q, act, derivative=True)
    ok = (mc - exact).abs() <= 5 * se + 1e-5  # 1e-5: the 1e-12 jitter moves sign(u) of the zero input
    # the zero-variance row: σ'(0) exactly, which the jitter does not reproduce for a kinked σ'; drop it
    assert ok[[0, 1, 2, 3, 5]][:, [0, 1, 2, 3, 5]].all()


def test_depth_zero_is_the_shallow_gram_and_cross_kernels_are_blocks() -> None:
    X = _inputs()
    assert torch.allclose(limit_gram(X, depth=0), wf.gram(Identity(4), X), atol=1e-15)
    for depth in (1, 2):
        full = limit_gram(X, activation="tanh", depth=depth)
        cross = limit_gram(X[:2], X[2:], activation="tanh", depth=depth)
        assert torch.allclose(cross, full[:2, 2:], atol=1e-14)  # same arithmetic up to the order of sums
    assert limit_gram(X).dtype == torch.float64
    assert limit_gram(X, dtype=torch.float32).dtype == torch.float32


def test_expected_gram_and_limit_depth_follow_the_embedding() -> None:
    X = _inputs()
    p3l = wf.P3L(4, 8, D=16, activation="tanh")
    deep = wf.PartiallyTrained(4, 8, D=16, depth=5, activation="tanh")
    assert (limit_depth(wf.Shallow(4, 8)), limit_depth(p3l), limit_depth(deep)) == (0, 1, 3)
    assert limit_depth(wf.WideNet(wf.embeddings.Quadratic(4), 8)) is None
    assert torch.allclose(expected_gram(deep, X), limit_gram(X, activation="tanh", depth=3))
    quad = wf.WideNet(wf.embeddings.Quadratic(4), 8)
    assert torch.allclose(expected_gram(quad, X), (X @ X.T) ** 2 / 16, atol=1e-12)  # G = (xᵀx')²/d² (theory §4)


def test_gram_blocks_do_not_change_the_result() -> None:
    X = _inputs()
    emb = DeepRandomFeatures(4, 50, layers=2, seed=2)
    assert torch.allclose(wf.gram(emb, X, block=7), wf.gram(emb, X), atol=1e-14)
    assert torch.allclose(wf.gram(emb, X[:2], X[2:], block=7), wf.gram(emb, X)[:2, 2:], atol=1e-14)


def test_ntk_kernel_is_the_mean_of_the_tangent_kernel_over_neurons() -> None:
    # At initialization K_0 = (1/m) Σ_i c_i² σ'(h_i(x_a))σ'(h_i(x_b)) G_ab is a mean of m i.i.d. neuron terms
    # given the embedding; the m → ∞ limit at this embedding is ntk_kernel_of(limit="m"). |z| <= 5 per entry.
    X = _inputs()
    model = wf.P3L(4, 20_000, D=64, activation="tanh", c_hat=1.5)
    H0 = model.features(X)
    G = wf.gram(model, X)
    S = model.activation.deriv(H0) * model.c[None, :]  # (n, m)
    terms = S.T[:, :, None] * S.T[:, None, :] * G
    K0, se = terms.mean(0), terms.std(0) / math.sqrt(model.m)
    assert torch.allclose(K0, wf.tangent_kernel(H0.T, model.c, model.activation, G), atol=1e-12)
    theta = ntk_kernel_of(model, X, limit="m")
    assert ((K0 - theta).abs() <= 5 * se + 1e-12).all()
    both = ntk_kernel_of(model, X, limit="both")
    assert torch.allclose(both, ntk_kernel(X, activation="tanh", c_hat=1.5), atol=1e-14)
    assert torch.allclose(ntk_kernel(X[:2], X[2:], activation="tanh"), ntk_kernel(X, activation="tanh")[:2, 2:])


def test_limit_gram_rejects_bad_arguments() -> None:
    X = _inputs()
    with pytest.raises(InvalidArgument, match="depth"):
        limit_gram(X, depth=-1)
    with pytest.raises(UnknownName, match="relu"):
        limit_gram(X, activation="rleu")
    with pytest.raises(InvalidShape, match="columns"):
        limit_gram(X, X[:, :3])
    with pytest.raises(InvalidArgument, match="variances"):
        dual_kernel(torch.zeros(2, 2), -torch.ones(2), torch.ones(2), "relu")


# ------------------------------------------------------------------------------------ quadrature at every scale
SCALES = (0.01, 0.1, 1.0, 9.0, 50.0)  # ‖x‖²/d of the inputs: the variances q of the first layer
MC_SAMPLES = 2_000_000


@pytest.fixture
def swish(monkeypatch: pytest.MonkeyPatch) -> wf.Activation:
    """A user activation without a closed form, σ(x) = x·sigmoid(x), registered for the test only."""
    monkeypatch.setattr(activations, "_FACTORIES", dict(activations._FACTORIES))
    return register_activation("test_swish", lambda x: x * torch.sigmoid(x),
                               lambda x: torch.sigmoid(x) * (1 + x * (1 - torch.sigmoid(x))), lipschitz=1.1)


def _scaled_inputs(d: int = 4) -> torch.Tensor:
    """One input per scale of SCALES, in generic directions, with ‖x‖²/d equal to that scale."""
    X = torch.randn(len(SCALES), d, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return X / X.norm(dim=1, keepdim=True) * torch.sqrt(d * torch.tensor(SCALES, dtype=torch.float64))[:, None]


@pytest.mark.parametrize("activation", ["tanh", "erf", "sigmoid", "softplus", "test_swish"])
def test_limit_gram_and_derivative_kernel_match_monte_carlo_at_every_scale(activation: str, swish) -> None:
    # Ḡ_ab = E_z[σ(zᵀx_a/√d) σ(zᵀx_b/√d)] against the mean over 2·10^6 draws of z, for inputs with ‖x‖²/d from
    # 0.01 to 50 (so pairs whose variances differ by up to 5000×); the same for σ'. Each entry's error is
    # ~N(0, se²) with se from the sample's second moments: |z| <= 5 has probability 1 − 6e-7 per entry (150
    # entries). The fixed 64-node Gauss-Hermite rule missed tanh at q = 9 by 8 se.
    X = _scaled_inputs()
    d = X.shape[1]
    act = wf.get_activation(activation)
    U = torch.randn(MC_SAMPLES, d, generator=torch.Generator().manual_seed(11), dtype=torch.float64) @ X.T / math.sqrt(d)
    q, cov = (X * X).sum(1) / d, X @ X.T / d
    for values, exact in ((act.fn(U), limit_gram(X, activation=act)),
                          (act.deriv(U), dual_kernel(cov, q, q, act, derivative=True))):
        mean = values.T @ values / MC_SAMPLES
        se = torch.sqrt(((values**2).T @ values**2 / MC_SAMPLES - mean**2) / MC_SAMPLES)
        assert ((mean - exact).abs() <= 5 * se).all(), ((mean - exact) / se).abs().max()


def _pairs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q1, q2, cov) of Gaussian pairs with variances from 1e-4 to 1e2 on both sides and correlations up to ±1."""
    grid = torch.tensor([1e-4, 1e-2, 0.3, 1.0, 3.0, 9.0, 50.0, 100.0], dtype=torch.float64)
    q1, q2 = torch.meshgrid(grid, grid.flip(0), indexing="ij")
    q1, q2 = q1.reshape(-1).repeat(5), q2.reshape(-1).repeat(5)
    rho = torch.tensor([-1.0, -0.6, 0.0, 0.9, 0.9999], dtype=torch.float64).repeat_interleave(len(grid) ** 2)
    return q1, q2, rho * torch.sqrt(q1 * q2)


def _check_against(act: wf.Activation, reference: Any) -> None:
    # the stated bound: 1e-6 × √(E g(u)² E g(v)²), g = σ or σ'
    q1, q2, c = _pairs()
    for deriv in (False, True):
        got = dual_kernel(c, q1, q2, act, derivative=deriv)
        size = torch.sqrt(dual_kernel(q1, q1, q1, act, derivative=deriv) * dual_kernel(q2, q2, q2, act, derivative=deriv))
        err = (got - reference(c, q1, q2, deriv)).abs() / size
        assert (err <= 1e-6).all(), (act.name, deriv, err.max())


def test_quadrature_matches_the_closed_forms_at_every_scale() -> None:
    # erf registered under another name takes the quadrature path and must match erf's closed forms for σ and σ'
    # (measured ≤ 1e-7 relative to the bound's scale)
    erf_copy = wf.Activation("erf_copy", torch.erf, wf.get_activation("erf").deriv, 2 / math.sqrt(math.pi),
                             (-1.0, 1.0), 0.4)
    _check_against(erf_copy, lambda c, q1, q2, deriv: dual_kernel(c, q1, q2, "erf", derivative=deriv))


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "test_swish"])
def test_quadrature_matches_a_rule_with_four_times_the_panels(activation: str, swish) -> None:
    # the reference is nodes=256 (four times the composite panels); measured ≤ 2e-7 relative to the scale
    act = wf.get_activation(activation)
    _check_against(act, lambda c, q1, q2, deriv: dual_kernel(c, q1, q2, act, derivative=deriv, nodes=256))
