r"""Batched training: compatible small runs stepped together as one tensor program (spec §8).

The kernel-space form of GD (spec §8) keeps, per run, the features H ∈ R^{m×n}, the coefficients B with
W_t = W_0 + B_t Φ, and the Gram matrices G ∈ R^{n×n} and G(X, X_test). Runs with the same m, n, n_test,
number of steps, logging interval, activation, dtype and device have tensors of the same shapes, so R of
them (different seeds, scalings, kinds of model, step sizes or reductions) are stacked along a leading
batch dimension and one step updates all of them:

    A = σ'(H) ⊙ c ⊙ e,   B ← B + (−η s_o s_h/N) A,   H ← H + ((−δγ/N) A) G      (torch.baddbmm)

with the per-run constants broadcast over the batch. Each run's numbers are those of
:func:`wideflow.train` with ``method="kernel"`` up to float64 rounding, and do not depend on which other
runs share its batch. On small problems one step of R runs costs about as much Python and dispatch
overhead as one step of one run, which is where the throughput comes from (``benchmarks/bench_batched.py``).
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from .._tensor import as_tensor
from ..dynamics import KernelEngine, choose_method, make_engine, train
from ..errors import InvalidArgument
from .config import normalize, run_id
from .runner import Outcome, RunOutput, build, failed_outcome, first_features, run_guarded, summarize

__all__ = ["BatchedKernelEngine", "train_batched", "run_group", "shape_key", "batch_key", "capacity", "plan",
           "BATCH_BYTES", "MAX_BATCH"]

# Batching pays while a batch's state stays in cache: beyond about 1 MiB per (R, m, n) + (R, n, n) tensor
# pair, the elementwise passes over the batch run from slower memory and a batch is no faster than its
# runs one by one (measured by benchmarks/bench_batched.py on 2 cores). Runs that fit at least two to a
# batch are "small" and batched, at most MAX_BATCH together.
BATCH_BYTES = 2**20
MAX_BATCH = 32
_DIVERGENCE_FACTOR = inspect.signature(train).parameters["divergence_factor"].default


class _Shape(NamedTuple):
    """What :func:`wideflow.dynamics.choose_method` reads of a model, known from a configuration alone."""

    m: int
    D: int
    train_c: bool
    bias: bool


def shape_key(config: Mapping[str, Any]) -> Hashable | None:
    """Runs with equal keys can be trained by one :class:`BatchedKernelEngine`; ``None`` when a run cannot.

    Batchable are runs of generated data that :func:`wideflow.train` runs in kernel space (``method``
    "kernel", or "auto" resolving to it), so that a run's ``method`` and numbers do not depend on whether
    it was batched; the key holds what fixes the shapes and the elementwise program.
    """
    m, data, t = config["model"], config["data"], config["train"]
    if data["kind"] == "file" or m["train_c"] or m["bias"]:
        return None
    n, n_test = data["n"], data["n_test"]
    shape = _Shape(m["m"], m["D"], False, False)
    if choose_method(shape, n, n_test, t["steps"], t["log_every"], t["method"]) != "kernel":
        return None
    activation = json.dumps(m["activation"], sort_keys=True)
    return (m["m"], n, n_test, t["steps"], t["log_every"], activation, t["dtype"], t["device"])


def capacity(config: Mapping[str, Any]) -> int:
    """How many runs shaped like ``config`` (generated data) fit in one batch: (m n + n²)·itemsize·R ≤
    :data:`BATCH_BYTES`, at most :data:`MAX_BATCH`."""
    m, n = config["model"]["m"], config["data"]["n"]
    itemsize = 4 if config["train"]["dtype"] == "float32" else 8
    return max(1, min(MAX_BATCH, BATCH_BYTES // ((m * n + n * n) * itemsize)))


def batch_key(config: Mapping[str, Any]) -> Hashable | None:
    """:func:`shape_key` for the small runs (at least two fit in a batch, see :func:`capacity`), else ``None``."""
    key = shape_key(config)
    return None if key is None or capacity(config) < 2 else key


def plan(configs: Sequence[Mapping[str, Any]], *, max_batch: int = MAX_BATCH, slots: int = 1) -> list[list[int]]:
    """Split runs into tasks: lists of indices into ``configs``, each trained by one :func:`run_group`.

    Runs with the same :func:`batch_key` are cut into nearly equal chunks of at most ``max_batch`` (and
    at most :func:`capacity`) runs, and into at least ``slots`` chunks (the number of workers) when there
    are enough runs, so that batching never leaves a worker idle. ``max_batch = 1`` turns batching off.
    Tasks are ordered by their first run.
    """
    groups: dict[Hashable, list[int]] = {}
    tasks: list[list[int]] = []
    for i, config in enumerate(configs):
        key = batch_key(config) if max_batch > 1 else None
        if key is None:
            tasks.append([i])
        else:
            groups.setdefault(key, []).append(i)
    for members in groups.values():
        size = min(max_batch, capacity(configs[members[0]]))
        chunks = max(math.ceil(len(members) / size), min(len(members), slots))
        tasks.extend([int(i) for i in chunk] for chunk in np.array_split(np.array(members), chunks))
    return sorted(tasks, key=lambda task: task[0])


def run_group(configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Run one task of :func:`plan`: a lone run that cannot be batched with :func:`run_guarded`, else
    :func:`train_batched`."""
    configs = [normalize(c) for c in configs]
    if len(configs) == 1 and shape_key(configs[0]) is None:
        return [run_guarded(configs[0])]
    return train_batched(configs)


