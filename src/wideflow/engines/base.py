r"""What both GD engines share: the readout, the residual and the slope c ⊙ σ′(H), over a batch of R runs.

An engine holds the features H (R, m, n) of the training set and moves them by one GD step (9) at a time.
Both engines compute, every step, f = s_o Σ_i c_i σ(H_i·) (eq. (2)), the residual e = ∂ℓ/∂f (e = f − y for the
squared loss (6); any loss of :mod:`wideflow.losses`) and Ã = c ⊙ σ′(H), so that the coefficient of the
gradient (8) is A = Ã diag(e) (docs/theory.md §8). Everything of size m×n that a step
needs lives in buffers allocated once here: the steady state allocates nothing of that size, and the same
code runs on any device.

The buffers have ``n_pad`` ≥ n columns, n rounded up to a multiple of 8: BLAS products whose inner dimension
is a multiple of the vector width run faster (benchmarks/RESULTS.md). The padding columns of H, B, G and of
the residual e are exactly zero and stay so, so they change no number; ``H``, ``f`` and ``e`` are the views
without them.

The neurons interact only through the readout, a sum over i: :meth:`Engine.reduce_outputs` is where partial
sums over a block of neurons would be combined across processes (identity on one process).
"""

from __future__ import annotations

from typing import Any

import torch

from ..losses import accuracy
from ..model import WideNet
from .problem import Problem

__all__ = ["Engine", "PAD", "pad"]

PAD = 8  # the buffers' column count is a multiple of this (the float32 AVX2 width)


def pad(t: torch.Tensor, *size: int) -> torch.Tensor:
    """``t`` in the leading corner of a zero tensor whose trailing dimensions are ``size`` (``t`` itself,
    contiguous, if it has that shape already)."""
    full = tuple(t.shape[: t.ndim - len(size)]) + size
    if tuple(t.shape) == full:
        return t.contiguous()
    out = t.new_zeros(full)
    out[tuple(slice(0, k) for k in t.shape)] = t
    return out


