"""Losses other than the squared one (wideflow.losses): the logistic loss through every training path.

The reference is plain autograd on L = (1/N) Σ_a ℓ(f_a, y_a), with ℓ written as a log-sum-exp,
log(1 + exp(−y f)) = logsumexp(0, −y f), independently of wideflow's softplus. In float64, 200 steps accumulate
rounding of order 1e-14 relative (measured: at most 1.1e-14 on W, 2e-16 on the losses, over the cases below),
so 1e-10 leaves four orders of margin and still catches any error in a constant.
"""

from __future__ import annotations

import math

import pytest
import torch

import wideflow as wf
from wideflow import sweep
from wideflow.errors import InvalidArgument, TrainingDiverged
from wideflow.losses import LOSSES, get_loss, softplus

D_IN, M, N_TRAIN, STEPS = 6, 32, 24, 200

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = {
    "shallow": lambda s: wf.Shallow(D_IN, M, scaling=s),
    "p3l": lambda s: wf.P3L(D_IN, M, scaling=s),
    "deep": lambda s: wf.PartiallyTrained(D_IN, M, 40, depth=4, scaling=s, activation="tanh"),
}


def logistic_reference(model: wf.WideNet, X: torch.Tensor, y: torch.Tensor, steps: int, step_size: float = 1.0
                       ) -> tuple[torch.Tensor, list[float]]:
    """GD (9) on the mean logistic loss by autograd, ℓ as logsumexp(0, −y f); the final W and every loss."""
    Phi = model.embed(X)
    W = model.W.clone().requires_grad_(True)
    lr = step_size * model.scaling.lr_factor(model.m, model.D)
    losses = []
    for k in range(steps + 1):
        f = model.s_o * model.activation(model.s_h * Phi @ W.T) @ model.c
        loss = torch.logsumexp(torch.stack([torch.zeros_like(f), -y * f]), dim=0).mean()
        losses.append(float(loss.detach()))
        if k == steps:
            break
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= lr * grad
    return W.detach(), losses


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return wf.data.axis_xor(N_TRAIN, D_IN, seed=3)  # labels ±1


@pytest.mark.parametrize("method", ["weights", "kernel"])
@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_logistic_training_matches_autograd(family: str, scaling: str, method: str, data) -> None:
    X, y = data
    model = FAMILIES[family](scaling)
    W_ref, losses = logistic_reference(model, X, y, STEPS)
    result = wf.train(model, X, y, steps=STEPS, method=method, log_every=50, loss="logistic", progress=False)
    assert result.method == method and result.loss == "logistic"
    displacement = (W_ref - model.W).norm()
    assert displacement > 1e-3  # training moved W: the comparison is not vacuous
    assert float((result.model.W - W_ref).norm() / displacement) <= 1e-10
    ref = torch.tensor([losses[k] for k in result.history["step"]], dtype=torch.float64)
    assert torch.allclose(torch.tensor(result.history["train_loss"].to_numpy()), ref, rtol=1e-10, atol=0)
    assert losses[-1] < losses[0]


def test_history_has_accuracies_and_the_test_loss(data) -> None:
    X, y = data
    Xs, ys = wf.data.axis_xor(40, D_IN, seed=4)
    result = wf.train(wf.P3L(D_IN, M), X, y, steps=100, X_test=Xs, y_test=ys, log_every=50, loss="logistic",
                      progress=False)
    assert list(result.history.columns) == ["step", "time", "train_loss", "test_error", "train_accuracy",
                                            "test_accuracy"]
    f = result.model(Xs)
    assert result.final_test_error == pytest.approx(float(softplus(-ys * f).mean()), rel=1e-12)
    assert result.final_test_accuracy == pytest.approx(float(((f > 0).double() * 2 - 1 == ys).double().mean()))
    squared = wf.train(wf.P3L(D_IN, M), X, y, steps=10, X_test=Xs, y_test=ys, log_every=10, progress=False)
    assert "test_accuracy" not in squared.history and squared.final_test_accuracy is None


