"""Shared fixtures and the plain-autograd reference that the engines are checked against."""

from __future__ import annotations

import pytest
import torch

import wideflow as wf


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run paper-scale slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def one_torch_thread(_threads: None) -> None:
    """One torch thread, for tests of tiny problems: with two threads on two busy cores, OpenMP's
    synchronization costs far more than the work (a 60-step P-3L run took 1.9 s against 0.04 s)."""
    torch.set_num_threads(1)


def autograd_gd(model: wf.WideNet, X: torch.Tensor, y: torch.Tensor, steps: int, step_size: float,
                reduction: str = "mean") -> tuple[torch.Tensor, list[float]]:
    """The plain PyTorch way: forward with W as a leaf, loss.backward(), W ← W − δ·(lr factor)·∇W.

    Written from the equations (2)-(3), (6) and (9) and Table 1 alone, independently of the engines.
    Returns the final W and the loss before each step and after the last.
    """
    X = X.to(model.dtype)
    y = y.to(model.dtype)
    Phi = model.embed(X)
    W = model.W.clone().requires_grad_(True)
    N = X.shape[0] if reduction == "mean" else 1
    lr = step_size * model.scaling.lr_factor(model.m, model.D)
    losses = []
    for _ in range(steps + 1):
        H = model.s_h * Phi @ W.T
        f = model.s_o * model.activation(H) @ model.c
        loss = 0.5 * ((f - y) ** 2).sum() / N
        losses.append(float(loss.detach()))
        if len(losses) == steps + 1:
            break
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= lr * grad
    return W.detach(), losses
