r"""Training losses ℓ(f, y) per point, their derivative ∂ℓ/∂f, and the checks of their targets.

The training loss of a run is L = (1/N) Σ_a ℓ(f(x_a), y_a) with N = n ("mean") or 1 ("sum") (docs/theory.md §2).
GD (9) and the kernel-space dynamics (11) hold for any differentiable ℓ with the residual e replaced by
e_a = ∂ℓ/∂f(x_a) (docs/theory.md §8): the engines consume e and nothing else of the loss, so a loss is one
object here and no engine changes with it.

- ``"squared"``: ℓ = ½ (f − y)², e = f − y (eq. (6); the paper's loss, and the only one its theorems cover).
- ``"logistic"``: binary logistic regression with labels y ∈ {−1, +1}, ℓ = log(1 + exp(−y f)),
  e = −y / (1 + exp(y f)). Both are written so that no exp overflows: ℓ = softplus(−y f) with
  softplus(u) = max(u, 0) + log1p(exp(−|u|)) (the log-sum-exp of (0, u)), and e = −y·sigmoid(−y f), so a margin
  y f of ±1e3 gives a finite loss and a finite derivative.
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import InvalidArgument, check_choice

__all__ = ["LOSSES", "LogisticLoss", "Loss", "SquaredLoss", "accuracy", "get_loss", "softplus"]


def softplus(u: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(u)) = max(u, 0) + log1p(exp(−|u|)), exact to rounding for every finite u (no overflow;
    torch's ``softplus`` switches to u itself above a threshold, which is off by up to 2e-9 there)."""
    return torch.clamp_min(u, 0) + torch.log1p(torch.exp(-u.abs()))


def accuracy(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fraction of points with sign(f) = y along the last axis; f > 0 predicts +1, f ≤ 0 predicts −1."""
    return (torch.where(f > 0, 1.0, -1.0).to(y.dtype) == y).to(y.dtype).mean(dim=-1)


class Loss:
    """A loss ℓ(f, y) per point: :meth:`value`, :meth:`derivative` = ∂ℓ/∂f, and :meth:`check_targets`.

    ``classification`` says whether the targets are class labels (then the history also has accuracies);
    ``max_curvature`` is sup ∂²ℓ/∂f², which scales GD's stability limit 2N/(ℓ''·λ_max(K_0)) (docs/theory.md §2).
    """

    name = ""
    classification = False
    max_curvature = 1.0

    def value(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(f_a, y_a) element-wise."""
        raise NotImplementedError

    def derivative(self, f: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """∂ℓ/∂f at (f_a, y_a) element-wise, into ``out`` when given."""
        raise NotImplementedError

    def check_targets(self, argument: str, y: torch.Tensor, *, training: bool = True) -> None:
        """Raise :class:`~wideflow.errors.InvalidArgument` when ``y`` are not targets of this loss."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Loss) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"wideflow.losses.get_loss({self.name!r})"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return get_loss, (self.name,)


class SquaredLoss(Loss):
    """ℓ = ½ (f − y)², ∂ℓ/∂f = f − y (eq. (6))."""

    name = "squared"

    def value(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e = f - y
        return 0.5 * e * e

    def derivative(self, f: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sub(f, y, out=out) if out is not None else f - y


class LogisticLoss(Loss):
    """ℓ = log(1 + exp(−y f)) = softplus(−y f), ∂ℓ/∂f = −y·sigmoid(−y f), labels y ∈ {−1, +1}."""

    name = "logistic"
    classification = True
    max_curvature = 0.25  # sigmoid(u)·sigmoid(−u) ≤ ¼, attained at f = 0

    def value(self, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return softplus(-y * f)

    def derivative(self, f: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            return -y * torch.sigmoid(-y * f)
        torch.mul(y, f, out=out).neg_()
        return torch.sigmoid(out, out=out).mul_(y).neg_()

    def check_targets(self, argument: str, y: torch.Tensor, *, training: bool = True) -> None:
        """Labels must be −1 or +1; a training set needs both (with one class the loss has no minimizer:
        it decreases for ever as f → ±∞)."""
        bad = (y != 1) & (y != -1)
        if bool(bad.any()):
            index = int(bad.nonzero()[0, 0])
            values = ", ".join(f"{v:.4g}" for v in y[bad].unique()[:5].tolist())
            raise InvalidArgument(
                f"{argument} has values other than -1 and +1 (e.g. {argument}[{index}] = {float(y[index]):.4g}; "
                f"{int(bad.sum())} such entries, among them {values}); loss='logistic' is binary classification "
                "with labels y ∈ {-1, +1}: map the two classes to -1 and +1 (wideflow.sklearn.WideNetClassifier "
                "does it for any labels)."
            )
        if training and y.numel() and bool((y == y.flatten()[0]).all()):
            raise InvalidArgument(
                f"{argument} has a single class ({float(y.flatten()[0]):+g} for every point); loss='logistic' "
                "needs both labels -1 and +1 in the training set (with one class the loss has no minimizer)."
            )


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (SquaredLoss(), LogisticLoss())}


def get_loss(loss: Any, argument: str = "loss") -> Loss:
    """The loss named ``loss`` (one of :data:`LOSSES`), or ``loss`` itself if it is a :class:`Loss`."""
    if isinstance(loss, Loss):
        return loss
    return LOSSES[check_choice(argument, loss, LOSSES)]
