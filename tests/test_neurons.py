"""Counter-based draws of the neurons' parameters (wideflow.neurons): any block of rows and columns of W_0 drawn
alone is exactly that block of the whole W_0, so the kernel engine forms H_0 = W_0 Φᵀ/√D one column block at a
time, never holding W_0 whole."""

from __future__ import annotations

import pytest
import torch

import wideflow as wf
from wideflow.errors import InvalidArgument
from wideflow.neurons import CHUNK, COLUMNS, draw_weights

D = 2 * COLUMNS + 100  # three column blocks, the last one partial


@pytest.mark.parametrize("rows,cols", [
    ((0, 48), (0, D)), ((16, 32), (0, D)), ((0, 48), (COLUMNS, 2 * COLUMNS)),
    ((16, 48), (1000, COLUMNS + 7)), ((32, 48), (2 * COLUMNS + 3, D)), ((0, 16), (5, 5)),
])
def test_a_block_of_w_drawn_alone_is_that_block_of_the_whole(rows, cols) -> None:
    whole = draw_weights(7, 48, D)
    block = draw_weights(7, 48, D, *rows, col_lo=cols[0], col_hi=cols[1])
    assert torch.equal(block, whole[rows[0] : rows[1], cols[0] : cols[1]])


def test_column_blocks_are_independent_standard_normals() -> None:
    """Each column block has its own generator: blocks must not repeat one another, and the entries must be
    N(0, 1) (over 48·4196 ≈ 2·10^5 draws the sample mean has standard error 2.2e-3 and the variance 3.1e-3;
    the bounds are five standard errors)."""
    W = draw_weights(7, 48, D)
    assert not torch.equal(W[:, :100], W[:, COLUMNS : COLUMNS + 100])
    assert abs(float(W.mean())) < 5 * 2.2e-3 and abs(float(W.var()) - 1) < 5 * 3.1e-3


def test_bad_column_ranges_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"column range \[10, 5\)"):
        draw_weights(0, CHUNK, 100, col_lo=10, col_hi=5)
    with pytest.raises(InvalidArgument, match=r"column range \[0, 101\)"):
        draw_weights(0, CHUNK, 100, col_hi=101)


@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
def test_features_from_the_drawn_blocks_equal_those_of_the_formed_w(scaling) -> None:
    """The kernel engine's path (W_0 drawn per column block) and the path through the formed W agree to the
    order of the sums: the same products, accumulated per block of 2048 columns in both, so 1e-12 relative."""
    X, _ = wf.data.axis_xor(9, 6, seed=0)
    lazy = wf.P3L(6, 48, D=D, scaling=scaling, seed=3)
    formed = wf.P3L(6, 48, D=D, scaling=scaling, seed=3)
    formed.W  # noqa: B018 - reading W forms it
    assert lazy.initial_weights is not None and formed.initial_weights is None
    a, b = lazy.features_block(X.double()), formed.features_block(X.double())
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))
