r"""The kernel-space GD engine: the one place where a kernel-space step is written (docs/theory.md §8).

Every GD step (9) adds to each row W_i a combination of the training embeddings, so W_t = W_0 + B_t Φ and the
state of a run is H = s_h W Φᵀ (m × n) with the coefficients B (m × n). With Ã = c ⊙ σ′(H) and e = f − y:

    B ← B + coef_B · Ã diag(e),     H ← H + Ã (coef_H · diag(e) G),     coef_H = coef_B · s_h D = −δγ/N,

one product of cost 2 m n² per step and memory O(m (n + n_test)), whatever D is. Test features are
H_test = H_test,0 + s_h D B G(X, X_test), formed at logging steps only, and W is formed only when someone reads
``result.model.W``. R runs of equal shapes share one program on a leading batch axis (``torch.baddbmm``), each
with its own constants; :func:`wideflow.train` is R = 1, batched sweeps R > 1, and the gradient flow integrates
the same field, :meth:`KernelEngine.velocity`.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable

import torch

from ..errors import KernelEngineUnavailable
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
        # the engine takes the problem's tensors over (no second copy of size m×n): H_0 becomes its state
        self._G = pad(problem.G, n_pad, n_pad)
        self.G = problem.G = self._G[:, : self.n, : self.n]
        self._G_e = torch.empty_like(self._G)
        self._H = pad(problem.H0, n_pad)
        problem.H0 = None
        self._B = torch.zeros_like(self._H)
        self.H_test0 = problem.H_test0
        self._G_test = None  # s_h D G(X, X_test), rows padded to n_pad
        if problem.G_test is not None:
            scale = torch.tensor([m.s_h * m.D for m in problem.models], dtype=self.dtype, device=self.device)
            G_test = pad(problem.G_test.transpose(1, 2), problem.n_test, n_pad).transpose(1, 2)
            self._G_test = torch.mul(G_test, scale[:, None, None])
            problem.G_test = None
        self._coef_H_col = self.coef_H[:, :, None]
        self.fused = False

    @property
    def B(self) -> torch.Tensor:
        """The coefficients B (R, m, n) with W_t = W_0 + B_t Φ."""
        return self._B[:, :, : self.n]

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
        torch.sub(self._f, self._y, out=self._e)  # its padding is 0: the padding of H and y is
        return self.f, self.e

    def step(self, e: torch.Tensor) -> None:
        """One GD step (9) of every run, in kernel space (the module docstring)."""
        e = self.padded_residual(e)
        e_B = self.coef_B * e
        if self.fused:
            _, slope_fn = fused_relu_ops()  # type: ignore[misc]
            slope_fn(self._H, self.c, e_B, self._A, self._B)
            A = self._A
        else:
            A = self.slope()
            self._B.addcmul_(A, e_B[:, None, :])
        self._H.baddbmm_(A, torch.mul(self._G, (self.coef_H * e)[:, :, None], out=self._G_e))

    def velocity(self, H0: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        """The gradient-flow field dZ/dt = (coef_H/δ) Ã(H) diag(e(H)) at H = H_0 + Z G, Z = s_h D B in the units
        of H (eq. (11) on the training set); the engine's state is set to H on the way."""
        self.H.copy_(torch.baddbmm(H0, Z, self.G))
        _, e = self.residual()
        scale = torch.tensor([c / d for c, d in zip(self.problem.coef_H, self.delta, strict=True)],
                             dtype=self.dtype, device=self.device)
        return self.slope(self.H, torch.empty_like(Z)).mul_((scale[:, None] * e)[:, None, :])

    def set_flow_state(self, H0: torch.Tensor, Z: torch.Tensor) -> None:
        """Put the engine at the flow's state Z: H = H_0 + Z G and B = Z/(s_h D)."""
        self.H.copy_(torch.baddbmm(H0, Z, self.G))
        scale = torch.tensor([m.s_h * m.D for m in self.problem.models], dtype=self.dtype, device=self.device)
        self.B.copy_(Z / scale[:, None, None])

    def test_features(self) -> torch.Tensor:
        """H_test = H_test,0 + s_h D B G(X, X_test), shape (R, m, n_test)."""
        assert self.H_test0 is not None and self._G_test is not None
        return torch.baddbmm(self.H_test0, self._B, self._G_test)

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"H": self._H, "B": self._B}

    def finish(self) -> list[WideNet]:
        """The trained models: copies of the initial ones whose W_t = W_0 + B_t Φ is formed on first read."""
        return [_trained(model, self.B[r].clone(), X, self.block)
                for r, (model, X) in enumerate(zip(self.problem.models, self.problem.X, strict=True))]


class LazyWeights:
    """W_t = W_0 + B Φ(X), formed over column blocks of Φ when called (docs/theory.md §8)."""

    def __init__(self, W0: torch.Tensor, B: torch.Tensor, X: torch.Tensor, model: WideNet, block: int) -> None:
        self.W0, self.B, self.X, self.embedding, self.block = W0, B, X, model.embedding, block

    def __call__(self) -> torch.Tensor:
        W = self.W0.clone()
        col = 0
        for P in self.embedding.column_blocks(self.X, self.block):
            W[:, col : col + P.shape[1]].addmm_(self.B, P)
            col += P.shape[1]
        return W


def _trained(model: WideNet, B: torch.Tensor, X: torch.Tensor, block: int) -> WideNet:
    W0 = model.W
    # a copy of the model that shares W_0 instead of copying it: its W is replaced by the lazy W_t, so a copy
    # would only cost O(m D) memory for nothing
    trained = copy.deepcopy(model, {id(W0): W0})
    trained.set_lazy_W(LazyWeights(W0, B, X, model, block))
    return trained


def _relu_readout(H: torch.Tensor, c_out: torch.Tensor, half: int) -> torch.Tensor:
    """f = Σ_i (s_o c_i) relu(H_i·) in one pass over H (R, m, n); pairwise when ``half``."""
    S = torch.relu(H)
    if half:
        return ((S[:, :half] - S[:, half:]) * c_out[:, :half, None]).sum(1)
    return (S * c_out[:, :, None]).sum(1)


def _relu_slope(H: torch.Tensor, c: torch.Tensor, e_B: torch.Tensor, A: torch.Tensor, B: torch.Tensor) -> None:
    """Ã = c ⊙ 1[H > 0] into A and B ← B + Ã diag(e_B) in one pass over H and B."""
    A.copy_((H > 0).to(H.dtype) * c[:, :, None])
    B.add_(A * e_B[:, None, :])


@functools.cache
def fused_relu_ops() -> tuple[Callable, Callable] | None:
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
                  "element-wise work unfused (the same numbers, a little slower).", RuntimeWarning, stacklevel=3)
