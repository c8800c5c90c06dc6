r"""PyTorch interoperability: wideflow models as plain ``torch.nn.Module`` and back (spec §1.3, §3.1).

- :func:`to_module` turns a :class:`~wideflow.model.WideNet` into a :class:`WideNetModule`: the fixed
  embedding Φ as frozen ``torch.nn`` layers (the random first layers z/√d and W^{(l)}/√D absorbed into
  ``Linear`` weights) and the trained layer in the paper's own parameterization,
  f(x) = s_o Σ_i c_i σ(s_h W_i·Φ(x) + b_i), with W (and c, b when the model trains them) as
  ``nn.Parameter``. Plain SGD on it with the learning rates of :meth:`WideNetModule.param_groups` is the
  GD rule (9) with the learning-rate factor of Table 1.
- :func:`from_module` goes the other way for a 3-layer network
  f(x) = Σ_i θ^(3)_i σ(Σ_j θ^(2)_ij σ(Σ_k θ^(1)_jk x_k)) (Linear d→m, σ, Linear m→m, σ, Linear m→1, no
  biases), with the Xavier mapping of Appendix B: z = √m θ^(1), W = √(2m) θ^(2), c = √m θ^(3), D = m.
  For a 1-homogeneous σ (ReLU, leaky ReLU, linear), σ(zᵀx/√m) = √(d/m) σ(zᵀx/√d), so
  f_xavier = √(d/2) · f_P3L exactly, and GD on θ^(2) with step δ is GD on W with factor 2m (spec §3.1).
- :func:`xavier_network` builds such a network with the initialization variances of Appendix B,
  1/(fan_in + fan_out): θ^(1) ~ N(0, 1/(m+d)), θ^(2) ~ N(0, 1/(2m)), θ^(3) ~ N(0, 1/(m+1)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ._tensor import resolve_device, resolve_dtype
from .activations import Activation, get_activation
from .embeddings import DeepRandomFeatures, Embedding, Function, Identity, Quadratic, RandomFeatures
from .errors import InvalidArgument, InvalidType, check_positive_int

__all__ = ["WideNetModule", "to_module", "from_module", "xavier_network"]

# torch.nn built-ins for the activations that have one; the others run through ActivationModule.
_TORCH_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": lambda: nn.ReLU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "softplus": lambda: nn.Softplus(),
    "linear": lambda: nn.Identity(),
    "leaky_relu": lambda slope: nn.LeakyReLU(negative_slope=slope),
}


class ActivationModule(nn.Module):
    """σ of a registered wideflow activation as a module; it stores the activation's spec only, so it
    pickles (the activation must be registered in the process that unpickles it)."""

    def __init__(self, activation: Activation) -> None:
        super().__init__()
        self.spec = activation.spec
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = activation.fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fn is None:
            self._fn = get_activation(self.spec).fn
        return self._fn(x)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fn"] = None
        return state

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.spec.items())


def activation_module(activation: str | Activation | dict) -> nn.Module:
    """σ as a ``torch.nn`` module: the built-in one where torch has it, else :class:`ActivationModule`."""
    act = get_activation(activation)
    if act.name in _TORCH_ACTIVATIONS:
        return _TORCH_ACTIVATIONS[act.name](**act.params)
    return ActivationModule(act)


class QuadraticFeatures(nn.Module):
    """Φ(x) = vec(x xᵀ) ∈ R^{d²}, the quadratic embedding of Exp 2 (spec §1.10)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], self.d * self.d)

    def extra_repr(self) -> str:
        return f"d={self.d}"


class CallableFeatures(nn.Module):
    """A user embedding callable X ↦ Φ(X) wrapped as a module (it pickles only if the callable does)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _frozen_linear(weight: torch.Tensor) -> nn.Linear:
    """A bias-free ``Linear`` with the given weight (out, in), excluded from training."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
    layer.weight.requires_grad_(False)
    return layer


