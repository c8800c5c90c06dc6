"""Batched training (wideflow.sweep.batched): the same numbers as one-by-one wideflow.train runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from wideflow.errors import InvalidArgument, TrainingDiverged
from wideflow.sweep import expand, normalize, run_one, train_batched
from wideflow.sweep.batched import MAX_BATCH, batch_key, capacity, plan, run_group, task_cost

# tiny problems: one torch thread (see the fixture); module fixtures set it themselves
pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = {"model": {"kind": "p3l", "d": 5, "m": 32}, "data": {"kind": "axis_xor", "n": 12, "n_test": 15},
        "train": {"steps": 60, "log_every": 20}, "record": {"features": True}}


def mixed_batch() -> list[dict]:
    """Seeds × the three scalings, a richness scaling and μP, plus other kinds of model, a sum reduction and other step sizes: all
    with equal shapes (m = 32, n = 12, n_test = 15). "auto" picks the weight space for the shallow net
    (D = 5 < n), so it asks for the kernel engine explicitly."""
    configs = expand({"base": BASE, "grid": {"model": {"scaling": ["ours", "ntk", "mf"]}}, "seeds": 2})
    configs += expand({"base": BASE, "grid": {"model": {"scaling": ["richness(0.3)", "mup"]}}})
    configs.append(normalize({**BASE, "model": {"kind": "deep", "d": 5, "m": 32, "D": 24, "depth": 4},
                              "train": {**BASE["train"], "reduction": "sum", "step_size": 0.05}}))
    configs.append(normalize({**BASE, "model": {"kind": "quadratic", "d": 5, "m": 32, "scaling": "ntk"}}))
    configs.append(normalize({**BASE, "model": {"kind": "shallow", "d": 5, "m": 32}, "data": {
        "kind": "random_labels", "n": 12, "n_test": 15}, "train": {**BASE["train"], "step_size": 0.5, "method": "kernel"}}))
    return configs


@pytest.fixture(scope="module")
def batched() -> list:
    torch.set_num_threads(1)
    return train_batched(mixed_batch())


def test_batched_runs_equal_one_by_one_train_runs_to_float64_precision(batched: list) -> None:
    configs = mixed_batch()
    assert len({batch_key(c) for c in configs}) == 1
    for config, outcome in zip(configs, batched, strict=True):
        assert outcome.ok, outcome.error
        assert outcome.batch_size == len(configs)
        ref = run_one(config)
        got = outcome.output
        assert list(got.history.columns) == list(ref.history.columns)
        assert (got.history["step"] == ref.history["step"]).all() and (got.history["time"] == ref.history["time"]).all()
        # The batch reorders float64 roundings only (a scaled factor before the matmul instead of alpha in it,
        # a sum of squares for a dot product): measured ≤ 1.1e-15 relative over 300 steps; 1e-12 leaves room.
        np.testing.assert_allclose(got.history[["train_loss", "test_error"]], ref.history[["train_loss", "test_error"]],
                                   rtol=1e-12, atol=0)
        for key in ("h0_train", "h0_test", "hT_train", "hT_test"):
            np.testing.assert_allclose(got.arrays[key], ref.arrays[key], rtol=1e-12, atol=1e-14)
        for key in ("initial_train_loss", "final_train_loss", "final_test_error", "fitted_rate"):
            assert got.metrics[key] == pytest.approx(ref.metrics[key], rel=1e-11)
        assert got.metrics["method"] == ref.metrics["method"] == "kernel"


def test_a_run_gets_the_same_bits_whatever_runs_share_its_batch(batched: list) -> None:
    configs = mixed_batch()
    for i in (0, 3, 6, 8):  # a plain run, a symmetrized (NTK) one, a richness one, the deep one
        alone = train_batched([configs[i]])[0].output
        pd.testing.assert_frame_equal(alone.history, batched[i].output.history, check_exact=True)
        for key, value in alone.arrays.items():
            np.testing.assert_array_equal(value, batched[i].output.arrays[key])
    pair = train_batched([configs[5], configs[1]])
    pd.testing.assert_frame_equal(pair[1].output.history, batched[1].output.history, check_exact=True)


def test_a_diverging_or_unbuildable_run_fails_alone(batched: list) -> None:
    configs = mixed_batch()[:3]
    diverging = normalize({**configs[1], "train": {**configs[1]["train"], "step_size": 1e6}})
    with pytest.raises(TrainingDiverged):  # one by one, wideflow.train stops it at step 1
        run_one(diverging)
    # same shapes, but axis_xor needs d >= 2: the data generator refuses it when the run is built
    unbuildable = normalize({**configs[2], "model": {**configs[2]["model"], "d": 1}})
    outcomes = train_batched([configs[0], diverging, unbuildable, configs[2]])
    assert outcomes[1].error.startswith("TrainingDiverged") and "step_size" in outcomes[1].error
    assert outcomes[2].error.startswith("InvalidArgument") and "d must be an integer >= 2" in outcomes[2].error
    for i, j in ((0, 0), (3, 2)):
        assert outcomes[i].ok
        pd.testing.assert_frame_equal(outcomes[i].output.history, batched[j].output.history, check_exact=True)


def test_train_batched_refuses_runs_of_other_shapes() -> None:
    a = normalize(BASE)
    with pytest.raises(InvalidArgument, match="cannot share a batch"):
        train_batched([a, normalize({**BASE, "data": {**BASE["data"], "n": 13}})])
    with pytest.raises(InvalidArgument, match="cannot be batched"):
        train_batched([normalize({**BASE, "train": {**BASE["train"], "method": "weights"}})])


def test_plan_batches_small_compatible_runs_and_keeps_every_worker_busy() -> None:
    small = expand({"base": BASE, "grid": {"model": {"scaling": ["ours", "ntk", "mf"]}, "data": {"n": [12, 16]}},
                    "seeds": 4})  # 24 runs, two shapes of 12 runs each
    weights = normalize({**BASE, "train": {**BASE["train"], "method": "weights"}})
    big = normalize({**BASE, "model": {"kind": "p3l", "d": 5, "m": 4096}, "data": {**BASE["data"], "n": 64}})
    configs = [*small, weights, big]
    assert capacity(big) == 1 and batch_key(big) is None  # (m n + n²)·8 B = 2.1 MB > 1 MiB: no gain in batching
    assert capacity(small[0]) == MAX_BATCH
    tasks = plan(configs, slots=3)
    assert sorted(i for t in tasks for i in t) == list(range(len(configs)))  # every run exactly once
    assert [24] in tasks and [25] in tasks
    batches = [t for t in tasks if len(t) > 1]
    assert len(batches) == 6 and all(len(t) == 4 for t in batches)  # ≥ 3 chunks per shape, equal sizes
    assert all(len({batch_key(configs[i]) for i in t}) == 1 for t in batches)
    lone = plan(configs, max_batch=1)
    assert sorted(lone) == [[i] for i in range(len(configs))]
    # longest first: m = 4096 (run 25) before the rest, and the costs never increase along the plan
    costs = [task_cost([configs[i] for i in task]) for task in lone]
    assert lone[0] == [25] and costs == sorted(costs, reverse=True)
    assert [len(t) for t in plan(small[:12], max_batch=5, slots=1)] == [4, 4, 4]


def test_run_group_runs_an_unbatchable_run_with_train() -> None:
    weights = normalize({**BASE, "train": {**BASE["train"], "method": "weights", "steps": 20}})
    (outcome,) = run_group([weights])
    assert outcome.ok and outcome.output.metrics["method"] == "weights" and outcome.batch_size == 1
