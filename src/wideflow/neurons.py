r"""Counter-based random draws of the neurons' parameters: any block of neurons, drawn alone, is the same as
in the whole model (docs/theory.md §1).

Neurons are drawn in chunks of :data:`CHUNK`; chunk k has its own generator, seeded from (seed, stream, k)
by the SplitMix64 mixer, so the parameters of neurons lo..hi are computed without drawing the others. This is
what lets one model be split over processes (each draws its own block) and a D = ∞ model draw only the
features it needs. In chunk k, the signs of c (Assumption 1) are drawn from event 0 of its generator; the rows
of W ~ N(0, 1) (Assumption 3) in blocks of :data:`COLUMNS` columns, block b from event b + 1, so any block of
columns is drawn alone too and forming h = W Φᵀ/√D needs no D-sized memory. Under the NTK symmetrization
(Table 1) only the first m/2 neurons are drawn; neuron i + m/2 copies neuron i with c negated, so a block of
pairs holds rows lo..hi of both halves.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .errors import InvalidArgument

__all__ = ["CHUNK", "COLUMNS", "chunk_generators", "draw_signs", "draw_weights", "draw_normal", "drawn_neurons",
           "STREAM_PARAMETERS", "STREAM_FEATURES"]

#: neurons per chunk of the counter-based draws; a block of neurons must start and end at a multiple of it
CHUNK = 16
#: columns of W per generator: a block of columns of W is drawn without the others
COLUMNS = 2048
#: the stream of (c, W) and the stream of the Gaussian features of D = ∞ models
STREAM_PARAMETERS, STREAM_FEATURES = 0x5EED, 0x6A55

_MASK = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer, element-wise on uint64 (a bijection that scrambles nearby inputs)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK)
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK)
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK)
        return x ^ (x >> np.uint64(31))


def chunk_generators(seed: int, stream: int, first: int, last: int, *, event: int = 0) -> Iterator[torch.Generator]:
    """Generators of chunks ``first``..``last`` - 1 of ``stream`` (the same for any caller), ``event`` numbering
    independent draws of the same chunk."""
    base = _splitmix64(np.array([seed & _MASK], dtype=np.uint64))[0]
    base = _splitmix64(np.array([base ^ np.uint64(stream), ], dtype=np.uint64))[0]
    base = _splitmix64(np.array([base ^ np.uint64(event & _MASK)], dtype=np.uint64))[0]
    seeds = _splitmix64(np.arange(first, last, dtype=np.uint64) ^ base) >> np.uint64(1)  # torch takes < 2^63
    for s in seeds.tolist():
        yield torch.Generator().manual_seed(int(s))


def _check_block(lo: int, hi: int, n: int) -> None:
    if not (0 <= lo <= hi <= n) or lo % CHUNK or (hi % CHUNK and hi != n):
        raise InvalidArgument(
            f"the neuron block [{lo}, {hi}) must lie in [0, {n}) and start and end at multiples of CHUNK={CHUNK} "
            f"(or end at {n}); split the neurons of a model in blocks of whole chunks."
        )


def _chunks(seed: int, stream: int, count: int, lo: int, hi: int, *,
            event: int = 0) -> Iterator[tuple[int, int, torch.Generator]]:
    """(offset in the block, size, generator) of each chunk of the block lo..hi of ``count`` drawn neurons."""
    _check_block(lo, hi, count)
    first = lo // CHUNK
    for k, gen in enumerate(chunk_generators(seed, stream, first, -(-hi // CHUNK), event=event), start=first):
        yield k * CHUNK - lo, min(CHUNK, count - k * CHUNK), gen


def draw_signs(seed: int, count: int, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Signs ±1 (float64) of neurons lo..hi of ``count`` drawn neurons, Assumption 1."""
    hi = count if hi is None else hi
    parts = [torch.randint(0, 2, (size,), generator=gen).to(torch.float64) * 2 - 1
             for _, size, gen in _chunks(seed, STREAM_PARAMETERS, count, lo, hi)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def draw_weights(seed: int, count: int, D: int, lo: int = 0, hi: int | None = None, *, col_lo: int = 0,
                 col_hi: int | None = None) -> torch.Tensor:
    """Rows lo..hi, columns col_lo..col_hi (all by default) of W ~ N(0, 1) (float64, CPU) of ``count`` drawn
    neurons, Assumption 3. Column blocks of :data:`COLUMNS` are drawn whole: a range aligned to them draws
    nothing it does not return."""
    hi = count if hi is None else hi
    col_hi = D if col_hi is None else col_hi
    if not 0 <= col_lo <= col_hi <= D:
        raise InvalidArgument(f"the column range [{col_lo}, {col_hi}) must lie in [0, {D}].")
    W = torch.empty(hi - lo, col_hi - col_lo, dtype=torch.float64)
    for b in range(col_lo // COLUMNS, -(-col_hi // COLUMNS)):
        b_lo, b_hi = b * COLUMNS, min(D, (b + 1) * COLUMNS)
        a, z = max(b_lo, col_lo), min(b_hi, col_hi)
        for start, size, gen in _chunks(seed, STREAM_PARAMETERS, count, lo, hi, event=b + 1):
            block = torch.randn(size, b_hi - b_lo, generator=gen, dtype=torch.float64)
            W[start : start + size, a - col_lo : z - col_lo] = block[:, a - b_lo : z - b_lo]
    return W


def draw_normal(seed: int, event: int, count: int, k: int, lo: int = 0, hi: int | None = None) -> torch.Tensor:
    """Rows lo..hi of a (count, k) matrix of independent N(0, 1) numbers (float64, CPU), the ``event``-th draw
    of the feature stream: the noise of the Gaussian features of D = ∞ models."""
    hi = count if hi is None else hi
    Z = torch.empty(hi - lo, k, dtype=torch.float64)
    for start, size, gen in _chunks(seed, STREAM_FEATURES, count, lo, hi, event=event):
        torch.randn(size, k, generator=gen, dtype=torch.float64, out=Z[start : start + size])
    return Z


def drawn_neurons(m: int, symmetrize: bool) -> int:
    """How many neurons are drawn: m, or m/2 under the NTK symmetrization."""
    return m // 2 if symmetrize else m
