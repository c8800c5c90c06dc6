r"""The weight-space GD engine, beside the kernel engine with the same interface (eqs. (8)-(9)).

The gradient in closed form, ∇_W L = (s_o s_h/N) A Φ with A = (c eᵀ) ⊙ σ′(H) = Ã diag(e); per step

    W ← W + coef_W · Ã (diag(e) s_h Φ),     H = W (s_h Φ)ᵀ (+ b),     coef_W = −η s_o/N,

two products of cost 2 m n D, with s_h folded into the stored embeddings. It is the cheaper engine when
D < n/2 (:mod:`wideflow.engines.cost`), and the one that also trains c and biases b (beyond the paper) with
the per-neuron learning-rate factor of :meth:`wideflow.scalings.Scaling.neuron_lr_factor`. One run at a time.
"""

from __future__ import annotations

import copy

import torch

from ..errors import InvalidArgument
from ..model import WideNet
from .base import Engine, pad
from .problem import Problem

__all__ = ["WeightsEngine"]


class WeightsEngine(Engine):
    """Weight-space GD of one run (R = 1): state W (m, D), and c, b when the model trains them."""

    name = "weights"

    def __init__(self, problem: Problem) -> None:
        if problem.R != 1:
            raise InvalidArgument(f"the weights engine runs one problem at a time; got a batch of R={problem.R}.")
        super().__init__(problem)
        model = self.model = problem.models[0]
        X, X_test = problem.X[0], problem.X_test[0]
        self.Phi = pad(model.embedding(X).mul(model.s_h).T, self.n_pad).T.contiguous()  # s_h Φ, (n_pad, D)
        self.Phi_test = None if X_test is None else model.embedding(X_test).mul(model.s_h)
        self._Phi_e = torch.empty_like(self.Phi)
        lr = problem.step_sizes[0] * model.scaling.lr_factor(model.m, model.D)
        self.coef_W = -lr * model.s_o / problem.N[0]  # the s_h of the gradient is in self.Phi
        self.lr_neuron = problem.step_sizes[0] * model.scaling.neuron_lr_factor(model.m)
        # a symmetrized model's two halves of W live in separate (aligned) tensors, so that the two halves of
        # every product see operands of the same shape and alignment: equal rows give bitwise equal features
        half = self.m // 2 if model.paired else self.m
        self.W_blocks = [model.W[:half].clone()] + ([model.W[half:].clone()] if model.paired else [])
        self._rows = [slice(0, half)] + ([slice(half, self.m)] if model.paired else [])
        self.b = None if model.b is None else model.b.clone()
        self._H = torch.empty_like(self._A)
        self._features(self.Phi, self._H[0])
        self._e_col = self._e[0, :, None]

    @property
    def W(self) -> torch.Tensor:
        """The current weights W (m, D) (a new tensor for a symmetrized model)."""
        return self.W_blocks[0] if len(self.W_blocks) == 1 else torch.cat(self.W_blocks)

    def _features(self, Phi: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """H = W (s_h Φ)ᵀ (+ b) into ``out`` (m, k); a symmetrized model's halves by equal-shape products
        (bitwise equal features for equal rows of W, as :func:`~wideflow.readout.halfwise_matmul`)."""
        for W, rows in zip(self.W_blocks, self._rows, strict=True):
            torch.mm(W, Phi.T, out=out[rows])
        return out if self.b is None else out.add_(self.b[:, None])

    def test_features(self) -> torch.Tensor:
        assert self.Phi_test is not None
        out = torch.empty(self.m, self.Phi_test.shape[0], dtype=self.dtype, device=self.device)
        return self._features(self.Phi_test, out)[None]

    def step(self, e: torch.Tensor) -> None:
        """One GD step (9) on W (and on c, b when trained), all from the pre-step features."""
        e = self.padded_residual(e)
        A = self.slope()[0]
        e0 = e[0]
        if self.b is not None:
            self.b.sub_(self.lr_neuron * self.model.s_o / self.problem.N[0] * (A @ e0))
        if self.model.train_c:
            self.c[0].sub_(self.lr_neuron * self.model.s_o / self.problem.N[0] * (self.act(self._H[0]) @ e0))
        Phi_e = torch.mul(self.Phi, self._e_col, out=self._Phi_e)
        for W, rows in zip(self.W_blocks, self._rows, strict=True):
            W.addmm_(A[rows], Phi_e, alpha=self.coef_W)
        self._features(self.Phi, self._H[0])

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        blocks = {f"W{k}": W for k, W in enumerate(self.W_blocks)}
        return {**blocks, "c": self.c, "b": self.b, "H": self._H}

    def finish(self) -> list[WideNet]:
        W0 = self.model.W
        model = copy.deepcopy(self.model, {id(W0): W0})  # shares W_0, which is replaced right away
        model.W, model.c = self.W.clone(), self.c[0].clone()
        model.b = None if self.b is None else self.b.clone()
        return [model]
