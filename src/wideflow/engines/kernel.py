r"""The kernel-space GD engine: the one place where a kernel-space step is written (docs/theory.md §8).

Every GD step (9) adds to each row W_i a combination of the training embeddings, so W_t = W_0 + B_t Φ, and the
state of a run is H = s_h W Φᵀ (m × n) with Z = s_h D B (m × n), the coefficients in the units of H. With
Ã = c ⊙ σ′(H), e the residual (f − y for the squared loss) and coef_H = −δγ/N:

    Z ← Z + coef_H · Ã diag(e),     H ← H + Ã (coef_H · diag(e) G),

one product of cost 2 m n² per step and memory O(m (n + n_test)), whatever D is, D = ∞ included (G is then the
limit Ḡ). Test features are H_test = H_test,0 + Z G(X, X_test), formed at logging steps only, and W is formed
only when someone reads ``result.model.W``. R runs of equal shapes share one program on a leading batch axis
(``torch.baddbmm``), each with its own constants; :func:`wideflow.train` is R = 1, batched sweeps R > 1, and
the gradient flow integrates the field of the same step, :meth:`KernelEngine.velocity` (dZ/dt).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable

import torch

from ..errors import InvalidArgument, KernelEngineUnavailable
from ..infinite import TrainedShift
from ..model import WideNet
from .base import Engine, pad
from .problem import BLOCK, Problem

__all__ = ["KernelEngine", "FUSE_MIN_WORK"]

#: steps·m·n of a run from which fusing its element-wise work pays for compiling it (:meth:`KernelEngine.plan`)
FUSE_MIN_WORK = 2e10


class KernelEngine(Engine):
    """Kernel-space GD of R runs: state (H, B) of shape (R, m, n), W_t = W_0 + B_t Φ never formed in training."""

    name = "kernel"
    block = BLOCK
    neuron_major_capable = True

    def __init__(self, problem: Problem) -> None:
        for model in problem.models:
            if model.train_c or model.bias:
                raise KernelEngineUnavailable(
                    f"method='kernel' cannot train {model!r} with train_c or bias: the kernel-space engine "
                    "(docs/theory.md §8) only moves W. Use method='weights' (or 'auto', which falls back to it)."
                )
        if problem.G is None or problem.H0 is None:
            raise KernelEngineUnavailable("the kernel engine needs a problem prepared with space='kernel'.")
        super().__init__(problem)
        n_pad = self.n_pad
        # the engine takes the problem's tensors over: H_0 is copied into the neuron-major state and released
        self._G = pad(problem.G, n_pad, n_pad)
        self.G = problem.G = self._G[:, : self.n, : self.n]
        self._G_e = torch.empty_like(self._G)
        self._H = self.buffer(self.R, self.m, n_pad)
        self._H[:, :, : self.n] = problem.H0
        self._H[:, :, self.n :] = 0
        problem.H0 = None
        self._Z = torch.zeros_like(self._H)  # the same strides as H
        self.H_test0 = problem.H_test0
        self._G_test = None  # G(X, X_test), rows padded to n_pad
        if problem.G_test is not None:
            self._G_test = pad(problem.G_test.transpose(1, 2), problem.n_test, n_pad).transpose(1, 2).contiguous()
            problem.G_test = None
        self.fused = False

    @property
    def Z(self) -> torch.Tensor:
        """The coefficients Z = s_h D B (R, m, n) in the units of H: W_t = W_0 + B_t Φ, H_t = H_0 + Z_t G."""
        return self._Z[:, :, : self.n]

    def plan(self, steps: int) -> None:
        """Fuse the element-wise work of long ReLU runs on the CPU (:func:`fused_relu_ops`).

        Fusing reads and writes the m×n data 5 times per step instead of 10 (benchmarks/RESULTS.md has the
        gain); compiling costs seconds, so it is used once the run's element work steps·m·n reaches
        :data:`FUSE_MIN_WORK`, and only when every run of the batch reads out the same way. It only ever
        switches fusion on, so a resumed or re-planned run keeps it.
        """
        if (not self.fused and self.act.step_derivative and self.device.type == "cpu"
                and self.n_plain in (0, self.R) and steps * self.R * self.m * self.n >= FUSE_MIN_WORK
                and fused_relu_ops() is not None):
            self.fused = True
            self._c_out = self.c * self.s_o

    def residual(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.fused:
            return super().residual()
        readout_fn, _ = fused_relu_ops()  # type: ignore[misc]
        half = self.m // 2 if self.n_plain == 0 else 0
        try:
            f = readout_fn(self._H, self._c_out, half)
        except Exception as exc:  # a compiler that fails on this machine: warn once, go on unfused
            _fusion_failed(exc)
            self.fused = False
            return super().residual()
        self._f.copy_(self.reduce_outputs(f))
        self.loss_derivative()
        return self.f, self.e

    def step(self, e: torch.Tensor) -> None:
        """One GD step (9) of every run, in kernel space (the module docstring)."""
        e = self.padded_residual(e)
        ce = self.coef_H * e
        if self.fused:
            _, slope_fn = fused_relu_ops()  # type: ignore[misc]
            slope_fn(self._H, self.c, ce, self._A, self._Z)
            A = self._A
        else:
            A = self.slope()
            self._Z.addcmul_(A, ce[:, None, :])
        self._H.baddbmm_(A, torch.mul(self._G, ce[:, :, None], out=self._G_e))

    def velocity(self, H0: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        """The gradient-flow field dZ/dt = (coef_H/δ) Ã(H) diag(e(H)) at H = H_0 + Z G (eq. (11) on the training
        set): the step's own readout, residual and slope; the engine's state is set to (H, Z) on the way."""
        self.set_flow_state(H0, Z)
        _, e = self.residual()
        rate = torch.tensor([c / d for c, d in zip(self.problem.coef_H, self.delta, strict=True)],
                            dtype=self.dtype, device=self.device)
        return self.slope(self.H, torch.empty_like(Z)).mul_((rate[:, None] * e)[:, None, :])

    def set_flow_state(self, H0: torch.Tensor, Z: torch.Tensor) -> None:
        """Put the engine at the flow's state Z: H = H_0 + Z G."""
        self.H.copy_(torch.baddbmm(H0, Z, self.G))
        self.Z.copy_(Z)

    def test_features(self) -> torch.Tensor:
        """H_test = H_test,0 + Z G(X, X_test), shape (R, m, n_test)."""
        assert self.H_test0 is not None and self._G_test is not None
        return torch.baddbmm(self.H_test0, self._Z, self._G_test)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"H": self._H, "Z": self._Z}

    def finish(self) -> list[WideNet]:
        """The trained models: copies of the initial ones with W_t = W_0 + B_t Φ formed on first read (at D = ∞:
        the features' shift Z Ḡ). They never refer to the initial model's tensors, so later edits of it do not
        change them."""
        if self.problem.neurons is not None:
            raise InvalidArgument("a sharded run holds a block of the neurons; wideflow.distributed returns it.")
        return [_trained(model, self.Z[r].clone(memory_format=torch.contiguous_format),
                         self.H[r].clone(memory_format=torch.contiguous_format), X, self.block)
                for r, (model, X) in enumerate(zip(self.problem.models, self.problem.X, strict=True))]