def test_large_margins_are_finite_and_match_log_sum_exp() -> None:
    """ĉ = 5e4 makes |f| ~ 1e3 at initialization: exp(−y f) overflows float64 (above e^709.8), softplus does not."""
    X, y = wf.data.axis_xor(N_TRAIN, D_IN, seed=5)
    model = wf.P3L(D_IN, M, c_hat=5e4, seed=2)
    margins = y * model(X)
    assert float(margins.abs().max()) > 1e3 and float(margins.min()) < -710  # wrong sides by far
    assert not math.isfinite(float(torch.exp(-margins).max()))  # the naive formula overflows
    W_ref, losses = logistic_reference(model, X, y, 50, step_size=1e-6)
    result = wf.train(model, X, y, steps=50, step_size=1e-6, log_every=10, loss="logistic", method="kernel",
                      progress=False)
    got = torch.tensor(result.history["train_loss"].to_numpy())
    assert torch.isfinite(got).all()
    ref = torch.tensor([losses[k] for k in result.history["step"]], dtype=torch.float64)
    assert torch.allclose(got, ref, rtol=1e-12, atol=0)  # ~1e-16 measured
    assert float((result.model.W - W_ref).norm() / (W_ref - model.W).norm()) <= 1e-10
    f = torch.tensor([-1e3, 0.0, 1e3, 800.0], dtype=torch.float64)
    ones = torch.ones_like(f)
    loss, deriv = LOSSES["logistic"].value(f, ones), LOSSES["logistic"].derivative(f, ones)
    assert torch.isfinite(loss).all() and torch.isfinite(deriv).all()
    assert torch.equal(loss, torch.logsumexp(torch.stack([torch.zeros_like(f), -f]), dim=0))
    assert float(deriv[0]) == -1.0 and float(deriv[2]) == 0.0  # −sigmoid(−f): saturated, not NaN


def test_logistic_targets_are_checked(data) -> None:
    X, y = data
    model = wf.P3L(D_IN, M)
    with pytest.raises(InvalidArgument, match=r"values other than -1 and \+1"):
        wf.train(model, X, (y + 1) / 2, steps=2, loss="logistic")
    with pytest.raises(InvalidArgument, match="single class"):
        wf.train(model, X, torch.ones_like(y), steps=2, loss="logistic")
    # a test set of one class is fine (its accuracy is still defined)
    wf.train(model, X, y, X_test=X[:3], y_test=torch.ones(3, dtype=torch.float64), steps=2, loss="logistic",
             progress=False)


def test_divergence_names_the_logistic_stability_limit(data) -> None:
    """ℓ'' ≤ ¼, so GD at initialization is stable up to 4 times the squared loss's 2N/λ_max(K_0)."""
    X, y = data
    model = wf.P3L(D_IN, M)
    # the logistic gradient is bounded (|∂ℓ/∂f| ≤ 1): it takes a far larger step than for the squared loss (here
    # 1e11, against the limit 344) to push the loss past 1e8·L_0
    with pytest.raises(TrainingDiverged, match="ℓ''") as info:
        wf.train(model, X, y, steps=50, step_size=1e11, log_every=10, loss="logistic", progress=False)
    limit = wf.max_stable_step_size(model, X)
    assert info.value.max_stable_step_size == pytest.approx(4 * limit, rel=1e-12)


def test_checkpoint_resume_is_bit_identical(tmp_path, data) -> None:
    X, y = data
    model = wf.P3L(D_IN, M)
    full = wf.train(model, X, y, steps=60, log_every=10, loss="logistic", progress=False)
    path = tmp_path / "run.ckpt"

    def interrupt(state: wf.TrainState) -> dict[str, float]:
        if state.step == 40:  # after the checkpoint of step 20, before the one of step 40
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        wf.train(model, X, y, steps=60, log_every=10, loss="logistic", checkpoint=path, checkpoint_every=20,
                 callbacks=[interrupt], progress=False)
    # the checkpoint of the logistic run is not resumed by the squared-loss run of the same model and data
    with pytest.raises(wf.errors.CheckpointError, match="loss"):
        wf.train(model, X, y, steps=60, log_every=10, resume=path, progress=False)
    resumed = wf.train(model, X, y, steps=60, log_every=10, loss="logistic", resume=path, progress=False)
    assert resumed.history.equals(full.history)
    assert torch.equal(resumed.model.W, full.model.W)


