"""Activations carry their math (Assumption 2, the dual kernels of Appendix H) and pickle; models pickle
directly; the package's modules import one another without a cycle."""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import pickle
from pathlib import Path

import pytest
import torch

import wideflow as wf
from wideflow import activations
from wideflow.activations import available_activations, get_activation, register_activation
from wideflow.embeddings import Function, Quadratic
from wideflow.errors import InvalidType, UnknownName
from wideflow.kernels import dual_kernel, has_closed_form

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: OpenMP sync costs more than the work

BUILTIN = available_activations()
CLOSED = [("relu", {}), ("leaky_relu", {"slope": 0.1}), ("leaky_relu", {"slope": 0.5}), ("erf", {}),
          ("linear", {})]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of the activation registry, restored after the test."""
    monkeypatch.setattr(activations, "_FACTORIES", dict(activations._FACTORIES))


def _square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def _twice(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def _pairs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q11, q12, q22) for ten Gaussian pairs: generic ones, ρ = ±1, and a zero variance (the clamped cases)."""
    gen = torch.Generator().manual_seed(0)
    q11 = torch.rand(10, generator=gen, dtype=torch.float64) * 3 + 0.05
    q22 = torch.rand(10, generator=gen, dtype=torch.float64) * 3 + 0.05
    rho = torch.rand(10, generator=gen, dtype=torch.float64) * 2 - 1
    rho[0], rho[1] = 1.0, -1.0
    q11[2] = 0.0
    return q11, rho * (q11 * q22).sqrt(), q22


# ------------------------------------------------------------------------------------------ the activation object
@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_activation_pickles_to_an_equal_activation(name: str) -> None:
    act = get_activation(name)
    x = torch.linspace(-3, 3, 61, dtype=torch.float64)
    for back in (pickle.loads(pickle.dumps(act)), _torch_roundtrip(act)):
        assert back == act and back.spec == act.spec
        assert torch.equal(back(x), act(x)) and torch.equal(back.deriv(x), act.deriv(x))
        assert (back.lipschitz, back.interval, back.k_sigma) == (act.lipschitz, act.interval, act.k_sigma)


def test_parameters_survive_pickling() -> None:
    act = get_activation("smooth_leaky_relu", slope=0.3, beta=2.0)
    back = pickle.loads(pickle.dumps(act))
    assert back.params == {"slope": 0.3, "beta": 2.0} and back == act
    assert back != get_activation("smooth_leaky_relu")


def test_only_relu_declares_the_step_derivative() -> None:
    """step_derivative promises σ = max(x, 0), σ' = 1[x > 0]: the engines' ReLU path relies on both."""
    assert [name for name in BUILTIN if get_activation(name).step_derivative] == ["relu"]
    relu = get_activation("relu")
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    assert torch.equal(relu(x), x.clamp_min(0)) and torch.equal(relu.deriv(x), (x > 0).to(x.dtype))


def test_a_user_activation_declares_no_fast_path(registry: None) -> None:
    act = register_activation("user_relu", torch.relu, lambda x: (x > 0).to(x.dtype), lipschitz=1.0)
    assert not act.step_derivative and act.dual is None and act.torch_module is None
    assert not has_closed_form(act)


def test_a_registered_user_activation_pickles_by_name(registry: None) -> None:
    act = register_activation("user_sin", torch.sin, torch.cos, lipschitz=1.0)
    data = pickle.dumps(wf.P3L(3, 8, activation="user_sin"))  # σ is a torch built-in, σ' a lambda: by name
    model = pickle.loads(data)
    assert model.activation is act
    del activations._FACTORIES["user_sin"]
    with pytest.raises(UnknownName, match="register_activation"):
        pickle.loads(data)


def test_an_unregistered_activation_pickles_by_its_fields() -> None:
    act = wf.Activation("my_square", _square, _twice, None, (0.0, math.inf), 1.0)
    back = pickle.loads(pickle.dumps(act))
    assert back == act and back.fn is _square
    impostor = dataclasses.replace(act, name="relu")  # not what the registry builds under that name
    assert pickle.loads(pickle.dumps(impostor)).fn is _square
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(dataclasses.replace(act, fn=lambda x: x * x))


# ------------------------------------------------------------------------------------------ dual kernels
@pytest.mark.parametrize(("name", "params"), CLOSED, ids=[f"{n}{p.get('slope', '')}" for n, p in CLOSED])
@pytest.mark.parametrize("derivative", [False, True], ids=["sigma", "sigma-prime"])
def test_closed_form_dual_kernels_match_monte_carlo(name: str, params: dict, derivative: bool) -> None:
    # E[g(u)g(v)] over 400k sampled pairs per entry: each estimate is ~N(exact, se²) with se = std/√N;
    # |z| <= 5 has probability 1 − 6e-7 per entry (10 entries), so a failure means a wrong formula.
    # 1e-12: entries with se = 0 (σ' ≡ 1, or a variance 0 with σ' constant) agree to float64 round-off.
    act = get_activation(name, **params)
    q11, q12, q22 = _pairs()
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.randn(400_000, 1, generator=gen, dtype=torch.float64) for _ in range(2))
    s1, s2 = q11.sqrt(), q22.sqrt()
    rho = torch.where(s1 * s2 > 0, q12 / (s1 * s2).clamp_min(1e-300), torch.zeros_like(q12)).clamp(-1, 1)
    u, v = s1 * x, s2 * (rho * x + (1 - rho * rho).clamp_min(0).sqrt() * y)
    g = act.deriv if derivative else act.fn
    terms = g(u) * g(v)
    mc, se = terms.mean(0), terms.std(0) / math.sqrt(terms.shape[0])
    closed = (act.dual_deriv if derivative else act.dual)(q11, q12, q22)
    assert ((mc - closed).abs() <= 5 * se + 1e-12).all(), ((mc - closed) / se).abs().max()
    assert torch.equal(dual_kernel(q12, q11, q22, act, derivative=derivative), closed)


