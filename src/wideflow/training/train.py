r"""wideflow.train: full-batch GD on W with the paper's step convention (eq. (9), docs/theory.md §2 and §8).

Loss (6): L = (1/2N) Σ_a (f(x_a) − y_a)², N = n ("mean", the default everywhere in wideflow) or 1 ("sum"); with
``loss="logistic"``, L = (1/N) Σ_a log(1 + exp(−y_a f(x_a))) for labels y ∈ {−1, +1} (:mod:`wideflow.losses`).
One GD step (9) is W ← W − δ·(lr factor)·∇_W L with the factor of Table 1 (m, 1 or m·D), and corresponds to
GF time δ. :func:`train` checks its arguments, prepares the problem (:func:`wideflow.engines.prepare`), picks
the engine (:func:`wideflow.engines.choose_method`) and runs it through the one driver
(:class:`~wideflow.training.loop.Driver`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..engines import choose_method, make_engine
from ..errors import (
    NonFiniteInput,
    TrainingDiverged,
    TrainingStalled,
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from ..engines.problem import REDUCTIONS, Problem, build, check_data
from ..distributed import ShardedKernelEngine, agree_on_step, check_same_everywhere, shard_of
from ..kernels import max_stable_step_size
from ..losses import LOSSES, get_loss
from ..model import WideNet, check_model
from .checkpoint import check_checkpointing, checkpoint_steps, fingerprint, load_checkpoint
from .loop import CATAPULT_RANGE, DIVERGENCE_FACTOR, SPIKE_FACTOR, Divergence, Driver, check_callbacks
from .results import TrainResult, TrainState

__all__ = ["train"]


def train(
    model: WideNet,
    X: Any,
    y: Any,
    steps: int = 5000,
    step_size: float = 1.0,
    X_test: Any = None,
    y_test: Any = None,
    reduction: str = "mean",
    method: str = "auto",
    log_every: int = 100,
    *,
    progress: bool | None = None,
    callbacks: list[Callable[[TrainState], dict[str, float]]] | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike | None = None,
    loss: str = "squared",
    distributed: bool = False,
) -> TrainResult:
    r"""Train W of ``model`` by full-batch GD with the paper's step convention (eq. (9)).

    Parameters
    ----------
    model: the model; it is not modified (``result.model`` is a trained copy).
    X, y: training inputs (n, d) and targets (n,).
    steps, step_size: number of GD steps and δ; the run reaches GF time ``steps * step_size``.
    X_test, y_test: an optional test set; ``test_error`` = ½·mean over the test set of (f − y)².
    reduction: "mean" (N = n, default) or "sum" (N = 1) in L = (1/2N) Σ_a (f(x_a) − y_a)² (docs/theory.md §2).
    loss: "squared" (eq. (6), the default) or "logistic" (binary, labels y ∈ {−1, +1}: L = (1/N) Σ_a
        log(1 + exp(−y_a f(x_a))), computed without overflow). GD is the same rule (9) with the residual
        e = ∂ℓ/∂f (docs/theory.md §8); the history then also has train_accuracy and test_accuracy.
    method: "kernel" (the kernel-space engine, cost O(m n²) per step, docs/theory.md §8), "weights" (weight
        space, O(m n D)) or "auto" (the one with the smaller operation count for the whole run).
    log_every: a history row every ``log_every`` steps (and at the last step).
    progress: a tqdm bar; ``None`` shows it when standard error is a terminal.
    callbacks: functions of the :class:`TrainState` returning a dict of extra history columns.
    divergence_factor: stop with :class:`~wideflow.errors.TrainingDiverged` as soon as the loss at any step
        is non-finite or exceeds this factor (> 1) times max(L_0, L of the zero predictor). The loss of every
        step is recorded on the device and checked at logging steps, so a blow-up between two logging
        steps is caught even if the loss falls back afterwards. So is a loss above 1e3 times that scale at a
        step size above 6 times the stable one, and a net left with no active neuron (the gradient exactly 0;
        :class:`~wideflow.errors.TrainingStalled`); docs/errors.md has the rules. The error carries the step,
        the last logged finite state, the history and :func:`~wideflow.kernels.max_stable_step_size`.
    checkpoint, checkpoint_every: write an atomic checkpoint (engine state, random generator states,
        history) to this path every ``checkpoint_every`` steps (a multiple of ``log_every``; by default
        about ten per run) and at the end.
    distributed: train one model sharded over the processes of a torchrun launch (:mod:`wideflow.distributed`):
        each process holds a block of the neurons, the history is the same on every rank, checkpoints are one
        file per rank, and ``result.model`` is ``None`` (``result.final_state`` holds this rank's block).
        ``method="auto"`` is then the kernel engine, the one that shards.
    resume: continue from the checkpoint at this path, written by a run with the same model, data and
        settings; the result (history and final W) is bit-identical to an uninterrupted run. A path
        that does not exist yet starts from step 0, so the same call can simply be repeated after an
        interruption (typically with ``checkpoint=resume=PATH``).

    Returns a :class:`TrainResult` whose ``history`` has the columns step, time, train_loss (and
    test_error, the mean test loss; train_accuracy and test_accuracy for the logistic loss; and the
    callbacks' columns).
    """
    check_model(model)
    steps = check_positive_int("steps", steps)
    step_size = check_positive_float("step_size", step_size)
    log_every = check_positive_int("log_every", log_every)
    divergence_factor = check_positive_float("divergence_factor", divergence_factor, above=1.0)
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    loss_fn = get_loss(check_choice("loss", loss, LOSSES))
    progress = check_bool("progress", progress, allow_none=True)
    callbacks = check_callbacks(callbacks)
    Xt, yt, Xs, ys = check_data(model, X, y, X_test, y_test)
    n, n_test = Xt.shape[0], 0 if Xs is None else Xs.shape[0]
    distributed = check_bool("distributed", distributed)
    if distributed and method == "auto":  # only the kernel-space engine shards
        method = "kernel"
    resolved = choose_method(method, m=model.m, n=n, D=model.D, n_test=n_test, steps=steps, log_every=log_every,
                             trains_neurons=model.train_c or model.bias)
    checkpoint_every = check_checkpointing(checkpoint, checkpoint_every, resume, steps, log_every)
    shard = shard_of(model, resolved) if distributed else None
    problem = build(model, Xt, yt, Xs, ys, reduction=reduction, step_size=step_size, space=resolved, loss=loss_fn,
                    neurons=None if shard is None else shard.neurons)
    engine = make_engine(problem) if shard is None else ShardedKernelEngine(problem)
    settings = {
        "steps": steps, "step_size": step_size, "reduction": reduction, "method": resolved,
        "log_every": log_every, "n": n, "n_test": n_test, "model": model.config,
        "data": fingerprint(Xt, yt, Xs, ys),
    }
    if loss != "squared":  # absent for the squared loss, so that checkpoints of earlier versions still resume
        settings["loss"] = loss
    if shard is not None:  # one checkpoint file per rank; every rank must have been given the same run
        settings["processes"] = shard.world
        check_same_everywhere(settings, problem)
        checkpoint = None if checkpoint is None else shard.checkpoint_path(checkpoint)
        if resume is not None:
            shard.check_no_other_layout(resume)
            resume = shard.checkpoint_path(resume)
    start, rows = 0, None
    if resume is not None and shard is not None:  # the latest step every process has (0: start afresh)
        available = checkpoint_steps(resume)
        step = agree_on_step([0, *available])
        if step:
            start, rows = load_checkpoint(available[step], engine, settings)
    elif resume is not None and os.path.exists(resume):  # one process: its latest checkpoint, read once
        start, rows = load_checkpoint(resume, engine, settings)
    t0 = time.perf_counter()
    driver = Driver(engine, steps=steps, log_every=log_every, callbacks=callbacks,
                    divergence_factor=divergence_factor, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                    settings=settings, progress=progress, start=start, rows=rows).run()
    if driver.diverged:
        raise diverged_error(driver.diverged[0], problem, driver.rows[0], divergence_factor)
    assert driver.final is not None
    return TrainResult(
        history=pd.DataFrame(driver.rows[0]),
        model=engine.finish()[0] if shard is None else None,
        method=resolved,
        steps=steps,
        step_size=step_size,
        reduction=reduction,
        wall_time=time.perf_counter() - t0,
        final_state=driver.final.state(0),
        settings=settings,
        loss=loss,
    )


def diverged_error(div: Divergence, problem: Problem, rows: list[dict[str, float]], factor: float) -> TrainingDiverged:
    """The :class:`~wideflow.errors.TrainingDiverged` of a run of ``problem`` (R = 1) that diverged: where, how,
    and the largest stable step size of GD linearized at initialization."""
    what = "became non-finite" if not math.isfinite(div.loss) else (
        f"exceeded {factor:g} times max(L_0, L of the zero predictor) = {div.limit / factor:.3e}")
    model, delta = problem.models[0], problem.step_sizes[0]
    curvature = problem.loss.max_curvature
    bound = "2N/λ_max(K_0)" if curvature == 1 else f"2N/({curvature:g}·λ_max(K_0)), ℓ'' <= {curvature:g}"
    try:
        max_step = max_stable_step_size(model, problem.X[0], problem.reductions[0]) / curvature
        advice = (f"step_size={delta:g}, but GD linearized at initialization is stable only for "
                  f"step_size < {max_step:.4g} (= {bound}); lower the step size.")
    except NonFiniteInput as exc:
        max_step = math.nan
        advice = f"The model is not finite at initialization: {exc}"
    if div.kind == "spike":
        what = (f"exceeded {SPIKE_FACTOR:g} times max(L_0, L of the zero predictor) = {div.limit / SPIKE_FACTOR:.3e} "
                f"with step_size more than {CATAPULT_RANGE:g} times the stable one (beyond any catapult: the run is "
                "not trusted even if its loss comes back down)")
    if div.kind == "dead":
        message = (f"training stalled: at step {div.step} no neuron is active on the training set any more "
                   f"(σ′(h_i(x_a)) = 0 for every neuron i and point a), so the gradient is exactly zero while the "
                   f"loss is {div.loss:.3e}: the net is dead and cannot move again. " + advice)
    else:
        message = (f"training diverged: the loss {what} at step {div.step} (loss {div.loss:.3e}; detected at step "
                   f"{div.detected_at}). " + advice)
    return (TrainingStalled if div.kind == "dead" else TrainingDiverged)(
        message,
        step=div.step,
        last_finite_state=div.last_state,
        max_stable_step_size=max_step,
        history=pd.DataFrame(rows),
    )
