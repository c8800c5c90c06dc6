"""The models, the three scalings and both GD engines against the equations.

The reference for every engine is `conftest.autograd_gd`, a plain autograd loop written from eqs. (2)-(3),
(6), (9) and Table 1. In float64 a few hundred steps accumulate rounding of order 1e-14 relative (measured:
at most 5e-14 over all cases below), so 1e-10 leaves four orders of margin and still catches any error in a
constant (which shows up at order 1).
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import autograd_gd

import wideflow as wf
from wideflow.errors import KernelEngineUnavailable

D_IN, M, N_TRAIN, STEPS = 6, 32, 24, 200

FAMILIES = {
    "shallow": lambda s, a: wf.Shallow(D_IN, M, scaling=s, activation=a),
    "quadratic": lambda s, a: wf.WideNet(wf.embeddings.Quadratic(D_IN), M, scaling=s, activation=a),
    "p3l": lambda s, a: wf.P3L(D_IN, M, scaling=s, activation=a),
    "deep": lambda s, a: wf.PartiallyTrained(D_IN, M, 40, depth=4, scaling=s, activation=a),
}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return wf.data.axis_xor(N_TRAIN, D_IN, seed=3)


@pytest.mark.parametrize("method", ["weights", "kernel"])
@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf", "richness(0.3)", "mup"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_engines_match_autograd(family: str, scaling: str, method: str, data) -> None:
    X, y = data
    activation = "tanh" if family in ("quadratic", "deep") else "relu"
    model = FAMILIES[family](scaling, activation)
    W_ref, losses = autograd_gd(model, X, y, STEPS, step_size=1.0)
    result = wf.train(model, X, y, steps=STEPS, step_size=1.0, method=method, log_every=50)
    assert result.method == method
    displacement = (W_ref - model.W).norm()
    assert displacement > 1e-3  # training really moved W, so the comparison is not vacuous
    assert float((result.model.W - W_ref).norm() / displacement) <= 1e-10
    ref = torch.tensor([losses[k] for k in result.history["step"]], dtype=torch.float64)
    got = torch.tensor(result.history["train_loss"].to_numpy())
    assert torch.allclose(got, ref, rtol=1e-10, atol=0)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("train_c,bias", [(True, False), (False, True), (True, True)])
def test_train_c_and_bias_match_autograd(train_c: bool, bias: bool, data) -> None:
    """Beyond the paper: c and b trained with the per-neuron factor m (ours); checked against autograd."""
    X, y = data
    model = wf.P3L(D_IN, M, train_c=train_c, bias=bias)
    Phi = model.embed(X)
    W = model.W.clone().requires_grad_(True)
    c = model.c.clone().requires_grad_(train_c)
    b = torch.zeros(M, dtype=torch.float64, requires_grad=bias)
    lr_w, lr_n = model.scaling.lr_factor(M, model.D), float(M)
    for _ in range(100):
        f = model.s_o * torch.relu(model.s_h * Phi @ W.T + b) @ c
        loss = 0.5 * ((f - y) ** 2).mean()
        grads = torch.autograd.grad(loss, [t for t in (W, c, b) if t.requires_grad])
        with torch.no_grad():
            W -= lr_w * grads[0]
            if train_c:
                c -= lr_n * grads[1]
            if bias:
                b -= lr_n * grads[-1]
    result = wf.train(model, X, y, steps=100, log_every=50)
    assert result.method == "weights"  # auto falls back: the kernel engine only moves W
    scale = (W.detach() - model.W).norm()
    assert float((result.model.W - W.detach()).norm() / scale) <= 1e-10
    if train_c:
        assert torch.allclose(result.model.c, c.detach(), rtol=1e-10, atol=1e-12)
    if bias:
        assert torch.allclose(result.model.b, b.detach(), rtol=1e-10, atol=1e-12)


def test_kernel_engine_refuses_options_it_cannot_run(data) -> None:
    X, y = data
    with pytest.raises(KernelEngineUnavailable, match="train_c or bias"):
        wf.train(wf.P3L(D_IN, M, train_c=True), X, y, steps=5, method="kernel")


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ntk_output_is_exactly_zero_at_init(family: str, dtype: torch.dtype, data) -> None:
    X, y = data
    model = FAMILIES[family]("ntk", "relu").to(dtype=dtype)
    assert torch.equal(model(X), torch.zeros(N_TRAIN, dtype=dtype))
    result = wf.train(model, X, y, steps=1, log_every=1)
    assert result.history["train_loss"].iloc[0] == pytest.approx(0.5 * float((y.to(dtype) ** 2).mean()), rel=1e-6)


def test_ntk_odd_width_is_refused() -> None:
    with pytest.raises(ValueError, match="m=33 is odd.*symmetriz"):
        wf.P3L(5, 33, scaling="ntk")


@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
def test_initial_feature_variance_is_gram_diagonal(scaling: str) -> None:
    """h_i^0(x_a) ~ N(0, G_aa) (Appendix E.2), N(0, G_aa/D) under MF.

    The mean of h² over m = 4096 neurons estimates the variance with relative standard deviation √(2/m_eff)
    (m_eff = m, or m/2 distinct neurons under NTK): ≤ 0.031, so a tolerance of 0.16 is five standard deviations.
    """
    X, _ = wf.data.random_labels(5, 10, seed=1)
    model = wf.P3L(10, 4096, D=512, scaling=scaling)
    G = wf.gram(model, X)
    H = model.features(X)
    expected = torch.diagonal(G) / (model.D if scaling == "mf" else 1)
    measured = (H**2).mean(dim=1)
    assert torch.allclose(measured, expected, rtol=0.16)


def test_p3l_is_partially_trained_with_depth_3() -> None:
    X, _ = wf.data.axis_xor(10, 7)
    a, b = wf.P3L(7, 16, D=24, seed=5), wf.PartiallyTrained(7, 16, 24, depth=3, seed=5)
    assert torch.equal(a.z, b.z) and torch.equal(a.W, b.W) and torch.equal(a(X), b(X))


def test_quadratic_embedding_features() -> None:
    """h_i(x) = xᵀW_i x / d with W_i the d×d reshaped row (docs/theory.md §4)."""
    X, _ = wf.data.random_labels(4, 3)
    model = wf.WideNet(wf.embeddings.Quadratic(3), 8)
    W = model.W.reshape(8, 3, 3)
    expected = torch.einsum("na,iab,nb->ni", X, W, X) / 3
    assert torch.allclose(model.features(X), expected, rtol=1e-13, atol=1e-14)


def test_xavier_equivalence_appendix_b() -> None:
    """Appendix B (docs/theory.md §7): a Xavier 3-layer ReLU net with z = √m θ1, W = √(2m) θ2, c = √m θ3 is
    √(d/2) times the P-3L net with D = m, and GD on θ2 with step δ is GD on W with factor 2m, i.e.
    wideflow's step size 2δ (its factor is m). Checked to float64 rounding (1e-10 relative)."""
    d, m, n, delta, steps = 6, 64, 20, 0.05, 50
    X, y = wf.data.axis_xor(n, d, seed=2)
    model = wf.P3L(d, m, c_hat=math.sqrt(d / 2))
    c_rad = model.c / math.sqrt(d / 2)
    theta1 = model.z / math.sqrt(m)
    theta2 = (model.W / math.sqrt(2 * m)).clone().requires_grad_(True)
    theta3 = c_rad / math.sqrt(m)

    def xavier(Xb: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.relu(Xb @ theta1.T) @ t2.T) @ theta3

    assert torch.allclose(xavier(X, theta2), model(X), rtol=1e-12, atol=1e-14)
    for _ in range(steps):
        loss = 0.5 * ((xavier(X, theta2) - y) ** 2).mean()
        (g,) = torch.autograd.grad(loss, theta2)
        with torch.no_grad():
            theta2 -= delta * g
    result = wf.train(model, X, y, steps=steps, step_size=2 * delta, log_every=steps)
    W_from_xavier = math.sqrt(2 * m) * theta2.detach()
    assert float((result.model.W - W_from_xavier).norm() / (W_from_xavier - model.W).norm()) <= 1e-10


