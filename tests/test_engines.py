"""The one kernel-space program: wf.train, a batch of runs and the gradient flow run the same step.

Tolerances: every comparison is between float64 computations of the same formulas in a different order
(batched products, a time step taken through the flow's field); over 100 steps at these sizes the measured
relative differences are below 1e-14, so 1e-12 leaves two orders of margin.
"""

from __future__ import annotations

import pytest
import torch

import wideflow as wf
from wideflow.engines import KernelEngine, Problem, WeightsEngine, make_engine, prepare
from wideflow.errors import InvalidArgument
from wideflow.gradflow import GradientFlow
from wideflow.training import Driver

D_IN = 5
RTOL = 1e-12


@pytest.fixture(scope="module")
def data():
    X, y = wf.data.axis_xor(20, D_IN, seed=0)
    Xs, ys = wf.data.axis_xor(7, D_IN, seed=1)
    return X, y, Xs, ys


def _runs() -> list[tuple[wf.WideNet, dict]]:
    """Runs of equal shapes that differ in everything else: scaling, seed, step size, reduction."""
    return [
        (wf.P3L(D_IN, 16, D=24, scaling="ours", seed=0), {"step_size": 1.0, "reduction": "mean"}),
        (wf.P3L(D_IN, 16, D=40, scaling="mf", seed=1), {"step_size": 0.5, "reduction": "mean"}),
        (wf.Shallow(D_IN, 16, seed=2), {"step_size": 0.05, "reduction": "sum"}),
        (wf.P3L(D_IN, 16, D=24, scaling="ntk", seed=3), {"step_size": 2.0, "reduction": "mean"}),
    ]


def test_a_batch_of_runs_is_each_run_of_train(data) -> None:
    """R = 4 runs stacked on the batch axis give each run's wf.train history and final features."""
    X, y, Xs, ys = data
    runs = _runs()
    problem = Problem.stack([prepare(model, X, y, Xs, ys, **kw) for model, kw in runs])
    engine = KernelEngine(problem)
    driver = Driver(engine, steps=100, log_every=25, stop_on_divergence=False).run()
    assert not driver.diverged
    for r, (model, kw) in enumerate(runs):
        single = wf.train(model, X, y, steps=100, log_every=25, X_test=Xs, y_test=ys, method="kernel", **kw)
        batched = driver.rows[r]
        assert [row["step"] for row in batched] == list(single.history["step"])
        for column in ("time", "train_loss", "test_error"):
            got = torch.tensor([row[column] for row in batched], dtype=torch.float64)
            want = torch.tensor(single.history[column].to_numpy(), dtype=torch.float64)
            assert torch.allclose(got, want, rtol=RTOL, atol=0), column
        assert torch.allclose(engine.H[r], single.final_state.H, rtol=RTOL, atol=1e-14)
        W = engine.finish()[r].W
        assert torch.allclose(W, single.model.W, rtol=RTOL, atol=1e-13)


def test_the_flow_field_is_the_gd_step(data) -> None:
    """One GD step of size δ moves H by δ·(dZ/dt) G: the flow integrates the field of the GD step."""
    X, y, _, _ = data
    for scaling in ("ours", "ntk", "mf"):
        model = wf.P3L(D_IN, 16, D=24, scaling=scaling, activation="tanh", seed=4)
        gf = GradientFlow(model, X, y)
        V = gf.engine.velocity(gf.H0, gf.Z)
        delta = 0.3
        engine = make_engine(prepare(model, X, y, step_size=delta))
        H0 = engine.H.clone()
        _, e = engine.residual()
        engine.step(e)
        assert torch.allclose(engine.H - H0, delta * torch.bmm(V, gf.engine.G), rtol=RTOL, atol=1e-15)


def test_the_flow_at_small_steps_is_gd(data) -> None:
    """GD with δ is the Euler scheme of the flow: at t = 1 the outputs differ by O(δ), with the same problem."""
    X, y, _, _ = data
    model = wf.P3L(D_IN, 16, D=24, activation="tanh", seed=5)
    table = wf.compare_gd_to_flow(model, X, y, t=1.0, step_sizes=(0.1, 0.05))
    ratio = table["max_abs_f"].iloc[0] / table["max_abs_f"].iloc[1]
    assert 1.8 < ratio < 2.2  # first order: halving δ halves the gap (2 up to O(δ²) terms)


def test_stack_refuses_runs_of_other_shapes(data) -> None:
    X, y, _, _ = data
    a = prepare(wf.P3L(D_IN, 16, D=24), X, y)
    b = prepare(wf.P3L(D_IN, 18, D=24), X, y)
    with pytest.raises(InvalidArgument, match="cannot share a batch"):
        Problem.stack([a, b])
    ntk = prepare(wf.P3L(D_IN, 16, D=24, scaling="ntk"), X, y)
    with pytest.raises(InvalidArgument, match="before the symmetrized"):
        Problem.stack([ntk, prepare(wf.P3L(D_IN, 16, D=24), X, y)])


def test_weights_engine_runs_one_problem(data) -> None:
    X, y, _, _ = data
    problem = Problem.stack([prepare(wf.Shallow(D_IN, 16, seed=s), X, y, space="weights") for s in (0, 1)])
    with pytest.raises(InvalidArgument, match="one problem at a time"):
        WeightsEngine(problem)


@pytest.mark.parametrize("d,m", [(5, 46), (3, 14), (7, 22), (4, 64)])
@pytest.mark.parametrize("space", ["weights", "kernel"])
def test_symmetrized_start_is_exactly_zero_at_any_alignment(d: int, m: int, space: str) -> None:
    """NTK symmetrization: f_0 = 0 bitwise in both engines, on the training and the test set, also when m/2·D
    is not a multiple of the 64-byte line (the halves of W then start at different alignments)."""
    model = wf.WideNet(wf.embeddings.Quadratic(d), m, scaling="ntk", seed=1)
    gen = torch.Generator().manual_seed(0)
    X, Xs = torch.randn(13, d, generator=gen, dtype=torch.float64), torch.randn(5, d, generator=gen, dtype=torch.float64)
    engine = make_engine(prepare(model, X, torch.ones(13, dtype=torch.float64), Xs, torch.ones(5, dtype=torch.float64),
                                 space=space))
    f, _ = engine.residual()
    assert torch.equal(f, torch.zeros_like(f))
    f_test = engine.outputs(engine.test_features())
    assert torch.equal(f_test, torch.zeros_like(f_test))
