"""Runs that die quietly stop with an error instead of returning a dead net: a loss spike far beyond the stability
bound is divergence even when the loss comes back down, and a net left with no active neuron has stalled (the
rules are in docs/errors.md, "Divergence", and in the Driver's docstring)."""

from __future__ import annotations

import pytest
import torch

import wideflow as wf
from wideflow.engines import KernelEngine, Problem, prepare
from wideflow.errors import TrainingDiverged, TrainingStalled
from wideflow.training import Driver
from wideflow.training.loop import CATAPULT_RANGE, SPIKE_FACTOR


def _issue_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return torch.randn(12, 5, dtype=torch.float64), torch.rand(12, dtype=torch.float64) - 0.5


@pytest.mark.parametrize("log_every", [100, 200])
@pytest.mark.parametrize("method", ["kernel", "weights"])
@pytest.mark.parametrize("seed", [11, 31])
def test_p3l_5_10_step_size_1e6_on_12_points_seeds_11_and_31_does_not_return_silently(
        seed: int, method: str, log_every: int) -> None:
    # P3L(5, 10, seed=0), 12 points, step_size=1e6 (3e4 and 5e4 times δ_max), 200 steps: step 1 lifts the loss to
    # 3.5e7 and 9.4e7 times L_0 (below the 1e8 divergence factor), kills every neuron, and the loss falls back to
    # that of f ≡ 0; the spike rule reports step 1, whether or not step 1 is a logging step
    X, y = _issue_data(seed)
    with pytest.raises(TrainingDiverged, match="exceeded 1000 times max") as info:
        wf.train(wf.P3L(5, 10, seed=0), X, y, steps=200, step_size=1e6, method=method, log_every=log_every,
                 progress=False)
    err = info.value
    assert type(err) is TrainingDiverged and err.step == 1
    assert err.max_stable_step_size < 1e6 / CATAPULT_RANGE
    assert list(err.history["step"]) == [0] and err.last_finite_state.step == 0


@pytest.mark.parametrize("flags", [{"method": "kernel"}, {"method": "weights"}, {"bias": True}, {"train_c": True}])
def test_a_net_killed_below_the_catapult_range_stalls(flags: dict) -> None:
    # the issue's data at seed 0 and 4·δ_max (inside the catapult range, so no spike rule): every neuron is dead by
    # step 10 (measured; the loss never rose above 1e3 L_0), so the gradient of W, b and c is exactly 0 from there
    X, y = _issue_data(0)
    method = flags.pop("method", "weights")
    model = wf.P3L(5, 10, seed=0, **flags)
    dmax = wf.max_stable_step_size(wf.P3L(5, 10, seed=0), X)
    if flags:  # b = 0 and c trained: the same features at initialization, a larger K_0
        assert wf.max_stable_step_size(model, X) < dmax
    with pytest.raises(TrainingStalled, match="training stalled: at step 10 no neuron is active") as info:
        wf.train(model, X, y, steps=200, step_size=4 * dmax, method=method, log_every=10, progress=False)
    assert info.value.step == 10 and list(info.value.history["step"]) == [0]


def test_a_batch_stops_only_its_dead_run() -> None:
    """In a batch (R = 2, one kernel engine, the path of batched sweeps) the dead run's history ends at its last
    live logging step and the other trains to the end, with the same numbers as alone."""
    X, y = _issue_data(0)
    model = wf.P3L(5, 10, seed=0)
    dmax = wf.max_stable_step_size(model, X)
    problems = [prepare(model, X, y, step_size=4 * dmax), prepare(model, X, y, step_size=0.5 * dmax)]
    driver = Driver(KernelEngine(Problem.stack(problems)), steps=200, log_every=10, stop_on_divergence=False).run()
    assert set(driver.diverged) == {0} and driver.diverged[0].kind == "dead" and driver.diverged[0].step == 10
    assert [row["step"] for row in driver.rows[0]] == [0]
    alone = wf.train(model, X, y, steps=200, step_size=0.5 * dmax, method="kernel", log_every=10, progress=False)
    # float64, the same kernel-space program with R = 2 instead of 1: agreement to rounding (measured 0 to 1e-16
    # relative; 1e-12 leaves room for a differently blocked product)
    assert [row["train_loss"] for row in driver.rows[1]] == pytest.approx(list(alone.history["train_loss"]),
                                                                           rel=1e-12)


def test_a_catapult_or_a_bounded_rise_is_not_divergence() -> None:
    # a catapult at 2·δ_max (NTK, m = 512: the loss rises 4e4-fold and converges, measured) and a rise of 39x
    # at 10·δ_max (P3L, m = 256, beyond the catapult range but below the 1e3 spike factor) both train to the end
    X, y = wf.data.random_labels(16, 5, seed=1)
    model = wf.Shallow(5, 512, scaling="ntk")
    loss = wf.train(model, X, y, steps=300, step_size=2 * wf.max_stable_step_size(model, X), log_every=1,
                    progress=False).history["train_loss"]
    assert loss.max() / loss[0] > 10 * SPIKE_FACTOR and loss.iloc[-1] < loss[0]
    model = wf.P3L(5, 256)
    loss = wf.train(model, X, y, steps=300, step_size=10 * wf.max_stable_step_size(model, X), log_every=1,
                    progress=False).history["train_loss"]
    assert 10 < loss.max() / max(loss[0], 0.5 * float((y * y).mean())) < SPIKE_FACTOR


def test_a_net_that_learns_or_starts_inactive_is_not_called_dead() -> None:
    X, y = _issue_data(11)
    result = wf.train(wf.P3L(5, 10, seed=0), X, y, steps=200, step_size=1.0, progress=False)
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    # MF at D = ∞ starts with H = 0 (warned at build): with ReLU it never moves, which is not a death in training
    with pytest.warns(UserWarning, match="collapse"):
        model = wf.P3L(5, 16, D=float("inf"), scaling="mf", seed=0)
    assert len(wf.train(model, X, y, steps=20, log_every=10, progress=False).history) == 3
