"""Activation functions σ with the constants of Assumption 2 and their dual kernels (docs/theory.md §4, §5).

Each :class:`Activation` carries σ, its (a.e.) derivative σ', the Lipschitz constant L_σ (``None`` when σ'
is unbounded), an *active interval* I = (I_l, I_r) on which σ is differentiable with |σ'| ≥ K_σ' > 0,
and that bound K_σ'. Where σ' is not defined (the kink of ReLU) it is taken to be 0, as in the paper.

Assumption 2 asks for a Lipschitz σ and a non-empty active interval. The intervals given here are
the natural choices: (0, ∞) for ReLU (K_σ' = 1), the whole line for activations whose derivative is
bounded away from 0 (linear, leaky ReLU, smoothed leaky ReLU), and (-1, 1) for the saturating ones
(tanh, sigmoid, erf, softplus), where K_σ' is the smallest |σ'| on that interval.

An activation also declares what fast paths may assume about it, so that no code recognizes a function
by its name or identity:

- ``dual`` and ``dual_deriv``: the closed-form dual kernels E[σ(u)σ(v)] and E[σ'(u)σ'(v)] for a centred
  Gaussian pair (u, v) with variances q11, q22 and covariance q12 (one step of the Appendix H recursion),
  where they are known: linear, ReLU (the arc-cosine kernel of order 1), leaky ReLU and erf (the arcsin
  kernel). :func:`wideflow.kernels.dual_kernel` uses them, and quadrature for every other σ.
- ``step_derivative``: σ(x) = max(x, 0), so σ'(x) = 1[x > 0] (ReLU only); the training engines' fused
  ReLU path runs exactly when it is set.
- ``torch_module``: a zero-argument factory of the ``torch.nn`` module computing σ, where torch has one
  (used by :func:`wideflow.interop.to_module`).

Activations pickle (and so do the models holding them): one that the registry rebuilds from its
:attr:`Activation.spec` is stored as that spec, any other by its fields (then σ and σ' must pickle).
A user activation registered with :func:`register_activation` is therefore stored by name, and the
process that unpickles it must register it first.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import InvalidArgument, InvalidType, UnknownName, check_positive_float, closest, unknown_name

__all__ = ["Activation", "get_activation", "register_activation", "available_activations"]

TensorFn = Callable[[torch.Tensor], torch.Tensor]
# (q11, q12, q22) -> E[g(u) g(v)] for (u, v) ~ N(0, [[q11, q12], [q12, q22]]), elementwise, float64 tensors.
DualKernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Activation:
    """An activation σ with σ', the constants of Assumption 2 and its declared fast paths.

    Parameters
    ----------
    name: the registry name (used when a model is saved, pickled and rebuilt).
    fn, deriv: σ and σ', elementwise on tensors.
    lipschitz: L_σ = sup |σ'|, or ``None`` where σ' is unbounded (cubic).
    interval: the active interval (I_l, I_r) of Assumption 2; ``±math.inf`` allowed.
    k_sigma: K_σ' = inf of |σ'| on the interval.
    params: keyword parameters that rebuild the activation (e.g. the leaky slope).
    homogeneous: σ(a x) = a σ(x) for a > 0 (used by Appendix B's Xavier mapping).
    dual, dual_deriv: the closed forms of E[σ(u)σ(v)] and E[σ'(u)σ'(v)] as functions of (q11, q12, q22),
        or ``None`` (then :func:`wideflow.kernels.dual_kernel` integrates numerically).
    step_derivative: σ(x) = max(x, 0) and σ'(x) = 1[x > 0]; the engines' ReLU fast path relies on it.
    torch_module: a zero-argument factory of a ``torch.nn.Module`` computing σ, or ``None``.
    """

    name: str
    fn: TensorFn
    deriv: TensorFn
    lipschitz: float | None
    interval: tuple[float, float]
    k_sigma: float
    params: dict = field(default_factory=dict)
    homogeneous: bool = False
    dual: DualKernel | None = None
    dual_deriv: DualKernel | None = None
    step_derivative: bool = False
    torch_module: Callable[[], nn.Module] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    @property
    def globally_active(self) -> bool:
        """True when |σ'| ≥ K_σ' on the whole line, so the PL bound holds at every step (docs/theory.md §5)."""
        return self.interval == (-math.inf, math.inf) and self.k_sigma > 0

    @property
    def spec(self) -> dict:
        """What :func:`get_activation` needs to rebuild this activation."""
        return {"name": self.name, **self.params}

    def __reduce__(self) -> tuple:
        """Pickle as the registry spec when the registry rebuilds this very activation, else by fields."""
        factory = _FACTORIES.get(self.name)
        if factory is not None:
            try:
                rebuilt = factory(**self.params)
            except (TypeError, ValueError):
                rebuilt = None
            if rebuilt == self:
                return (_from_registry, (self.spec,))
        return (_from_fields, (self.name, self.fn, self.deriv, self.lipschitz, self.interval, self.k_sigma,
                               dict(self.params), self.homogeneous, self.dual, self.dual_deriv,
                               self.step_derivative, self.torch_module))

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params.items())
        return f"Activation({self.name!r}{extra})"


def _from_registry(spec: dict) -> Activation:
    """Unpickle an activation stored by its spec; the registry of this process must know its name."""
    try:
        return get_activation(spec)
    except UnknownName:
        raise UnknownName(
            f"cannot unpickle the activation {spec!r}: {spec.get('name')!r} is not registered in this process; "
            "call wideflow.register_activation with the same name before unpickling (or torch.load)."
        ) from None


def _from_fields(*fields: Any) -> Activation:
    return Activation(*fields)


_FACTORIES: dict[str, Callable[..., Activation]] = {}


def register_activation(
    name: str,
    fn: TensorFn,
    deriv: TensorFn,
    *,
    lipschitz: float | None = None,
    interval: tuple[float, float] = (-math.inf, math.inf),
    k_sigma: float = 0.0,
    dual: DualKernel | None = None,
    dual_deriv: DualKernel | None = None,
    overwrite: bool = False,
) -> Activation:
    """Register a user activation under ``name`` so that ``activation=name`` works everywhere.

    ``deriv`` must be σ' (checked against finite differences at a few points). Set ``interval`` and
    ``k_sigma`` to the active interval of Assumption 2 if the theory instruments should use them.
    ``dual`` and ``dual_deriv`` are optional closed forms of E[σ(u)σ(v)] and E[σ'(u)σ'(v)] as functions
    of (q11, q12, q22) (see :class:`Activation`); they are used as given, so compare them once with
    ``wideflow.kernels.dual_kernel`` of the same activation registered without them (quadrature).

    A model or activation holding a registered activation pickles by its name: the process that
    unpickles it (``pickle.load``, ``torch.load``, a Dask worker) must call ``register_activation`` with
    the same name first, or unpickling raises :class:`~wideflow.errors.UnknownName`.
    """
    if not isinstance(name, str) or not name:
        raise InvalidType(f"name must be a non-empty string; got {name!r}.")
    if name in _FACTORIES and not overwrite:
        raise InvalidArgument(f"activation {name!r} is already registered; pass overwrite=True to replace it.")
    if not callable(fn) or not callable(deriv):
        raise InvalidType("fn and deriv must be callables mapping a tensor to a tensor of the same shape.")
    for argument, value in (("dual", dual), ("dual_deriv", dual_deriv)):
        if value is not None and not callable(value):
            raise InvalidType(f"{argument} must be None or a callable (q11, q12, q22) -> tensor; got {value!r}.")
    lo, hi = interval
    if not lo < hi:
        raise InvalidArgument(f"interval must satisfy I_l < I_r; got {interval!r}.")
    probe = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64) + 0.0123
    eps = 1e-6
    fd = (fn(probe + eps) - fn(probe - eps)) / (2 * eps)
    if not torch.allclose(fd, deriv(probe), rtol=1e-4, atol=1e-4):
        raise InvalidArgument(
            f"deriv does not match the derivative of fn for activation {name!r} "
            f"(finite differences at {probe.tolist()[:3]}... differ); pass σ' as deriv."
        )
    act = Activation(name, fn, deriv, lipschitz, (float(lo), float(hi)), float(k_sigma), dual=dual,
                     dual_deriv=dual_deriv)
    _FACTORIES[name] = _Registered(act)
    return act


@dataclass(frozen=True)
class _Registered:
    """The registry factory of a user activation: it takes no parameters and returns the activation."""

    activation: Activation

    def __call__(self) -> Activation:
        return self.activation


def available_activations() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return sorted(_FACTORIES)


def get_activation(activation: str | Activation | dict, **params: float) -> Activation:
    """Return the :class:`Activation` called ``activation`` (with ``params`` such as ``slope``).

    An :class:`Activation` passes through unchanged; a dict is an activation ``spec``.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, dict):
        spec = dict(activation)
        return get_activation(spec.pop("name"), **spec)
    if not isinstance(activation, str):
        raise InvalidType(
            f"activation must be a name, an Activation or a spec dict; got {type(activation).__name__} {activation!r}."
        )
    if activation not in _FACTORIES:
        raise unknown_name("activation", activation, _FACTORIES)
    factory = _FACTORIES[activation]
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = f"it takes {', '.join(map(repr, accepted))}" if accepted else "it takes no parameters"
        raise InvalidArgument(
            f"activation {activation!r} does not take the parameter(s) {', '.join(map(repr, unknown))}; {takes}."
            + closest(unknown[0], accepted)
        )
    return factory(**params)


