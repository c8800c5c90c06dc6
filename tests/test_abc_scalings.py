"""Appendix C, executable: Yang & Hu's abc exponents on every scaling, the θ-symmetry, the richness family between
ours and NTK, and r with the regime (docs/theory.md §7).

Tolerances: two codes that compute the same float64 numbers in another order agree to ~1e-15 per step. Measured:
richness(0.3) against the hand-written loop over 50 steps 7.4e-15 (weights) and 2.9e-15 (kernel) relative in W;
θ-shifted runs over 300 steps ≤ 8.4e-16 in the test outputs (weights), ≤ 2.3e-16 (kernel; losses bitwise equal)
and bitwise equal at D = ∞. 1e-12 and 1e-9 leave orders of margin and still catch a wrong constant (order 1).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import wideflow as wf
from wideflow.scalings import REGIMES, SCALINGS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------------------------------------- exponents
def test_the_named_scalings_carry_appendix_c_exponents() -> None:
    ours, ntk, mup = wf.get_scaling("ours"), wf.get_scaling("ntk"), wf.get_scaling("mup")
    assert ours.abc == {"a": [0.0, 0.5, 1.0], "b": [0.0, 0.0, 0.0], "c": -1.0}
    assert mup.abc == {"a": [-0.5, 0.0, 0.5], "b": [0.5, 0.5, 0.5], "c": 0.0}
    assert ntk.abc == {"a": [0.0, 0.5, 0.5], "b": [0.0, 0.0, 0.0], "c": 0.0}
    assert wf.get_scaling("mf").abc["c"] == -2.0  # learning rate m·D = n² at D = m
    assert ours.r == 0 and ntk.r == 0.5
    assert ours.shifted(-0.5).abc == mup.abc and ours.shifted(-0.5) == mup
    assert ours.abc_layers(5) == {"a": [0.0, 0.5, 0.5, 0.5, 1.0], "b": [0.0] * 5, "c": -1.0}  # Appendix C's table
    assert mup.abc_layers(4)["a"] == [-0.5, 0.0, 0.0, 0.5]
    regimes = {name: s.regime for name, s in SCALINGS.items()}
    assert regimes == {"ours": "feature learning", "ntk": "kernel", "mf": "feature learning",
                       "mf_lr_sqrtD": "trivial", "mf_lr_m": "trivial", "mup": "feature learning", "sp": "kernel"}
    assert set(regimes.values()) <= set(REGIMES)
    assert wf.get_scaling("mf").features_start_at_zero and not ours.features_start_at_zero


def test_r_is_yang_and_hus_formula_restricted_to_the_trained_layer() -> None:
    """For a grid of exponents (D = m = n), r = a_out + b_out + c − 1 + 2 a_W: Yang & Hu's
    min(a_{L+1} + b_{L+1}, 2a_{L+1} + c) + c − 1 + min_l [2a_l + 1(l = 1)] with only W trained (so neither the output
    layer's own update nor other layers enter; docs/theory.md §7)."""
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    for a_W, b_W, a_out, c in itertools.product(grid, [0.0, 0.5], grid, [-2.0, -1.0, -0.5, 0.0, 1.0]):
        s = wf.abc_scaling([0, a_W, a_out], [0, b_W, 0], c, allow_unstable=True)
        assert s.r == pytest.approx(a_out + c - 1 + 2 * a_W, abs=1e-12)
        info = s.analysis()
        assert info["function"] == pytest.approx(1 - a_out - s.r, abs=1e-12)  # f moves by n^(1 − α − r)
        if info["regime"] in ("feature learning", "kernel"):
            assert info["kernel"] == pytest.approx(0, abs=1e-12) and s.r >= 0
        for theta in (-0.5, 0.3):  # the θ-symmetry keeps every exponent of the dynamics
            shifted = s.shifted(theta).analysis()
            assert {k: shifted[k] for k in ("r", "regime", "kernel", "f0")} == {k: info[k] for k in
                                                                               ("r", "regime", "kernel", "f0")}


def test_the_shallow_net_reads_r_with_d_fixed() -> None:
    """With a fixed embedding (D = d is not a width) only m grows: Yang & Hu's input-layer term 2a_1 + 1."""
    for name, r in (("ours", 0.0), ("ntk", 0.5), ("mf", 0.0), ("mf_lr_m", 0.0)):
        assert wf.get_scaling(name).analysis(width_D=False)["r"] == r
    assert wf.get_scaling("mf_lr_m").analysis(width_D=False)["regime"] == "feature learning"
    assert wf.get_scaling("mf_lr_m").regime == "trivial"  # at D = m the kernel vanishes like 1/D


def test_richness_interpolates_between_ours_and_ntk() -> None:
    assert wf.richness(0) is wf.get_scaling("ours") and wf.richness(0.5) is wf.get_scaling("ntk")
    for r in (0.1, 0.25, 0.3, 0.45):
        s = wf.richness(r)
        assert s.r == pytest.approx(r, abs=1e-12) and s.regime == "kernel" and not s.symmetrize
        m, D = 1024, 300
        assert s.s_o(m) == pytest.approx(m ** -(1 - r), rel=1e-15)
        assert s.s_h(D) == pytest.approx(D**-0.5, rel=1e-15)
        assert s.lr_factor(m, D) == pytest.approx(m ** (1 - 2 * r), rel=1e-14)
        assert s.gamma(m, D) * s.s_o(m) * m == pytest.approx(1.0, rel=1e-12)  # the tangent kernel is O(1)
        assert wf.get_scaling(s.config) == s and wf.get_scaling(s.name) == s
    sym = wf.richness(0.3, symmetrize=True)
    assert sym.symmetrize and wf.get_scaling(sym.config) == sym and sym != wf.richness(0.3)
    assert wf.abc_scaling([0, 0.5, 0.7], [0, 0, 0], -0.4).name == "richness(0.3)"  # one spelling per scaling


def test_every_spelling_rebuilds_the_same_scaling() -> None:
    ours = wf.get_scaling("ours")
    assert wf.get_scaling({"a": [0, 0.5, 1], "b": [0, 0, 0], "c": -1}) is ours
    assert wf.get_scaling('{"a": [-0.5, 0, 0.5], "b": [0.5, 0.5, 0.5], "c": 0}') is wf.get_scaling("mup")
    assert wf.get_scaling({"richness": 0.25, "symmetrize": True}) == wf.richness(0.25, symmetrize=True)
    odd = ours.shifted(0.2)
    assert wf.get_scaling(odd.config) == odd and odd.equivalent("ours") and not odd.equivalent("ntk")
    assert wf.get_scaling("richness( 0.25 )") == wf.richness(0.25)


# ------------------------------------------------------------------------------------------- training
def _hand_written_richness(model: wf.WideNet, X: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """GD on W written from the richness family's definition alone: s_o = m^-0.7, s_h = D^-1/2, factor m^0.4."""
    m, D = model.m, model.D
    Phi = model.embed(X)
    W = model.W.clone().requires_grad_(True)
    for _ in range(steps):
        f = m**-0.7 * torch.relu(D**-0.5 * Phi @ W.T) @ model.c
        loss = 0.5 * ((f - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= m**0.4 * grad
    return W.detach()


@pytest.mark.parametrize("method", ["weights", "kernel"])
def test_richness_03_trains_as_a_hand_written_autograd_loop(method: str) -> None:
    X, y = wf.data.axis_xor(24, 6, seed=3)
    model = wf.P3L(6, 64, D=48, scaling=wf.richness(0.3), seed=1)
    W_ref = _hand_written_richness(model, X, y, 50)
    result = wf.train(model, X, y, steps=50, method=method, log_every=25, progress=False)
    moved = (W_ref - model.W).norm()
    assert moved > 1e-3  # W really moved
    assert float((result.model.W - W_ref).norm() / moved) <= 1e-12


def _pair(theta: float, D: float, method: str, scaling: str = "ours", steps: int = 300):
    X, y = wf.data.axis_xor(24, 6, seed=0)
    Xs, ys = wf.data.axis_xor(30, 6, seed=1)
    base = wf.get_scaling(scaling)
    out = []
    for s in (base, base.shifted(theta)):
        model = wf.P3L(6, 64, D=D, scaling=s, seed=2)
        out.append(wf.train(model, X, y, steps=steps, X_test=Xs, y_test=ys, method=method, log_every=50,
                            progress=False))
    return out, Xs


@pytest.mark.parametrize("D,method", [(48, "weights"), (48, "kernel"), (math.inf, "kernel")])
@pytest.mark.parametrize("theta", [-0.5, 0.3])
def test_theta_equivalent_scalings_train_to_the_same_function(theta: float, D: float, method: str) -> None:
    (a, b), Xs = _pair(theta, D, method)
    np.testing.assert_allclose(b.history["train_loss"], a.history["train_loss"], rtol=1e-9, atol=0)
    assert a.history["train_loss"].iloc[-1] < 0.5 * a.history["train_loss"].iloc[0]  # it trained
    assert _rel(b.model(Xs), a.model(Xs)) <= 1e-9
    if math.isfinite(D):  # the weights differ by the factor D^θ, the function does not
        torch.testing.assert_close(b.model.W, a.model.W * D**theta, rtol=1e-9, atol=1e-12)


def test_training_under_mup_is_training_under_ours() -> None:
    (a, _), Xs = _pair(-0.5, 48, "kernel")
    model = wf.P3L(6, 64, D=48, scaling="mup", seed=2)
    X, y = wf.data.axis_xor(24, 6, seed=0)
    mup = wf.train(model, X, y, steps=300, method="kernel", log_every=50, progress=False)
    assert _rel(mup.model(Xs), a.model(Xs)) <= 1e-9
    assert float(model.W.std()) == pytest.approx(48**-0.5, rel=0.05)  # σ_W = D^-1/2 (3072 draws: 2.6 % sd)


def test_theta_symmetry_holds_for_a_symmetrized_richness_scaling() -> None:
    (a, b), Xs = _pair(0.25, 48, "weights", scaling="richness(0.2, symmetrize=True)", steps=200)
    assert _rel(b.model(Xs), a.model(Xs)) <= 1e-9 and torch.all(a.model.c[:32] == -a.model.c[32:])


def test_one_step_moves_the_features_like_m_to_the_minus_r() -> None:
    """Derivation check (docs/theory.md §7): the first GD step moves H by −(δγ/N)[c ⊙ σ′(H) ⊙ e]G with γ = m^−r and
    e = −y (f_0 ≡ 0 when symmetrized), so the relative displacement after one step falls like m^−r. Over m = 256
    and 4096 its ratio is 16^−r up to the fluctuation of the mean of σ′ over neurons, O(m^−1/2) ≈ 6 %; 15 %
    catches an error of 0.05 in the exponent (16^0.05 = 1.15)."""
    X, y = wf.data.axis_xor(32, 8, seed=0)
    for r in (0.0, 0.25, 0.5):
        moved = []
        for m in (256, 4096):
            model = wf.P3L(8, m, D=256, scaling=wf.richness(r, symmetrize=True), seed=1)
            state = wf.train(model, X, y, steps=1, log_every=1, method="kernel", progress=False).final_state
            H0 = model.features(X).T
            moved.append(float((state.H - H0).norm() / H0.norm()))
        assert moved[1] / moved[0] == pytest.approx(16.0**-r, rel=0.15)


def test_a_richness_model_saves_loads_and_sweeps(tmp_path) -> None:
    model = wf.P3L(5, 32, scaling=wf.richness(0.25, symmetrize=True))
    path = model.save(tmp_path / "m.pt")
    back = wf.load(path)
    X, _ = wf.data.axis_xor(7, 5)
    assert back.scaling == model.scaling and torch.equal(back(X), model(X))
    abc = wf.P3L(5, 32, scaling=wf.get_scaling("ours").shifted(0.4))
    assert wf.load(abc.save(tmp_path / "a.pt")).scaling == abc.scaling
    from wideflow.sweep import expand

    configs = expand({"base": {"model": {"kind": "p3l", "d": 5, "m": 32}},
                      "grid": {"model": {"scaling": ["richness(0.25)", {"richness": 0.5}, "mup"]}}})
    assert [c["model"]["scaling"] for c in configs] == ["richness(0.25)", "ntk", "mup"]


def test_check_reports_r_and_the_regime() -> None:
    X, y = wf.data.axis_xor(16, 5, seed=0)
    report = wf.check(wf.P3L(5, 64, scaling=wf.richness(0.3)), X, y)
    assert report["r"] == pytest.approx(0.3) and report["regime"] == "kernel"
    assert report["abc"]["a"] == [0.0, 0.5, 0.7]
    assert "r = 0.3, regime: kernel" in wf.theory.format_check(report)
    assert wf.check(wf.P3L(5, 64), X, y)["regime"] == "feature learning"
    assert wf.check(wf.P3L(5, 64, scaling="mf_lr_m"), X, y)["regime"] == "trivial"
    mup = wf.check(wf.P3L(5, 64, scaling="mup"), X, y)  # θ-equivalent to ours: the theorems apply to D^-θ W
    assert mup["theorem"] == wf.check(wf.P3L(5, 64), X, y)["theorem"] and mup["conditions"]["Assumption 3"]["holds"]
    assert wf.check(wf.Shallow(5, 64, scaling="ntk"), X, y)["r"] == 0.5


def test_richness_at_d_infinity_and_in_the_flow() -> None:
    X, y = wf.data.axis_xor(16, 5, seed=0)
    model = wf.P3L(5, 64, D=math.inf, scaling=wf.richness(0.3, symmetrize=True))
    result = wf.train(model, X, y, steps=100, log_every=50, progress=False)
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    flow = wf.gradient_flow(wf.P3L(5, 64, D=48, scaling=wf.richness(0.3), activation="tanh"), X, y, t=2.0,
                            points=3)
    gd = wf.train(wf.P3L(5, 64, D=48, scaling=wf.richness(0.3), activation="tanh"), X, y, steps=400,
                  step_size=0.005, log_every=400, progress=False)
    # GD at δ = 0.005 is the flow to first order in δ: measured gap 4e-5 relative at t = 2
    assert gd.history["train_loss"].iloc[-1] == pytest.approx(flow.history["train_loss"].iloc[-1], rel=1e-3)


def test_the_command_line_trains_and_checks_under_any_spelling(capsys) -> None:
    from wideflow.cli import main

    small = ["-n", "24", "-d", "4", "-m", "16", "--steps", "20", "--log-every", "10"]
    for spelling in ("richness(0.3)", "mup", '{"a": [0, 0.5, 0.8], "b": [0, 0, 0], "c": -0.6}'):
        assert main(["train", *small, "--n-test", "16", "--scaling", spelling]) == 0
    assert main(["check", *small[:6], "--scaling", "richness(0.3)"]) == 0
    assert "r = 0.3, regime: kernel" in capsys.readouterr().out


def test_estimators_take_a_richness_scaling() -> None:
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    from wideflow.sklearn import WideNetRegressor

    X, y = wf.data.axis_xor(40, 5, seed=0)
    est = WideNetRegressor(m=32, steps=50, scaling=wf.richness(0.3)).fit(X.numpy(), y.numpy())
    assert est.model_.scaling == wf.richness(0.3)
    same = WideNetRegressor(m=32, steps=50, scaling="richness(0.3)").fit(X.numpy(), y.numpy())
    np.testing.assert_array_equal(est.predict(X.numpy()), same.predict(X.numpy()))
    assert clone(est).get_params()["scaling"] == wf.richness(0.3)


def test_from_module_maps_a_xavier_network_under_mup() -> None:
    """Appendix B gives ours; under μP (ours shifted by −½) the model holds D^-1/2 W, the same function."""
    from wideflow.interop import xavier_network

    net = xavier_network(5, 32, seed=1)
    X, y = wf.data.axis_xor(20, 5, seed=0)
    ours, mup = wf.from_module(net), wf.from_module(net, scaling="mup")
    assert mup.scaling == wf.get_scaling("mup")
    torch.testing.assert_close(mup(X), ours(X), rtol=1e-13, atol=1e-15)
    a = wf.train(ours, X, y, steps=100, log_every=100, progress=False)
    b = wf.train(mup, X, y, steps=100, log_every=100, progress=False)
    assert _rel(b.model(X), a.model(X)) <= 1e-9
    with pytest.raises(wf.errors.InvalidArgument, match="Appendix B"):
        wf.from_module(net, scaling=wf.richness(0.3))
