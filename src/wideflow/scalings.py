r"""Width scalings: Table 1's three, and every abc-parameterization of Appendix C (docs/theory.md §6, §7).

All share the model f(x) = s_o Σ_i c_i σ(h_i(x)), h_i(x) = s_h Σ_j W_ij φ_j(x), with c_i = ±ĉ (Rademacher),
W_ij ~ N(0, σ_W²) and GD on W with raw learning rate η = δ·ρ. A :class:`Scaling` is a set of exponents:

=====================  ==================  =============================================================
quantity               formula             exponent (attribute)
=====================  ==================  =============================================================
output multiplier      s_o = m^(−α)        α = a_out + b_out (``output_power``)
hidden multiplier      s_h = D^(−a_W)      ``hidden_power``
initial std of W       σ_W = D^(−b_W)      ``init_power`` (0 in Table 1: W_ij ~ N(0, 1))
learning-rate factor   ρ = m^p · D^q       ``lr_m_power``, ``lr_D_power``
=====================  ==================  =============================================================

Table 1's rows (D = m in Experiment 3):

==========  ==============  ==============  ======================  ====================  ===========
scaling     output s_o      hidden s_h      GD on W                  init                  γ
==========  ==============  ==============  ======================  ====================  ===========
``ours``    1/m             1/√D            W ← W − δ·m·∇_W L        plain                 1
``ntk``     1/√m            1/√D            W ← W − δ·∇_W L          symmetrized, f_0 ≡ 0  1/√m
``mf``      1/m             1/D             W ← W − δ·m·D·∇_W L      plain                 1
==========  ==============  ==============  ======================  ====================  ===========

``mf_lr_sqrtD`` and ``mf_lr_m`` are the MF model with the learning-rate factors m·√D and m (the other readings of
Table 1's lost column, docs/reproductions.md). ``mup`` is μP (Appendix C: ours shifted by θ = −½), ``sp`` the
standard parameterization with learning rate 1/width. :func:`richness` is the one-parameter family between
ours (r = 0) and NTK (r = ½); :func:`abc_scaling` builds any other from Yang & Hu's exponents.

**Yang & Hu's exponents.** With one width n = m = D (Appendix C), layer l has multiplier n^(−a_l), initial
variance n^(−2b_l), and the trained layer W the learning rate n^(−c): :attr:`Scaling.abc`. The layers are the
fixed embedding, W and the output layer c; for the P-3L net ``abc`` has three entries, and
:meth:`Scaling.abc_layers` lists a depth-L net's (L − 2 fixed layers). Only a_out + b_out (= α) enters the
model, since c is not trained (c_i = ±ĉ, s_o = m^(−α)), and of a fixed layer only a_l + b_l (0 for the input
layer, ½ for the others: the embeddings of wideflow do not depend on the width). When D ≠ m the width of the
output layer is m and that of the other layers D, and the learning rate n^(−c) is split as m^(2α−1)·D^(−c−2α+1):
the m-part is the one that keeps the tangent kernel of order one in m, and the θ-symmetry holds at every D.

The feature-learning exponent :attr:`Scaling.r` and the :attr:`Scaling.regime` follow from the exponents by the
derivation of docs/theory.md §7: one unit of GD time moves the features by m^(−r) and the function by
m^(1−α−r); ``analysis`` returns every exponent with its reason.

The NTK symmetrization (Chizat, Oyallon & Bach): m is even, neurons m/2+1..m copy the rows of W of
neurons 1..m/2 and negate their c, so f_0 ≡ 0 exactly; the pairs separate during training because
their gradients have opposite signs.

Beyond the paper (off by default): if c or biases b_i (h_i = s_h W_iΦ + b_i) are trained, they use the
per-neuron factor m^(2α−1) (m for ours and MF, 1 for NTK), which moves them by O(1) in the feature-learning scalings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import InvalidArgument, InvalidType, unknown_name

__all__ = ["Scaling", "get_scaling", "SCALINGS", "richness", "abc_scaling", "REGIMES"]

#: the regimes of :attr:`Scaling.regime` (docs/theory.md §7)
REGIMES = ("feature learning", "kernel", "trivial", "unstable")
#: exponents closer than this are equal (they are sums of a few user numbers such as 0.1 + 0.2)
_EPS = 1e-9


def _real(argument: str, value: Any) -> float:
    """``value`` as a finite float (bools refused)."""
    import numpy as np

    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InvalidType(f"{argument} must be a real number; got {type(value).__name__} {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgument(f"{argument} must be a finite number; got {value!r}.")
    return value


def _zero(x: float) -> bool:
    return abs(x) < _EPS


def _clean(x: float) -> float:
    """``x`` with the rounding of exponent arithmetic removed (0.1 + 0.2 → 0.3), so that names and specs are
    stable; a float within 1e-12 of a number with 12 significant digits is that number."""
    y = float(f"{x:.12g}")
    return (0.0 if y == 0 else y) if abs(x - y) <= 1e-12 * max(1.0, abs(x)) else x


@dataclass(frozen=True)
class Scaling:
    """A width scaling: the exponents of the multipliers, of the initialization of W and of the learning rate.

    Build one with :func:`get_scaling` (a name), :func:`richness` or :func:`abc_scaling`; two scalings are equal
    when all their exponents and ``symmetrize`` are (the name is a label). Every method that takes m and D
    gives numbers; the properties :attr:`abc`, :attr:`r` and :attr:`regime` are the Appendix C view
    (docs/theory.md §7).
    """

    name: str = field(compare=False)
    output_power: float  # α: s_o = m^(-α)
    hidden_power: float  # a_W: s_h = D^(-a_W)
    symmetrize: bool
    lr_m_power: float  # ρ = η/δ = m^lr_m_power · D^lr_D_power
    lr_D_power: float
    init_power: float = 0.0  # b_W: W_ij ~ N(0, D^(-2 b_W))
    output_a: float | None = None  # a_out (b_out = α − a_out); None: a_out = α, b_out = 0
    fixed_shift: float = 0.0  # t: the input layer is (a, b) = (t, −t), the other fixed layers (½ + t, −t)
    spec: str | dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.output_a is None:
            object.__setattr__(self, "output_a", float(self.output_power))

    # ------------------------------------------------------------------ numbers
    def s_o(self, m: int) -> float:
        """Output multiplier m^(−α): 1/m (ours, mf), 1/√m (ntk), m^(−(1−r)) (richness r)."""
        return m ** (-self.output_power)

    def s_h(self, D: float) -> float:
        """Hidden multiplier D^(−a_W): 1/√D (ours, ntk), 1/D (mf), 1 (μP)."""
        return D ** (-self.hidden_power)

    def init_std(self, D: float) -> float:
        """Standard deviation D^(−b_W) of the initial W_ij: 1 in Table 1, 1/√D under μP."""
        return D ** (-self.init_power)

    def feature_scale(self, D: float) -> float:
        """s_h σ_W = D^(−(a_W + b_W)), the factor of the initial features H_0 = s_h σ_W W̃_0 Φᵀ (W̃_0 standard
        normal): equal for θ-equivalent scalings, so that their initial features are bitwise equal."""
        return D ** (-_clean(self.hidden_power + self.init_power))

    def lr_factor(self, m: int, D: float) -> float:
        """Raw learning rate on W per unit step size δ: m (ours), 1 (ntk), m·D (mf), m^(1−2r) (richness r)."""
        return float(m**self.lr_m_power * D**self.lr_D_power)

    def neuron_lr_factor(self, m: int) -> float:
        """Learning-rate factor m^(2α−1) of per-neuron parameters (c, b) when they are trained (beyond the paper):
        m for ours and MF, 1 for NTK."""
        return float(m ** _clean(2 * self.output_power - 1))

    def gamma(self, m: int, D: float) -> float:
        """The prefactor γ = ρ s_o s_h² D / δ of the kernel-space update (docs/theory.md §8): 1 (ours, mf), 1/√m
        (ntk), m^(−r) (richness r). By the exponents, so that it holds at D = ∞ when the powers of D cancel."""
        return float(m ** _clean(self.lr_m_power - self.output_power) * D ** self.kernel_D_power)

    @property
    def kernel_D_power(self) -> float:
        """κ_D = q + 1 − 2a_W: the tangent kernel of the trained layer grows like D^κ_D (0 in Table 1's columns)."""
        return _clean(self.lr_D_power + 1 - 2 * self.hidden_power)

    @property
    def features_start_at_zero(self) -> bool:
        """True when a_W + b_W > ½: the initial features vanish like D^(½ − a_W − b_W) (MF: D^(−½); 0 at D = ∞)."""
        return self.hidden_power + self.init_power > 0.5 + _EPS

    def check_infinite(self) -> None:
        """Raise unless this scaling runs at D = ∞: the powers of D must cancel in the dynamics (κ_D = 0) and the
        initial features must be finite (a_W + b_W ≥ ½); docs/theory.md §7."""
        if not _zero(self.kernel_D_power):
            raise InvalidArgument(
                f"scaling={self.name!r} cannot run at D = ∞: its tangent kernel scales like D^{self.kernel_D_power:g} "
                "(learning-rate factor × s_h² × D), which is 0 or ∞ there; use a finite D or a scaling whose powers "
                "of D cancel (ours, ntk, mf, mup, richness(r)).")
        if self.hidden_power + self.init_power < 0.5 - _EPS:
            raise InvalidArgument(
                f"scaling={self.name!r} cannot run at D = ∞: its initial features scale like "
                f"D^{_clean(0.5 - self.hidden_power - self.init_power):g} (a_W + b_W < 1/2), infinite there.")

    # ------------------------------------------------------------------ Appendix C
    @property
    def output_b(self) -> float:
        """b_out = α − a_out: only the sum α enters the model (c is not trained)."""
        return _clean(self.output_power - self.output_a)

    @property
    def c(self) -> float:
        """Yang & Hu's learning-rate exponent with n = m = D: ρ = n^(−c) (ours −1, ntk 0, mf −2, μP 0)."""
        return _clean(-(self.lr_m_power + self.lr_D_power))

    def abc_layers(self, depth: int = 3) -> dict[str, Any]:
        """Yang & Hu's exponents of a depth-L net (L ≥ 3: L − 2 fixed layers, W, the output layer), first layer
        first: ``{"a": [...], "b": [...], "c": c}`` (docs/theory.md §7)."""
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3:
            raise InvalidArgument(f"depth={depth!r}: the abc view needs a net of depth >= 3 (fixed layer(s), W, c).")
        t = self.fixed_shift
        a_out = self.output_a
        a = [t] + [0.5 + t] * (depth - 3) + [self.hidden_power, a_out]
        b = [-t] * (depth - 2) + [self.init_power, self.output_b]
        return {"a": [_clean(x) for x in a], "b": [_clean(x) for x in b], "c": self.c}

    @property
    def abc(self) -> dict[str, Any]:
        """Yang & Hu's exponents of the P-3L net, first layer first: ``{"a": [a_1, a_W, a_out], "b": [...],
        "c": c}``. ours: a = [0, ½, 1], b = [0, 0, 0], c = −1; μP: a = [−½, 0, ½], b = [½, ½, ½], c = 0."""
        return self.abc_layers(3)

    def shifted(self, theta: float) -> Scaling:
        """The θ-equivalent parameterization (a_l + θ, b_l − θ, c − 2θ): it trains to the same function
        (docs/theory.md §7). ``get_scaling("ours").shifted(-0.5)`` is μP."""
        theta = _real("theta", theta)
        if theta == 0:
            return self
        a_out = self.output_a
        new = replace(self, hidden_power=_clean(self.hidden_power + theta), init_power=_clean(self.init_power - theta),
                      output_a=_clean(a_out + theta), fixed_shift=_clean(self.fixed_shift + theta),
                      lr_D_power=_clean(self.lr_D_power + 2 * theta), name=f"{self.name}.shifted({theta!r})")
        return replace(new, spec=new._abc_spec())

    def equivalent(self, other: str | Scaling | Mapping[str, Any]) -> bool:
        """True when ``other`` is this scaling shifted by some θ (the same function at every step)."""
        other = get_scaling(other)
        theta = other.hidden_power - self.hidden_power
        return self.shifted(_clean(theta)).abc == other.abc and self.symmetrize == other.symmetrize

    # ------------------------------------------------------------------ regime
    def analysis(self, width_D: bool = True) -> dict[str, Any]:
        """The exponents of the derivation of docs/theory.md §7, with one width n (D = m grows with it when
        ``width_D``; with a fixed embedding, such as the shallow net's D = d, only m grows):

        ``h0`` (initial features ~ n^h0), ``f0`` (initial output; −∞ when symmetrized), ``kernel`` (tangent kernel
        of W ~ n^kernel), ``features`` (feature movement per unit time ~ n^features = n^(−r)), ``function``
        (function movement ~ n^function), ``r``, ``regime`` and ``reasons`` (why not feature learning or kernel).
        """
        alpha = self.output_power
        kappa_D = self.kernel_D_power if width_D else 0.0
        h0 = _clean(0.5 - self.hidden_power - self.init_power) if width_D else 0.0
        f0 = -math.inf if self.symmetrize else _clean(0.5 - alpha)
        kernel = _clean(self.lr_m_power + 1 - 2 * alpha + kappa_D)
        features = _clean(self.lr_m_power - alpha + kappa_D)
        r = _clean(-features)
        reasons = []
        if h0 > _EPS:
            reasons.append(f"the initial features grow like n^{h0:g} (a_W + b_W = "
                           f"{_clean(self.hidden_power + self.init_power):g} < 1/2)")
        if f0 > _EPS:
            reasons.append(f"the initial output grows like n^{f0:g} (a_out + b_out = {alpha:g} < 1/2, not symmetrized)")
        if kernel > _EPS:
            reasons.append(f"the tangent kernel grows like n^{kernel:g}: one GD step moves f by a factor n^{kernel:g} "
                           "more than the loss allows")
        if r < -_EPS:
            reasons.append(f"the features move like n^{features:g} per unit time (r = {r:g} < 0)")
        if reasons:
            regime = "unstable"
        elif kernel < -_EPS:
            regime = "trivial"
            reasons.append(f"the tangent kernel vanishes like n^{kernel:g}: the function does not move in finite time")
        else:
            regime = "feature learning" if _zero(r) else "kernel"
        return {"h0": h0, "f0": f0, "kernel": kernel, "features": features, "function": kernel, "r": r,
                "regime": regime, "reasons": reasons, "width_D": width_D}

    @property
    def r(self) -> float:
        """Yang & Hu's feature-learning exponent for this partially-trained net (D = m): features move like m^(−r)
        per unit of GD time (ours 0, ntk ½, richness(r) r). docs/theory.md §7."""
        return self.analysis()["r"]

    @property
    def regime(self) -> str:
        """"feature learning" (r = 0), "kernel" (r > 0), "trivial" (the kernel vanishes with width) or "unstable"
        (something blows up with width), at D = m (docs/theory.md §7)."""
        return self.analysis()["regime"]

    # ------------------------------------------------------------------ naming
    def _abc_spec(self) -> dict[str, Any]:
        abc = self.abc
        spec = {"a": abc["a"], "b": abc["b"], "c": abc["c"], "symmetrize": self.symmetrize}
        return {**spec, "allow_unstable": True} if self.regime == "unstable" else spec

    @property
    def config(self) -> str | dict[str, Any]:
        """What :func:`get_scaling` rebuilds this scaling from: its name for the named scalings and the richness
        family (``"richness(0.3)"``), else ``{"a": [...], "b": [...], "c": c, "symmetrize": ...}``."""
        return self.spec if self.spec is not None else self._abc_spec()

    def __repr__(self) -> str:
        return f"Scaling({self.name!r}, abc={self.abc}, symmetrize={self.symmetrize})"


def _named(name: str, alpha: float, a_W: float, symmetrize: bool, p: float, q: float, **kw: Any) -> Scaling:
    return Scaling(name, alpha, a_W, symmetrize, p, q, spec=name, **kw)


SCALINGS: dict[str, Scaling] = {
    "ours": _named("ours", 1.0, 0.5, False, 1, 0),
    "ntk": _named("ntk", 0.5, 0.5, True, 0, 0),
    "mf": _named("mf", 1.0, 1.0, False, 1, 1),
    # Other readings of MF's learning-rate factor (Table 1's column is not in the paper's text): same model
    # as "mf", learning rate m·√D (γ = D^(-1/2)) or m as in eq. (9) (γ = 1/D). Used by the sensitivity study.
    "mf_lr_sqrtD": _named("mf_lr_sqrtD", 1.0, 1.0, False, 1, 0.5),
    "mf_lr_m": _named("mf_lr_m", 1.0, 1.0, False, 1, 0),
    # μP (Appendix C): a = [−½, 0, ½], b = [½, ½, ½], c = 0 — ours shifted by θ = −½
    "mup": _named("mup", 1.0, 0.0, False, 1, -1, init_power=0.5, output_a=0.5, fixed_shift=-0.5),
    # the standard parameterization with learning rate 1/width: a = 0, b = [0, ½, ½], c = 1 (NTK shifted by −½,
    # without the symmetrization)
    "sp": _named("sp", 0.5, 0.0, False, 0, -1, init_power=0.5, output_a=0.0),
}


def richness(r: float, *, symmetrize: bool | None = None) -> Scaling:
    r"""The richness family between ours (r = 0) and NTK (r = ½) (docs/theory.md §7): s_o = m^(−(1−r)),
    s_h = D^(−½), W_ij ~ N(0, 1), learning-rate factor m^(1−2r) on W.

    The tangent kernel stays of order one for every r (γ s_o m = 1), the features move like m^(−r) and
    f_0 is of order m^(r−½). ``symmetrize`` (the NTK pairing, f_0 ≡ 0) defaults to r == ½, so that
    ``richness(0)`` is ``"ours"`` and ``richness(0.5)`` is ``"ntk"`` number for number; pass
    ``symmetrize=True`` to remove f_0 at every r (an even m is then needed).
    """
    r = _real("r", r)
    if not 0 <= r <= 0.5:
        raise InvalidArgument(f"r={r!r} is outside [0, 1/2]: the richness family runs from ours (r = 0, feature "
                              "learning) to NTK (r = 1/2, lazy); r < 0 makes the features blow up with m and r > 1/2 "
                              "the initial output (use wf.abc_scaling for other exponents).")
    default = r == 0.5
    if symmetrize is None:
        symmetrize = default
    elif not isinstance(symmetrize, bool):
        raise InvalidType(f"symmetrize must be True, False or None; got {type(symmetrize).__name__} {symmetrize!r}.")
    if r == 0 and not symmetrize:
        return SCALINGS["ours"]
    if r == 0.5 and symmetrize:
        return SCALINGS["ntk"]
    name = f"richness({r!r})" if symmetrize == default else f"richness({r!r}, symmetrize={symmetrize})"
    return Scaling(name, _clean(1 - r), 0.5, symmetrize, _clean(1 - 2 * r), 0.0, spec=name)


def abc_scaling(a: Sequence[float], b: Sequence[float], c: float, *, symmetrize: bool = False,
                allow_unstable: bool = False, name: str | None = None) -> Scaling:
    r"""The scaling of Yang & Hu's exponents, first layer first (docs/theory.md §7).

    ``a`` and ``b`` have one entry per layer of a depth-L net (L ≥ 3): the fixed layer(s), the trained layer W, the
    output layer; ``c`` is the learning-rate exponent of W (ρ = n^(−c) at n = m = D). The fixed layers must have
    a_1 + b_1 = 0 and a_l + b_l = ½ (wideflow's embeddings do not depend on the width) with one common shift.
    A scaling under which something blows up with the width (regime "unstable") is refused unless
    ``allow_unstable=True``; its reason is in the message.
    """
    a = _exponents("a", a)
    b = _exponents("b", b)
    if len(a) != len(b):
        raise InvalidArgument(f"a has {len(a)} entries and b has {len(b)}; give one (a, b) pair per layer.")
    if len(a) < 3:
        raise InvalidArgument(f"a={a} has {len(a)} entries; give the exponents of the P-3L view (fixed embedding, W, "
                              "output layer: 3 entries) or of a deeper net (L entries), first layer first.")
    c = _real("c", c)
    if not isinstance(symmetrize, bool):
        raise InvalidType(f"symmetrize must be True or False; got {type(symmetrize).__name__} {symmetrize!r}.")
    if not isinstance(allow_unstable, bool):
        raise InvalidType(f"allow_unstable must be True or False; got {type(allow_unstable).__name__} "
                          f"{allow_unstable!r}.")
    t = a[0]
    for l, (al, bl) in enumerate(zip(a[:-2], b[:-2], strict=True)):
        want = 0.0 if l == 0 else 0.5
        if not _zero(al + bl - want):
            raise InvalidArgument(
                f"layer {l + 1} is fixed, so only a_{l + 1} + b_{l + 1} enters the model and it must be {want:g} "
                f"(wideflow's embeddings do not depend on the width); got a = {al!r}, b = {bl!r}.")
        if not _zero(al - want - t):
            raise InvalidArgument(f"the fixed layers must share one shift (a_1 = t, a_l = 1/2 + t); a = {a[:-2]}.")
    a_W, b_W, a_out, b_out = a[-2], b[-2], a[-1], b[-1]
    alpha = _clean(a_out + b_out)
    p = _clean(2 * alpha - 1)
    scaling = Scaling(name or "abc", alpha, a_W, symmetrize, p, _clean(-c - p), init_power=b_W, output_a=a_out,
                      fixed_shift=_clean(t))
    if name is None:
        known = _known(scaling)
        if known is not None:  # one spelling per scaling: the name of a named one or of the richness family
            return known
        scaling = replace(scaling, spec=scaling._abc_spec(), name=_abc_name(scaling))
    info = scaling.analysis()
    if info["regime"] == "unstable" and not allow_unstable:
        raise InvalidArgument(f"a={a}, b={b}, c={c!r} is unstable: " + "; ".join(info["reasons"])
                              + ". Pass allow_unstable=True to train it anyway (docs/theory.md §7).")
    return scaling


def _known(s: Scaling) -> Scaling | None:
    """The named or richness scaling equal to ``s`` (all exponents and the symmetrization), if any."""
    for named in SCALINGS.values():
        if named == s:
            return named
    r = _clean(1 - s.output_power)
    if 0 <= r <= 0.5:
        candidate = richness(r, symmetrize=s.symmetrize)
        if candidate == s:
            return candidate
    return None


def _abc_name(s: Scaling) -> str:
    abc = s.abc
    sym = ", symmetrize=True" if s.symmetrize else ""
    return f"abc(a={abc['a']}, b={abc['b']}, c={abc['c']:g}{sym})"


def _exponents(argument: str, values: Any) -> list[float]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidType(f"{argument} must be a list of exponents, first layer first; got "
                          f"{type(values).__name__} {values!r}.")
    return [_real(f"{argument}[{i}]", v) for i, v in enumerate(values)]


_RICHNESS = re.compile(r"^richness\(\s*([^,()]+?)\s*(?:,\s*symmetrize\s*=\s*(\w+)\s*)?\)$")
_SPELLINGS = "a name ({}), 'richness(R)' or 'richness(R, symmetrize=True)', or {{\"a\": [...], \"b\": [...], \"c\": C}}"


def get_scaling(scaling: str | Scaling | Mapping[str, Any], argument: str = "scaling") -> Scaling:
    """The :class:`Scaling` of ``scaling``: a Scaling; a name ("ours", "ntk", "mf", "mf_lr_sqrtD", "mf_lr_m",
    "mup", "sp"); ``"richness(0.3)"`` or ``"richness(0.3, symmetrize=True)"`` (:func:`richness`); or a mapping
    (or its JSON text) ``{"a": [...], "b": [...], "c": c, "symmetrize": false}`` (:func:`abc_scaling`) or
    ``{"richness": 0.3, "symmetrize": true}``. This is the spelling of ``--scaling`` and of ``model.scaling``."""
    if isinstance(scaling, Scaling):
        return scaling
    if isinstance(scaling, str):
        text = scaling.strip()
        if text in SCALINGS:
            return SCALINGS[text]
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{argument}={scaling!r} is not valid JSON ({exc.msg}); expected "
                                      + _SPELLINGS.format(", ".join(SCALINGS)) + ".") from None
            return get_scaling(parsed, argument)
        match = _RICHNESS.match(text)
        if match:
            try:
                r = float(match.group(1))
            except ValueError:
                raise InvalidArgument(f"{argument}={scaling!r}: {match.group(1)!r} is not a number r in [0, 1/2].") from None
            sym = match.group(2)
            if sym is not None and sym.lower() not in ("true", "false"):
                raise InvalidArgument(f"{argument}={scaling!r}: symmetrize must be True or False; got {sym!r}.")
            try:
                return richness(r, symmetrize=None if sym is None else sym.lower() == "true")
            except InvalidArgument as exc:
                raise InvalidArgument(f"{argument}={scaling!r}: {exc}") from None
        raise unknown_name(argument, scaling, [*SCALINGS, "richness(R)"])
    if isinstance(scaling, Mapping):
        keys = set(scaling)
        if "richness" in keys:
            extra = keys - {"richness", "symmetrize"}
            if extra:
                raise InvalidArgument(f"{argument}: unknown key(s) {sorted(extra)} beside 'richness' "
                                      "(allowed: 'symmetrize').")
            return richness(scaling["richness"], symmetrize=scaling.get("symmetrize"))
        allowed = {"a", "b", "c", "symmetrize", "allow_unstable"}
        if not {"a", "b", "c"} <= keys or keys - allowed:
            raise InvalidArgument(f"{argument}={dict(scaling)!r} must have the keys 'a', 'b', 'c' (and optionally "
                                  "'symmetrize', 'allow_unstable'), or 'richness'.")
        return abc_scaling(scaling["a"], scaling["b"], scaling["c"], symmetrize=scaling.get("symmetrize", False),
                           allow_unstable=scaling.get("allow_unstable", False))
    raise InvalidType(f"{argument} must be " + _SPELLINGS.format(", ".join(map(repr, SCALINGS)))
                      + f" or a Scaling; got {type(scaling).__name__} {scaling!r}.")