def test_same_seed_same_numbers(data) -> None:
    X, y = data
    runs = [wf.train(wf.P3L(D_IN, M, seed=7), X, y, steps=30, log_every=10) for _ in range(2)]
    assert runs[0].history.equals(runs[1].history)
    assert torch.equal(runs[0].model.W, runs[1].model.W)
    other = wf.P3L(D_IN, M, seed=8)
    assert not torch.equal(other.W, runs[0].model.W) and not torch.equal(other.z, wf.P3L(D_IN, M, seed=7).z)


def test_embedding_and_parameters_use_independent_streams() -> None:
    """z and W come from different generators: W's first entries are not z's."""
    model = wf.P3L(4, 8, D=8, seed=0)
    assert not torch.equal(model.W.flatten()[:8], model.z.flatten()[:8])


def test_float32_engines_agree(data) -> None:
    """In float32 the engines round differently; 200 steps stay within 1e-4 relative (measured ~1e-6)."""
    X, y = data
    model = wf.P3L(D_IN, M, dtype=torch.float32)
    a = wf.train(model, X, y, steps=200, method="weights", log_every=100)
    b = wf.train(model, X, y, steps=200, method="kernel", log_every=100)
    assert a.model.W.dtype == torch.float32
    assert float((a.model.W - b.model.W).norm() / (a.model.W - model.W).norm()) < 1e-4


