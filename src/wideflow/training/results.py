"""What training hands back: the state of a run at a logging step, and the result of :func:`wideflow.train`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from ..display import train_result_html
from ..model import WideNet

__all__ = ["TrainState", "TrainResult"]


@dataclass
class TrainState:
    """The state of one run at a logging step.

    ``H`` (m, n) are the features h_i(x_a) on the training set and ``H_test`` (m, n_test) on the test set;
    ``f``/``f_test`` the outputs. Tensors are the engine's own buffers: copy them to keep them
    (:meth:`copy`).
    """

    step: int
    time: float
    train_loss: float
    test_error: float | None
    f: torch.Tensor
    H: torch.Tensor
    f_test: torch.Tensor | None = None
    H_test: torch.Tensor | None = None
    c: torch.Tensor | None = None
    b: torch.Tensor | None = None

    def copy(self) -> TrainState:
        """A copy that owns its tensors."""
        def cp(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.clone()

        return TrainState(self.step, self.time, self.train_loss, self.test_error, cp(self.f), cp(self.H),
                          cp(self.f_test), cp(self.H_test), cp(self.c), cp(self.b))


@dataclass
class TrainResult:
    """What :func:`wideflow.train` returns: the history table, the trained model and the run's settings."""

    history: pd.DataFrame
    model: WideNet | None  # None for a run sharded over processes (wideflow.distributed)
    method: str
    steps: int
    step_size: float
    reduction: str
    wall_time: float
    final_state: TrainState
    settings: dict[str, Any] = field(default_factory=dict)
    loss: str = "squared"

    @property
    def final_train_loss(self) -> float:
        return float(self.history["train_loss"].iloc[-1])

    @property
    def final_test_error(self) -> float | None:
        if "test_error" not in self.history:
            return None
        return float(self.history["test_error"].iloc[-1])

    @property
    def final_test_accuracy(self) -> float | None:
        """The last test accuracy of a classification run (``None`` without a test set or for regression)."""
        if "test_accuracy" not in self.history:
            return None
        return float(self.history["test_accuracy"].iloc[-1])

    def _repr_html_(self) -> str:
        """Jupyter's display: settings, final numbers, the loss curve and the history's last rows."""
        return train_result_html(self)
