"""The readout f = s_o Σ_i c_i σ(h_i) of eq. (2), pairwise for the symmetrized NTK initialization (docs/theory.md §6).

Under the NTK scaling neuron i + m/2 starts as a copy of neuron i with c negated, so f_0 = 0 in exact
arithmetic. These two functions keep it exactly 0 in floating point: the two halves of the neuron axis are
computed by products of identical shape (so copies get bitwise identical features) and summed pairwise.
The model (:mod:`wideflow.model`), the training engines and the exported ``torch.nn`` module
(:mod:`wideflow.torch_modules`) all read out through them.
"""

from __future__ import annotations

import torch

__all__ = ["halfwise_matmul", "readout"]

_LINE = 64  # bytes: the alignment of every fresh CPU allocation (CUDA ones are aligned further)


def halfwise_matmul(A: torch.Tensor, B: torch.Tensor, paired: bool, *, dim: int) -> torch.Tensor:
    """A @ B; for a ``paired`` (symmetrized) model the two halves of the neuron axis ``dim`` of the product are
    computed by two matmuls of identical shape and memory alignment, so that neurons i and i + m/2 with
    identical weights get bitwise identical features (one matmul may round its edge tiles differently, and
    the BLAS kernels round differently for operands that start at different offsets from a 64-byte line)."""
    if not paired:
        return A @ B
    if dim == 0:
        half = A.shape[0] // 2
        first, second = _alike(A[:half], A[half:])
        return torch.cat([first @ B, second @ B], dim=0)
    half = B.shape[1] // 2
    first, second = _alike(B[:, :half], B[:, half:])
    return torch.cat([A @ first, A @ second], dim=1)


def _alike(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves, each copied to a fresh (aligned) buffer with the same strides if the two start at
    different offsets from a 64-byte line (the copy is one pass over the half, the product n passes)."""
    if (first.data_ptr() - second.data_ptr()) % _LINE == 0:
        return first, second
    return tuple(t if t.data_ptr() % _LINE == 0 else t.clone() for t in (first, second))  # type: ignore[return-value]


def readout(S: torch.Tensor, c: torch.Tensor, s_o: float, paired: bool) -> torch.Tensor:
    """f_a = s_o Σ_i c_i S_ia for activations S = σ(H) of shape (m, n), eq. (2).

    For a symmetrized model (``paired``: c_{i+m/2} = −c_i) the sum is taken pairwise,
    s_o Σ_{i ≤ m/2} c_i (S_ia − S_{i+m/2,a}), which is the same number in exact arithmetic and makes
    f_0 ≡ 0 hold exactly in floating point too (a plain dot product leaves rounding residue ~1e-16·m).
    """
    if paired:
        half = c.shape[0] // 2
        return s_o * (c[:half] @ (S[:half] - S[half:]))
    return s_o * (c @ S)