def _builtin(name: str) -> Callable[[Callable[..., Activation]], Callable[..., Activation]]:
    def deco(factory: Callable[..., Activation]) -> Callable[..., Activation]:
        _FACTORIES[name] = factory
        return factory

    return deco


# ------------------------------------------------------------------------------------------ dual kernels
# One step of the Appendix H recursion (docs/theory.md §4): E[g(u) g(v)] for (u, v) centred Gaussian with
# variances q11, q22 and covariance q12. A zero variance makes that variable identically 0.
def _angle(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                              torch.Tensor]:
    """(√(q11 q22), θ = arccos ρ with ρ clamped to [−1, 1] and 0 where a variance vanishes, both-positive mask)."""
    outer = torch.sqrt(q11 * q22)
    positive = outer > 0
    rho = torch.where(positive, q12 / outer.clamp_min(torch.finfo(outer.dtype).tiny), torch.zeros_like(q12))
    return outer, torch.arccos(rho.clamp(-1.0, 1.0)), positive


def _relu_dual(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """E[relu(u) relu(v)] = √(q11 q22) (sin θ + (π − θ) cos θ)/(2π), the arc-cosine kernel of order 1."""
    outer, theta, _ = _angle(q11, q12, q22)
    return outer * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) / (2 * math.pi)


