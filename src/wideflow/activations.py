"""Activation functions σ with the constants of Assumption 2 (spec §2.1).

Each :class:`Activation` carries σ, its (a.e.) derivative σ', the Lipschitz constant L_σ (``None`` when σ'
is unbounded), an *active interval* I = (I_l, I_r) on which σ is differentiable with |σ'| ≥ K_σ' > 0,
and that bound K_σ'. Where σ' is not defined (the kink of ReLU) it is taken to be 0, as in the paper.

Assumption 2 asks for a Lipschitz σ and a non-empty active interval. The intervals given here are
the natural choices: (0, ∞) for ReLU (K_σ' = 1), the whole line for activations whose derivative is
bounded away from 0 (linear, leaky ReLU, smoothed leaky ReLU), and (-1, 1) for the saturating ones
(tanh, sigmoid, erf, softplus), where K_σ' is the smallest |σ'| on that interval.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .errors import InvalidArgument, InvalidType, check_positive_float, closest, unknown_name

__all__ = ["Activation", "get_activation", "register_activation", "available_activations"]

TensorFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Activation:
    """An activation σ with σ' and the constants of Assumption 2.

    Parameters
    ----------
    name: the registry name (used when a model is saved and rebuilt).
    fn, deriv: σ and σ', elementwise on tensors.
    lipschitz: L_σ = sup |σ'|, or ``None`` where σ' is unbounded (cubic).
    interval: the active interval (I_l, I_r); ``±math.inf`` allowed.
    k_sigma: K_σ' = inf of |σ'| on the interval.
    params: keyword parameters that rebuild the activation (e.g. the leaky slope).
    """

    name: str
    fn: TensorFn
    deriv: TensorFn
    lipschitz: float | None
    interval: tuple[float, float]
    k_sigma: float
    params: dict = field(default_factory=dict)
    homogeneous: bool = False  # σ(a x) = a σ(x) for a > 0 (used by Appendix B's Xavier mapping)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    @property
    def globally_active(self) -> bool:
        """True when |σ'| ≥ K_σ' on the whole line, so the PL bound of spec §1.8 holds."""
        return self.interval == (-math.inf, math.inf) and self.k_sigma > 0

    @property
    def spec(self) -> dict:
        """What :func:`get_activation` needs to rebuild this activation."""
        return {"name": self.name, **self.params}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self.params.items())
        return f"Activation({self.name!r}{extra})"


_FACTORIES: dict[str, Callable[..., Activation]] = {}


def register_activation(
    name: str,
    fn: TensorFn,
    deriv: TensorFn,
    *,
    lipschitz: float | None = None,
    interval: tuple[float, float] = (-math.inf, math.inf),
    k_sigma: float = 0.0,
    overwrite: bool = False,
) -> Activation:
    """Register a user activation under ``name`` so that ``activation=name`` works everywhere.

    ``deriv`` must be σ' (checked against finite differences at a few points). Set ``interval`` and
    ``k_sigma`` to the active interval of Assumption 2 if the theory instruments should use them.
    """
    if not isinstance(name, str) or not name:
        raise InvalidType(f"name must be a non-empty string; got {name!r}.")
    if name in _FACTORIES and not overwrite:
        raise InvalidArgument(f"activation {name!r} is already registered; pass overwrite=True to replace it.")
    if not callable(fn) or not callable(deriv):
        raise InvalidType("fn and deriv must be callables mapping a tensor to a tensor of the same shape.")
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
    act = Activation(name, fn, deriv, lipschitz, (float(lo), float(hi)), float(k_sigma))
    _FACTORIES[name] = lambda: act
    return act


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


@_builtin("relu")
def _relu() -> Activation:
    return Activation(
        "relu",
        torch.relu,
        lambda x: (x > 0).to(x.dtype),
        1.0,
        (0.0, math.inf),
        1.0,
        homogeneous=True,
    )


@_builtin("leaky_relu")
def _leaky_relu(slope: float = 0.1) -> Activation:
    slope = check_positive_float("slope", slope)
    if slope > 1:
        raise InvalidArgument(f"slope must be in (0, 1]; got {slope!r}.")
    return Activation(
        "leaky_relu",
        lambda x: torch.where(x > 0, x, slope * x),
        lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope)),
        1.0,
        (-math.inf, math.inf),
        slope,
        {"slope": slope},
        homogeneous=True,
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
        lambda x: slope * x + (1 - slope) * torch.nn.functional.softplus(x, beta=beta),
        lambda x: slope + (1 - slope) * torch.sigmoid(beta * x),
        1.0,
        (-math.inf, math.inf),
        slope,
        {"slope": slope, "beta": beta},
    )


@_builtin("tanh")
def _tanh() -> Activation:
    return Activation(
        "tanh",
        torch.tanh,
        lambda x: 1 - torch.tanh(x) ** 2,
        1.0,
        (-1.0, 1.0),
        1 - math.tanh(1.0) ** 2,
    )


@_builtin("sigmoid")
def _sigmoid() -> Activation:
    s1 = 1 / (1 + math.exp(-1.0))
    return Activation(
        "sigmoid",
        torch.sigmoid,
        lambda x: torch.sigmoid(x) * (1 - torch.sigmoid(x)),
        0.25,
        (-1.0, 1.0),
        s1 * (1 - s1),
    )


@_builtin("erf")
def _erf() -> Activation:
    c = 2 / math.sqrt(math.pi)
    return Activation(
        "erf",
        torch.erf,
        lambda x: c * torch.exp(-(x**2)),
        c,
        (-1.0, 1.0),
        c * math.exp(-1.0),
    )


@_builtin("softplus")
def _softplus() -> Activation:
    return Activation(
        "softplus",
        torch.nn.functional.softplus,
        torch.sigmoid,
        1.0,
        (-1.0, 1.0),
        1 / (1 + math.e),
    )


@_builtin("linear")
def _linear() -> Activation:
    return Activation(
        "linear",
        lambda x: x,
        torch.ones_like,
        1.0,
        (-math.inf, math.inf),
        1.0,
        homogeneous=True,
    )


@_builtin("cubic")
def _cubic() -> Activation:
    """σ(x) = x³: not Lipschitz (L_σ = None); |σ'| ≥ 3 on (1, ∞)."""
    return Activation(
        "cubic",
        lambda x: x**3,
        lambda x: 3 * x**2,
        None,
        (1.0, math.inf),
        3.0,
    )
