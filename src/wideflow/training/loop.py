r"""The one GD driver: steps an engine and owns logging, callbacks, divergence, checkpoints and progress.

:func:`gradient_descent` is a generator: it runs the steps of an engine and yields a :class:`Snapshot` at
every logging step (0, log_every, 2·log_every, … and the last step); the caller decides what to keep.
:class:`Driver` consumes it for R runs at once and keeps a history row per run and logging step; both
:func:`wideflow.train` (R = 1) and the batched sweeps (R > 1) train through it.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..engines import Engine
from ..errors import InvalidType, NonFiniteInput
from ..kernels import max_stable_step_size
from .checkpoint import save_checkpoint
from .results import TrainState

__all__ = ["gradient_descent", "Snapshot", "Driver", "Divergence", "LossWatch", "first_above", "check_callbacks",
           "DIVERGENCE_FACTOR", "CATAPULT_RANGE", "SPIKE_FACTOR"]

Callback = Callable[[TrainState], dict[str, float]]

#: A run has diverged when its loss exceeds this factor times max(L_0, L of the zero predictor).
DIVERGENCE_FACTOR = 1e8
#: ... or exceeds SPIKE_FACTOR times that scale at a step size above CATAPULT_RANGE times the stability bound
#: δ_max = 2N/λ_max(K_0); docs/errors.md ("Divergence") has the rule and the measurements behind both numbers.
CATAPULT_RANGE = 6.0
SPIKE_FACTOR = 1e3


@dataclass
class Snapshot:
    """The R runs of an engine at a logging step; tensors are the engine's buffers (valid until the next step).

    ``f``, ``e`` (R, n) are the training outputs and residuals e = ∂ℓ/∂f, ``losses`` the training losses
    L = (1/N) Σ_a ℓ(f_a, y_a) (eq. (6) for the squared loss).
    The test features and errors are formed on first use (:meth:`test`).
    """

    engine: Engine
    step: int
    f: torch.Tensor
    e: torch.Tensor
    losses: list[float]
    _test: tuple[torch.Tensor, torch.Tensor, list[float]] | None = field(default=None, repr=False)

    def test(self) -> tuple[torch.Tensor, torch.Tensor, list[float]] | None:
        """(H_test (R, m, n_test), f_test (R, n_test), test errors) with a test set, else ``None``."""
        if self.engine.y_test is None:
            return None
        if self._test is None:
            H_test = self.engine.test_features()
            f_test = self.engine.outputs(H_test)
            self._test = (H_test, f_test, self.engine.test_errors(f_test))
        return self._test

    def state(self, r: int) -> TrainState:
        """The :class:`TrainState` of run ``r`` (views of the engine's buffers)."""
        eng, test = self.engine, self.test()
        b = getattr(eng, "b", None)
        return TrainState(
            step=self.step, time=self.step * eng.delta[r], train_loss=self.losses[r],
            test_error=None if test is None else test[2][r], f=self.f[r], H=eng.H[r],
            f_test=None if test is None else test[1][r], H_test=None if test is None else test[0][r],
            c=eng.c[r], b=b,
        )


def gradient_descent(engine: Engine, *, steps: int, log_every: int, start: int = 0,
                     watch: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> Iterator[Snapshot]:
    """Run GD steps ``start``..``steps`` of ``engine`` and yield a :class:`Snapshot` at every logging step.

    Training outputs are formed every step (the update needs the residual e); test features only when a
    snapshot's :meth:`Snapshot.test` is called. ``watch(k, f, e)``, if given, sees the outputs and the residual
    of every step k.
    """
    engine.plan(steps - start)
    for k in range(start, steps + 1):
        f, e = engine.residual()
        if watch is not None:
            watch(k, f, e)
        if k % log_every == 0 or k == steps:
            yield Snapshot(engine, k, f, e, engine.losses(e, f))
        if k == steps:
            return
        engine.step(e)


class LossWatch:
    """The training loss of every GD step of R runs, kept on the engine's device (no host synchronization per
    step) in a ring of ``period`` slots (at least the steps between two checks), checked at logging steps.

    A slot holds Σ_a e_a² for the squared loss (one product, L = ½ slot/N) and Σ_a ℓ(f_a, y_a) for the others
    (L = slot/N)."""

    def __init__(self, period: int, start: int, engine: Engine) -> None:
        self.period = period
        self.N = engine.N.double().cpu()
        self.checked = start
        self.sq = torch.zeros(period, engine.R, 1, 1, dtype=engine.dtype, device=engine.device)
        self._slots = self.sq.unbind()  # views made once: indexing each step would cost as much as the product
        self.loss = None if engine.loss.name == "squared" else engine.loss
        self.y = engine.y
        self.scale = 0.5 if self.loss is None else 1.0
        self._flat = [slot.view(-1) for slot in self._slots]

    def __call__(self, k: int, f: torch.Tensor, e: torch.Tensor) -> None:
        if self.loss is None:
            torch.bmm(e[:, None, :], e[:, :, None], out=self._slots[k % self.period])
        else:
            torch.sum(self.loss.value(f, self.y), dim=1, out=self._flat[k % self.period])

    def window(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The steps in (last check, k] (or k itself at the start) and their losses (T, R), float64 on the CPU:
        the one host transfer of a check."""
        steps = torch.arange(min(self.checked + 1, k), k + 1)
        self.checked = k
        losses = (self.scale / self.N) * self.sq[(steps % self.period).to(self.sq.device)].double().cpu()[:, :, 0, 0]
        return steps, losses


def first_above(steps: torch.Tensor, losses: torch.Tensor, limits: torch.Tensor) -> dict[int, tuple[int, float]]:
    """Per run, the first of ``steps`` whose loss (a row of ``losses`` (T, R)) is non-finite or above the run's
    limit: {run: (step, loss)}."""
    bad = ~torch.isfinite(losses) | (losses > limits)
    out: dict[int, tuple[int, float]] = {}
    for r in bad.any(dim=0).nonzero().flatten().tolist():
        i = int(bad[:, r].nonzero()[0, 0])
        out[r] = (int(steps[i]), float(losses[i, r]))
    return out


@dataclass
class Divergence:
    """A run whose loss blew up: the first bad step and loss, the logging step where it was detected, the
    last logged finite state (run ``r`` of a single run only) and the limit it crossed.

    ``kind``: "loss" (non-finite, or above ``divergence_factor`` × the scale), "spike" (above
    :data:`SPIKE_FACTOR` × the scale at a step size beyond :data:`CATAPULT_RANGE` × ``max_step``, the run's
    stability bound) or "dead" (no active neuron left at the logging step ``step``: the gradient is exactly 0)."""

    step: int
    loss: float
    detected_at: int
    limit: float
    last_state: TrainState | None
    kind: str = "loss"
    max_step: float = math.nan


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``callbacks`` as a list of callables, or the error that says what was expected."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        raise InvalidType(
            f"callbacks must be a list of functions of the TrainState; got {type(callbacks).__name__} "
            f"(wrap a single function in a list: callbacks=[fn])."
        )
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise InvalidType(f"callbacks[{i}] must be callable (TrainState -> dict); got {type(cb).__name__} {cb!r}.")
    return list(callbacks)


def _callback_columns(i: int, cb: Callback, state: TrainState) -> dict[str, float]:
    out = cb(state)
    if not isinstance(out, dict):
        name = getattr(cb, "__name__", type(cb).__name__)
        raise InvalidType(
            f"callback callbacks[{i}] ({name}) returned {type(out).__name__} {out!r}; expected a dict of history "
            "columns, e.g. {'norm_W': 1.5}."
        )
    return out


class Driver:
    """Train the R runs of ``engine`` for ``steps`` GD steps and keep their histories.

    - history: a row per run and logging step with step, time (= step·δ), train_loss, test_error (with a test
      set; the mean test loss), for a classification loss train_accuracy and test_accuracy, and the columns
      of ``callbacks`` (functions of each run's :class:`TrainState`);
    - divergence: the loss of every step is recorded on the device and checked at logging steps; a run whose
      loss is non-finite or above ``divergence_factor`` × max(L_0, L of the zero predictor) at any step has
      diverged, and so has a run whose loss exceeds :data:`SPIKE_FACTOR` × that scale at any step while its step
      size is above :data:`CATAPULT_RANGE` × its stability bound (:meth:`max_step`, computed only then), even if
      the loss comes back down; a run that had active neurons and has none left at a logging step
      (:meth:`~wideflow.engines.Engine.active`: no trained parameter can move) while its loss is not zero is
      dead (its gradient is exactly zero for ever). With ``stop_on_divergence`` the driver stops there;
      otherwise that run's history ends and the others go on;
    - checkpoints: the engine's state, the random generators and the histories, atomically, every
      ``checkpoint_every`` steps and at the end, to ``checkpoint`` (see :mod:`wideflow.training.checkpoint`);
    - progress: a tqdm bar when ``progress`` (``None``: when standard error is a terminal).

    ``start`` and ``rows`` continue a resumed run.
    """

    def __init__(self, engine: Engine, *, steps: int, log_every: int, callbacks: Sequence[Callback] = (),
                 divergence_factor: float = DIVERGENCE_FACTOR, stop_on_divergence: bool = True,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int | None = None,
                 settings: dict[str, Any] | None = None, progress: bool | None = False, start: int = 0,
                 rows: list[list[dict[str, float]]] | None = None) -> None:
        self.engine, self.steps, self.log_every = engine, steps, log_every
        self.callbacks = list(callbacks)
        self.factor, self.stop_on_divergence = divergence_factor, stop_on_divergence
        self.checkpoint, self.checkpoint_every, self.settings = checkpoint, checkpoint_every, settings or {}
        self.progress, self.start = progress, start
        self.rows: list[list[dict[str, float]]] = rows or [[] for _ in range(engine.R)]
        self.diverged: dict[int, Divergence] = {}
        self.final: Snapshot | None = None
        self._max_steps: dict[int, float] = {}
        self._alive_at_start: list[bool] | None = None

    def max_step(self, r: int) -> float:
        """The stability bound of run ``r``, 2N/(ℓ''·λ_max(K_0)) (:func:`~wideflow.kernels.max_stable_step_size`
        of the initial model), computed on first use; ``inf`` when K_0 = 0 or is not finite."""
        if r not in self._max_steps:
            problem = self.engine.problem
            try:
                bound = max_stable_step_size(problem.models[r], problem.X[r], problem.reductions[r])
            except NonFiniteInput:
                bound = math.inf
            self._max_steps[r] = bound / problem.loss.max_curvature
        return self._max_steps[r]

    def _limits(self) -> torch.Tensor:
        """Per run: the divergence limit, ``divergence_factor`` × max(L of the zero predictor, L_0 if known)."""
        zero = self.engine.zero_losses()
        first = torch.tensor([rows[0]["train_loss"] if rows else 0.0 for rows in self.rows], dtype=torch.float64)
        return self.factor * torch.maximum(zero, first)

    def run(self) -> Driver:
        """Train; returns ``self`` with ``rows``, ``diverged`` and ``final`` (the last snapshot) filled in."""
        eng = self.engine
        limits = self._limits()
        watch = LossWatch(min(self.log_every, self.steps), self.start, eng)
        last: list[TrainState | None] = [None] * eng.R
        bar = _progress_bar(self.progress, self.steps, self.start)
        try:
            for snap in gradient_descent(eng, steps=self.steps, log_every=self.log_every, start=self.start,
                                         watch=watch):
                if snap.step == 0:
                    limits = torch.maximum(limits, self.factor * torch.tensor(snap.losses, dtype=torch.float64))
                self._check(snap, watch, limits, last)
                if self.diverged and self.stop_on_divergence:
                    return self
                self._log(snap, last)
                if bar is not None:
                    bar.update(snap.step - bar.n)
                    bar.set_postfix(loss=f"{snap.losses[0]:.3e}", refresh=False)
                if (self.checkpoint is not None and self.checkpoint_every
                        and snap.step % self.checkpoint_every == 0 and snap.step > self.start):
                    save_checkpoint(self.checkpoint, eng, self.settings, snap.step, self.rows)
                self.final = snap
        finally:
            if bar is not None:
                bar.close()
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, eng, self.settings, self.steps, self.rows)
        return self

    def _check(self, snap: Snapshot, watch: LossWatch, limits: torch.Tensor, last: list[TrainState | None]) -> None:
        """The rules of the class docstring: the divergence rules over the steps since the last check, the
        dead-net rule at this logging step; the runs that broke one are added to ``diverged``."""
        steps, losses = watch.window(snap.step)
        spikes = first_above(steps, losses, limits * (SPIKE_FACTOR / self.factor))
        for r, (step, loss) in first_above(steps, losses, limits).items():
            spikes.pop(r, None)
            if r not in self.diverged:
                self.diverged[r] = Divergence(step, loss, snap.step, float(limits[r]), last[r])
        for r, (step, loss) in spikes.items():
            if r not in self.diverged and self.engine.delta[r] > CATAPULT_RANGE * self.max_step(r):
                self.diverged[r] = Divergence(step, loss, snap.step, float(limits[r]) * SPIKE_FACTOR / self.factor,
                                              last[r], "spike", self.max_step(r))
        alive = self.engine.active()  # over every block of a sharded run
        if self._alive_at_start is None:
            self._alive_at_start = alive  # a net that starts inactive (MF at D = ∞) is warned of at build
        for r, (was, now) in enumerate(zip(self._alive_at_start, alive, strict=True)):
            if was and not now and snap.losses[r] > 0 and r not in self.diverged:
                self.diverged[r] = Divergence(snap.step, snap.losses[r], snap.step, math.nan, last[r], "dead")

    def _log(self, snap: Snapshot, last: list[TrainState | None]) -> None:
        test = snap.test()
        eng = self.engine
        classify = eng.loss.classification
        if classify:
            train_acc = eng.accuracies(snap.f, eng.y)
            test_acc = None if test is None else eng.accuracies(test[1], eng.y_test)
        for r, rows in enumerate(self.rows):
            if r in self.diverged:
                continue
            if rows and rows[-1]["step"] == snap.step:
                rows.pop()  # a resumed run logs its first step again, from the restored state, identically
            row = {"step": snap.step, "time": snap.step * eng.delta[r], "train_loss": snap.losses[r]}
            if test is not None:
                row["test_error"] = test[2][r]
            if classify:
                row["train_accuracy"] = train_acc[r]
                if test_acc is not None:
                    row["test_accuracy"] = test_acc[r]
            if self.callbacks or self.stop_on_divergence:
                state = snap.state(r)
                for i, cb in enumerate(self.callbacks):
                    row.update(_callback_columns(i, cb, state))
                if self.stop_on_divergence:
                    last[r] = state.copy()
            rows.append(row)


def _progress_bar(progress: bool | None, steps: int, start: int) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=start, desc="GD", unit="step", dynamic_ncols=True)