class LazyWeights:
    """W_t = W_0 + B Φ(X) with B = Z/(s_h D), formed over column blocks of Φ when called (docs/theory.md §8).
    ``W0`` is the recipe of the initial weights (drawn again from the seed) or a copy of them."""

    def __init__(self, W0: Callable[[], torch.Tensor] | torch.Tensor, Z: torch.Tensor, X: torch.Tensor,
                 model: WideNet, block: int) -> None:
        self.W0, self.B, self.X, self.embedding, self.block = W0, Z / (model.s_h * model.D), X, model.embedding, block

    def __call__(self) -> torch.Tensor:
        W = self.W0() if callable(self.W0) else self.W0.clone()
        col = 0
        for P in self.embedding.column_blocks(self.X, self.block):
            W[:, col : col + P.shape[1]].addmm_(self.B, P)
            col += P.shape[1]
        return W


def _trained(model: WideNet, Z: torch.Tensor, H: torch.Tensor, X: torch.Tensor, block: int) -> WideNet:
    if model.embedding.infinite:
        trained = copy.deepcopy(model)
        trained.trained = TrainedShift(X.clone(), Z, H)
        return trained
    # W_0 from the seed if the model never formed it, else a copy: the trained model owns all it refers to
    W0 = model.initial_weights or model.W.clone()
    memo = {} if model.initial_weights is not None else {id(model.W): None}
    trained = copy.deepcopy(model, memo)
    trained.set_lazy_W(LazyWeights(W0, Z, X.clone(), trained, block))
    return trained


def _relu_readout(H: torch.Tensor, c_out: torch.Tensor, half: int) -> torch.Tensor:
    """f = Σ_i (s_o c_i) relu(H_i·) in one pass over H (R, m, n); pairwise when ``half``."""
    S = torch.relu(H)
    if half:
        return ((S[:, :half] - S[:, half:]) * c_out[:, :half, None]).sum(1)
    return (S * c_out[:, :, None]).sum(1)


def _relu_slope(H: torch.Tensor, c: torch.Tensor, ce: torch.Tensor, A: torch.Tensor, Z: torch.Tensor) -> None:
    """Ã = c ⊙ 1[H > 0] into A and Z ← Z + Ã diag(ce) in one pass over H and Z."""
    A.copy_((H > 0).to(H.dtype) * c[:, :, None])
    Z.add_(A * ce[:, None, :])


@functools.cache
def fused_relu_ops() -> tuple[Callable, Callable] | None:
    """The element-wise part of a ReLU kernel step compiled by ``torch.compile`` into two loops: the readout
    (one read of H) and the slope with the B update (H and Z read, A and Z written). ``None`` where
    torch.compile is unavailable."""
    try:
        return torch.compile(_relu_readout), torch.compile(_relu_slope)
    except Exception as exc:  # an install without a working dynamo: stay unfused
        _fusion_failed(exc)
        return None


def _fusion_failed(exc: Exception) -> None:
    warnings.warn(f"wideflow: torch.compile failed ({type(exc).__name__}: {exc}); the kernel engine runs its "
                  "element-wise work unfused (the same numbers, a little slower).", RuntimeWarning, stacklevel=3)
