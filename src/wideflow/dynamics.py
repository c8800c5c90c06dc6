r"""Full-batch gradient descent on W with the paper's step convention (spec §1.6, §4, §8).

Loss (6): L = (1/2N) Σ_a (f(x_a) − y_a)², N = n ("mean") or 1 ("sum"). One GD step (9) is
W ← W − δ·(lr factor)·∇_W L, with the factor of Table 1 (m, 1 or m·D), and corresponds to GF time δ.

Two exact engines compute the same trajectory:

- ``"weights"``: the closed-form gradient in weight space,
  ∇_W L = (s_o s_h / N) A Φ with A = (c eᵀ) ⊙ σ'(H) ∈ R^{m×n}; cost O(m n D) per step.
- ``"kernel"``: the kernel-space form of spec §8. Every step adds to each row W_i a combination of the
  training embeddings, so the state is H = s_h W Φᵀ ∈ R^{m×n} plus the coefficients B with W_t = W_0 + B_t Φ:
  ΔB = −(η s_o s_h / N) A and ΔH = s_h D ΔB G = −(δγ/N) A G. Cost O(m n²) per step, memory O(m(n + n_test)),
  and W is only formed when someone reads ``result.model.W``. Test features are H_test = H_test,0 +
  s_h D B G(X, X_test), evaluated at logging steps only.

``"auto"`` picks the engine with the smaller operation count for the whole run.
The driver :func:`gradient_descent` is a generator of :class:`TrainState` at logging steps; :func:`train`
consumes it, writes the history table, shows progress, checkpoints and detects divergence.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ._tensor import as_tensor
from ._version import __version__
from .errors import (
    CheckpointError,
    InvalidArgument,
    InvalidType,
    KernelEngineUnavailable,
    NonFiniteInput,
    TrainingDiverged,
    check_bool,
    check_choice,
    check_positive_float,
    check_positive_int,
)
from .kernels import gram, tangent_kernel
from .model import WideNet, atomic_torch_save, read_torch_file, readout

__all__ = [
    "train",
    "gradient_descent",
    "max_stable_step_size",
    "TrainState",
    "TrainResult",
    "choose_method",
    "make_engine",
    "METHODS",
]

METHODS = ("auto", "weights", "kernel")
REDUCTIONS = ("mean", "sum")
_CHECKPOINT_FORMAT = 1


@dataclass
class TrainState:
    """The state of a run at a logging step.

    ``H`` (m, n) are the features h_i(x_a) on the training set and ``H_test`` (m, n_test) on the test set;
    ``f``/``f_test`` the outputs. Tensors are the engine's own buffers: copy them to keep them.
    """

    step: int
    time: float
    train_loss: float
    test_error: float | None
    f: torch.Tensor
    H: torch.Tensor
    f_test: torch.Tensor | None = None
    H_test: torch.Tensor | None = None
    c: torch.Tensor | None = None
    b: torch.Tensor | None = None


@dataclass
class TrainResult:
    """What :func:`train` returns: the history table, the trained model and the run's settings."""

    history: pd.DataFrame
    model: WideNet
    method: str
    steps: int
    step_size: float
    reduction: str
    wall_time: float
    final_state: TrainState
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def final_train_loss(self) -> float:
        return float(self.history["train_loss"].iloc[-1])

    @property
    def final_test_error(self) -> float | None:
        if "test_error" not in self.history:
            return None
        return float(self.history["test_error"].iloc[-1])


