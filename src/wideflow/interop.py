r"""PyTorch interoperability: wideflow models as plain ``torch.nn.Module`` and back (eqs. (2)-(3), Appendix B).

- :func:`to_module` turns a :class:`~wideflow.model.WideNet` into a
  :class:`~wideflow.torch_modules.WideNetModule` (as ``model.to_module()`` does): the fixed embedding Φ as
  frozen ``torch.nn`` layers and the trained layer in the paper's own parameterization,
  f(x) = s_o Σ_i c_i σ(s_h W_i·Φ(x) + b_i), with W (and c, b when the model trains them) as
  ``nn.Parameter``. Plain SGD on it with the learning rates of ``WideNetModule.param_groups`` is the
  GD rule (9) with the learning-rate factor of Table 1.
- :func:`from_module` goes the other way for a 3-layer network
  f(x) = Σ_i θ^(3)_i σ(Σ_j θ^(2)_ij σ(Σ_k θ^(1)_jk x_k)) (Linear d→m, σ, Linear m→m, σ, Linear m→1, no
  biases), with the Xavier mapping of Appendix B: z = √m θ^(1), W = √(2m) θ^(2), c = √m θ^(3), D = m.
  For a 1-homogeneous σ (ReLU, leaky ReLU, linear), σ(zᵀx/√m) = √(d/m) σ(zᵀx/√d), so
  f_xavier = √(d/2) · f_P3L exactly, and GD on θ^(2) with step δ is GD on W with factor 2m (docs/theory.md §7).
- :func:`xavier_network` builds such a network with the initialization variances of Appendix B,
  1/(fan_in + fan_out): θ^(1) ~ N(0, 1/(m+d)), θ^(2) ~ N(0, 1/(2m)), θ^(3) ~ N(0, 1/(m+1)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ._tensor import resolve_device, resolve_dtype
from .activations import Activation, get_activation
from .errors import InvalidArgument, InvalidType, check_positive_int
from .model import P3L, check_model
from .scalings import Scaling, get_scaling
from .torch_modules import ActivationModule, WideNetModule, activation_module, module_of

__all__ = ["WideNetModule", "to_module", "from_module", "xavier_network"]


def to_module(model: Any) -> WideNetModule:
    """A plain ``torch.nn.Module`` computing the same f as ``model``, with W materialized (docs/theory.md §8);
    the same as ``model.to_module()``.

    The module lives on the model's device and dtype; ``module(X)`` equals ``model(X)`` to float precision,
    and a symmetrized NTK model's module outputs exactly 0 at initialization, as the model does (Table 1).
    """
    return module_of(check_model(model))


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
        return layer.activation
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
    scaling: str | Scaling = "ours",
    dtype: torch.dtype | str = torch.float64,
    device: str | torch.device = "cpu",
) -> P3L:
    r"""The P3L model (D = m) of a Xavier-parameterized 3-layer network, by the mapping of Appendix B.

    ``net`` is Linear(d, m, bias=False), σ, Linear(m, m, bias=False), σ, Linear(m, 1, bias=False) (an
    ``nn.Sequential`` or a list of the five modules), computing
    f_xavier(x) = Σ_i θ^(3)_i σ(Σ_j θ^(2)_ij σ(Σ_k θ^(1)_jk x_k)). The returned :class:`~wideflow.model.P3L`
    has z = √m θ^(1), W = √(2m) θ^(2) and c = √m θ^(3) (Appendix B), so for 1-homogeneous σ

        f_xavier(x) = √(d/2) · f_P3L(x)   for every x,

    and GD on θ^(2) with step δ equals GD on W with learning rate 2mδ, the m-factor of eq. (9).
    With ``absorb_constant=True`` the constant √(d/2) is absorbed into c (as the paper absorbs it into ĉ),
    so that the model's output equals the network's.

    ``activation`` defaults to the one read from the network (``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Identity``).
    The equivalence needs σ(a·u) = a·σ(u) for a > 0, so other activations are refused. The c_i of a
    Xavier network are Gaussian, not ±ĉ (Assumption 1); the model's ``c_hat`` is set to their root mean
    square, the ĉ that enters the rates through (1/m) Σ_i c_i².

    ``scaling`` may be any parameterization θ-equivalent to ours (``"mup"``, ``get_scaling("ours").shifted(θ)``,
    docs/theory.md §7): the model then holds D^θ W, the same function with the same GD steps. Other scalings
    (NTK, richness(r) with r > 0) describe other networks and are refused.
    """
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
    scaling = get_scaling(scaling)
    if not scaling.equivalent("ours"):
        raise InvalidArgument(
            f"scaling={scaling.name!r}: a Xavier network is the P-3L net under ours (Appendix B), so only ours and its "
            "θ-shifts (e.g. 'mup') describe it; train the mapped model under another scaling by building that model.")
    theta = scaling.hidden_power - 0.5  # W of the θ-shifted scaling is D^θ W of ours
    model = P3L(d, m, activation=act, c_hat=c_rms, scaling=scaling, dtype=dtype, device=device)
    model.embedding.z = z  # the master copy is float64 on the CPU, cast per dtype and device on use
    model.c = c.to(device, dtype)
    model.W = W if theta == 0 else W * float(m) ** theta
    return model


def xavier_network(d: int, m: int, activation: str | Activation = "relu", *, seed: int = 0,
                   dtype: torch.dtype | str = torch.float64) -> nn.Sequential:
    """The 3-layer network of Appendix B with its Xavier initialization (docs/theory.md §7), on the CPU.

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
