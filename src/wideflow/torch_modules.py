r"""A wideflow model as a plain ``torch.nn.Module`` (eqs. (2)-(3); docs/theory.md §1, §6, §8).

:func:`module_of` builds a :class:`WideNetModule` from a model (``model.to_module()``): the fixed embedding Φ
as frozen ``torch.nn`` layers (the random first layers z/√d and W^{(l)}/√D absorbed into ``Linear`` weights)
and the trained layer in the paper's own parameterization, f(x) = s_o Σ_i c_i σ(s_h W_i·Φ(x) + b_i), with W
(and c, b when the model trains them) as ``nn.Parameter``. Plain SGD on it with the learning rates of
:meth:`WideNetModule.param_groups` is the GD rule (9) with the learning-rate factor of Table 1.

This module reads the model by its attributes only and does not import :mod:`wideflow.model`, which imports
it; :mod:`wideflow.interop` holds the conversions that need the model classes (Appendix B).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .activations import Activation, get_activation
from .embeddings import DeepRandomFeatures, Embedding, Function, Identity, Quadratic, RandomFeatures
from .errors import InvalidType
from .readout import halfwise_matmul, readout

__all__ = ["WideNetModule", "ActivationModule", "QuadraticFeatures", "CallableFeatures", "activation_module",
           "embedding_module", "module_of"]


class ActivationModule(nn.Module):
    """σ of a wideflow activation as a module, for the activations torch has no module for. It pickles as
    the activation does (a registered user activation by its name: register it where it is unpickled)."""

    def __init__(self, activation: Activation) -> None:
        super().__init__()
        self.activation = activation

    @property
    def spec(self) -> dict:
        """The activation's :attr:`~wideflow.activations.Activation.spec`."""
        return self.activation.spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation.fn(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.spec.items())


def activation_module(activation: str | Activation | dict) -> nn.Module:
    """σ as a ``torch.nn`` module: the one the activation declares (``torch_module``, e.g. ``nn.ReLU``), else
    :class:`ActivationModule`."""
    act = get_activation(activation)
    return act.torch_module() if act.torch_module is not None else ActivationModule(act)


class QuadraticFeatures(nn.Module):
    """Φ(x) = vec(x xᵀ) ∈ R^{d²}, the quadratic embedding of Exp 2 (docs/theory.md §4)."""

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
        first, *hidden = embedding.weights()
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
    scaling (Table 1). ``paired`` marks the symmetrized NTK initialization with c fixed (c_{i+m/2} = −c_i):
    the features of the two halves of the neurons are then computed by products of identical shape and the
    output is read out pairwise (:mod:`wideflow.readout`), so the module outputs exactly 0 at initialization,
    as the model does. Input (n, d), output (n,). Build it with ``model.to_module()``.
    """

    def __init__(self, embedding: nn.Module, W: torch.Tensor, c: torch.Tensor, b: torch.Tensor | None,
                 activation: nn.Module, s_o: float, s_h: float, lr_factor: float, neuron_lr_factor: float,
                 train_c: bool, paired: bool = False) -> None:
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
        self.paired = paired

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) = s_h Φ(x) Wᵀ (+ b), shape (n, m), eq. (3)."""
        H = self.s_h * halfwise_matmul(self.embedding(x), self.W.T, self.paired, dim=1)
        return H if self.b is None else H + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), shape (n,), eq. (2)."""
        return readout(self.activation(self.features(x)).T, self.c, self.s_o, self.paired)

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
        return (f"m={m}, D={D}, s_o={self.s_o:.4g}, s_h={self.s_h:.4g}, lr_factor={self.lr_factor:.4g}, "
                f"paired={self.paired}")


def module_of(model: Any) -> WideNetModule:
    """The :class:`WideNetModule` of a wideflow model, with W materialized, on the model's device and dtype;
    ``module(X)`` equals ``model(X)`` to float precision (docs/theory.md §8)."""
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
        paired=model.paired,
    )
