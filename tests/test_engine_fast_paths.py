"""The engines' fast paths stay exact, allocate nothing per step, evaluate the test set only at logging
steps, keep the kernel engine's memory independent of D, and "auto" picks the cheaper engine.

No assertion here depends on timing: the speed itself is measured by benchmarks/bench_engines.py.
Exactness is checked against `conftest.autograd_gd` in float64, where a few hundred steps accumulate relative
rounding of order 1e-14 (tests/test_training_exact.py measured at most 5e-14), so 1e-10 leaves four orders of margin.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import autograd_gd

import wideflow as wf
from wideflow.engines import KernelEngine, WeightsEngine, choose_method, engine_costs, make_engine, prepare
from wideflow.training import gradient_descent

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_engines.py"
D_IN = 6


def _bench():
    spec = importlib.util.spec_from_file_location("bench_engines", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_engines"] = module
    spec.loader.exec_module(module)
    return module


def _engine(method: str, model, X, y, X_test=None, y_test=None):
    """The engine of ``method`` for one run with the mean loss and step size 1."""
    return make_engine(prepare(model, X, y, X_test, y_test, space=method))


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return wf.data.axis_xor(24, D_IN, seed=3)


# ---------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("method", ["weights", "kernel"])
@pytest.mark.parametrize("scaling", ["ours", "ntk"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_fast_paths_match_autograd(method: str, scaling: str, activation: str, data) -> None:
    """The ReLU fast path (σ' from one comparison) and the generic path, plain and symmetrized readout."""
    X, y = data
    model = wf.P3L(D_IN, 32, D=48, scaling=scaling, activation=activation, seed=1)
    W_ref, losses = autograd_gd(model, X, y, 150, step_size=1.0)
    result = wf.train(model, X, y, steps=150, method=method, log_every=50)
    displacement = (W_ref - model.W).norm()
    assert displacement > 1e-3
    assert float((result.model.W - W_ref).norm() / displacement) <= 1e-10
    ref = torch.tensor([losses[k] for k in result.history["step"]], dtype=torch.float64)
    assert torch.allclose(torch.tensor(result.history["train_loss"].to_numpy()), ref, rtol=1e-10, atol=0)


def test_relu_fast_path_is_bitwise_the_generic_path(data, monkeypatch) -> None:
    """A ReLU registered under another name takes the generic path (σ and σ' called as functions); both paths
    compute the same numbers in the same order, so the trajectories agree bit for bit."""
    X, y = data
    # registered in a copy of the registry, restored after the test (other tests list the registered names)
    monkeypatch.setattr(wf.activations, "_FACTORIES", dict(wf.activations._FACTORIES))
    name = "relu_generic_path_test"
    if name not in wf.activations.available_activations():
        wf.register_activation(name, lambda x: torch.relu(x.clone()), lambda x: (x > 0).to(x.dtype),
                               lipschitz=1.0, interval=(0.0, math.inf), k_sigma=1.0)
    fast, generic = wf.P3L(D_IN, 32, D=48, seed=2), wf.P3L(D_IN, 32, D=48, seed=2, activation=name)
    for method in ("weights", "kernel"):
        a, b = _engine(method, fast, X, y), _engine(method, generic, X, y)
        assert a.act.step_derivative and not b.act.step_derivative
        for _ in range(20):
            (fa, ea), (fb, eb) = a.residual(), b.residual()
            assert torch.equal(fa, fb)
            a.step(ea)
            b.step(eb)
        assert torch.equal(a.H, b.H)


def test_residual_is_the_readout(data) -> None:
    """residual() writes f = s_o Σ_i c_i σ(h_i) (pairwise for NTK) and e = f − y into the engine's buffers."""
    X, y = data
    for scaling in ("ours", "ntk"):
        model = wf.P3L(D_IN, 32, D=48, scaling=scaling)
        engine = _engine("kernel", model, X, y)
        f, e = engine.residual()
        assert torch.allclose(f[0], model(X), rtol=1e-13, atol=1e-15)
        assert torch.equal(e[0], f[0] - y)
        if scaling == "ntk":
            assert torch.equal(f, torch.zeros_like(f))  # f_0 = 0 exactly (Table 1)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_padding_columns_change_nothing(activation: str) -> None:
    """n = 21 is padded to 24 columns (a multiple of 8, for BLAS); the padding stays exactly zero, also for an
    activation with σ(0) ≠ 0, and the trajectory is the autograd one."""
    X, y = wf.data.axis_xor(21, D_IN, seed=5)
    model = wf.P3L(D_IN, 32, D=48, activation=activation)
    W_ref, losses = autograd_gd(model, X, y, 100, step_size=1.0)
    for method in ("weights", "kernel"):
        engine = _engine(method, model, X, y)
        assert engine.n_pad == 24 and engine.H.shape == (1, 32, 21)
        states = list(gradient_descent(engine, steps=100, log_every=100))
        assert states[-1].losses[0] == pytest.approx(losses[-1], rel=1e-10)
        assert torch.equal(engine._H[:, :, 21:], torch.zeros(1, 32, 3, dtype=torch.float64))
        assert torch.equal(engine._e[:, 21:], torch.zeros(1, 3, dtype=torch.float64))
        if method == "kernel":
            assert torch.equal(engine._Z[:, :, 21:], torch.zeros(1, 32, 3, dtype=torch.float64))
        W = engine.finish()[0].W
        assert float((W - W_ref).norm() / (W_ref - model.W).norm()) <= 1e-10


@pytest.mark.parametrize("train_c,bias", [(True, False), (False, True)])
def test_padding_with_trained_c_or_bias(train_c: bool, bias: bool) -> None:
    """With biases the padding columns of H hold b and σ(b) ≠ 0: the padded residual must still be zero there,
    or the gradients of b and c would pick up phantom points. Checked against autograd (as in test_training_exact)."""
    X, y = wf.data.axis_xor(21, D_IN, seed=5)
    model = wf.P3L(D_IN, 32, D=48, train_c=train_c, bias=bias)
    Phi = model.embed(X)
    W = model.W.clone().requires_grad_(True)
    c = model.c.clone().requires_grad_(train_c)
    b = torch.zeros(32, dtype=torch.float64, requires_grad=bias)
    for _ in range(60):
        f = model.s_o * torch.relu(model.s_h * Phi @ W.T + b) @ c
        grads = torch.autograd.grad(0.5 * ((f - y) ** 2).mean(), [t for t in (W, c, b) if t.requires_grad])
        with torch.no_grad():
            W -= model.scaling.lr_factor(32, 48) * grads[0]
            (c if train_c else b).sub_(32.0 * grads[1])  # the per-neuron factor m of "ours"
    result = wf.train(model, X, y, steps=60, log_every=60)
    assert float((result.model.W - W.detach()).norm() / (W - model.W).norm()) <= 1e-10
    trained, ref = (result.model.c, c) if train_c else (result.model.b, b)
    assert torch.allclose(trained, ref.detach(), rtol=1e-10, atol=1e-12)


def test_fused_relu_step_matches_autograd(data) -> None:
    """The element-wise work compiled by torch.compile (used for long CPU runs) is the same trajectory, and
    keeps f_0 = 0 exactly under the NTK symmetrization."""
    X, y = data
    for scaling in ("ours", "ntk"):
        model = wf.P3L(D_IN, 32, D=48, scaling=scaling)
        W_ref, losses = autograd_gd(model, X, y, 100, step_size=1.0)
        engine = _engine("kernel", model, X, y)
        engine.plan(10**12)
        assert engine.fused
        states = list(gradient_descent(engine, steps=100, log_every=50))
        if scaling == "ntk":
            assert states[0].losses[0] == 0.5 * float((y**2).mean())
        got = torch.tensor([s.losses[0] for s in states], dtype=torch.float64)
        ref = torch.tensor([losses[k] for k in (0, 50, 100)], dtype=torch.float64)
        assert torch.allclose(got, ref, rtol=1e-10, atol=0)
        W = engine.finish()[0].W
        assert float((W - W_ref).norm() / (W_ref - model.W).norm()) <= 1e-10


def test_short_runs_are_not_fused(data) -> None:
    """Compiling costs seconds: a run whose element work steps·m·n is small stays unfused."""
    X, y = data
    engine = _engine("kernel", wf.P3L(D_IN, 32, D=48), X, y)
    for _ in gradient_descent(engine, steps=10, log_every=10):
        pass
    assert not engine.fused


def test_kernel_state_gives_the_weights(data) -> None:
    """W_t = W_0 + B_t Φ (docs/theory.md §8): the kernel engine's test features at the end equal those of its
    trained W."""
    X, y = data
    Xs, ys = wf.data.axis_xor(10, D_IN, seed=4)
    model = wf.P3L(D_IN, 32, D=48)
    engine = _engine("kernel", model, X, y, Xs, ys)
    for _ in gradient_descent(engine, steps=100, log_every=100):
        pass
    (trained,) = engine.finish()
    assert trained._W is None  # W_t is formed only when asked for, and W_0 was not copied
    assert torch.allclose(engine.test_features()[0], trained.features(Xs).T, rtol=1e-10, atol=1e-12)
    assert torch.allclose(engine.H[0], trained.features(X).T, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------- allocations
@pytest.mark.parametrize("method", ["weights", "kernel"])
@pytest.mark.parametrize("scaling", ["ours", "ntk"])
def test_steady_state_allocates_nothing_of_size_mn(method: str, scaling: str, data) -> None:
    """The ReLU steps reuse preallocated buffers: torch's profiler sees no allocation of the size of H."""
    from torch.profiler import ProfilerActivity, profile

    X, y = data
    model = wf.P3L(D_IN, 64, D=48, scaling=scaling)
    engine = _engine(method, model, X, y)
    for _ in range(2):
        _, e = engine.residual()
        engine.step(e)
    buffers = [t.data_ptr() for t in (engine._H, engine._S, engine._A)]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(3):
            _, e = engine.residual()
            engine.step(e)
    sizes = [ev.cpu_memory_usage for ev in prof.events() if ev.cpu_memory_usage > 0]
    mn_bytes = model.m * X.shape[0] * 8
    assert max(sizes, default=0) < mn_bytes // 8  # only scalars and n-vectors remain
    assert buffers == [t.data_ptr() for t in (engine._H, engine._S, engine._A)]


# ---------------------------------------------------------------------------------------------- test set
@pytest.mark.parametrize("method", ["weights", "kernel"])
def test_test_set_is_evaluated_only_at_logging_steps(method: str, data, monkeypatch) -> None:
    X, y = data
    Xs, ys = wf.data.axis_xor(10, D_IN, seed=4)
    engine_class = {"weights": WeightsEngine, "kernel": KernelEngine}[method]
    calls = []
    original = engine_class.test_features

    def counting(self):
        calls.append(1)
        return original(self)

    monkeypatch.setattr(engine_class, "test_features", counting)
    result = wf.train(wf.P3L(D_IN, 32, D=48), X, y, steps=25, log_every=10, method=method, X_test=Xs, y_test=ys)
    assert list(result.history["step"]) == [0, 10, 20, 25]
    assert len(calls) == 4


# ---------------------------------------------------------------------------------------------- memory
class _CountingFeatures(wf.embeddings.RandomFeatures):
    """Random features that record how many columns of Φ were ever formed at once."""

    widest = 0

    def _embed(self, X: torch.Tensor) -> torch.Tensor:
        type(self).widest = max(type(self).widest, self.D)
        return super()._embed(X)

    def column_blocks(self, X: torch.Tensor, block: int):
        for P in super().column_blocks(X, block):
            type(self).widest = max(type(self).widest, P.shape[1])
            yield P


def _engine_bytes(engine) -> int:
    """Bytes of the tensor storages the engine holds itself (views counted once; its inputs excluded)."""
    p = engine.problem
    inputs = {t.untyped_storage().data_ptr() for t in (p.X[0], p.X_test[0], p.y, p.y_test) if t is not None}
    storages = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes()
                for v in [*vars(engine).values(), *vars(p).values()] if isinstance(v, torch.Tensor)}
    return sum(size for ptr, size in storages.items() if ptr not in inputs)


def test_kernel_engine_memory_does_not_grow_with_D(data) -> None:
    """O(m (n + n_test)) state, and Φ formed at most ``block`` columns at a time, whatever D is."""
    X, y = data
    Xs, _ = wf.data.axis_xor(10, D_IN, seed=4)
    sizes = []
    for D in (64, 3 * KernelEngine.block + 5):
        _CountingFeatures.widest = 0
        model = wf.WideNet(_CountingFeatures(D_IN, D, seed=0), 16)
        engine = _engine("kernel", model, X, y, Xs, wf.data.axis_xor(10, D_IN, seed=4)[1])
        _, e = engine.residual()
        engine.step(e)
        engine.test_features()
        assert _CountingFeatures.widest <= KernelEngine.block
        sizes.append(_engine_bytes(engine))
    assert sizes[0] == sizes[1]
    m, n, n_test = 16, 24, 10
    # H, Z and the buffers σ(H), c ⊙ σ'(H); H_test,0; G, its e-scaled copy and G(X, X_test); f, e; c; and the
    # run's constants s_o, N, coef_H (one number each)
    assert sizes[0] == 8 * (4 * m * n + m * n_test + 2 * n * n + n * n_test + 2 * n + m + 3)


def _probe(bench, method: str, D: int) -> int:
    spec = {"case": {"name": "probe", "family": "p3l", "n": 64, "m": 64, "D": D, "d": D_IN}, "method": method,
            "dtype": "float64", "device": "cpu", "n_test": 32, "threads": 1}
    out = subprocess.run([sys.executable, str(BENCH), "--probe-memory", json.dumps(spec)], capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]


@pytest.mark.integration
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset the peak RSS")
def test_measured_peak_memory_of_kernel_engine_is_independent_of_D() -> None:
    """Peak resident memory above model and data, each in a fresh process (the benchmark's probe).

    m = n = 64, n_test = 32, float64. At D = 131072 the weights engine holds a copy of W (64 MiB) and Φ of the
    training and test sets (96 MiB); a kernel engine that formed Φ would need those 96 MiB too. Its own state is
    0.15 MiB at any D, plus transients of 1 MiB per column block, whose reuse by the allocator settles at about
    +7 MiB from D = 16384 on (measured at D = 1024 ... 131072: 7.1, 10.7, 14.0, 14.7, 14.5 MiB). So from
    D = 8192 to D = 131072 (16 times the columns) the kernel engine may grow by less than 8 MiB, and the
    weights engine must lie more than 64 MiB above it.
    """
    bench = _bench()
    small, large = _probe(bench, "kernel", 8192), _probe(bench, "kernel", 131072)
    weights = _probe(bench, "weights", 131072)
    assert large - small < 8 * 2**20
    assert weights - large > 64 * 2**20  # the probe does see D-sized memory when there is some


# ---------------------------------------------------------------------------------------------- auto
def _choose(m: int, D: int, n: int, n_test: int, steps: int, log_every: int, method: str = "auto",
            trains_neurons: bool = False) -> str:
    return choose_method(method, m=m, n=n, D=D, n_test=n_test, steps=steps, log_every=log_every,
                         trains_neurons=trains_neurons)


@pytest.mark.parametrize("n,m,D,expected", [
    (200, 1024, 1024, "kernel"), (1000, 4096, 4096, "kernel"), (500, 8192, 8192, "kernel"), (160, 8192, 20, "weights"),
])
def test_auto_at_the_benchmarked_shapes(n: int, m: int, D: int, expected: str) -> None:
    assert _choose(m, D, n, 500, 50000, 100) == expected


def test_auto_switches_at_half_n_for_long_runs() -> None:
    """Per step the kernel engine costs 2 m n² and the weights engine 4 m n D: for a long run the choice
    flips once, at D = n/2, and the set-up costs move it by less than one unit of D."""
    n, m = 400, 2048
    choices = [_choose(m, D, n, 0, 100000, 100) for D in range(1, 2 * n)]
    flip = choices.index("kernel")
    assert set(choices[:flip]) == {"weights"} and set(choices[flip:]) == {"kernel"}
    assert abs(flip + 1 - n / 2) <= 1


def test_auto_counts_set_up_for_short_runs() -> None:
    """With n > 2m the Gram matrix (2 D n²) costs more than one weight-space step (4 m n D): a one-step run
    stays in weight space, a long one repays it (2 m n² < 4 m n D per step)."""
    short, long = engine_costs(64, 200, 10**5, 0, 1, 1), engine_costs(64, 200, 10**5, 0, 10**4, 100)
    assert short["weights"] < short["kernel"] and long["kernel"] < long["weights"]
    assert _choose(64, 10**5, 200, 0, 1, 1) == "weights"
    assert _choose(64, 10**5, 200, 0, 10**4, 100) == "kernel"


def test_auto_falls_back_when_kernel_engine_cannot_run() -> None:
    assert _choose(1024, 4096, 100, 0, 1000, 10, trains_neurons=True) == "weights"
    assert _choose(1024, 4096, 100, 0, 1000, 10, "auto", True) == "weights"
    assert _choose(1024, 4096, 100, 0, 1000, 10, "weights") == "weights"
    with pytest.raises(ValueError, match="method"):
        _choose(1024, 4096, 100, 0, 1000, 10, "fast")


# ---------------------------------------------------------------------------------------------- benchmark
def test_benchmark_baseline_is_plain_gradient_descent(data) -> None:
    """The benchmark's autograd baseline follows the same trajectory as the reference loop of conftest."""
    bench = _bench()
    X, y = data
    model = wf.P3L(D_IN, 32, D=48)
    base = bench.AutogradBaseline(model, X, y, float(X.shape[0]), 1.0)
    for _ in range(50):
        base.step()
    W_ref, _ = autograd_gd(model, X, y, 50, step_size=1.0)
    assert float((base.W.detach() - W_ref).norm() / (W_ref - model.W).norm()) <= 1e-10


def test_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    """A tiny run of every code path of the benchmark: table, JSON, targets (no timing is asserted)."""
    bench = _bench()
    out = tmp_path / "bench.json"
    args = ["--quick", "--cases", "shallow-160x1024", "--repeats", "2", "--min-time", "0.001", "--square", "64",
            "--no-memory", "--no-scaling", "--threads", "1", "--json", str(out)]
    report = bench.main(args)
    saved = json.loads(out.read_text())
    (case,) = saved["cases"]
    assert case["auto_method"] == "weights"
    assert set(case["step_time_s"]) == {"baseline", "weights", "kernel", "auto", "matmul_square",
                                        "matmul_kernel_shape"}
    assert all(len(v["all"]) == 2 and v["median"] > 0 for v in case["step_time_s"].values())
    assert [t["target"] for t in report["targets"]] == ["shallow-160x1024: auto <= 1.10 x better engine"]


def test_fit_exponent_recovers_a_power_law() -> None:
    bench = _bench()
    assert bench.fit_exponent([1, 2, 4], [3.0, 12.0, 48.0]) == pytest.approx(2.0, abs=1e-12)


# ---------------------------------------------------------------------------------------------- GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("method", ["weights", "kernel"])
def test_engines_run_on_cuda(method: str, data) -> None:
    """Every step runs on the device: the same run on CUDA and on the CPU agree to float64 rounding."""
    X, y = data
    cpu = wf.P3L(D_IN, 32, D=48)
    gpu = wf.P3L(D_IN, 32, D=48, device="cuda")
    a = wf.train(cpu, X, y, steps=100, method=method, log_every=50, X_test=X[:5], y_test=y[:5])
    b = wf.train(gpu, X, y, steps=100, method=method, log_every=50, X_test=X[:5], y_test=y[:5])
    assert b.model.W.device.type == "cuda"
    assert torch.allclose(b.model.W.cpu(), a.model.W, rtol=1e-10, atol=1e-12)
