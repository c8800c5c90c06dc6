"""A run that kills every ReLU neuron stops with an error instead of returning a dead net (issue: ReLU runs
with a far too large step; the rule is in docs/errors.md and the Driver's docstring)."""

from __future__ import annotations

import pytest
import torch

import wideflow as wf
from wideflow.errors import TrainingDiverged


def _issue_data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    return torch.randn(12, 5, dtype=torch.float64), torch.rand(12, dtype=torch.float64) - 0.5


@pytest.mark.parametrize("method", ["kernel", "weights"])
@pytest.mark.parametrize("seed", [11, 31])
def test_relu_net_killed_by_step_size_1e6_stops_with_an_error(seed: int, method: str) -> None:
    # P3L(5, 10, seed=0), 12 points, step_size=1e6, 200 steps: the first step throws every h_i(x_a) below 0, the
    # loss stays below the 1e8 divergence factor, and the gradient is exactly zero from then on
    X, y = _issue_data(seed)
    with pytest.raises(TrainingDiverged, match="training stalled: at step 100 no neuron is active") as info:
        wf.train(wf.P3L(5, 10, seed=0), X, y, steps=200, step_size=1e6, method=method, progress=False)
    assert info.value.step == 100 and info.value.max_stable_step_size < 1e6
    assert list(info.value.history["step"]) == [0]  # the last state logged alive is the initial one


def test_a_net_that_learns_or_starts_inactive_is_not_called_dead() -> None:
    X, y = _issue_data(11)
    result = wf.train(wf.P3L(5, 10, seed=0), X, y, steps=200, step_size=1.0, progress=False)
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    # MF at D = ∞ starts with H = 0 (warned at build): with ReLU it never moves, which is not a death in training
    with pytest.warns(UserWarning, match="collapse"):
        model = wf.P3L(5, 16, D=float("inf"), scaling="mf", seed=0)
    assert len(wf.train(model, X, y, steps=20, log_every=10, progress=False).history) == 3