class Engine:
    """Base of the GD engines: R runs of equal shapes, stepped together.

    Subclasses set ``_H`` (R, m, n_pad) and implement :meth:`step`, :meth:`test_features`,
    :meth:`state_dict` and :meth:`finish`.
    """

    name = ""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.act = problem.activation
        self.R, self.m, self.n = problem.R, problem.m, problem.n
        self.n_pad = n_pad = -(-self.n // PAD) * PAD
        y = problem.y
        like = {"dtype": y.dtype, "device": y.device}
        self.dtype, self.device = y.dtype, y.device
        self.neuron_major = (self.neuron_major_capable and self.dtype == torch.float64
                             and self.device.type == "cpu")

        def per_run(values: list[float], *trailing: int) -> torch.Tensor:
            return torch.tensor(values, **like).reshape(self.R, *trailing)

        self.c = problem.c.to(**like)
        self.s_o = per_run([model.s_o for model in problem.models], 1)
        self.N = per_run(problem.N)
        self.delta = list(problem.step_sizes)
        self.coef_H = per_run(problem.coef_H, 1)
        self._y = pad(y, n_pad)
        self.y = self._y[:, : self.n]
        self.y_test = problem.y_test
        self.loss = problem.loss
        self._squared = problem.loss.name == "squared"  # the fast path: e = f − y
        paired = problem.paired
        self.n_plain = paired.count(False)
        R, m = self.R, self.m
        self._S = self.buffer(R, m, n_pad)  # σ(H)
        self._A = self.buffer(R, m, n_pad)  # c ⊙ σ′(H)
        self._S_half = self.buffer(R - self.n_plain, m // 2, n_pad)
        self._f = torch.zeros(R, n_pad, **like)
        self._e = torch.zeros(R, n_pad, **like)
        # views used every step, made once: on a small problem the cost of making a view is a visible part of
        # a step (benchmarks/RESULTS.md)
        self._c_row = self.c[:, None, :]
        self._c_col = self.c[:, :, None]
        self._f_row = self._f[:, None, :]
        self.f, self.e = self._f[:, : self.n], self._e[:, : self.n]
        self._e_pad = self._e[:, self.n :] if n_pad > self.n else None
        self._plain = slice(0, self.n_plain)
        self._pairs = slice(self.n_plain, R)

    _H: torch.Tensor
    #: whether the engine may store its (R, m, ·) state neuron-major (:meth:`buffer`)
    neuron_major_capable = False

    def buffer(self, R: int, m: int, k: int) -> torch.Tensor:
        """An uninitialized (R, m, k) buffer of the engine's dtype and device. When ``self.neuron_major`` its memory
        is that of an (R, k, m) tensor, so that the step's product (R, m, n) × (R, n, n) runs as
        (R, n, n) × (R, n, m) with the neuron index contiguous: on the CPU in float64 that is 1.0-1.7× faster
        at every measured shape (m = 512-65536, n = 32-512), in float32 0.55-1.0× (benchmarks/RESULTS.md), so it
        is used for float64 on the CPU only. Every operation reads the strides, so the numbers do not depend on
        the layout beyond the rounding of the product."""
        if self.neuron_major:
            return torch.empty(R, k, m, dtype=self.dtype, device=self.device).transpose(1, 2)
        return torch.empty(R, m, k, dtype=self.dtype, device=self.device)

    @property
    def H(self) -> torch.Tensor:
        """The features h_i(x_a) on the training set, (R, m, n) (a view of the engine's state)."""
        return self._H[:, :, : self.n]

    def reduce_outputs(self, f: torch.Tensor) -> torch.Tensor:
        """Combine partial outputs over blocks of neurons (in place); the identity on a single process."""
        return f

    def readout(self, S: torch.Tensor, out: torch.Tensor, S_half: torch.Tensor) -> torch.Tensor:
        """f = s_o Σ_i c_i S_i· for activations S (R, m, k) into ``out`` (R, k); a symmetrized run sums pairwise,
        s_o Σ_{i ≤ m/2} c_i (S_i − S_{i+m/2}), which makes f_0 = 0 exactly (docs/theory.md §6)."""
        p, half = self.n_plain, self.m // 2
        row = out[:, None, :]
        if p:
            torch.bmm(self._c_row[self._plain], S[self._plain], out=row[self._plain])
        if p < self.R:
            torch.sub(S[self._pairs, :half], S[self._pairs, half:], out=S_half)
            torch.bmm(self._c_row[self._pairs, :, :half], S_half, out=row[self._pairs])
        return self.reduce_outputs(out.mul_(self.s_o))

    def outputs(self, H: torch.Tensor) -> torch.Tensor:
        """f (R, k) for features H (R, m, k) of any inputs (allocates; used at logging steps)."""
        R, m, k = H.shape
        return self.readout(self.act(H), H.new_empty(R, k), H.new_empty(R - self.n_plain, m // 2, k))

    def residual(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(f, e = ∂ℓ/∂f) on the training set at the current H, (R, n) views of the engine's buffers; e = f − y
        for the squared loss."""
        S = torch.clamp_min(self._H, 0, out=self._S) if self.act.step_derivative else self.act(self._H)
        self.readout(S, self._f, self._S_half)
        self.loss_derivative()
        return self.f, self.e

    def loss_derivative(self) -> None:
        """e = ∂ℓ/∂f at the engine's outputs f, into the residual buffer (zero in its padding)."""
        if self._squared:
            torch.sub(self._f, self._y, out=self._e)
        else:
            self.loss.derivative(self._f, self._y, out=self._e)
        if self._e_pad is not None:
            # σ(0) ≠ 0 for some activations, and with biases the padding columns of H hold b: f there need
            # not vanish, but zero in e they enter no update
            self._e_pad.zero_()

    def padded_residual(self, e: torch.Tensor) -> torch.Tensor:
        """The residual as (R, n_pad) with zero padding (``e`` is normally the view :meth:`residual` returned)."""
        if e is not self.e:
            self.e.copy_(e)
        return self._e

    def slope(self, H: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
        """Ã = c ⊙ σ′(H) (R, m, ·), so that the coefficient of eq. (8) is A = Ã diag(e); by default for the
        current H into a step buffer.

        e is left out of Ã and folded into the n-sized factor of each product instead (Φ or G), which saves a
        pass over the m×n data every step.
        """
        if H is None:
            H, out = self._H, self._A
        if self.act.step_derivative:  # σ′ = 1[h > 0], written as float directly (a mask would need a temporary)
            return torch.gt(H, 0, out=out).mul_(self._c_col)
        return torch.mul(self.act.deriv(H), self._c_col, out=out)

    def active(self) -> list[bool]:
        """Per run, whether some trained parameter can still move: σ′(h_i(x_a)) ≠ 0 for some neuron i and training
        point a (the factor Ã of the W and b gradients, eq. (8)), or σ(h_i(x_a)) ≠ 0 for a run that trains c.
        Counted over this process's neurons and summed over blocks (:meth:`reduce_outputs`), so a sharded run
        asks about the whole layer; one pass over H, for the driver's logging steps."""
        H = self.H
        live = H > 0 if self.act.step_derivative else self.act.deriv(H) != 0
        count = live.sum(dim=(1, 2), dtype=self.dtype)
        trains_c = torch.tensor([model.train_c for model in self.problem.models], device=self.device)
        if bool(trains_c.any()):
            count += trains_c * (self.act(H) != 0).sum(dim=(1, 2), dtype=self.dtype)
        return (self.reduce_outputs(count[:, None])[:, 0] > 0).tolist()

    def losses(self, e: torch.Tensor, f: torch.Tensor | None = None) -> list[float]:
        """L = (1/N) Σ_a ℓ(f_a, y_a) of each run: (1/2N) Σ_a e_a² for the squared loss (eq. (6)), from the
        outputs ``f`` (default: the engine's current ones) for the others."""
        if self._squared:
            return (0.5 * (e * e).sum(dim=1) / self.N).tolist()
        return (self.loss.value(self.f if f is None else f, self.y).sum(dim=1) / self.N).tolist()

    def zero_losses(self) -> torch.Tensor:
        """L of the zero predictor f ≡ 0 for each run, float64 on the CPU (the divergence check's scale)."""
        if self._squared:
            return (0.5 * (self.y * self.y).sum(dim=1) / self.N).double().cpu()
        return (self.loss.value(torch.zeros_like(self.y), self.y).sum(dim=1) / self.N).double().cpu()

    def test_errors(self, f_test: torch.Tensor) -> list[float]:
        """The mean test loss of each run: ½ · mean over the test set of (f − y)² for the squared loss, the
        mean of ℓ(f, y) for the others."""
        assert self.y_test is not None
        if self._squared:
            return (0.5 * ((f_test - self.y_test) ** 2).mean(dim=1)).tolist()
        return self.loss.value(f_test, self.y_test).mean(dim=1).tolist()

    def accuracies(self, f: torch.Tensor, y: torch.Tensor) -> list[float]:
        """The fraction of points classified right (sign(f) = y, f > 0 predicts +1) of each run."""
        return accuracy(f, y).tolist()

    def plan(self, steps: int) -> None:
        """Called by the driver with the number of steps ahead (engines may prepare for it)."""

    def step(self, e: torch.Tensor) -> None:
        raise NotImplementedError

    def test_features(self) -> torch.Tensor:
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the tensors of :meth:`state_dict` (in place, so the step buffers' views stay valid)."""
        for key, value in state.items():
            current = self.state_dict()[key]
            if current is None or value is None:
                continue
            current.copy_(value)

    def finish(self) -> list[WideNet]:
        raise NotImplementedError