def test_kernel_engine_materializes_w_lazily(data) -> None:
    X, y = data
    result = wf.train(wf.P3L(D_IN, M), X, y, steps=10, method="kernel", log_every=5)
    assert result.model._W is None  # nothing D-dimensional formed yet
    assert result.model.W.shape == (M, M)
    assert result.model._W is not None


def test_auto_chooses_by_operation_count() -> None:
    from wideflow.engines import choose_method

    assert choose_method("auto", m=4096, D=4096, n=1000, n_test=0, steps=100, log_every=10) == "kernel"
    assert choose_method("auto", m=8192, D=20, n=160, n_test=0, steps=100, log_every=10) == "weights"


def test_test_error_and_history_columns(data) -> None:
    X, y = data
    Xt, yt = wf.data.axis_xor(50, D_IN, seed=99)
    model = wf.P3L(D_IN, M)
    for method in ("weights", "kernel"):
        result = wf.train(model, X, y, steps=40, X_test=Xt, y_test=yt, log_every=20, method=method)
        assert list(result.history.columns) == ["step", "time", "train_loss", "test_error"]
        assert list(result.history["step"]) == [0, 20, 40]
        direct = 0.5 * float(((result.model(Xt) - yt) ** 2).mean())
        assert result.history["test_error"].iloc[-1] == pytest.approx(direct, rel=1e-10)


def test_sum_reduction_is_n_times_mean_rate(data) -> None:
    """With N = 1 the loss is n times larger and a step of size δ/n under "sum" equals a step δ under "mean"."""
    X, y = data
    model = wf.P3L(D_IN, M)
    mean = wf.train(model, X, y, steps=20, step_size=1.0, reduction="mean", log_every=20)
    total = wf.train(model, X, y, steps=20, step_size=1.0 / N_TRAIN, reduction="sum", log_every=20)
    assert total.history["train_loss"].iloc[-1] == pytest.approx(N_TRAIN * mean.history["train_loss"].iloc[-1], rel=1e-10)


def test_api_example_p3l_kernel_engine() -> None:
    """The api.md example size: P3L(d=20, m=1024) on 200 points, 1000 steps, kernel engine."""
    X, y = wf.data.axis_xor(200, 20, seed=0)
    result = wf.train(wf.P3L(20, 1024), X, y, steps=1000, method="kernel", log_every=100)
    assert result.history["train_loss"].iloc[-1] < 0.5 * result.history["train_loss"].iloc[0]


def test_save_and_load_roundtrip(tmp_path, data) -> None:
    X, y = data
    trained = wf.train(wf.PartiallyTrained(D_IN, M, 40, depth=4, scaling="mf", activation="tanh"), X, y,
                       steps=20, log_every=10).model
    path = trained.save(tmp_path / "model.pt")
    loaded = wf.load(path)
    assert type(loaded) is type(trained) and loaded.depth == 4
    assert torch.equal(loaded(X), trained(X))


def test_cli_help_and_version(capsys) -> None:
    from wideflow.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert wf.__version__ in capsys.readouterr().out
    assert main([]) == 0