# ---------------------------------------------------------------------------------------------- engines
class _Engine:
    """Shared pieces: the model's constants, preallocated step buffers, the outputs and the coefficient.

    One GD step reads the features H (m, n) a few times and runs products; everything of size m×n that a
    step needs lives in buffers allocated once here, so the steady state allocates nothing of size m×n
    (no allocator traffic, no page faults) and the same code runs on any device.

    The buffers have ``n_pad`` ≥ n columns, n rounded up to a multiple of 8: BLAS products whose inner
    dimension is not a multiple of the vector width run up to 25% slower (measured with MKL on 2 cores:
    (8192×500)·(500×500) at 135 GFLOP/s, (8192×504)·(504×504) at 170). The padding columns of H, B, Φ, G
    and of the residual e are exactly zero and stay so, so they change no number; ``H``, ``B``, ``f`` and
    ``e`` are the (m, n) and (n,) views without them.
    """

    name = ""

    def __init__(self, model: WideNet, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None,
                 N: float, step_size: float) -> None:
        self.model = model
        self.act = model.activation
        self.X, self.y, self.X_test = X, y, X_test
        self.N = N
        self.delta = step_size
        m, D = model.m, model.D
        self.s_o, self.s_h = model.s_o, model.s_h
        self.lr = step_size * model.scaling.lr_factor(m, D)
        self.lr_neuron = step_size * model.scaling.neuron_lr_factor(m)
        self.c = model.c.clone()
        self.b = None if model.b is None else model.b.clone()
        self.n = n = X.shape[0]
        self.n_pad = n_pad = -(-n // _PAD) * _PAD
        like = {"dtype": model.dtype, "device": model.device}
        # ReLU (the built-in one, recognised by its function) has σ' = 1[h > 0]: one comparison, no σ' call
        self._relu = self.act.fn is torch.relu
        self._paired = model.paired
        self._y = _pad(y, n_pad)
        self._S = torch.empty(m, n_pad, **like)  # σ(H)
        self._A = torch.empty(m, n_pad, **like)  # c ⊙ σ'(H)
        self._S_half = torch.empty(m // 2, n_pad, **like) if self._paired else None
        self._f = torch.empty(n_pad, **like)
        self._e = torch.zeros(n_pad, **like)
        # views used every step, made once: a step of a small problem takes tens of microseconds, and
        # each slice costs one or two (measured: 7% of a step at (n, m) = (200, 1024))
        self._c_col = self.c[:, None]
        self._readout_c = (self.c[: m // 2] if self._paired else self.c)[None, :]
        self._f_row, self._f_out, self._e_out = self._f[None, :], self._f[:n], self._e[:n]
        self._e_row, self._e_col = self._e[None, :], self._e[:, None]
        # the padding of e is zeroed every step: σ(0) ≠ 0 for some activations, and with biases the padding
        # columns of H hold b, so f there need not vanish; zero in e, they enter no update
        self._e_pad = self._e[n:] if n_pad > n else None

    # features of the training set at the current parameters: H (m, n) is a view of _H (m, n_pad)
    H: torch.Tensor
    _H: torch.Tensor

    def outputs(self, H: torch.Tensor) -> torch.Tensor:
        """f = s_o Σ_i c_i σ(H_i·) for features H (m, k) of any set, eq. (2) (allocates; used at logging steps)."""
        return readout(self.act(H), self.c, self.s_o, self._paired)

    def coefficient(self, H: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """A = (c eᵀ) ⊙ σ'(H), shape (m, n), for any features H (a new tensor; the GD steps use :meth:`slope`)."""
        return self.act.deriv(H).mul_(self.c[:, None]).mul_(e[None, :])

    def residual(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, e = f − y) on the training set at the current H, as views of the engine's buffers.

        A symmetrized model sums its readout pairwise as :func:`~wideflow.model.readout` does, so f_0 = 0
        exactly (spec §4).
        """
        S = torch.clamp_min(self._H, 0, out=self._S) if self._relu else self.act(self._H)
        if self._paired:
            half = self.c.shape[0] // 2
            S = torch.sub(S[:half], S[half:], out=self._S_half)
        torch.mm(self._readout_c, S, out=self._f_row)  # cᵀS as a 1-row product: faster than mv(Sᵀ, c) in MKL
        torch.sub(self._f.mul_(self.s_o), self._y, out=self._e)
        if self._e_pad is not None:
            self._e_pad.zero_()
        return self._f_out, self._e_out

    def _padded_residual(self, e: torch.Tensor) -> torch.Tensor:
        """The residual as an (n_pad,) vector with zero padding (``e`` is normally the view of it that
        :meth:`residual` returned)."""
        if e is not self._e_out:
            self._e_out.copy_(e)
        return self._e

    def slope(self) -> torch.Tensor:
        """Ã = c ⊙ σ'(H) (m, n_pad), so that the coefficient of eqs. (8) and spec §8 is A = (c eᵀ) ⊙ σ'(H) = Ã diag(e).

        e is left out of Ã and folded into the n-sized factor of each product instead (Φ or G), which
        saves a pass over the m×n data every step.
        """
        if self._relu:  # written as float directly: a boolean mask would be converted in a temporary
            return torch.gt(self._H, 0, out=self._A).mul_(self._c_col)
        return torch.mul(self.act.deriv(self._H), self._c_col, out=self._A)

    def step_neurons(self, slope: torch.Tensor, e: torch.Tensor) -> None:
        """GD on c and b (beyond the paper) with Ã = c ⊙ σ'(H) from :meth:`slope` and the padded e; uses the
        pre-step H."""
        if self.b is not None:
            self.b.sub_(self.lr_neuron * self.s_o / self.N * (slope @ e))
        if self.model.train_c:
            self.c.sub_(self.lr_neuron * self.s_o / self.N * (self.act(self._H) @ e))

    def plan(self, steps: int) -> None:
        """Called by :func:`gradient_descent` with the number of steps ahead (engines may prepare for it)."""

    def test_features(self) -> torch.Tensor:
        raise NotImplementedError

    def step(self, e: torch.Tensor) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor | None]) -> None:
        for key, value in state.items():
            current = getattr(self, key)
            if value is None or current is None:
                setattr(self, key, value)
            else:
                current.copy_(value)

    def finish(self) -> WideNet:
        raise NotImplementedError


class WeightsEngine(_Engine):
    """Weight-space GD with the closed-form gradient ∇_W L = (s_o s_h/N) A Φ (eqs. (8)-(9)).

    Per step: W ← W − (η s_o s_h/N) Ã (diag(e) Φ) and H = W (s_h Φ)ᵀ, two products of cost 2 m n D, with
    s_h folded into the stored embeddings.
    """

    name = "weights"

    def __init__(self, model: WideNet, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None,
                 N: float, step_size: float) -> None:
        super().__init__(model, X, y, X_test, N, step_size)
        self.Phi = _pad(model.embedding(X).mul(self.s_h), self.n_pad)  # s_h Φ, (n_pad, D)
        self.Phi_test = None if X_test is None else model.embedding(X_test).mul(self.s_h)
        self._Phi_e = torch.empty_like(self.Phi)
        self.coef_W = -self.lr * self.s_o / N  # the s_h of the gradient is in self.Phi
        self.W = model.W.clone()
        self._H = self._features(self.Phi, torch.empty_like(self._A))
        self.H = self._H[:, : self.n]

    def _features(self, Phi: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """H = W (s_h Φ)ᵀ (+ b) into ``out``; a symmetrized model's halves by equal-shape products (bitwise
        equal features for equal rows of W, as :func:`~wideflow.model.halfwise_matmul`)."""
        if self._paired:
            half = self.W.shape[0] // 2
            torch.mm(self.W[:half], Phi.T, out=out[:half])
            torch.mm(self.W[half:], Phi.T, out=out[half:])
        else:
            torch.mm(self.W, Phi.T, out=out)
        return out if self.b is None else out.add_(self.b[:, None])

    def test_features(self) -> torch.Tensor:
        assert self.Phi_test is not None
        return self._features(self.Phi_test, torch.empty(self.W.shape[0], self.Phi_test.shape[0],
                                                          dtype=self.W.dtype, device=self.W.device))

    def step(self, e: torch.Tensor) -> None:
        e = self._padded_residual(e)
        A = self.slope()
        self.step_neurons(A, e)
        self.W.addmm_(A, torch.mul(self.Phi, self._e_col, out=self._Phi_e), alpha=self.coef_W)
        self._features(self.Phi, self._H)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"W": self.W, "c": self.c, "b": self.b, "H": self.H}

    def finish(self) -> WideNet:
        W0 = self.model.W
        model = copy.deepcopy(self.model, {id(W0): W0})  # shares W_0, which is replaced right away
        model.W, model.c, model.b = self.W.clone(), self.c.clone(), None if self.b is None else self.b.clone()
        return model


class KernelEngine(_Engine):
    """Kernel-space GD of spec §8: state (H, B), W_t = W_0 + B_t Φ never formed during training.

    Per step: B ← B + (−η s_o s_h/N) Ã diag(e) and H ← H − (δγ/N) Ã (diag(e) G), one product of cost 2 m n².
    Memory O(m (n + n_test) + n (n + n_test)), independent of D: Φ is only ever formed ``block`` columns at
    a time (Gram matrices and initial features).
    """

    name = "kernel"
    block = 2048

    def __init__(self, model: WideNet, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None,
                 N: float, step_size: float) -> None:
        if model.train_c or model.bias:
            raise KernelEngineUnavailable(_KERNEL_UNAVAILABLE.format(model=model))
        super().__init__(model, X, y, X_test, N, step_size)
        D = model.D
        self.G = gram(model, X, block=self.block)
        self.G_test = None if X_test is None else gram(model, X, X_test, block=self.block)
        self._G = _pad(self.G, self.n_pad, self.n_pad)
        self._G_e = torch.empty_like(self._G)
        self._H = _initial_features(model, X, self.block, self.n_pad)
        self.H = self._H[:, : self.n]
        self.H_test0 = None if X_test is None else _initial_features(model, X_test, self.block)
        self._B = torch.zeros_like(self._H)
        self.B = self._B[:, : self.n]
        self.coef_B = -self.lr * self.s_o * self.s_h / N
        self.coef_H = self.coef_B * self.s_h * D  # = −δγ/N (spec §8)
        self.fused = False

    def plan(self, steps: int) -> None:
        """Fuse the element-wise work of long ReLU runs on the CPU (:func:`_fused_relu_ops`).

        Fusing reads and writes the m×n data 5 times per step instead of 10. On 2 cores it saved 2-4% of a
        step at (n, m) = (1000, 4096) and (500, 8192) when the cores were otherwise idle, 6-10% when they were
        shared; compiling costs 5-10 s. It is used once the run's element work steps·m·n reaches
        ``_FUSE_MIN_WORK`` (the paper's runs at m = 4096, n = 512 are 10¹¹). It only ever switches fusion on,
        so a resumed or re-planned run keeps it.
        """
        if (not self.fused and self._relu and self._H.device.type == "cpu"
                and steps * self.H.numel() >= _FUSE_MIN_WORK and _fused_relu_ops() is not None):
            self.fused = True
            self._c_out = self.c * self.s_o

    def residual(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.fused:
            return super().residual()
        readout_fn, _ = _fused_relu_ops()  # type: ignore[misc]
        half = self.c.shape[0] // 2 if self._paired else 0
        try:
            f, e = readout_fn(self._H, self._c_out, self._y, half)
        except Exception as exc:  # a compiler that fails on this machine: warn once, go on unfused
            _fusion_failed(exc)
            self.fused = False
            return super().residual()
        self._f.copy_(f)
        self._e.copy_(e)  # its padding is 0: the padding of H and y is
        return self._f_out, self._e_out

    def test_features(self) -> torch.Tensor:
        assert self.H_test0 is not None and self.G_test is not None
        return torch.addmm(self.H_test0, self.B, self.G_test, alpha=self.s_h * self.model.D)

    def step(self, e: torch.Tensor) -> None:
        e = self._padded_residual(e)
        if self.fused:
            _, slope_fn = _fused_relu_ops()  # type: ignore[misc]
            slope_fn(self._H, self.c, e * self.coef_B, self._A, self._B)
            A = self._A
        else:
            A = self.slope()
            self._B.addcmul_(A, self._e_row, value=self.coef_B)
        self._H.addmm_(A, torch.mul(self._G, self._e_col, out=self._G_e), alpha=self.coef_H)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"H": self.H, "B": self.B, "c": self.c}

    def finish(self) -> WideNet:
        W0, B, X, emb = self.model.W, self.B.clone(), self.X, self.model.embedding
        # a copy of the model that shares W_0 instead of copying it: its W is replaced by the lazy W_t below,
        # so a copy would only cost O(m D) memory for nothing
        model = copy.deepcopy(self.model, {id(W0): W0})

        def materialize() -> torch.Tensor:
            W = W0.clone()
            col = 0
            for P in emb.column_blocks(X, self.block):
                W[:, col : col + P.shape[1]].addmm_(B, P)
                col += P.shape[1]
            return W

        model._set_lazy_W(materialize)
        return model


_PAD = 8  # the buffers' column count is a multiple of this (the float32 AVX2 width; see _Engine)
_FUSE_MIN_WORK = 2e10  # steps·m·n from which fusing pays for compiling (KernelEngine.plan)


def _pad(t: torch.Tensor, *size: int) -> torch.Tensor:
    """``t`` in the top-left corner of a zero tensor of the leading ``size`` (``t`` itself if it fits)."""
    size = size + tuple(t.shape[len(size) :])
    if tuple(t.shape) == size:
        return t.contiguous()
    out = t.new_zeros(size)
    out[tuple(slice(0, k) for k in t.shape)] = t
    return out


def _relu_readout(H: torch.Tensor, c_out: torch.Tensor, y: torch.Tensor, half: int) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """f = Σ_i (s_o c_i) relu(H_i·) and e = f − y in one pass over H; pairwise when ``half`` (spec §4)."""
    S = torch.relu(H)
    if half:
        f = ((S[:half] - S[half:]) * c_out[:half, None]).sum(0)
    else:
        f = (S * c_out[:, None]).sum(0)
    return f, f - y


def _relu_slope(H: torch.Tensor, c: torch.Tensor, e_B: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> None:
    """Ã = c ⊙ 1[H > 0] into A and B ← B + Ã diag(e_B) in one pass over H and B (e_B = coef_B·e)."""
    A.copy_((H > 0).to(H.dtype) * c[:, None])
    B.add_(A * e_B[None, :])


@functools.cache
def _fused_relu_ops() -> tuple[Callable, Callable] | None:
    """The element-wise part of a ReLU kernel step compiled by ``torch.compile`` into two loops: the readout
    (one read of H) and the slope with the B update (H and B read, A and B written). ``None`` where
    torch.compile is unavailable."""
    try:
        return torch.compile(_relu_readout), torch.compile(_relu_slope)
    except Exception as exc:  # an install without a working dynamo: stay unfused
        _fusion_failed(exc)
        return None


def _fusion_failed(exc: Exception) -> None:
    warnings.warn(f"wideflow: torch.compile failed ({type(exc).__name__}: {exc}); the kernel engine runs its "
                  "element-wise work unfused (same numbers, a few percent slower).", RuntimeWarning, stacklevel=3)


def _initial_features(model: WideNet, X: torch.Tensor, block: int, width: int | None = None) -> torch.Tensor:
    """H_0 = s_h W_0 Φ(X)ᵀ, shape (m, n) (or (m, width) with zero columns after the n), eq. (3), accumulated
    over ``block`` columns of Φ at a time so that memory stays O(m n + n·block) whatever D is. A symmetrized
    model's two halves are computed by equal-shape products, so equal rows of W give bitwise equal features
    and f_0 = 0 exactly (spec §4)."""
    m, n = model.m, X.shape[0]
    W = model.W
    H = torch.zeros(m, width or n, dtype=model.dtype, device=model.device)
    rows = (slice(0, m // 2), slice(m // 2, m)) if model.paired else (slice(0, m),)
    col = 0
    for P in model.embedding.column_blocks(X, block):
        for r in rows:
            H[r, :n].addmm_(W[r, col : col + P.shape[1]], P.T)
        col += P.shape[1]
    return H.mul_(model.s_h)


_KERNEL_UNAVAILABLE = (
    "method='kernel' cannot train {model!r} with train_c or bias: the kernel-space engine (spec §8) "
    "only moves W. Use method='weights' (or 'auto', which falls back to it)."
)

_ENGINES: dict[str, type[_Engine]] = {"weights": WeightsEngine, "kernel": KernelEngine}


def engine_costs(m: int, n: int, D: int, n_test: int, steps: int, log_every: int) -> dict[str, float]:
    """Floating-point operations of a whole run with each engine, counting the matrix products (spec §8).

    Both engines form H_0 = s_h W_0 Φᵀ once (2 m n D). ``weights`` then spends 4 m n D per step (the gradient
    product and the new features) and 2 m n_test D per logging step (test features). ``kernel`` forms G,
    G(X, X_test) and H_test,0 once (2 D n (n + n_test) + 2 m n_test D), then spends 2 m n² per step and
    2 m n n_test per logging step. The element-wise work, O(m n) per step, is the same for both.
    """
    logs = steps // log_every + 2
    start = 2.0 * m * n * D
    return {
        "weights": start + 4.0 * m * n * D * steps + 2.0 * m * n_test * D * logs,
        "kernel": start + 2.0 * D * n * (n + n_test) + 2.0 * m * n_test * D + 2.0 * m * n * n * steps
        + 2.0 * m * n * n_test * logs,
    }


def choose_method(model: WideNet, n: int, n_test: int, steps: int, log_every: int, method: str = "auto") -> str:
    """Resolve ``method``: "auto" takes the engine with the smaller :func:`engine_costs` for the whole run.

    For long runs this is the kernel engine when D > n/2 (2 m n² < 4 m n D per step) and the weights engine
    otherwise; models that train c or biases always use the weights engine (the kernel engine only moves W).
    Measured on 2 CPU cores, float32 (m = 2048, n = 400): both engines take the same time per step at
    D ≈ 200 = n/2, so the crossover of the count is the measured one.
    """
    method = check_choice("method", method, METHODS)
    if method != "auto":
        return method
    if model.train_c or model.bias:
        return "weights"
    costs = engine_costs(model.m, n, model.D, n_test, steps, log_every)
    return "kernel" if costs["kernel"] < costs["weights"] else "weights"


def make_engine(method: str, model: WideNet, X: torch.Tensor, y: torch.Tensor, X_test: torch.Tensor | None,
                N: float, step_size: float) -> _Engine:
    """Instantiate the engine ``method`` ("weights" or "kernel") for validated tensors."""
    return _ENGINES[method](model, X, y, X_test, N, step_size)


# ---------------------------------------------------------------------------------------------- driver
def gradient_descent(
    engine: _Engine,
    *,
    steps: int,
    log_every: int,
    y_test: torch.Tensor | None = None,
    start: int = 0,
    watch: Callable[[int, torch.Tensor], None] | None = None,
) -> Iterator[TrainState]:
    """Run ``steps`` GD steps of ``engine`` and yield a :class:`TrainState` at every logging step.

    Logging steps are 0, log_every, 2·log_every, … and the last step. Training outputs are formed every
    step (the update needs the residual e); test features only at logging steps. ``watch(k, e)``, if given,
    sees the residual of every step k (train's divergence check).
    """
    engine.plan(steps - start)
    for k in range(start, steps + 1):
        f, e = engine.residual()
        if watch is not None:
            watch(k, e)
        if k % log_every == 0 or k == steps:
            yield _state(engine, k, f, e, y_test)
        if k == steps:
            return
        engine.step(e)


def _state(engine: _Engine, k: int, f: torch.Tensor, e: torch.Tensor, y_test: torch.Tensor | None) -> TrainState:
    f_test = H_test = None
    test_error = None
    if y_test is not None:
        H_test = engine.test_features()
        f_test = engine.outputs(H_test)
        test_error = float(0.5 * ((f_test - y_test) ** 2).mean())
    return TrainState(
        step=k,
        time=k * engine.delta,
        train_loss=float(0.5 * (e @ e) / engine.N),
        test_error=test_error,
        f=f,
        H=engine.H,
        f_test=f_test,
        H_test=H_test,
        c=engine.c,
        b=engine.b,
    )


def train(
    model: WideNet,
    X: Any,
    y: Any,
    steps: int = 5000,
    step_size: float = 1.0,
    X_test: Any = None,
    y_test: Any = None,
    reduction: str = "mean",
    method: str = "auto",
    log_every: int = 100,
    *,
    progress: bool | None = None,
    callbacks: list[Callable[[TrainState], dict[str, float]]] | None = None,
    divergence_factor: float = 1e8,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike | None = None,
) -> TrainResult:
    r"""Train W of ``model`` by full-batch GD with the paper's step convention (eq. (9), spec §8).

    Parameters
    ----------
    model: the model; it is not modified (``result.model`` is a trained copy).
    X, y: training inputs (n, d) and targets (n,).
    steps, step_size: number of GD steps and δ; the run reaches GF time ``steps * step_size``.
    X_test, y_test: an optional test set; ``test_error`` = ½·mean over the test set of (f − y)².
    reduction: "mean" (N = n, default) or "sum" (N = 1) in L = (1/2N) Σ_a (f(x_a) − y_a)².
    method: "auto", "weights" or "kernel" (see the module docstring).
    log_every: a history row every ``log_every`` steps (and at the last step).
    progress: a tqdm bar; ``None`` shows it when standard error is a terminal.
    callbacks: functions of the :class:`TrainState` returning a dict of extra history columns.
    divergence_factor: stop with :class:`~wideflow.errors.TrainingDiverged` as soon as the loss at any step
        is non-finite or exceeds this factor (> 1) times max(L_0, L of the zero predictor). The loss of every
        step is recorded on the device and checked at logging steps, so a blow-up between two logging
        steps is caught even if the loss falls back afterwards. The error carries the step, the last
        logged finite state, the history and :func:`max_stable_step_size`.
    checkpoint, checkpoint_every: write an atomic checkpoint (engine state, random generator states,
        history) to this path every ``checkpoint_every`` steps (a multiple of ``log_every``; by default
        about ten per run) and at the end.
    resume: continue from the checkpoint at this path, written by a run with the same model, data and
        settings; the result (history and final W) is bit-identical to an uninterrupted run. A path
        that does not exist yet starts from step 0, so the same call can simply be repeated after an
        interruption (typically with ``checkpoint=resume=PATH``).

    Returns a :class:`TrainResult` whose ``history`` has the columns step, time, train_loss (and
    test_error, and the callbacks' columns).
    """
    if not isinstance(model, WideNet):
        raise InvalidType(f"model must be a wideflow WideNet (e.g. wf.Shallow(d, m)); got {type(model).__name__}.")
    steps = check_positive_int("steps", steps)
    step_size = check_positive_float("step_size", step_size)
    log_every = check_positive_int("log_every", log_every)
    divergence_factor = check_positive_float("divergence_factor", divergence_factor, above=1.0)
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    progress = check_bool("progress", progress, allow_none=True)
    callbacks = _check_callbacks(callbacks)
    Xt = model._input(X)
    n = Xt.shape[0]
    yt = as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=n, rows_what="one per row of X")
    if (X_test is None) != (y_test is None):
        raise InvalidArgument("X_test and y_test must be given together (or neither); got only "
                              f"{'X_test' if y_test is None else 'y_test'}.")
    Xs = ys = None
    if X_test is not None:
        Xs = model._input(X_test, "X_test")
        ys = as_tensor("y_test", y_test, ndim=1, dtype=model.dtype, device=model.device, rows=Xs.shape[0],
                       rows_name="n_test", rows_what="one per row of X_test")
    n_test = 0 if Xs is None else Xs.shape[0]
    resolved = choose_method(model, n, n_test, steps, log_every, method)
    checkpoint_every = _check_checkpointing(checkpoint, checkpoint_every, resume, steps, log_every)

    N = float(n) if reduction == "mean" else 1.0
    engine = make_engine(resolved, model, Xt, yt, Xs, N, step_size)
    settings = {
        "steps": steps, "step_size": step_size, "reduction": reduction, "method": resolved,
        "log_every": log_every, "n": n, "n_test": n_test, "model": model.config,
        "data": _fingerprint(Xt, yt, Xs, ys),
    }
    rows: list[dict[str, float]] = []
    start = 0
    if resume is not None and Path(resume).exists():
        start, rows = _load_checkpoint(resume, engine, settings)

    t0 = time.perf_counter()
    bar = _progress(progress, steps, start)
    # divergence is judged against the larger of L_0 and the loss of predicting 0, so that a run starting
    # (almost) at zero loss is not flagged for ordinary fluctuations
    reference = max(float(0.5 * (yt @ yt) / N), rows[0]["train_loss"] if rows else 0.0)
    watch = _LossWatch(min(log_every, steps), N, start, yt)  # a check window never spans more steps
    last_state: TrainState | None = None
    state: TrainState | None = None
    try:
        for state in gradient_descent(engine, steps=steps, log_every=log_every, y_test=ys, start=start, watch=watch):
            if state.step == start and rows and rows[-1]["step"] == start:
                rows.pop()  # the resumed step is logged again from the restored state, identically
            if state.step == 0:
                reference = max(reference, state.train_loss)
            bad = watch.first_bad(state.step, divergence_factor * reference)
            if bad is not None:
                raise _diverged(bad, state, last_state, engine, model, reduction, rows, reference, divergence_factor)
            row = {"step": state.step, "time": state.time, "train_loss": state.train_loss}
            if state.test_error is not None:
                row["test_error"] = state.test_error
            for i, cb in enumerate(callbacks):
                row.update(_callback_columns(i, cb, state))
            rows.append(row)
            last_state = _copy_state(state)
            if bar is not None:
                bar.update(state.step - bar.n)
                bar.set_postfix(loss=f"{state.train_loss:.3e}", refresh=False)
            if checkpoint is not None and state.step % checkpoint_every == 0 and state.step > start:
                _save_checkpoint(checkpoint, engine, settings, state.step, rows)
    finally:
        if bar is not None:
            bar.close()
    assert state is not None
    if checkpoint is not None:
        _save_checkpoint(checkpoint, engine, settings, steps, rows)
    history = pd.DataFrame(rows)
    return TrainResult(
        history=history,
        model=engine.finish(),
        method=resolved,
        steps=steps,
        step_size=step_size,
        reduction=reduction,
        wall_time=time.perf_counter() - t0,
        final_state=state,
        settings=settings,
    )


def max_stable_step_size(model: WideNet, X: Any, reduction: str = "mean") -> float:
    r"""δ_max = 2N/λ_max(K_0): the largest step size for which GD linearized at initialization is stable.

    To first order one GD step moves the training residual by e ← e − (δ/N) K_0 e (spec §1.7), so the
    linearized dynamics converge iff δ·λ_max(K_0)/N < 2 (neural-tangents' ``max_learning_rate`` does the
    same). K_0 is the tangent kernel of every trained parameter at initialization, in GD-step units:

    - W (always): K_ab = (1/m) Σ_i c_i² σ'(h_ia) σ'(h_ib) G_ab, :func:`wideflow.kernels.tangent_kernel`;
    - c (``train_c``): s_o²·(lr factor of c)·Σ_i σ(h_ia) σ(h_ib) = (1/m) Σ_i σ(h_ia) σ(h_ib);
    - b (``bias``): s_o²·(lr factor of b)·Σ_i c_i² σ'(h_ia) σ'(h_ib) = (1/m) Σ_i c_i² σ'(h_ia) σ'(h_ib).

    Returns ``inf`` when K_0 = 0 (e.g. every ReLU neuron inactive on the data).
    """
    if not isinstance(model, WideNet):
        raise InvalidType(f"model must be a wideflow WideNet; got {type(model).__name__}.")
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    Xt = model._input(X)
    N = float(Xt.shape[0]) if reduction == "mean" else 1.0
    H = model.features(Xt).T  # (m, n)
    K = tangent_kernel(H, model.c, model.activation, gram(model, Xt))
    neuron = model.s_o**2 * model.scaling.neuron_lr_factor(model.m)
    if model.train_c:
        S = model.activation(H)
        K = K + neuron * (S.T @ S)
    if model.bias:
        S = model.activation.deriv(H) * model.c[:, None]
        K = K + neuron * (S.T @ S)
    if not bool(torch.isfinite(K).all()):
        raise NonFiniteInput(
            "the tangent kernel K_0 has NaN or Inf entries: the embedding Φ(X) or the features h(X) of this model "
            "are not finite on X."
        )
    lam = float(torch.linalg.eigvalsh(K.double())[-1])
    return 2 * N / lam if lam > 0 else math.inf


class _LossWatch:
    """The training loss of every GD step, kept on the engine's device (no host synchronization per step)
    in a ring of ``period`` slots (at least the steps between two checks) and checked at logging steps."""

    def __init__(self, period: int, N: float, start: int, like: torch.Tensor) -> None:
        self.period = period
        self.N = N
        self.checked = start
        self.sq = torch.zeros(period, dtype=like.dtype, device=like.device)
        self._slots = self.sq.unbind()  # views made once: indexing each step would cost as much as the dot

    def __call__(self, k: int, e: torch.Tensor) -> None:
        torch.dot(e, e, out=self._slots[k % self.period])

    def first_bad(self, k: int, limit: float) -> tuple[int, float] | None:
        """The first step in (last check, k] (or k itself at the start) whose loss is non-finite or > limit."""
        steps = torch.arange(min(self.checked + 1, k), k + 1)
        self.checked = k
        losses = (0.5 / self.N) * self.sq[(steps % self.period).to(self.sq.device)].double()
        bad = ~torch.isfinite(losses) | (losses > limit)
        if not bool(bad.any()):
            return None
        i = int(bad.nonzero()[0, 0])
        return int(steps[i]), float(losses[i])


def _check_callbacks(callbacks: Any) -> list[Callable[[TrainState], dict[str, float]]]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, list | tuple):
        raise InvalidType(
            f"callbacks must be a list of functions of the TrainState; got {type(callbacks).__name__} "
            f"(wrap a single function in a list: callbacks=[fn])."
        )
    for i, cb in enumerate(callbacks):
        if not callable(cb):
            raise InvalidType(f"callbacks[{i}] must be callable (TrainState -> dict); got {type(cb).__name__} {cb!r}.")
    return list(callbacks)


def _callback_columns(i: int, cb: Callable[[TrainState], Any], state: TrainState) -> dict[str, float]:
    out = cb(state)
    if not isinstance(out, dict):
        name = getattr(cb, "__name__", type(cb).__name__)
        raise InvalidType(
            f"callback callbacks[{i}] ({name}) returned {type(out).__name__} {out!r}; expected a dict of history "
            "columns, e.g. {'norm_W': 1.5}."
        )
    return out


def _check_checkpointing(checkpoint: Any, checkpoint_every: Any, resume: Any, steps: int, log_every: int) -> int:
    """Validate the checkpoint arguments; return the checkpoint period (a multiple of ``log_every``)."""
    for name, path in (("checkpoint", checkpoint), ("resume", resume)):
        if path is not None and not isinstance(path, str | os.PathLike):
            raise InvalidType(f"{name} must be a path (str or os.PathLike); got {type(path).__name__} {path!r}.")
        if path is not None and Path(path).is_dir():
            raise InvalidArgument(f"{name}={str(path)!r} is a folder; expected the path of a checkpoint file in it.")
    if checkpoint_every is None:
        return log_every * max(1, steps // (10 * log_every))
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    if checkpoint is None:
        raise InvalidArgument(f"checkpoint_every={checkpoint_every} was given without checkpoint=PATH.")
    if checkpoint_every % log_every:
        raise InvalidArgument(
            f"checkpoint_every={checkpoint_every} must be a multiple of log_every={log_every}: checkpoints "
            "are written at logging steps so that a resumed history is identical."
        )
    return checkpoint_every


def _fingerprint(*tensors: torch.Tensor | None) -> str:
    """SHA-256 of the data, so that a checkpoint is only resumed on the data it was written for."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(b"-" if t is None else t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _copy_state(state: TrainState) -> TrainState:
    def cp(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.clone()

    return TrainState(state.step, state.time, state.train_loss, state.test_error, cp(state.f), cp(state.H),
                      cp(state.f_test), cp(state.H_test), cp(state.c), cp(state.b))


def _diverged(bad: tuple[int, float], state: TrainState, last: TrainState | None, engine: _Engine, model: WideNet,
              reduction: str, rows: list[dict[str, float]], reference: float, factor: float) -> TrainingDiverged:
    step, loss = bad
    what = "became non-finite" if not math.isfinite(loss) else (
        f"exceeded {factor:g} times max(L_0, L of the zero predictor) = {reference:.3e}")
    try:
        max_step = max_stable_step_size(model, engine.X, reduction)
        advice = (f"step_size={engine.delta:g}, but GD linearized at initialization is stable only for "
                  f"step_size < {max_step:.4g} (= 2N/λ_max(K_0)); lower the step size.")
    except NonFiniteInput as exc:
        max_step = math.nan
        advice = f"The model is not finite at initialization: {exc}"
    return TrainingDiverged(
        f"training diverged: the loss {what} at step {step} (loss {loss:.3e}; detected at step {state.step}). "
        + advice,
        step=step,
        last_finite_state=last,
        max_stable_step_size=max_step,
        history=pd.DataFrame(rows),
    )


def _progress(progress: bool | None, steps: int, start: int) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=start, desc="GD", unit="step", dynamic_ncols=True)


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _save_checkpoint(path: str | os.PathLike, engine: _Engine, settings: dict, step: int,
                     rows: list[dict[str, float]]) -> None:
    state = {
        "format": _CHECKPOINT_FORMAT,
        "wideflow_version": __version__,
        "settings": settings,
        "step": step,
        "engine": {k: None if v is None else v.detach().cpu().clone() for k, v in engine.state_dict().items()},
        "history": list(rows),
        "rng": _rng_states(),
    }
    atomic_torch_save(state, path)


def _load_checkpoint(path: str | os.PathLike, engine: _Engine, settings: dict) -> tuple[int, list[dict[str, float]]]:
    state = read_torch_file(
        path, "a wideflow training checkpoint written by train(..., checkpoint=PATH)", version=_CHECKPOINT_FORMAT,
        keys={"format", "settings", "step", "engine", "history", "rng"},
        hint="saved models are read with wf.load instead.",
    )
    saved = state["settings"]
    if saved != settings:
        diff = sorted(k for k in settings if saved.get(k) != settings[k])
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, this run {settings[k]!r}" for k in diff
                           if k not in ("data", "model"))
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by a different run (settings differ in {diff}{': ' + detail if detail else ''}); "
            "resume with the same model, data and training arguments, or start afresh without resume."
        )
    current = engine.state_dict()
    restored = state["engine"]
    if set(restored) != set(current) or any(
        (restored[k] is None) != (current[k] is None)
        or (current[k] is not None and restored[k].shape != current[k].shape)
        for k in current
    ):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its engine state does not match this run.")
    device = engine.H.device
    engine.load_state_dict({k: None if v is None else v.to(device) for k, v in restored.items()})
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), list(state["history"])
