"""PyTorch interop: to_module (same f, same GD) and from_module (Appendix B's Xavier mapping)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import wideflow as wf
from wideflow.errors import InvalidArgument, InvalidType
from wideflow.interop import xavier_network

# Every problem here is tiny (m ≤ 96, n ≤ 50): one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Outputs are O(1) sums of at most a few hundred terms: the two evaluation orders differ by at most
# ~100·eps·max|term| (eps = 2.2e-16 in float64, 1.2e-7 in float32), so 1e-12 and 1e-5 leave a margin of ≥ 10x.
ATOL = {torch.float64: 1e-12, torch.float32: 1e-5}

MODELS = {
    "p3l-ours": lambda dt: wf.P3L(5, 64, dtype=dt),
    "shallow-ntk": lambda dt: wf.Shallow(5, 64, scaling="ntk", dtype=dt),
    "deep-mf-tanh": lambda dt: wf.PartiallyTrained(5, 32, 48, depth=4, activation="tanh", scaling="mf", dtype=dt),
    "quadratic-bias-c": lambda dt: wf.WideNet(wf.embeddings.Quadratic(5), 16, bias=True, train_c=True, dtype=dt),
    "smooth-leaky": lambda dt: wf.P3L(5, 32, activation="smooth_leaky_relu", dtype=dt),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_to_module_predicts_like_the_model(name: str, dtype: torch.dtype) -> None:
    model = MODELS[name](dtype)
    X, _ = wf.data.axis_xor(40, 5, seed=1)
    module = model.to_module()
    assert isinstance(module, nn.Module)
    with torch.no_grad():
        out = module(X.to(dtype))
    assert out.dtype == dtype and out.shape == (40,)
    torch.testing.assert_close(out, model(X), rtol=0, atol=ATOL[dtype])
    torch.testing.assert_close(module.features(X.to(dtype)).detach(), model.features(X), rtol=0, atol=ATOL[dtype])


def test_to_module_materializes_the_kernel_engines_lazy_weights() -> None:
    X, y = wf.data.axis_xor(30, 5)
    Xt, _ = wf.data.axis_xor(50, 5, seed=7)
    result = wf.train(wf.P3L(5, 64), X, y, steps=50, method="kernel", log_every=50)
    module = wf.to_module(result.model)
    with torch.no_grad():
        torch.testing.assert_close(module(Xt), result.model(Xt), rtol=0, atol=ATOL[torch.float64])


@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf", "richness(0.3)", "mup"])
def test_sgd_on_the_module_is_the_gd_rule_9(scaling: str) -> None:
    """torch.optim.SGD with module.param_groups(δ) on the mean loss reproduces wf.train step for step."""
    X, y = wf.data.axis_xor(24, 5)
    model = wf.P3L(5, 32, scaling=scaling, bias=True, train_c=True)
    steps, delta = 20, 0.5
    result = wf.train(model, X, y, steps=steps, step_size=delta, method="weights", log_every=steps)
    module = model.to_module()
    opt = torch.optim.SGD(module.param_groups(delta))
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * ((module(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
    # 20 steps of O(1) updates in float64; the two codes differ in summation order only (~1e-15 per step).
    torch.testing.assert_close(module.W.detach(), result.model.W, rtol=0, atol=1e-11)
    torch.testing.assert_close(module.c.detach(), result.model.c, rtol=0, atol=1e-11)
    torch.testing.assert_close(module.b.detach(), result.model.b, rtol=0, atol=1e-11)


def test_module_trains_only_what_the_model_trains() -> None:
    module = wf.P3L(4, 8).to_module()
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    assert trainable == {"W"}


def test_module_round_trips_through_torch_save(tmp_path) -> None:
    model = wf.P3L(5, 32, activation="smooth_leaky_relu")
    X, _ = wf.data.axis_xor(10, 5)
    module = model.to_module()
    torch.save(module, tmp_path / "module.pt")
    loaded = torch.load(tmp_path / "module.pt", weights_only=False)
    with torch.no_grad():
        torch.testing.assert_close(loaded(X), module(X), rtol=0, atol=0)


NTK_MODELS = {
    "shallow": lambda dt: wf.Shallow(5, 64, scaling="ntk", dtype=dt),
    "p3l-bias": lambda dt: wf.P3L(5, 64, D=80, scaling="ntk", bias=True, dtype=dt),
    "deep4-tanh": lambda dt: wf.PartiallyTrained(5, 32, 48, depth=4, activation="tanh", scaling="ntk", dtype=dt),
    "quadratic-erf": lambda dt: wf.WideNet(wf.embeddings.Quadratic(5), 46, activation="erf", scaling="ntk", dtype=dt),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(NTK_MODELS))
def test_the_module_of_an_ntk_model_outputs_exactly_zero_at_initialization(name: str, dtype: torch.dtype) -> None:
    """The symmetrized initialization gives f_0 = 0 (Table 1); the module keeps it bitwise, as the model does."""
    model = NTK_MODELS[name](dtype)
    X, _ = wf.data.axis_xor(33, 5, seed=2)
    module = model.to_module()
    with torch.no_grad():
        out = module(X.to(dtype))
    assert torch.equal(out, torch.zeros(33, dtype=dtype)) and torch.equal(model(X), out)


def test_to_module_rejects_other_objects() -> None:
    with pytest.raises(InvalidType, match="WideNet"):
        wf.to_module(nn.Linear(3, 1))


# ------------------------------------------------------------------------------------ Appendix B
def test_xavier_network_has_the_variances_of_appendix_b() -> None:
    d, m = 10, 400
    net = xavier_network(d, m, seed=3)
    expected = [1 / (m + d), 1 / (2 * m), 1 / (m + 1)]
    sizes = [m * d, m * m, m]
    for layer, var, size in zip(net[::2], expected, sizes, strict=True):
        got = float(layer.weight.detach().var())
        # the sample variance of `size` Gaussians has relative std √(2/size) ≤ 0.071; allow 4 std.
        assert abs(got / var - 1) < 4 * math.sqrt(2 / size), (got, var)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_from_module_reproduces_the_xavier_network(activation: str) -> None:
    """f_xavier = √(d/2)·f_P3L for 1-homogeneous σ (Appendix B): z = √m θ1, W = √(2m) θ2, c = √m θ3."""
    d, m = 7, 96
    net = xavier_network(d, m, activation, seed=4)
    X, _ = wf.data.axis_xor(50, d, seed=2)
    model = wf.from_module(net)
    assert isinstance(model, wf.P3L) and model.D == m and model.m == m and model.activation.name == activation
    theta1, theta2, theta3 = (layer.weight.detach() for layer in net[::2])
    torch.testing.assert_close(model.z, math.sqrt(m) * theta1, rtol=0, atol=0)
    torch.testing.assert_close(model.W, math.sqrt(2 * m) * theta2, rtol=1e-15, atol=0)
    torch.testing.assert_close(model.c, math.sqrt(m) * theta3[0], rtol=1e-15, atol=0)
    with torch.no_grad():
        f_xavier = net(X)[:, 0]
    torch.testing.assert_close(math.sqrt(d / 2) * model(X), f_xavier, rtol=0, atol=ATOL[torch.float64])
    absorbed = wf.from_module(net, absorb_constant=True)
    torch.testing.assert_close(absorbed(X), f_xavier, rtol=0, atol=ATOL[torch.float64])


def test_xavier_gd_on_theta2_is_w_gd_with_factor_2m() -> None:
    """One GD step θ2 ← θ2 − δ∇_θ2 L equals W ← W − 2mδ∇_W L under W = √(2m) θ2 (Appendix B)."""
    d, m, delta = 6, 64, 0.05
    net = xavier_network(d, m, seed=5)
    X, y = wf.data.axis_xor(20, d, seed=6)
    model = wf.from_module(net)
    loss = 0.5 * ((net(X)[:, 0] - y) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        theta2_next = net[2].weight - delta * net[2].weight.grad

    W = model.W.clone().requires_grad_(True)
    Phi = model.embed(X)
    f = math.sqrt(d / 2) * model.s_o * (torch.relu(model.s_h * Phi @ W.T) @ model.c)
    (grad_W,) = torch.autograd.grad(0.5 * ((f - y) ** 2).sum(), W)
    W_next = model.W - 2 * m * delta * grad_W
    torch.testing.assert_close(math.sqrt(2 * m) * theta2_next, W_next, rtol=0, atol=1e-12)


def test_xavier_gd_matches_wf_train_with_step_size_2delta() -> None:
    """k Xavier-GD steps on θ2 (sum loss, step δ) = wf.train of the absorbed P3L with step 2δ, reduction sum:
    the learning rate 2mδ of Appendix B is the factor m of eq. (9) at step size 2δ."""
    d, m, delta, steps = 6, 64, 0.02, 30
    net = xavier_network(d, m, seed=8)
    X, y = wf.data.axis_xor(20, d, seed=9)
    model = wf.from_module(net, absorb_constant=True)
    for p in (net[0].weight, net[4].weight):
        p.requires_grad_(False)
    opt = torch.optim.SGD([net[2].weight], lr=delta)
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((net(X)[:, 0] - y) ** 2).sum()).backward()
        opt.step()
    result = wf.train(model, X, y, steps=steps, step_size=2 * delta, reduction="sum", method="weights",
                      log_every=steps)
    # 30 steps in float64, same operations up to summation order: drift ≤ 30·1e-15 relative, and |W| = O(10).
    torch.testing.assert_close(result.model.W, math.sqrt(2 * m) * net[2].weight.detach(), rtol=0, atol=1e-11)
    with torch.no_grad():
        torch.testing.assert_close(result.model(X), net(X)[:, 0], rtol=0, atol=1e-12)


def test_from_module_model_saves_and_loads(tmp_path) -> None:
    net = xavier_network(4, 16, seed=1)
    model = wf.from_module(net)
    X, _ = wf.data.axis_xor(10, 4)
    loaded = wf.load(model.save(tmp_path / "m.pt"))
    torch.testing.assert_close(loaded(X), model(X), rtol=0, atol=0)


def test_from_module_errors_name_the_problem() -> None:
    with pytest.raises(InvalidArgument, match="Linear"):
        wf.from_module(nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 1, bias=False)))
    with pytest.raises(InvalidArgument, match="bias"):
        wf.from_module([nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)])
    with pytest.raises(InvalidArgument, match="shapes"):
        wf.from_module([nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 5, bias=False), nn.ReLU(),
                        nn.Linear(5, 1, bias=False)])
    with pytest.raises(InvalidArgument, match="1-homogeneous"):
        wf.from_module(xavier_network(3, 4, "tanh"))
    with pytest.raises(InvalidArgument, match="activation"):
        wf.from_module([nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 4, bias=False), nn.Tanh(),
                        nn.Linear(4, 1, bias=False)])