def embedding_module(embedding: Embedding, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The fixed embedding Φ as ``torch.nn`` layers; multipliers 1/√d and 1/√D are folded into the weights."""
    if isinstance(embedding, Identity):
        return nn.Identity()
    if isinstance(embedding, Quadratic):
        return QuadraticFeatures(embedding.d)
    if isinstance(embedding, Function):
        return CallableFeatures(embedding.fn)
    if isinstance(embedding, RandomFeatures | DeepRandomFeatures):
        first, *hidden = embedding._weights()
        layers: list[nn.Module] = [_frozen_linear((first / math.sqrt(embedding.d)).to(device, dtype)),
                                   activation_module(embedding.activation)]
        for w in hidden:
            layers += [_frozen_linear((w / math.sqrt(embedding.D)).to(device, dtype)),
                       activation_module(embedding.activation)]
        return nn.Sequential(*layers)
    raise InvalidType(
        f"to_module has no torch translation of the embedding {embedding!r}; wrap it as "
        "wideflow.embeddings.Function(fn, d) with a torch callable."
    )


class WideNetModule(nn.Module):
    r"""f(x) = s_o Σ_i c_i σ(s_h Σ_j W_ij φ_j(x) + b_i), eqs. (2)-(3), as a plain ``torch.nn.Module``.

    ``embedding`` is Φ (frozen), ``W`` (m, D) the trained weights in the paper's parameterization, ``c`` (m,)
    the output weights and ``b`` (m,) the biases or ``None``; ``s_o`` and ``s_h`` are the multipliers of the
    scaling (Table 1). Input (n, d), output (n,). Build it with :func:`to_module` or ``model.to_module()``.
    """

    def __init__(self, embedding: nn.Module, W: torch.Tensor, c: torch.Tensor, b: torch.Tensor | None,
                 activation: nn.Module, s_o: float, s_h: float, lr_factor: float, neuron_lr_factor: float,
                 train_c: bool) -> None:
        super().__init__()
        self.embedding = embedding
        self.W = nn.Parameter(W.detach().clone())
        self.c = nn.Parameter(c.detach().clone(), requires_grad=train_c)
        self.b = None if b is None else nn.Parameter(b.detach().clone())
        self.activation = activation
        self.s_o = s_o
        self.s_h = s_h
        self.lr_factor = lr_factor
        self.neuron_lr_factor = neuron_lr_factor

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) = s_h Φ(x) Wᵀ (+ b), shape (n, m), eq. (3)."""
        H = self.s_h * (self.embedding(x) @ self.W.T)
        return H if self.b is None else H + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (n,), eq. (2)."""
        return self.s_o * (self.activation(self.features(x)) @ self.c)

    def param_groups(self, step_size: float = 1.0) -> list[dict[str, Any]]:
        """Parameter groups for ``torch.optim.SGD`` that make one optimizer step the GD step (9):
        W with learning rate δ·(lr factor of Table 1), trained c and b with δ·(per-neuron factor)."""
        groups: list[dict[str, Any]] = [{"params": [self.W], "lr": step_size * self.lr_factor}]
        neurons = [p for p in (self.c, self.b) if p is not None and p.requires_grad]
        if neurons:
            groups.append({"params": neurons, "lr": step_size * self.neuron_lr_factor})
        return groups

    def extra_repr(self) -> str:
        m, D = self.W.shape
        return f"m={m}, D={D}, s_o={self.s_o:.4g}, s_h={self.s_h:.4g}, lr_factor={self.lr_factor:.4g}"


def to_module(model: Any) -> WideNetModule:
    """A plain ``torch.nn.Module`` computing the same f as ``model``, with W materialized (spec §8).

    The module lives on the model's device and dtype; ``module(X)`` equals ``model(X)`` to float precision.
    """
    from .model import WideNet

    if not isinstance(model, WideNet):
        raise InvalidType(f"model must be a wideflow WideNet; got {type(model).__name__}.")
    return WideNetModule(
        embedding_module(model.embedding, model.dtype, model.device),
        model.W,
        model.c,
        model.b,
        activation_module(model.activation),
        s_o=model.s_o,
        s_h=model.s_h,
        lr_factor=model.scaling.lr_factor(model.m, model.D),
        neuron_lr_factor=model.scaling.neuron_lr_factor(model.m),
        train_c=model.train_c,
    )


# ------------------------------------------------------------------------------------ Appendix B
# torch activation modules whose wideflow activation has no parameters (nn.Softplus only with its defaults)
_FROM_TORCH: dict[type[nn.Module], str] = {
    nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softplus: "softplus", nn.Identity: "linear",
}


def _activation_of(layer: nn.Module) -> Activation | None:
    """The wideflow activation of a torch activation module (``None`` if not recognized)."""
    if isinstance(layer, nn.LeakyReLU):
        return get_activation("leaky_relu", slope=layer.negative_slope)
    if isinstance(layer, ActivationModule):
        return get_activation(layer.spec)
    if isinstance(layer, nn.Softplus) and (layer.beta, layer.threshold) != (1.0, 20.0):
        return None
    name = _FROM_TORCH.get(type(layer))
    return None if name is None else get_activation(name)


def _three_layers(net: nn.Module | Iterable[nn.Module]) -> tuple[list[nn.Linear], list[nn.Module]]:
    """Split Linear, σ, Linear, σ, Linear into its three Linear layers and two activation modules."""
    layers = list(net.children()) if isinstance(net, nn.Module) else list(net)
    kinds = ["Linear" if isinstance(layer, nn.Linear) else type(layer).__name__ for layer in layers]
    if len(layers) != 5 or [k == "Linear" for k in kinds] != [True, False, True, False, True]:
        raise InvalidArgument(
            f"net must be the sequence Linear(d, m), σ, Linear(m, m), σ, Linear(m, 1) (Appendix B); got {kinds}."
        )
    linears = [layers[0], layers[2], layers[4]]
    for i, layer in enumerate(linears, 1):
        if layer.bias is not None:
            raise InvalidArgument(f"Linear layer {i} of net has a bias; Appendix B's network has none (bias=False).")
    m, d = linears[0].weight.shape
    want = [(m, d), (m, m), (1, m)]
    got = [tuple(layer.weight.shape) for layer in linears]
    if got != want:
        raise InvalidArgument(f"net's Linear weights have shapes {got}; expected {want} (d={d}, m={m}).")
    return linears, [layers[1], layers[3]]


def from_module(
    net: nn.Module | Iterable[nn.Module],
    *,
    activation: str | Activation | None = None,
    absorb_constant: bool = False,
    dtype: torch.dtype | str = torch.float64,
    device: str | torch.device = "cpu",
) -> Any:
    r"""The P3L model (D = m) of a Xavier-parameterized 3-layer network, by the mapping of Appendix B.

    ``net`` is Linear(d, m, bias=False), σ, Linear(m, m, bias=False), σ, Linear(m, 1, bias=False) (an
    ``nn.Sequential`` or a list of the five modules), computing
    f_xavier(x) = Σ_i θ^(3)_i σ(Σ_j θ^(2)_ij σ(Σ_k θ^(1)_jk x_k)). The returned :class:`~wideflow.model.P3L`
    has z = √m θ^(1), W = √(2m) θ^(2) and c = √m θ^(3) (spec §3.1), so for 1-homogeneous σ

        f_xavier(x) = √(d/2) · f_P3L(x)   for every x,

    and GD on θ^(2) with step δ equals GD on W with learning rate 2mδ, the m-factor of eq. (9).
    With ``absorb_constant=True`` the constant √(d/2) is absorbed into c (as the paper absorbs it into ĉ),
    so that the model's output equals the network's.

    ``activation`` defaults to the one read from the network (``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Identity``).
    The equivalence needs σ(a·u) = a·σ(u) for a > 0, so other activations are refused. The c_i of a
    Xavier network are Gaussian, not ±ĉ (Assumption 1); the model's ``c_hat`` is set to their root mean
    square, the ĉ that enters the rates through (1/m) Σ_i c_i².
    """
    from .model import P3L

    linears, acts = _three_layers(net)
    if activation is None:
        found = [_activation_of(a) for a in acts]
        if found[0] is None or found[1] is None or found[0].spec != found[1].spec:
            raise InvalidArgument(
                f"could not read one activation from net's modules {[type(a).__name__ for a in acts]}; "
                "use the same nn.ReLU / nn.LeakyReLU / nn.Identity in both places, or pass activation=..."
            )
        act = found[0]
    else:
        act = get_activation(activation)
    if not act.homogeneous:
        raise InvalidArgument(
            f"activation {act.name!r} is not 1-homogeneous; Appendix B's equivalence f_xavier = √(d/2)·f_P3L "
            "needs σ(a·u) = a·σ(u) for a > 0 (relu, leaky_relu or linear)."
        )
    if not isinstance(absorb_constant, bool):
        raise InvalidArgument(f"absorb_constant must be True or False; got {absorb_constant!r}.")
    theta1, theta2, theta3 = (layer.weight.detach().to("cpu", torch.float64) for layer in linears)
    m, d = theta1.shape
    z = math.sqrt(m) * theta1
    W = math.sqrt(2 * m) * theta2
    c = math.sqrt(m) * theta3[0]
    if absorb_constant:
        c = c * math.sqrt(d / 2)
    c_rms = float(c.square().mean().sqrt())
    if not c_rms > 0:
        raise InvalidArgument("net's last layer θ^(3) is all zeros; the mapped model would have c = 0.")
    dtype, device = resolve_dtype(dtype), resolve_device(device)
    model = P3L(d, m, activation=act, c_hat=c_rms, dtype=dtype, device=device)
    model.embedding.z = z  # the master copy is float64 on the CPU, cast per dtype and device on use
    model.c = c.to(device, dtype)
    model.W = W
    return model


def xavier_network(d: int, m: int, activation: str | Activation = "relu", *, seed: int = 0,
                   dtype: torch.dtype | str = torch.float64) -> nn.Sequential:
    """The 3-layer network of Appendix B with its Xavier initialization (spec §3.1), on the CPU.

    Linear(d, m), σ, Linear(m, m), σ, Linear(m, 1), no biases, with θ^(1) ~ N(0, 1/(m+d)),
    θ^(2) ~ N(0, 1/(2m)), θ^(3) ~ N(0, 1/(m+1)): variance 1/(fan_in + fan_out). Same seed, same weights.
    """
    d, m = check_positive_int("d", d), check_positive_int("m", m)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidType(f"seed must be an integer; got {type(seed).__name__} {seed!r}.")
    dtype = resolve_dtype(dtype)
    gen = torch.Generator().manual_seed(seed)
    shapes = [(m, d), (m, m), (1, m)]
    layers: list[nn.Module] = []
    for k, (fan_out, fan_in) in enumerate(shapes):
        weight = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) / math.sqrt(fan_in + fan_out)
        layer = nn.Linear(fan_in, fan_out, bias=False, dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
        layers.append(layer)
        if k < 2:
            layers.append(activation_module(activation))
    return nn.Sequential(*layers)
