r"""Batched training: compatible small runs stepped together by one kernel engine (docs/theory.md §8).

Runs with the same m, n, n_test, number of steps, logging interval, activation, dtype and device have
kernel-space tensors of the same shapes, so R of them (different seeds, scalings, kinds of model, step sizes or
reductions) are prepared one by one (:func:`wideflow.engines.prepare`), stacked on the leading batch axis
(:meth:`wideflow.engines.Problem.stack`) and trained by one :class:`~wideflow.engines.KernelEngine` through the
same driver as :func:`wideflow.train`. Each run's numbers are those of :func:`wideflow.train` with
``method="kernel"`` up to float64 rounding, and do not depend on which other runs share its batch. On small
problems one step of R runs costs about as much Python and dispatch overhead as one step of one run, which is
where the throughput comes from (``benchmarks/bench_batched.py``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..engines import KernelEngine, Problem, choose_method, engine_costs, prepare
from ..errors import InvalidArgument
from ..training import Driver
from .config import normalize, run_id
from .runner import Outcome, RunOutput, build, failed_outcome, first_features, run_guarded, summarize

__all__ = ["train_batched", "run_group", "shape_key", "batch_key", "capacity", "plan", "task_cost",
           "BATCH_BYTES", "MAX_BATCH"]

# Batching pays while a batch's state stays in cache: beyond about 1 MiB per (R, m, n) + (R, n, n) tensor
# pair, the elementwise passes over the batch run from slower memory and a batch is no faster than its
# runs one by one (measured by benchmarks/bench_batched.py on 2 cores). Runs that fit at least two to a
# batch are "small" and batched, at most MAX_BATCH together.
BATCH_BYTES = 2**20
MAX_BATCH = 32


def shape_key(config: Mapping[str, Any]) -> Hashable | None:
    """Runs with equal keys can be trained by one batched :class:`~wideflow.engines.KernelEngine`; ``None`` when
    a run cannot.

    Batchable are runs of generated data that :func:`wideflow.train` runs in kernel space (``method``
    "kernel", or "auto" resolving to it), so that a run's ``method`` and numbers do not depend on whether
    it was batched; the key holds what fixes the shapes and the elementwise program.
    """
    m, data, t = config["model"], config["data"], config["train"]
    if data["kind"] == "file" or m["train_c"] or m["bias"]:
        return None
    n, n_test = data["n"], data["n_test"]
    method = choose_method(t["method"], m=m["m"], n=n, D=m["D"], n_test=n_test, steps=t["steps"],
                           log_every=t["log_every"])
    if method != "kernel":
        return None
    activation = json.dumps(m["activation"], sort_keys=True)
    return (m["m"], n, n_test, t["steps"], t["log_every"], activation, t["dtype"], t["device"], t["loss"])


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
    Tasks are ordered longest first (:func:`task_cost`; ties by their first run), so that the workers finish
    together instead of one of them starting the longest run last.
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
    cost = [task_cost([configs[i] for i in task]) for task in tasks]
    order = sorted(range(len(tasks)), key=lambda k: (-cost[k], tasks[k][0]))
    return [tasks[k] for k in order]


def task_cost(configs: Sequence[Mapping[str, Any]]) -> float:
    """The counted floating-point operations of a task's runs (:func:`wideflow.engines.engine_costs` of the
    engine each would use); ``inf`` for a run whose sizes the configuration does not hold (data from a file)."""
    total = 0.0
    for config in configs:
        m, data, t = config["model"], config["data"], config["train"]
        if "n" not in data or m.get("D") is None:
            return math.inf
        method = choose_method(t["method"], m=m["m"], n=data["n"], D=m["D"], n_test=data["n_test"],
                               steps=t["steps"], log_every=t["log_every"],
                               trains_neurons=bool(m.get("train_c") or m.get("bias")))
        D = m["D"] if m["D"] != math.inf else data["n"]  # at D = ∞ the set-up products are O(n²), the step the same
        total += engine_costs(m["m"], data["n"], D, data["n_test"], t["steps"], t["log_every"])[method]
    return total


def run_group(configs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Run one task of :func:`plan`: a lone run that cannot be batched with :func:`run_guarded`, else
    :func:`train_batched`."""
    configs = [normalize(c) for c in configs]
    if len(configs) == 1 and shape_key(configs[0]) is None:
        return [run_guarded(configs[0])]
    return train_batched(configs)


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
            "log_every, activation, dtype, device and loss."
        )
    t0 = time.perf_counter()
    outcomes: dict[int, Outcome] = {}
    built: list[tuple[int, Problem]] = []
    for i, config in enumerate(configs):
        try:
            built.append((i, _problem(config)))
        except Exception as exc:  # a run that cannot be built fails alone, the batch goes on
            outcomes[i] = failed_outcome(run_id(config), config, exc)
    built.sort(key=lambda b: b[1].paired[0])  # plain runs first, as Problem.stack wants
    members = [i for i, _ in built]
    if members:
        problem = Problem.stack([p for _, p in built])
        del built
        histories, arrays, diverged = _train(problem, [configs[i] for i in members])
        wall = (time.perf_counter() - t0) / len(members)
        for r, i in enumerate(members):
            if r in diverged:
                outcomes[i] = run_guarded(configs[i])  # alone, for the same TrainingDiverged report as unbatched
                continue
            output = RunOutput(summarize(histories[r], "kernel", wall), histories[r], arrays[r])
            outcomes[i] = Outcome(run_id(configs[i]), configs[i], output=output, batch_size=len(members))
    return [outcomes[i] for i in range(len(configs))]


def _problem(config: dict[str, Any]) -> Problem:
    """The kernel-space problem of one run (:func:`wideflow.engines.prepare`, as :func:`wideflow.train` does)."""
    model, (X, y, X_test, y_test) = build(config)
    t = config["train"]
    return prepare(model, X, y, X_test, y_test, reduction=t["reduction"], step_size=t["step_size"], loss=t["loss"])


def _train(problem: Problem, configs: list[dict[str, Any]]
           ) -> tuple[list[pd.DataFrame], list[dict[str, np.ndarray]], set[int]]:
    """Train the batch through :class:`wideflow.training.Driver`: the histories, the recorded arrays, and the
    positions of the runs that diverged."""
    steps, log_every = configs[0]["train"]["steps"], configs[0]["train"]["log_every"]
    engine = KernelEngine(problem)
    record = [c["record"]["features"] for c in configs]
    arrays: list[dict[str, np.ndarray]] = [{} for _ in configs]
    if any(record):
        _record(arrays, record, engine.H, engine.H_test0, "0")
    driver = Driver(engine, steps=steps, log_every=log_every, stop_on_divergence=False).run()
    if any(record) and driver.final is not None:
        test = driver.final.test()
        _record(arrays, record, engine.H, None if test is None else test[0], "T")
    return [pd.DataFrame(r) for r in driver.rows], arrays, set(driver.diverged)


def _record(arrays: list[dict[str, np.ndarray]], record: list[bool], H: torch.Tensor, H_test: torch.Tensor | None,
            when: str) -> None:
    """h_i(x_1) of the first train (and test) input, for the runs that asked (``record.features``)."""
    for r, wanted in enumerate(record):
        if wanted:
            arrays[r].update(first_features(H[r], None if H_test is None else H_test[r], when))