class BatchedKernelEngine:
    """R kernel-space engines (spec §8) as one program over a leading batch dimension.

    Built from R :class:`~wideflow.dynamics.KernelEngine` instances of equal shapes, the plain runs first
    and the symmetrized (NTK) ones last; the state is H and B of shape (R, m, n), with G (R, n, n), c (R, m),
    y (R, n) and, with a test set, H_test,0 (R, m, n_test) and s_h D G(X, X_test) (R, n, n_test).
    Symmetrized runs read out pairwise, as the single engine does (:func:`wideflow.model.readout`).
    """

    def __init__(self, engines: Sequence[KernelEngine]) -> None:
        first = engines[0]
        self.act = first.act
        self.R = len(engines)
        paired = [e.model.paired for e in engines]
        if paired != sorted(paired):
            raise InvalidArgument("BatchedKernelEngine needs the plain runs before the symmetrized (paired) ones.")
        self.n_plain = paired.count(False)

        def stack(name: str) -> torch.Tensor:
            return torch.stack([getattr(e, name) for e in engines])

        self.H, self.G, self.c, self.y = stack("H"), stack("G"), stack("c"), stack("y")
        self.B = torch.zeros_like(self.H)

        def per_run(values: list[float], *shape: int) -> torch.Tensor:
            return torch.tensor(values, dtype=self.H.dtype, device=self.H.device).reshape(self.R, *shape)

        self.s_o = per_run([e.s_o for e in engines], 1)
        self.N = per_run([e.N for e in engines])
        self.coef_B = per_run([e.coef_B for e in engines], 1)
        self.coef_H = per_run([e.coef_H for e in engines], 1)
        self.has_test = first.X_test is not None
        if self.has_test:
            self.H_test0 = stack("H_test0")
            self.G_test = torch.stack([e.G_test * (e.s_h * e.model.D) for e in engines])
        # step buffers, allocated once (as the single engine does); ReLU, recognised by its function, has
        # σ' = 1[h > 0], one comparison
        self._relu = self.act.fn is torch.relu
        self._S, self._A, self._G_e = torch.empty_like(self.H), torch.empty_like(self.H), torch.empty_like(self.G)
        R, m, n = self.H.shape
        self._S_half = self.H.new_empty(self.R - self.n_plain, m // 2, n)
        self._f = self.H.new_empty(R, n)

    def outputs(self, H: torch.Tensor) -> torch.Tensor:
        """f = s_o Σ_i c_i σ(H_i·) for features H (R, m, k), shape (R, k); pairwise for symmetrized runs
        (as :func:`wideflow.model.readout`). Allocates; the GD steps use :meth:`residual`."""
        return self._readout(self.act(H), torch.empty(H.shape[0], H.shape[2], dtype=H.dtype, device=H.device),
                             H.new_empty(self.R - self.n_plain, H.shape[1] // 2, H.shape[2]))

    def residual(self) -> torch.Tensor:
        """e = f − y on the training set at the current H, shape (R, n) (a new tensor; f in a buffer)."""
        S = torch.clamp_min(self.H, 0, out=self._S) if self._relu else self.act(self.H)
        return self._readout(S, self._f, self._S_half) - self.y

    def _readout(self, S: torch.Tensor, f: torch.Tensor, S_half: torch.Tensor) -> torch.Tensor:
        p, half = self.n_plain, S.shape[1] // 2
        if p:
            torch.bmm(self.c[:p, None, :], S[:p], out=f[:p, None, :])
        if p < self.R:
            torch.sub(S[p:, :half], S[p:, half:], out=S_half)
            torch.bmm(self.c[p:, None, :half], S_half, out=f[p:, None, :])
        return f.mul_(self.s_o)

    def step(self, e: torch.Tensor) -> None:
        """One GD step of every run, with Ã = c ⊙ σ'(H) and A = Ã diag(e) (spec §8):
        B += coef_B Ã diag(e);  H += Ã (coef_H diag(e) G), the residual folded into the n×n factor."""
        if self._relu:
            A = torch.gt(self.H, 0, out=self._A).mul_(self.c[:, :, None])
        else:
            A = torch.mul(self.act.deriv(self.H), self.c[:, :, None], out=self._A)
        self.B.addcmul_(A, (self.coef_B * e)[:, None, :])
        self.H.baddbmm_(A, torch.mul(self.G, (self.coef_H * e)[:, :, None], out=self._G_e))

    def test_features(self) -> torch.Tensor:
        """H_test = H_test,0 + s_h D B G(X, X_test), shape (R, m, n_test)."""
        return torch.baddbmm(self.H_test0, self.B, self.G_test)


def train_batched(configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Train runs of equal :func:`shape_key` together; one :class:`Outcome` per run, in order.

    A run that cannot be built fails alone. A run whose loss diverges (the test of :func:`wideflow.train`)
    is run again alone with :func:`wideflow.train`, so that its failure carries the same
    :class:`~wideflow.errors.TrainingDiverged` report as an unbatched run.
    """
    configs = [normalize(c) for c in configs]
    keys = [shape_key(c) for c in configs]
    if None in keys:
        raise InvalidArgument(
            f"configs[{keys.index(None)}] cannot be batched: batching needs generated data, no trained c or "
            "bias, and a run that wideflow.train would run in kernel space (method 'kernel' or 'auto')."
        )
    if len(set(keys)) > 1:
        other = next(i for i, k in enumerate(keys) if k != keys[0])
        raise InvalidArgument(
            f"configs[0] and configs[{other}] cannot share a batch: batched runs need equal m, n, n_test, steps, "
            "log_every, activation, dtype and device."
        )
    t0 = time.perf_counter()
    outcomes: dict[int, Outcome] = {}
    built: list[tuple[int, KernelEngine, torch.Tensor | None]] = []
    for i, config in enumerate(configs):
        try:
            built.append((i, *_engine(config)))
        except Exception as exc:  # a run that cannot be built fails alone, the batch goes on
            outcomes[i] = failed_outcome(run_id(config), config, exc)
    built.sort(key=lambda b: b[1].model.paired)  # plain runs first, as BatchedKernelEngine wants
    members = [i for i, _, _ in built]
    if members:
        histories, arrays, diverged = _train([e for _, e, _ in built], [y for _, _, y in built],
                                             [configs[i] for i in members])
        del built
        wall = (time.perf_counter() - t0) / len(members)
        for r, i in enumerate(members):
            if r in diverged:
                outcomes[i] = run_guarded(configs[i])
                continue
            output = RunOutput(summarize(histories[r], "kernel", wall), histories[r], arrays[r])
            outcomes[i] = Outcome(run_id(configs[i]), configs[i], output=output, batch_size=len(members))
    return [outcomes[i] for i in range(len(configs))]


def _engine(config: dict[str, Any]) -> tuple[KernelEngine, torch.Tensor | None]:
    """The kernel engine of one run, with its inputs checked and converted as :func:`wideflow.train` does."""
    model, (X, y, X_test, y_test) = build(config)
    t = config["train"]
    Xt = model._input(X)
    yt = as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=Xt.shape[0])
    Xs = ys = None
    if X_test is not None:
        Xs = model._input(X_test, "X_test")
        ys = as_tensor("y_test", y_test, ndim=1, dtype=model.dtype, device=model.device, rows=Xs.shape[0])
    N = float(Xt.shape[0]) if t["reduction"] == "mean" else 1.0
    return make_engine("kernel", model, Xt, yt, Xs, N, t["step_size"]), ys


def _train(engines: list[KernelEngine], y_tests: list[torch.Tensor | None],
           configs: list[dict[str, Any]]) -> tuple[list[pd.DataFrame], list[dict[str, np.ndarray]], set[int]]:
    """The GD loop of :func:`wideflow.dynamics.gradient_descent` over the batch: the histories, the
    recorded arrays, and the positions of the runs that diverged."""
    steps, log_every = configs[0]["train"]["steps"], configs[0]["train"]["log_every"]
    deltas = [e.delta for e in engines]
    batch = BatchedKernelEngine(engines)
    y_test = torch.stack(y_tests) if batch.has_test else None  # type: ignore[arg-type]
    record = [c["record"]["features"] for c in configs]
    arrays: list[dict[str, np.ndarray]] = [{} for _ in engines]
    if any(record):
        _record(arrays, record, batch.H, batch.H_test0 if batch.has_test else None, "0")
    rows: list[list[dict[str, float]]] = [[] for _ in engines]
    # wideflow.train's divergence test: the loss of any step non-finite or above factor × max(L_0, loss of the
    # zero predictor); the largest loss since the last logging step is kept (NaN propagates through maximum)
    limit = _DIVERGENCE_FACTOR * 0.5 * (batch.y * batch.y).sum(dim=1) / batch.N
    worst = torch.full_like(limit, -math.inf)
    diverged: set[int] = set()
    H_test = None
    for k in range(steps + 1):
        e = batch.residual()
        loss = 0.5 * (e * e).sum(dim=1) / batch.N
        if k == 0:
            limit = torch.maximum(limit, _DIVERGENCE_FACTOR * loss)
        torch.maximum(worst, loss, out=worst)
        if k % log_every == 0 or k == steps:
            bad = ~torch.isfinite(worst) | (worst > limit)
            diverged.update(int(r) for r in bad.nonzero().flatten())
            worst.fill_(-math.inf)
            losses = loss.tolist()
            tests = None
            if y_test is not None:
                H_test = batch.test_features()
                tests = (0.5 * ((batch.outputs(H_test) - y_test) ** 2).mean(dim=1)).tolist()
            for r, value in enumerate(losses):
                if r in diverged:
                    continue
                row = {"step": k, "time": k * deltas[r], "train_loss": value}
                if tests is not None:
                    row["test_error"] = tests[r]
                rows[r].append(row)
        if k == steps:
            break
        batch.step(e)
    if any(record):
        _record(arrays, record, batch.H, H_test, "T")
    return [pd.DataFrame(r) for r in rows], arrays, diverged


def _record(arrays: list[dict[str, np.ndarray]], record: list[bool], H: torch.Tensor, H_test: torch.Tensor | None,
            when: str) -> None:
    """h_i(x_1) of the first train (and test) input, for the runs that asked (``record.features``)."""
    for r, wanted in enumerate(record):
        if wanted:
            arrays[r].update(first_features(H[r], None if H_test is None else H_test[r], when))