def test_gradient_flow_with_the_logistic_loss(data) -> None:
    """GD with step δ is the Euler scheme of the flow whatever the loss: the gap at t falls like δ."""
    X, y = data
    model = wf.P3L(D_IN, M, activation="tanh")
    table = wf.compare_gd_to_flow(model, X, y, 4.0, step_sizes=(0.4, 0.2, 0.1), loss="logistic")
    ratios = table["max_abs_f"].to_numpy()[:-1] / table["max_abs_f"].to_numpy()[1:]
    assert ((ratios > 1.8) & (ratios < 2.2)).all()  # first order: 2 per halving (measured 1.99, 2.00)
    flow = wf.gradient_flow(model, X, y, 4.0, points=3, loss="logistic", progress=False)
    assert {"train_accuracy", "rate"} <= set(flow.history.columns)
    f = flow.model(X)
    assert flow.history["train_loss"].iloc[-1] == pytest.approx(float(softplus(-y * f).mean()), rel=1e-10)
    assert (flow.history["rate"] > 0).all()  # L decreases along the flow (eq. (14) with e = ∂ℓ/∂f)


def test_sweeps_batch_by_loss_and_keep_run_ids() -> None:
    base = {"model": {"kind": "p3l", "d": 4, "m": 16}, "data": {"n": 12, "n_test": 8}, "train": {"steps": 20,
                                                                                               "log_every": 10}}
    logistic = {**base, "train": {**base["train"], "loss": "logistic"}}
    squared = sweep.normalize(base)
    assert squared["train"]["loss"] == "squared"
    # the default loss does not enter the id: ids of configurations written before the key existed are kept
    assert sweep.run_id(base) == sweep.run_id({**base, "train": {**base["train"], "loss": "squared"}})
    assert sweep.run_id(logistic) != sweep.run_id(base)
    assert sweep.batched.shape_key(squared) != sweep.batched.shape_key(sweep.normalize(logistic))
    configs = [{**logistic, "model": {**logistic["model"], "seed": s}} for s in range(3)]
    outcomes = sweep.train_batched(configs)
    assert all(o.ok and o.batch_size == 3 for o in outcomes)
    for config, outcome in zip(configs, outcomes, strict=True):
        alone = sweep.run_one(config)
        # batched (bmm over R runs) against one run: float64 rounding, ~1e-16 measured
        assert outcome.output.history["train_loss"].to_numpy() == pytest.approx(
            alone.history["train_loss"].to_numpy(), rel=1e-12)
        assert "final_test_accuracy" in outcome.output.metrics
    with pytest.raises(wf.errors.UnknownName, match="train.loss"):
        sweep.normalize({"train": {"loss": "hinge"}})


def test_check_says_the_theorems_are_for_the_squared_loss(data) -> None:
    X, y = data
    report = wf.check(wf.P3L(D_IN, M), X, y, loss="logistic", verbose=False)
    assert report["theorem"] is None and "squared loss" in report["theorem_reason"]
    assert report["guaranteed_rate"] is None and report["loss"] == "logistic"
    assert wf.check(wf.P3L(D_IN, M), X, y, verbose=False)["loss"] == "squared"


def test_get_loss() -> None:
    assert get_loss("squared") is LOSSES["squared"] and get_loss(LOSSES["logistic"]) is LOSSES["logistic"]
    with pytest.raises(wf.errors.UnknownName, match="'logistic'"):
        get_loss("logistc")
