r"""The three width scalings of Table 1 (docs/theory.md §6), side by side.

All three share the model f(x) = s_o Σ_i c_i σ(h_i(x)), h_i(x) = s_h Σ_j W_ij φ_j(x), the laws
c_i = ±ĉ (Rademacher), W_ij ~ N(0, 1), and GD on W with raw learning rate η = δ·(lr factor):

==========  ==============  ==============  ======================  ====================  ===========
scaling     output s_o      hidden s_h      GD on W                  init                  γ
==========  ==============  ==============  ======================  ====================  ===========
``ours``    1/m             1/√D            W ← W − δ·m·∇_W L        plain                 1
``ntk``     1/√m            1/√D            W ← W − δ·∇_W L          symmetrized, f_0 ≡ 0  1/√m
``mf``      1/m             1/D             W ← W − δ·m·D·∇_W L      plain                 1
==========  ==============  ==============  ======================  ====================  ===========

"ours" is eqs. (2)-(3) with the GD rule (9); "ntk" replaces 1/m by 1/√m in (4); "mf" replaces 1/√D by 1/D
in (5). ``mf_lr_sqrtD`` and ``mf_lr_m`` are the MF model with the learning-rate factors m·√D and m, the
other readings of Table 1's lost column (docs/reproductions.md). With the factor m·D, MF is exactly "ours"
started from W_0/√D: with W' = W/√D, h_i = s_h^ours Σ_j W'_ij φ_j and one MF step on W is one "ours" step on
W'. Each learning-rate factor is the one that makes the tangent kernel of the trained layer,
K_ab = (1/m) Σ_i c_i² σ'(h_i(x_a)) σ'(h_i(x_b)) G_ab, of order one in every scaling; with it the features
move by ΔH = −(δγ/N) [c ⊙ σ'(H) ⊙ e] G per step (docs/theory.md §8), and one GD step is GF time δ.

The NTK symmetrization (Chizat, Oyallon & Bach): m is even, neurons m/2+1..m copy the rows of W of
neurons 1..m/2 and negate their c, so f_0 ≡ 0 exactly; the pairs separate during training because
their gradients have opposite signs.

Beyond the paper (off by default): if c or biases b_i (h_i = s_h W_iΦ + b_i) are trained, they use the
per-neuron factor m (ours, mf) or 1 (ntk), which moves them by O(1) in the feature-learning scalings.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import check_choice

__all__ = ["Scaling", "get_scaling", "SCALINGS"]


@dataclass(frozen=True)
class Scaling:
    """One row of Table 1: multipliers, learning-rate factor and initialization of a scaling."""

    name: str
    output_power: float  # s_o = m^(-output_power)
    hidden_power: float  # s_h = D^(-hidden_power)
    symmetrize: bool
    lr_m_power: float  # η/δ = m^lr_m_power · D^lr_D_power
    lr_D_power: float

    def s_o(self, m: int) -> float:
        """Output multiplier: 1/m (ours, mf) or 1/√m (ntk)."""
        return m ** (-self.output_power)

    def s_h(self, D: int) -> float:
        """Hidden multiplier: 1/√D (ours, ntk) or 1/D (mf)."""
        return D ** (-self.hidden_power)

    def lr_factor(self, m: int, D: int) -> float:
        """Raw learning rate on W per unit step size δ: m (ours), 1 (ntk), m·D (mf)."""
        return float(m ** self.lr_m_power * D ** self.lr_D_power)

    def neuron_lr_factor(self, m: int) -> float:
        """Learning-rate factor of per-neuron parameters (c, b) when they are trained (beyond the paper)."""
        return 1.0 if self.name == "ntk" else float(m)

    def gamma(self, m: int, D: int) -> float:
        """The prefactor γ = η s_o s_h² D / δ of the kernel-space update (docs/theory.md §8): 1, 1/√m or 1."""
        # by the exponents, so that it holds at D = ∞ too (the powers of D cancel in every row of Table 1)
        return float(m ** (self.lr_m_power - self.output_power) * D ** (self.lr_D_power + 1 - 2 * self.hidden_power))


SCALINGS: dict[str, Scaling] = {
    "ours": Scaling("ours", 1.0, 0.5, False, 1, 0),
    "ntk": Scaling("ntk", 0.5, 0.5, True, 0, 0),
    "mf": Scaling("mf", 1.0, 1.0, False, 1, 1),
    # Other readings of MF's learning-rate factor (Table 1's column is not in the paper's text): same model
    # as "mf", learning rate m·√D (γ = D^(-1/2)) or m as in eq. (9) (γ = 1/D). Used by the sensitivity study.
    "mf_lr_sqrtD": Scaling("mf_lr_sqrtD", 1.0, 1.0, False, 1, 0.5),
    "mf_lr_m": Scaling("mf_lr_m", 1.0, 1.0, False, 1, 0),
}


def get_scaling(scaling: str | Scaling) -> Scaling:
    """Return the :class:`Scaling` named ``scaling`` ("ours", "ntk" or "mf")."""
    if isinstance(scaling, Scaling):
        return scaling
    return SCALINGS[check_choice("scaling", scaling, SCALINGS)]