def _relu_dual_deriv(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """P(u > 0, v > 0) = (π − θ)/(2π); 0 if a variance vanishes (σ'(0) = 0 by the paper's convention)."""
    _, theta, positive = _angle(q11, q12, q22)
    return torch.where(positive, (math.pi - theta) / (2 * math.pi), torch.zeros_like(theta))


def _linear_dual(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """E[uv] = q12."""
    return q12.clone()


def _linear_dual_deriv(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """σ' ≡ 1."""
    return torch.ones_like(q12)


def _erf_dual(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """E[erf(u) erf(v)] = (2/π) arcsin(2 q12 / √((1 + 2 q11)(1 + 2 q22)))."""
    arg = 2 * q12 / torch.sqrt((1 + 2 * q11) * (1 + 2 * q22))
    return (2 / math.pi) * torch.arcsin(arg.clamp(-1.0, 1.0))


def _erf_dual_deriv(q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
    """σ' = (2/√π) e^{−x²}: E[e^{−u²−v²}] = det(I + 2Σ)^{−1/2}; the determinant is ≥ 1 for a valid Σ."""
    det = ((1 + 2 * q11) * (1 + 2 * q22) - 4 * q12 * q12).clamp_min(1.0)
    return (4 / math.pi) / torch.sqrt(det)


@dataclass(frozen=True)
class _LeakyDual:
    """E[σ(u)σ(v)] for σ = s·x + (1−s)·relu(x): s² q12 + 2 s (1−s) q12/2 + (1−s)² k_relu = s q12 + (1−s)² k_relu,
    since E[u relu(v)] = q12/2 by the symmetry (u, v) → (−u, −v)."""

    slope: float

    def __call__(self, q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
        s = self.slope
        return s * q12 + (1 - s) ** 2 * _relu_dual(q11, q12, q22)


@dataclass(frozen=True)
class _LeakyDualDeriv:
    """E[σ'(u)σ'(v)] for σ' = s + (1−s)·1{x > 0}; P(u > 0) = ½ if its variance is positive, else 0."""

    slope: float

    def __call__(self, q11: torch.Tensor, q12: torch.Tensor, q22: torch.Tensor) -> torch.Tensor:
        s = self.slope
        p1, p2 = 0.5 * (q11 > 0).to(q11.dtype), 0.5 * (q22 > 0).to(q22.dtype)
        return s * s + s * (1 - s) * (p1 + p2) + (1 - s) ** 2 * _relu_dual_deriv(q11, q12, q22)


# ------------------------------------------------------------------------------------------ σ and σ'
# Module-level functions and small frozen callables (never lambdas), so that activations pickle by value
# and two activations built with the same parameters compare equal.
def _step(x: torch.Tensor) -> torch.Tensor:
    return (x > 0).to(x.dtype)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _tanh_deriv(x: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(x) ** 2


def _sigmoid_deriv(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) * (1 - torch.sigmoid(x))


_ERF_SLOPE = 2 / math.sqrt(math.pi)


def _erf_deriv(x: torch.Tensor) -> torch.Tensor:
    return _ERF_SLOPE * torch.exp(-(x**2))


def _cube(x: torch.Tensor) -> torch.Tensor:
    return x**3


def _cube_deriv(x: torch.Tensor) -> torch.Tensor:
    return 3 * x**2


@dataclass(frozen=True)
class _LeakyReLU:
    slope: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.slope * x)


@dataclass(frozen=True)
class _LeakyReLUDeriv:
    slope: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, self.slope))


@dataclass(frozen=True)
class _LeakyReLUModule:
    slope: float

    def __call__(self) -> nn.Module:
        return nn.LeakyReLU(negative_slope=self.slope)


@dataclass(frozen=True)
class _SmoothLeakyReLU:
    slope: float
    beta: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope * x + (1 - self.slope) * torch.nn.functional.softplus(x, beta=self.beta)


@dataclass(frozen=True)
class _SmoothLeakyReLUDeriv:
    slope: float
    beta: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.slope + (1 - self.slope) * torch.sigmoid(self.beta * x)


# ------------------------------------------------------------------------------------------ built-ins
@_builtin("relu")
def _relu() -> Activation:
    return Activation(
        "relu",
        torch.relu,
        _step,
        1.0,
        (0.0, math.inf),
        1.0,
        homogeneous=True,
        dual=_relu_dual,
        dual_deriv=_relu_dual_deriv,
        step_derivative=True,
        torch_module=nn.ReLU,
    )


@_builtin("leaky_relu")
def _leaky_relu(slope: float = 0.1) -> Activation:
    slope = check_positive_float("slope", slope)
    if slope > 1:
        raise InvalidArgument(f"slope must be in (0, 1]; got {slope!r}.")
    return Activation(
        "leaky_relu",
        _LeakyReLU(slope),
        _LeakyReLUDeriv(slope),
        1.0,
        (-math.inf, math.inf),
        slope,
        {"slope": slope},
        homogeneous=True,
        dual=_LeakyDual(slope),
        dual_deriv=_LeakyDualDeriv(slope),
        torch_module=_LeakyReLUModule(slope),
    )


@_builtin("smooth_leaky_relu")
def _smooth_leaky_relu(slope: float = 0.1, beta: float = 1.0) -> Activation:
    """σ(x) = slope·x + (1 − slope)·softplus_β(x): smooth, σ' ∈ (slope, 1)."""
    slope = check_positive_float("slope", slope)
    beta = check_positive_float("beta", beta)
    if slope >= 1:
        raise InvalidArgument(f"slope must be in (0, 1); got {slope!r}.")
    return Activation(
        "smooth_leaky_relu",
        _SmoothLeakyReLU(slope, beta),
        _SmoothLeakyReLUDeriv(slope, beta),
        1.0,
        (-math.inf, math.inf),
        slope,
        {"slope": slope, "beta": beta},
    )


@_builtin("tanh")
def _tanh() -> Activation:
    return Activation("tanh", torch.tanh, _tanh_deriv, 1.0, (-1.0, 1.0), 1 - math.tanh(1.0) ** 2,
                      torch_module=nn.Tanh)


@_builtin("sigmoid")
def _sigmoid() -> Activation:
    s1 = 1 / (1 + math.exp(-1.0))
    return Activation("sigmoid", torch.sigmoid, _sigmoid_deriv, 0.25, (-1.0, 1.0), s1 * (1 - s1),
                      torch_module=nn.Sigmoid)


@_builtin("erf")
def _erf() -> Activation:
    return Activation("erf", torch.erf, _erf_deriv, _ERF_SLOPE, (-1.0, 1.0), _ERF_SLOPE * math.exp(-1.0),
                      dual=_erf_dual, dual_deriv=_erf_dual_deriv)


@_builtin("softplus")
def _softplus() -> Activation:
    return Activation("softplus", torch.nn.functional.softplus, torch.sigmoid, 1.0, (-1.0, 1.0),
                      1 / (1 + math.e), torch_module=nn.Softplus)


@_builtin("linear")
def _linear() -> Activation:
    return Activation("linear", _identity, torch.ones_like, 1.0, (-math.inf, math.inf), 1.0, homogeneous=True,
                      dual=_linear_dual, dual_deriv=_linear_dual_deriv, torch_module=nn.Identity)


@_builtin("cubic")
def _cubic() -> Activation:
    """σ(x) = x³: not Lipschitz (L_σ = None); |σ'| ≥ 3 on (1, ∞)."""
    return Activation("cubic", _cube, _cube_deriv, None, (1.0, math.inf), 3.0)