@pytest.mark.parametrize("name", ["erf", "linear"])
@pytest.mark.parametrize("derivative", [False, True], ids=["sigma", "sigma-prime"])
def test_smooth_closed_forms_match_quadrature(name: str, derivative: bool) -> None:
    # σ and σ' entire: 256-node Gauss-Hermite is exact to round-off at q ≤ 3 (measured ≤ 4e-16), so 1e-13.
    act = get_activation(name)
    bare = dataclasses.replace(act, dual=None, dual_deriv=None)
    q11, q12, q22 = _pairs()
    quad = dual_kernel(q12, q11, q22, bare, derivative=derivative, nodes=256)
    closed = dual_kernel(q12, q11, q22, act, derivative=derivative)
    assert torch.allclose(quad, closed, rtol=0, atol=1e-13)


def test_a_registered_closed_form_is_used(registry: None) -> None:
    calls = []

    def dual(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
        calls.append(q12.shape)
        return torch.exp(-(q11 + q22) / 2) * torch.sinh(q12)  # E[sin u sin v]

    act = register_activation("user_sin_closed", torch.sin, torch.cos, lipschitz=1.0, dual=dual)
    assert has_closed_form(act) and not has_closed_form(act, derivative=True)
    q11, q12, q22 = _pairs()
    # 64-node quadrature of the entire σ = sin is exact to ~1e-14 at q ≤ 3 (tests/test_kernels.py), so 1e-12
    bare = dataclasses.replace(act, dual=None)
    assert torch.allclose(dual_kernel(q12, q11, q22, act), dual_kernel(q12, q11, q22, bare), rtol=0, atol=1e-12)
    assert calls == [(10,)]


# ------------------------------------------------------------------------------------------ models pickle
KINDS = {
    "shallow": lambda s: wf.Shallow(5, 16, scaling=s, seed=1),
    "p3l": lambda s: wf.P3L(5, 16, activation="tanh", scaling=s, seed=2),
    "deep4": lambda s: wf.PartiallyTrained(5, 16, 24, depth=4, activation="leaky_relu", scaling=s, seed=3),
    "quadratic": lambda s: wf.WideNet(Quadratic(5), 16, scaling=s, bias=True, seed=4),
}


def _torch_roundtrip(obj: object) -> object:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_model_kind_pickles_with_identical_outputs(kind: str, scaling: str) -> None:
    model = KINDS[kind](scaling)
    model.W = model.W + 0.1  # a trained state, not the one the seed redraws
    X = torch.randn(7, 5, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for back in (pickle.loads(pickle.dumps(model)), _torch_roundtrip(model)):
        assert type(back) is type(model) and back.config == model.config
        assert torch.equal(back(X), model(X))
        assert torch.equal(back.W, model.W) and torch.equal(back.c, model.c)


def test_a_model_with_lazy_weights_pickles_them_materialized() -> None:
    model = wf.P3L(4, 8)
    W = model.W + 1.0
    model.set_lazy_W(lambda: W)  # a lambda: the thunk itself cannot be pickled, so it must be dropped
    back = pickle.loads(pickle.dumps(model))
    assert torch.equal(back.W, W) and back._W_thunk is None


def test_the_random_embeddings_cast_cache_is_not_pickled() -> None:
    model = wf.P3L(4, 8, D=2000, dtype=torch.float32)
    size = len(pickle.dumps(model))
    model(torch.zeros(1, 4))  # fills the float32 copy of z (32 kB), derived from the float64 master
    assert len(pickle.dumps(model)) == size


def test_a_function_embedding_pickles_iff_its_callable_does() -> None:
    model = wf.WideNet(Function(_square, 3), 8)
    X = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(pickle.loads(pickle.dumps(model))(X), model(X))
    local = wf.WideNet(lambda X: X * X, 8, d=3)
    with pytest.raises(InvalidType, match="module-level function"):
        pickle.dumps(local)
    assert torch.equal(local.clone()(X), local(X))  # deepcopy does not pickle


def test_the_exported_module_pickles() -> None:
    model = wf.PartiallyTrained(4, 8, depth=4, activation="smooth_leaky_relu", scaling="ntk")
    module = model.to_module()
    X = torch.randn(5, 4, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(pickle.loads(pickle.dumps(module))(X), module(X))
        assert torch.equal(_torch_roundtrip(module)(X), module(X))


# ------------------------------------------------------------------------------------------ import graph
def _import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package modules it imports, from every import statement (lazy ones inside functions too).

    ``from .a import b`` is an edge to ``a.b`` when that is a module, else to ``a``.
    """
    files = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in files.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    edges.add(sub if sub in files else target)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[module] = {e for e in edges if e in files and e != module}
    return graph


def test_package_import_graph_has_no_cycle() -> None:
    graph = _import_graph(Path(wf.__file__).parent)
    assert {"wideflow.model", "wideflow.interop", "wideflow.activations"} <= set(graph)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
