"""Gradient flow (10)-(11) with an adaptive solver, GD → GF as δ → 0, the PL rate, and the NTK-limit predictor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import wideflow as wf
from wideflow.errors import InvalidArgument
from wideflow.gradflow import compare_gd_to_flow, flow, gradient_flow
from wideflow.ntk import gradient_descent_mse, ntk_predictor
from wideflow.theory import fit_power, fit_rate, pl_bound

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny problems: OpenMP sync costs more than the work


def test_gd_approaches_the_flow_at_first_order() -> None:
    # GD is the explicit Euler scheme of the flow: its global error at a fixed time is C·δ + O(δ²). Halving δ
    # must halve the distance; the ratios measured are 2.00 ± 0.01, and 1.8-2.2 leaves room for the O(δ²) term.
    X, y = wf.data.random_labels(8, 5, seed=0)
    model = wf.P3L(5, 128, D=64, activation="tanh")
    table = compare_gd_to_flow(model, X, y, t=4.0, step_sizes=(0.4, 0.2, 0.1, 0.05))
    ratios = table["max_abs_f"].to_numpy()[:-1] / table["max_abs_f"].to_numpy()[1:]
    assert np.all((ratios > 1.8) & (ratios < 2.2)), table
    assert table["max_abs_f"].iloc[-1] < 1e-4  # δ = 0.05: measured 3.8e-5
    assert fit_power(table["step_size"], table["max_abs_f"])["exponent"] == pytest.approx(1.0, abs=0.05)


def test_flow_state_model_and_test_outputs_agree() -> None:
    X, y = wf.data.random_labels(8, 5, seed=0)
    Xt, yt = wf.data.random_labels(4, 5, seed=1)
    model = wf.P3L(5, 64, D=32, activation="softplus", scaling="mf")
    res = gradient_flow(model, X, y, t=3.0, points=7, X_test=Xt, y_test=yt, reduction="sum")
    assert list(res.history.columns) == ["time", "train_loss", "rate", "nfe", "test_error"]
    assert res.history["train_loss"].is_monotonic_decreasing  # GF decreases L (eq. (14): G ⪰ 0)
    # the returned model carries W_t = W_0 + B_t Φ: its own forward pass reproduces the flow's outputs
    # (1e-12: the same float64 sums in another order)
    assert torch.allclose(res.model(X), res.final_state.f, atol=1e-12)
    assert torch.allclose(res.model(Xt), res.final_state.f_test, atol=1e-12)
    assert torch.equal(model.W, wf.P3L(5, 64, D=32, activation="softplus", scaling="mf").W)  # input untouched
    states = list(flow(model, X, y, times=[1.0, 3.0], reduction="sum"))
    assert [s.time for s in states] == [0.0, 1.0, 3.0]
    assert states[-1].train_loss == pytest.approx(res.final_state.train_loss, rel=1e-5)  # rtol 1e-6 per solve


def test_leaky_relu_flow_beats_the_pl_bound() -> None:
    # PL bound (docs/theory.md §5): with |σ'| >= K_σ' everywhere and reduction "sum",
    # L_t <= L_0 exp(−2ĉ²λ_min(G)K_σ'² t). Both the
    # instantaneous rate −d log L/dt (eq. (14) at each state) and the fitted rate must be at least the bound.
    X, y = wf.data.random_labels(6, 40, seed=0)
    model = wf.Shallow(40, 64, activation=wf.get_activation("leaky_relu", slope=0.5))
    bound = pl_bound(model, X, "sum")
    assert bound > 0.1  # λ_min(G) ≈ 0.37 for n = 6 ≤ d = 40 (Corollary 1), K_σ' = 0.5: a bound worth testing
    # leaky ReLU's kink makes the field non-smooth; rtol 1e-4 keeps the solve to ~650 evaluations, and gives the
    # same loss curve as rtol 1e-5 to 3 digits (L_30/L_0 = 3.75e-8 both)
    res = gradient_flow(model, X, y, t=30.0, points=16, reduction="sum", rtol=1e-4, atol=1e-7)
    fit = fit_rate(res.history, floor=1e-10)  # above the solver's error floor (atol 1e-7 on features)
    assert fit["rate"] >= bound and fit["r2"] > 0.99
    assert res.history["rate"].min() >= bound
    assert res.history["train_loss"].iloc[-1] < 1e-5 * res.history["train_loss"].iloc[0]


def test_linear_network_converges_exactly_at_the_pl_rate() -> None:
    # For σ linear, K_t = ĉ²G for all t (eq. (13)), so with N = 1 the loss is exactly
    # L_t = ½ Σ_k (q_kᵀe_0)² exp(−2 λ_k t) over the eigenpairs (λ_k, q_k) of K: its slowest rate 2 λ_min(K) is the
    # PL bound, which is therefore tight. The solver's relative errors accumulate over the run: at its default
    # rtol 1e-6 they reach 1e-2 by t = 20/bound, at rtol 1e-10 (atol 1e-13) at most 2.1e-5 over seeds 0-3
    # (measured), hence 1e-4.
    X, y = wf.data.random_labels(6, 40, seed=0)
    model = wf.Shallow(40, 64, activation="linear", c_hat=1.0)
    bound = pl_bound(model, X, "sum")
    lam, Q = torch.linalg.eigh(wf.gram(model, X))  # K = ĉ² G with ĉ = 1
    assert 2 * float(lam[0]) == pytest.approx(bound, rel=1e-12)
    res = gradient_flow(model, X, y, t=20 / bound, points=41, reduction="sum", rtol=1e-10, atol=1e-13)
    weights = (Q.T @ (model(X) - y)) ** 2
    times = torch.tensor(res.history["time"].to_numpy(), dtype=torch.float64)
    exact = 0.5 * (weights[None, :] * torch.exp(-2 * lam[None, :] * times[:, None])).sum(dim=1)
    got = torch.tensor(res.history["train_loss"].to_numpy(), dtype=torch.float64)
    assert torch.allclose(got, exact, rtol=1e-4, atol=0)
    assert pl_bound(model, X, "mean") == pytest.approx(bound / 6)  # N = n: all rates carry 1/N


def test_ntk_model_approaches_its_limit_predictor_as_m_grows() -> None:
    # A symmetrized NTK-scaled P-3L with D = m: its kernel K_0 and its Gram matrix fluctuate around Θ and Ḡ by
    # O(1/√m), and the kernel moves by O(1/√m) during training, so ‖f_GD − f_NTK‖ = O(1/√m). Measured exponents
    # are −0.5 ± 0.1 over seeds; the test asks for a fall at each step and an exponent below −0.3.
    X, y = wf.data.axis_xor(16, 6, seed=0)
    Xt, yt = wf.data.axis_xor(8, 6, seed=1)
    widths, errors = [128, 512, 2048], []
    for m in widths:
        err = 0.0
        for seed in (0, 1):
            model = wf.P3L(6, m, scaling="ntk", seed=seed)
            res = wf.train(model, X, y, steps=200, step_size=1.0, X_test=Xt, y_test=yt, log_every=200,
                           method="kernel")
            f, f_test = ntk_predictor(model, X, y, Xt, step_size=1.0)(200.0)
            err += float(torch.cat([res.final_state.f - f, res.final_state.f_test - f_test]).abs().max()) / 2
        errors.append(err)
    assert errors[0] > errors[1] > errors[2], errors
    assert fit_power(widths, errors)["exponent"] < -0.3, errors


def test_gradient_descent_mse_is_exact_for_a_fixed_kernel() -> None:
    A = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    K = A @ A.T  # rank 4: the predictor must handle a singular kernel
    y = torch.linspace(-1, 1, 6, dtype=torch.float64)
    Kt = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) @ A.T
    f0, ft0 = 0.1 * torch.ones(6, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    gd = gradient_descent_mse(K, y, reduction="mean", step_size=0.5, f_train_0=f0, k_test_train=Kt, f_test_0=ft0)
    f, ft = f0.clone(), ft0.clone()
    for _ in range(30):  # the GD recursion f ← f − (δ/N) K (f − y) itself
        e = f - y
        f, ft = f - 0.5 / 6 * K @ e, ft - 0.5 / 6 * Kt @ e
    pf, pft = gd(15.0)
    assert torch.allclose(pf, f, atol=1e-12) and torch.allclose(pft, ft, atol=1e-12)  # float64 round-off
    gf = gradient_descent_mse(K, y, reduction="sum", f_train_0=f0, k_test_train=Kt, f_test_0=ft0)
    expo = torch.linalg.matrix_exp(-2.0 * K)
    assert torch.allclose(gf(2.0)[0], y + expo @ (f0 - y), atol=1e-12)
    # test outputs: f*_t = f*_0 − Θ(X*,X) ∫_0^t e^{−sΘ}(f_0 − y) ds, by the trapezoid rule on 2001 nodes
    # (error ≈ h²λ_max²/12 · t ≈ 3e-5 with h = 1e-3, λ_max = 13.8)
    s = torch.linspace(0, 2.0, 2001, dtype=torch.float64)
    integral = torch.trapezoid(torch.stack([torch.linalg.matrix_exp(-si * K) @ (f0 - y) for si in s]), s, dim=0)
    assert torch.allclose(gf(2.0)[1], ft0 - Kt @ integral, atol=1e-4)
    fin, fin_t = gf(math.inf)
    proj = A @ torch.linalg.pinv(A)  # the range of K: interpolated exactly; the null space keeps f_0's part
    assert torch.allclose(proj @ fin, proj @ y, atol=1e-10)
    assert torch.isfinite(fin_t).all()
    times = gf([0.0, 1.0, 2.0])[0]
    assert times.shape == (3, 6) and torch.allclose(times[0], f0)
    table = gf.history([0.0, 2.0], y_test=torch.zeros(3, dtype=torch.float64))
    assert list(table.columns) == ["time", "train_loss", "test_error"]
    assert table["train_loss"].iloc[1] == pytest.approx(0.5 * float(((gf(2.0)[0] - y) ** 2).sum()))
    with pytest.raises(InvalidArgument, match="unstable"):
        gradient_descent_mse(K, y, reduction="sum", step_size=10.0)


def test_flow_rejects_bad_arguments() -> None:
    X, y = wf.data.random_labels(4, 3, seed=0)
    model = wf.Shallow(3, 8)
    with pytest.raises(InvalidArgument, match="either t"):
        gradient_flow(model, X, y, t=1.0, times=[0.5, 1.0])
    with pytest.raises(InvalidArgument, match="increasing"):
        gradient_flow(model, X, y, times=[1.0, 0.5])
    with pytest.raises(InvalidArgument, match="float32"):
        gradient_flow(wf.Shallow(3, 8, dtype="float32"), X, y, t=1.0)
    with pytest.raises(wf.errors.UnknownName, match="dopri5"):
        gradient_flow(model, X, y, t=1.0, solver="dopri6")
    with pytest.raises(InvalidArgument, match="multiple"):
        compare_gd_to_flow(model, X, y, t=1.0, step_sizes=(0.3,))
    with pytest.raises(wf.errors.KernelEngineUnavailable, match="only moves W"):
        gradient_flow(wf.Shallow(3, 8, train_c=True), X, y, t=1.0)
