"""The general model (2)-(3) and its named cases: eq. (1), eqs. (4)-(5), Appendix H (docs/theory.md §1).

f(x) = s_o Σ_{i=1}^m c_i σ(h_i(x)),   h_i(x) = s_h Σ_{j=1}^D W_ij φ_j(x)  (+ b_i, beyond the paper)

with (s_o, s_h) = (1/m, 1/√D) for the paper's scaling, eqs. (2)-(3); see :mod:`wideflow.scalings` for NTK
and mean-field. c_i = ±ĉ i.i.d. (Assumption 1) and W_ij ~ N(0, 1) i.i.d. (Assumption 3).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ._tensor import as_tensor, resolve_device, resolve_dtype
from ._version import __version__
from .activations import Activation, get_activation
from .embeddings import (
    DeepRandomFeatures,
    Embedding,
    Identity,
    RandomFeatures,
    as_embedding,
    from_spec,
)
from .errors import (
    CheckpointError,
    InvalidArgument,
    InvalidShape,
    UnknownName,
    WideflowError,
    check_bool,
    check_positive_float,
    check_positive_int,
    check_seed,
    not_a_model,
)
from .infinite import InfiniteRandomFeatures, TrainedShift, is_infinite, warn_mean_field_collapse
from .io import atomic_torch_save, read_torch_file
from .neurons import COLUMNS, draw_signs, draw_weights, drawn_neurons
from .readout import halfwise_matmul, readout
from .scalings import Scaling, get_scaling
from .torch_modules import module_of

__all__ = ["WideNet", "Shallow", "P3L", "PartiallyTrained", "load", "check_model"]

_SAVE_FORMAT = 1


#: neurons of W_0 drawn at a time when the features are formed from the seed (a multiple of CHUNK): with
#: ``block`` columns, the draw never holds more than W0_SLAB × block numbers, whatever m and D are
W0_SLAB = 1024


class InitialWeights:
    """W_0 of a model, drawn from its seed when called (:mod:`wideflow.neurons`): the rows of the drawn neurons,
    and their copies under the NTK symmetrization."""

    def __init__(self, seed: int, m: int, D: int, symmetrize: bool, dtype: torch.dtype, device: torch.device,
                 std: float = 1.0) -> None:  # std: σ_W = D^(-b_W) of the scaling (1 in Table 1)
        self.seed, self.m, self.D, self.symmetrize, self.dtype, self.device, self.std = (
            seed, m, D, symmetrize, dtype, device, std)

    def rows(self, lo: int, hi: int, col_lo: int = 0, col_hi: int | None = None, *, scaled: bool = True) -> torch.Tensor:
        """Rows lo..hi (multiples of :data:`~wideflow.neurons.CHUNK`), columns col_lo..col_hi of the drawn
        neurons: σ_W times standard normal draws (the standard normal draws themselves when not ``scaled``)."""
        count = drawn_neurons(self.m, self.symmetrize)
        W = draw_weights(self.seed, count, self.D, lo, hi, col_lo=col_lo,
                         col_hi=col_hi).to(device=self.device, dtype=self.dtype)
        return W.mul_(self.std) if scaled and self.std != 1.0 else W

    def __call__(self) -> torch.Tensor:
        W = self.rows(0, drawn_neurons(self.m, self.symmetrize))
        return torch.cat([W, W]) if self.symmetrize else W


class WideNet:
    r"""The general model (2)-(3): f(x) = s_o Σ_i c_i σ(h_i(x)), h_i(x) = s_h Σ_j W_ij φ_j(x).

    Parameters
    ----------
    embedding:
        Φ, an :class:`~wideflow.embeddings.Embedding`, a spec dict, or a callable X ↦ Φ(X) (then pass ``d``).
    m:
        Width of the trained layer (number of neurons i).
    activation:
        σ, a name from :func:`wideflow.activations.available_activations` or an ``Activation``.
    scaling:
        "ours" (eqs. (2)-(3)), "ntk", "mf" (Table 1), or any spelling of :func:`~wideflow.scalings.get_scaling`
        (``wf.richness(0.3)``, ``"mup"``, abc exponents; docs/theory.md §7); W_ij ~ N(0, σ_W²), σ_W of the scaling.
    c_hat:
        ĉ of Assumption 1: c_i = ±ĉ with probability ½ each.
    seed:
        Seeds c and W (and the random embedding of the named constructors). Same seed, same numbers.
    dtype, device:
        torch.float64 (default) or torch.float32; "cpu" or "cuda[:k]".
    train_c, bias:
        Beyond the paper, off by default: also train c, and add trained biases b_i (initialized at 0).

    Inputs X of any real dtype are converted to the model's ``dtype`` and ``device``.
    """

    def __init__(
        self,
        embedding: Embedding | Callable | dict,
        m: int,
        *,
        activation: str | Activation = "relu",
        scaling: str | Scaling = "ours",
        c_hat: float = 1.0,
        seed: int = 0,
        dtype: torch.dtype | str = torch.float64,
        device: str | torch.device = "cpu",
        train_c: bool = False,
        bias: bool = False,
        d: int | None = None,
    ) -> None:
        d = None if d is None else check_positive_int("d", d)
        self.embedding = as_embedding(embedding, d)
        if d is not None and d != self.embedding.d:
            raise InvalidShape(
                f"d={d} was given, but the embedding {self.embedding!r} takes inputs of dimension "
                f"d = {self.embedding.d}; drop d (it is only needed for a plain callable) or make them agree."
            )
        self.m = check_positive_int("m", m)
        self.activation = get_activation(activation)
        self.scaling = get_scaling(scaling)
        self.c_hat = check_positive_float("c_hat", c_hat)
        self.seed = check_seed("seed", seed)
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        self.train_c = check_bool("train_c", train_c)
        self.bias = check_bool("bias", bias)
        if self.scaling.symmetrize and self.m % 2:
            raise InvalidArgument(
                f"m={self.m} is odd, but scaling={self.scaling.name!r} symmetrizes the initialization (neuron i + m/2 "
                "copies neuron i with c negated, so that f_0 = 0 exactly); pass an even m."
            )
        if self.embedding.infinite:
            self.scaling.check_infinite()
        # c_i = ±ĉ (Assumption 1), W_ij ~ N(0, σ_W²) (Assumption 3 when σ_W = 1) per chunk of neurons from the
        # seed (wideflow.neurons), W when first read; symmetrized for NTK (Table 1)
        count = drawn_neurons(self.m, self.scaling.symmetrize)
        c = self.c_hat * draw_signs(self.seed, count)
        self.c = (torch.cat([c, -c]) if self.scaling.symmetrize else c).to(device=self.device, dtype=self.dtype)
        self._W: torch.Tensor | None = None
        self._W_thunk: Callable[[], torch.Tensor] | None = None
        self.process = None
        if self.embedding.infinite:
            if bias or train_c:
                raise InvalidArgument("a D = ∞ model trains W only (docs/theory.md §8); drop train_c and bias.")
            if zero := self.scaling.features_start_at_zero:  # a_W + b_W > ½ (MF): the features start at 0
                warn_mean_field_collapse()
            self.process = self.embedding.feature_process(count, self.seed, zero)
            self.trained: TrainedShift | None = None
        else:
            self._W_thunk = InitialWeights(self.seed, self.m, self.D, self.scaling.symmetrize, self.dtype,
                                           self.device, self.scaling.init_std(self.D))
        self.b = torch.zeros(self.m, dtype=self.dtype, device=self.device) if bias else None

    @property
    def d(self) -> int:
        """Input dimension."""
        return self.embedding.d

    @property
    def D(self) -> int:
        """Embedding dimension (number of φ_j)."""
        return self.embedding.D

    @property
    def initial_weights(self) -> InitialWeights | None:
        """The recipe of W_0 while W was never read nor set (then W is W_0, drawn from the seed), else None."""
        return self._W_thunk if self._W is None and isinstance(self._W_thunk, InitialWeights) else None

    @property
    def W(self) -> torch.Tensor:
        """The trained weights W ∈ R^{m×D}, as the paper writes them (materialized on first access)."""
        if self.process is not None:
            raise self._no_W()
        if self._W is None:
            assert self._W_thunk is not None
            self._W = self._W_thunk()
            self._W_thunk = None
        return self._W

    def _no_W(self) -> InvalidArgument:
        return InvalidArgument(
            f"{type(self).__name__} with D = ∞ has no weight matrix W (it would have infinitely many columns); "
            "the model is its features h(x) (model.features(X)) and its Gram matrix Ḡ (wf.gram(model, X))."
        )

    @W.setter
    def W(self, value: torch.Tensor) -> None:
        if self.process is not None:
            raise self._no_W()
        value = as_tensor("W", value, ndim=2, dtype=self.dtype, device=self.device, rows=self.m, cols=self.D,
                          rows_name="m", rows_what="the width", cols_name="D", cols_what="the embedding dimension")
        self._W, self._W_thunk = value, None

    def set_lazy_W(self, thunk: Callable[[], torch.Tensor]) -> None:
        """Let the kernel engine hand over W_t = W_0 + B_t Φ without computing it (docs/theory.md §8)."""
        self._W, self._W_thunk = None, thunk

    @property
    def z(self) -> torch.Tensor:
        """The fixed first-layer weights z ∈ R^{D×d} of a random-embedding model."""
        z = getattr(self.embedding, "z", None)
        if z is None:
            raise AttributeError(f"{type(self.embedding).__name__} embedding has no random first layer z.")
        return z.to(device=self.device, dtype=self.dtype)

    @property
    def s_o(self) -> float:
        """Output multiplier of the scaling (1/m or 1/√m)."""
        return self.scaling.s_o(self.m)

    @property
    def s_h(self) -> float:
        """Hidden multiplier of the scaling (1/√D or 1/D)."""
        return self.scaling.s_h(self.D)

    # ------------------------------------------------------------------ forward
    def input(self, X: Any, name: str = "X") -> torch.Tensor:
        """``X`` checked and converted to this model's dtype and device, shape (n, d)."""
        return as_tensor(name, X, ndim=2, dtype=self.dtype, device=self.device, cols=self.d)

    def embed(self, X: Any) -> torch.Tensor:
        """Φ(X), shape (n, D)."""
        return self.embedding(self.input(X))

    def features(self, X: Any) -> torch.Tensor:
        """h(X) = s_h Φ(X) Wᵀ (+ b), shape (n, m): the pre-activations of the trained layer, eq. (3). At D = ∞
        the Gaussian-process features of :mod:`wideflow.infinite` (plus the training's shift)."""
        if self.process is not None:
            return self._infinite_features(self.input(X))
        H = self.s_h * halfwise_matmul(self.embed(X), self.W.T, self.paired, dim=1)
        return H + self.b if self.b is not None else H

    def features_block(self, X: torch.Tensor, lo: int = 0, hi: int | None = None, *, keep: bool = True,
                       block: int = COLUMNS) -> torch.Tensor:
        """h(X) of a block of neurons, shape (rows, n), for inputs X already checked (:meth:`input`), without b:
        neurons lo..hi of the drawn ones (all of them by default), and under the NTK symmetrization rows lo..hi of
        both halves. Φ is formed ``block`` columns at a time (memory independent of D) and W_0, if W was never
        read, only for those rows, :data:`W0_SLAB` of them at a time. At D = ∞ the inputs are revealed (kept in
        the model when ``keep``)."""
        count = drawn_neurons(self.m, self.scaling.symmetrize)
        hi = count if hi is None else hi
        if self.process is not None:
            H = self.process.reveal(X)[lo:hi] if keep else self.process.peek(X, lo, hi)
            H = H.to(device=self.device, dtype=self.dtype, copy=True)  # the model's revealed values stay its own
            return torch.cat([H, H]) if self.scaling.symmetrize else H
        recipe = self.initial_weights
        if recipe is None:
            W = self.neuron_block(self.W, lo, hi)
        paired = self.paired and recipe is None
        rows = hi - lo if recipe is not None else W.shape[0]  # a symmetrized recipe's second half copies the first
        H = torch.zeros(rows, X.shape[0], dtype=self.dtype, device=self.device)
        col = 0
        for P in self.embedding.column_blocks(X, block):
            end = col + P.shape[1]
            if recipe is not None:  # W̃_0 drawn W0_SLAB neurons by ``block`` columns at a time, σ_W applied below
                for r in range(lo, hi, W0_SLAB):
                    r_end = min(hi, r + W0_SLAB)
                    H[r - lo : r_end - lo].addmm_(recipe.rows(r, r_end, col, end, scaled=False), P.T)
            elif paired:
                H.add_(halfwise_matmul(W[:, col:end], P.T, True, dim=0))
            else:
                H.addmm_(W[:, col:end], P.T)
            col = end
        # s_h σ_W as one number (Scaling.feature_scale), so that θ-equivalent scalings start bitwise equal
        H.mul_(self.scaling.feature_scale(self.D) if recipe is not None else self.s_h)
        return torch.cat([H, H]) if recipe is not None and self.scaling.symmetrize else H

    def neuron_block(self, values: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """The rows of a per-neuron tensor (first dimension m) that belong to neurons lo..hi of the drawn ones:
        rows lo..hi, and under the NTK symmetrization rows lo..hi of both halves."""
        if not self.scaling.symmetrize:
            return values[lo:hi]
        half = self.m // 2
        return torch.cat([values[lo:hi], values[half + lo : half + hi]])

    def _infinite_features(self, X: torch.Tensor) -> torch.Tensor:
        H = self.features_block(X).T
        if self.trained is not None:
            H = self.trained.apply(self.embedding, X, H)
        return H

    @property
    def paired(self) -> bool:
        """True while c_{i+m/2} = −c_i holds by construction (NTK symmetrization with c fixed)."""
        return self.scaling.symmetrize and not self.train_c

    def output_from_features(self, H: torch.Tensor) -> torch.Tensor:
        """f = s_o σ(H) c for features H of shape (n, m), eq. (2)."""
        return readout(self.activation(H).T, self.c, self.s_o, self.paired)

    def __call__(self, X: Any) -> torch.Tensor:
        """f(X), shape (n,), eq. (2)."""
        return self.output_from_features(self.features(X))

    # ------------------------------------------------------------------ bookkeeping
    @property
    def config(self) -> dict[str, Any]:
        """Everything that rebuilds this model's initialization (and names it in sweeps)."""
        return {
            "class": type(self).__name__,
            "embedding": self.embedding.spec,
            "m": self.m,
            "activation": self.activation.spec,
            "scaling": self.scaling.config,
            "c_hat": self.c_hat,
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
            "train_c": self.train_c,
            "bias": self.bias,
        }

    def clone(self) -> WideNet:
        """A deep copy (W materialized)."""
        if self.process is None:
            _ = self.W
        return copy.deepcopy(self)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> WideNet:
        """A copy on another device and/or dtype."""
        new = self.clone()
        new.device = resolve_device(device) if device is not None else self.device
        new.dtype = resolve_dtype(dtype) if dtype is not None else self.dtype
        new.c = new.c.to(new.device, new.dtype)
        if new.process is None:
            new._W = new.W.to(new.device, new.dtype)
        new.b = new.b.to(new.device, new.dtype) if new.b is not None else None
        return new

    def to_module(self) -> torch.nn.Module:
        """A plain ``torch.nn.Module`` computing the same f, W materialized
        (:class:`~wideflow.torch_modules.WideNetModule`; :func:`wideflow.interop.to_module` is the same)."""
        return module_of(self)

    def __getstate__(self) -> dict[str, Any]:
        """The state for ``pickle`` and ``torch.save``: W materialized, the kernel engine's thunk dropped. The
        activation pickles by its registry name (a user activation must be registered where it is unpickled),
        a :class:`~wideflow.embeddings.Function` embedding only if its callable pickles."""
        if self.process is None:
            _ = self.W
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(embedding={self.embedding!r}, m={self.m}, activation={self.activation!r}, "
            f"scaling={self.scaling.name!r}, c_hat={self.c_hat}, seed={self.seed}, dtype={self.dtype}, "
            f"device='{self.device}')"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Save the model (configuration, embedding weights and parameters) atomically to ``path``.

        :func:`load` rebuilds it with identical predictions, on any machine. Models whose embedding is a
        plain user callable cannot be saved (the callable is code, not data).
        """
        if self.embedding.spec is None:
            raise InvalidArgument(
                f"this model's embedding {self.embedding!r} is a user callable and cannot be saved; "
                "use a built-in embedding or save the parameters yourself."
            )
        state = {
            "format": _SAVE_FORMAT,
            "wideflow_version": __version__,
            "config": self.config,
            "embedding_weights": [w.cpu() for w in self.embedding.weights()],
            "c": self.c.cpu(),
            "W": None if self.process is not None else self.W.cpu(),
            "b": None if self.b is None else self.b.cpu(),
        }
        if self.process is not None:  # the revealed values of the random function, and the training's shift
            state["process"] = self.process.state()
            state["trained"] = None if self.trained is None else self.trained.state()
        return atomic_torch_save(state, path)


def check_model(model: Any, argument: str = "model") -> WideNet:
    """``model`` itself if it is a wideflow model, else the one error every entry point raises for it."""
    if not isinstance(model, WideNet):
        raise not_a_model(argument, model)
    return model


_CLASSES: dict[str, type[WideNet]] = {}


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> WideNet:
    """Rebuild a model written by :meth:`WideNet.save`, on ``device``, with identical predictions.

    The file holds the configuration (class, embedding spec with its seed, width, activation, scaling, ĉ,
    dtype, flags), the embedding's random weights and the parameters c, W, b; nothing is re-drawn.
    """
    device = resolve_device(device)
    state = read_torch_file(
        path, "a wideflow model file written by WideNet.save", version=_SAVE_FORMAT,
        keys={"format", "config", "embedding_weights", "c", "W", "b"},
        hint="training checkpoints are resumed with train(..., resume=PATH) instead.",
    )
    cfg = dict(state["config"])
    cls = _CLASSES.get(cfg.pop("class", None), WideNet)
    try:
        embedding = from_spec(cfg.pop("embedding"))
        model = cls.__new__(cls)
        WideNet.__init__(model, embedding, device=device, **cfg)
    except UnknownName as exc:
        raise CheckpointError(
            f"{str(path)!r} names something this process does not know: {exc} A user activation must be "
            "registered (wf.register_activation) before wf.load."
        ) from None
    except (WideflowError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{str(path)!r} holds an invalid model configuration: {exc}") from None
    masters = embedding.weights()
    saved, c, W, b = state["embedding_weights"], state["c"], state["W"], state["b"]
    if not (
        len(masters) == len(saved)
        and all(isinstance(x, torch.Tensor) and x.shape == y.shape for x, y in zip(saved, masters, strict=False))
        and isinstance(c, torch.Tensor) and c.shape == (model.m,)
        and (W is None if model.process is not None else isinstance(W, torch.Tensor) and W.shape == (model.m, model.D))
        and (b is None if not model.bias else isinstance(b, torch.Tensor) and b.shape == (model.m,))
    ):
        raise CheckpointError(f"{str(path)!r} is corrupt: its parameters do not have the shapes its configuration says.")
    for master, weights in zip(masters, saved, strict=True):
        master.copy_(weights)
    model.c = c.to(model.device, model.dtype)
    if model.process is None:
        model._W, model._W_thunk = W.to(model.device, model.dtype), None
    else:
        model.process.load_state(state["process"])
        trained = state.get("trained")
        model.trained = None if trained is None else TrainedShift(trained["X"], trained["Z"], trained["H"])
    model.b = None if b is None else b.to(model.device, model.dtype)
    return model


class Shallow(WideNet):
    """The shallow mean-field net of eq. (1): Φ(x) = x, D = d, so h_i(x) = W_iᵀx/√d."""

    def __init__(self, d: int, m: int, **kwargs: Any) -> None:
        super().__init__(Identity(d), m, **kwargs)


class P3L(WideNet):
    """The partially-trained 3-layer net, eqs. (4)-(5): φ_j(x) = σ(z_jᵀx/√d), z_j ~ N(0, I_d) fixed.

    D defaults to m (as in Exp 3 and Appendix B); ``D=math.inf`` is the infinite random embedding
    (:mod:`wideflow.infinite`). The embedding uses the model's activation and ``seed``.
    """

    def __init__(self, d: int, m: int, D: int | None = None, **kwargs: Any) -> None:
        m = check_positive_int("m", m)
        D = m if D is None else _check_D(D)
        act = kwargs.get("activation", "relu")
        seed = check_seed("seed", kwargs.get("seed", 0))
        emb = InfiniteRandomFeatures(d, act, 1) if is_infinite(D) else RandomFeatures(d, D, activation=act, seed=seed)
        super().__init__(emb, m, **kwargs)


class PartiallyTrained(WideNet):
    """The partially-trained L-layer net of Appendix H (depth = L ≥ 3; L = 3 is :class:`P3L`).

    Layers 1..L-2 are fixed random (see :class:`~wideflow.embeddings.DeepRandomFeatures`), layer L-1
    (W) is trained, the output layer c is fixed.
    """

    def __init__(self, d: int, m: int, D: int | None = None, depth: int = 3, **kwargs: Any) -> None:
        depth = check_positive_int("depth", depth, minimum=3)
        m = check_positive_int("m", m)
        D = m if D is None else _check_D(D)
        act = kwargs.get("activation", "relu")
        seed = check_seed("seed", kwargs.get("seed", 0))
        emb = (InfiniteRandomFeatures(d, act, depth - 2) if is_infinite(D)
               else DeepRandomFeatures(d, D, layers=depth - 2, activation=act, seed=seed))
        super().__init__(emb, m, **kwargs)

    @property
    def depth(self) -> int:
        """L, the depth of the network (random layers + trained layer + output layer)."""
        return self.embedding.layers + 2


def _check_D(D: Any) -> Any:
    """D of a random embedding: an integer (checked by the embedding) or ``math.inf``; other non-finite floats are
    refused here, where the error can say that ∞ is allowed."""
    if isinstance(D, float) and not math.isfinite(D) and not is_infinite(D):
        raise InvalidArgument(f"D={D} is not a width: D must be an integer >= 1, or math.inf for the infinite "
                              "random embedding (docs/theory.md §4).")
    return D


_CLASSES.update({c.__name__: c for c in (WideNet, Shallow, P3L, PartiallyTrained)})
