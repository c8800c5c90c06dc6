r"""The paper's theorems as measurements: spectra, Condition 1, rates, Lemma 1, and the assumption checker.

- Spectra (eq. (15)): λ_min, λ_max, condition number, G_min = min_a G_aa, G_max = max_a G_aa of G and Ḡ.
- Condition 1 (docs/theory.md §5): ‖G^(1) − Ḡ^(1)‖ (operator norm) over a range of D and seeds; it decays like
  D^{-1/2} and falls below λ_min(Ḡ)/2, the level Theorem 2's proof needs (Appendix F), once D is large.
- Rates: the fitted linear rate of log L_t (slope of a least-squares line over a window, with R²); the PL
  bound 2ĉ²λ_min(G)K_σ'²/N (docs/theory.md §5) for σ with |σ'| ≥ K_σ' everywhere; Lemma 1's quantities η_t,
  η̂_0, κ and its guaranteed rate (Appendix D); Lemma 3's constant K(I, λ_1, λ_2) and width condition (Appendix E).
- :func:`check`: which of Assumptions 1-4 and Condition 1 hold for a concrete model and data set, which
  theorem or corollary therefore applies, and the rate that can be guaranteed explicitly.

Loss normalization (docs/theory.md §2): L = (1/2N) Σ_a e_a² with N = n (``reduction="mean"``, the default of
every function here, as of :func:`wideflow.train`) or N = 1 (``"sum"``, the form of the paper's statements).
All rates are per unit of GF time and carry the 1/N, so a bound computed with the default is directly
comparable with the rate fitted on a run trained with the default; Lemma 1's condition involves the sum loss
N·L_0 whatever the reduction. Fits of rates and powers live in :mod:`wideflow.fits` (re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._tensor import as_tensor
from .activations import Activation
from .embeddings import DeepRandomFeatures, Identity, RandomFeatures
from .engines import REDUCTIONS
from .errors import (
    InvalidArgument,
    InvalidShape,
    check_choice,
    check_non_empty,
    check_positive_float,
    check_positive_int,
    check_seed,
)
from .display import check_html
from .fits import fit_power, fit_rate
from .kernels import expected_gram, gram, limit_depth, limit_gram
from .losses import get_loss
from .model import check_model

__all__ = [
    "spectrum",
    "gram_spectra",
    "concentration",
    "fit_power",
    "fit_rate",
    "pl_bound",
    "active_fraction",
    "eta",
    "eta_hat_0",
    "middle_third",
    "lemma_interval",
    "kappa",
    "lemma1",
    "lemma1_envelope",
    "lemma3_constant",
    "check",
    "CheckReport",
    "format_check",
]



# ---------------------------------------------------------------------------------------------- spectra
def spectrum(G: Any) -> dict[str, float]:
    """λ_min, λ_max, condition number λ_max/λ_min (∞ if λ_min ≤ 0), G_min and G_max of a Gram matrix (eq. (15))."""
    G = as_tensor("G", G, ndim=2, dtype=torch.float64)
    if G.shape[0] != G.shape[1]:
        raise InvalidShape(f"G must be square; got shape {tuple(G.shape)}.")
    lam = torch.linalg.eigvalsh(0.5 * (G + G.T))
    lo, hi = float(lam[0]), float(lam[-1])
    diag = torch.diagonal(G)
    return {"lambda_min": lo, "lambda_max": hi, "condition": hi / lo if lo > 0 else math.inf,
            "G_min": float(diag.min()), "G_max": float(diag.max())}


def gram_spectra(model: Any, X: Any) -> pd.DataFrame:
    """The spectrum (:func:`spectrum`) of the model's G and of its limit Ḡ (:func:`~wideflow.kernels.expected_gram`),
    one row each, with the column ``matrix`` = "G" or "Gbar"."""
    rows = [{"matrix": "G", **spectrum(gram(model, X).cpu())},
            {"matrix": "Gbar", **spectrum(expected_gram(model, X).cpu())}]
    return pd.DataFrame(rows)


def concentration(
    X: Any,
    activation: str | Activation = "relu",
    Ds: Sequence[int] = (64, 256, 1024, 4096),
    seeds: Iterable[int] = range(3),
    depth: int = 1,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Condition 1 as a measurement: ‖G − Ḡ‖ for random embeddings of width D, over ``Ds`` × ``seeds``.

    Each row: D, seed, op_error = ‖G − Ḡ‖₂, rel_error = op_error/λ_max(Ḡ), lambda_min_G, lambda_min_Gbar and
    condition1 = (op_error ≤ λ_min(Ḡ)/2), the level Theorem 2's proof needs (Appendix F). ``depth`` counts the
    fixed random layers (1: P-3L, eq. (5); more: Appendix H). :func:`fit_power` on (D, op_error) gives the
    decay exponent (≈ −½).
    """
    from tqdm.auto import tqdm

    X = as_tensor("X", X, ndim=2, dtype=torch.float64)
    depth = check_positive_int("depth", depth)
    Ds = [check_positive_int("Ds", D) for D in check_non_empty("Ds", Ds, "embedding widths D >= 1")]
    seeds = [check_seed("seeds", s) for s in check_non_empty("seeds", seeds, "integer seeds")]
    Gbar = limit_gram(X, activation=activation, depth=depth)
    lam_bar = torch.linalg.eigvalsh(Gbar)
    rows = []
    grid = [(D, s) for D in Ds for s in seeds]
    for D, seed in tqdm(grid, desc="Condition 1", disable=None if progress is None else not progress):
        emb = (RandomFeatures(X.shape[1], D, activation, seed) if depth == 1
               else DeepRandomFeatures(X.shape[1], D, depth, activation, seed))
        G = gram(emb, X)
        err = float(torch.linalg.matrix_norm(G - Gbar, ord=2))
        rows.append({"D": D, "seed": seed, "op_error": err, "rel_error": err / float(lam_bar[-1]),
                     "lambda_min_G": float(torch.linalg.eigvalsh(G)[0]), "lambda_min_Gbar": float(lam_bar[0]),
                     "condition1": err <= float(lam_bar[0]) / 2})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- PL bound
def _N(reduction: str, n: int) -> float:
    return 1.0 if check_choice("reduction", reduction, REDUCTIONS) == "sum" else float(n)


def pl_bound(model: Any, X: Any, reduction: str = "mean") -> float:
    """The PL rate 2ĉ²λ_min(G)K_σ'²/N (docs/theory.md §5): L_t ≤ L_0 e^{−rate·t} along the gradient flow.

    From (14) and the Schur product theorem, λ_min(K_t) ≥ min_a (1/m) Σ_i c_i² σ'(h_i(x_a))² λ_min(G) ≥
    ĉ² K_σ'² λ_min(G) when |σ'| ≥ K_σ' on the whole line (linear, leaky and smoothed leaky ReLU, cubic is
    not: its σ' vanishes at 0). ĉ² is min_i c_i² of the model. Valid in every scaling of Table 1.

    ``reduction``: "mean" (N = n, the default, as for :func:`wideflow.train`, so that the bound compares
    with the fitted rate of a run without conversion) or "sum" (N = 1, the paper's statements).
    """
    act = check_model(model).activation
    if not act.globally_active:
        raise InvalidArgument(
            f"the PL bound needs |σ'| >= K_σ' > 0 on the whole line; activation {act!r} has the active interval "
            f"{act.interval} only. Use lemma1() for a rate that holds on an interval, or a globally active σ "
            "(linear, leaky_relu, smooth_leaky_relu)."
        )
    X = model.input(X)
    lam = spectrum(gram(model, X).cpu())["lambda_min"]
    c2 = float((model.c**2).min())
    return 2 * c2 * max(lam, 0.0) * act.k_sigma**2 / _N(reduction, X.shape[0])


# ---------------------------------------------------------------------------------------------- Lemma 1
def active_fraction(H: torch.Tensor, interval: tuple[float, float]) -> torch.Tensor:
    """(1/m) #{i : H_ia ∈ (I_l, I_r)} for each point a; H has shape (m, n) (the features h_i(x_a))."""
    lo, hi = interval
    return ((H > lo) & (H < hi)).to(torch.float64).mean(dim=0)


def eta(H: torch.Tensor, interval: tuple[float, float]) -> float:
    """η_t = min_a (1/m) #{i : h_i^t(x_a) ∈ I} (Lemma 1), for features H (m, n)."""
    return float(active_fraction(H, interval).min())


def middle_third(interval: tuple[float, float]) -> tuple[float, float]:
    """I_0 = (I_l + ξ, I_r − ξ) with ξ = (I_r − I_l)/3 (Lemma 1); I must be bounded."""
    lo, hi = interval
    if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise InvalidArgument(f"interval must be bounded with I_l < I_r for Lemma 1; got {interval!r}. "
                              "See lemma_interval() for a bounded choice inside an unbounded active interval.")
    xi = (hi - lo) / 3
    return lo + xi, hi - xi


def eta_hat_0(H0: torch.Tensor, interval: tuple[float, float]) -> float:
    """η̂_0 = min_a (1/m) #{i : h_i^0(x_a) ∈ I_0}, eq. (18), with I_0 the middle third of I."""
    return eta(H0, middle_third(interval))


def lemma_interval(activation: Activation, G_max: float, width: float = 3.0) -> tuple[float, float]:
    """A bounded interval for Lemma 1 inside σ's active interval: I ∩ (−B, B) with B = ``width``·√G_max.

    Lemma 1 needs ξ = |I|/3 finite; any sub-interval of an active interval is active with the same K_σ'.
    With B = 3√G_max, ReLU gets I = (0, 3√G_max), I_0 = (√G_max, 2√G_max), and a globally active σ gets
    I_0 = (−√G_max, √G_max), which holds ≈ 68% of the h_i^0(x_a) ~ N(0, G_aa) at G_aa = G_max.
    """
    bound = check_positive_float("width", width) * math.sqrt(check_positive_float("G_max", G_max))
    lo, hi = activation.interval
    out = (max(lo, -bound), min(hi, bound))
    if not out[0] < out[1]:
        raise InvalidArgument(f"the active interval {activation.interval} does not meet (−{bound:.3g}, {bound:.3g}).")
    return out


def kappa(lambda_1: float, lambda_2: float, k_sigma: float, interval: tuple[float, float]) -> float:
    """κ(λ_1, λ_2) = 9 λ_2 / (2 λ_1 K_σ' (I_r − I_l)) of Lemma 1, used with (λ_min(G), λ_max(G))."""
    lo, hi = interval
    if not lambda_1 > 0:
        raise InvalidArgument(f"lambda_1 must be > 0 (λ_min(G) > 0 is a hypothesis of Lemma 1); got {lambda_1!r}.")
    middle_third(interval)
    return 9 * lambda_2 / (2 * lambda_1 * check_positive_float("k_sigma", k_sigma) * (hi - lo))


def lemma1_envelope(eta_hat: float, kappa_value: float, c_hat: float, L0_sum: float, Lt_sum: Any) -> Any:
    """The lower envelope of Lemma 1: η_t ≥ (η̂_0^{3/2} − (κ/ĉ)(√L_0 − √L_t))^{2/3} (0 once the bracket is ≤ 0),
    with L the *sum* loss ½ Σ_a e_a² (N = 1, as in the paper). Works on floats or arrays of L_t."""
    inner = eta_hat**1.5 - (kappa_value / c_hat) * (math.sqrt(L0_sum) - np.sqrt(Lt_sum))
    return np.maximum(inner, 0.0) ** (2.0 / 3.0)


def lemma1(model: Any, X: Any, y: Any, reduction: str = "mean",
           interval: tuple[float, float] | None = None) -> dict[str, Any]:
    """Lemma 1 (Appendix D) at the model's current parameters, as numbers.

    I defaults to :func:`lemma_interval` (σ's active interval, bounded at 3√G_max). Returns interval, I_0,
    eta_0 (η at t = 0), eta_hat_0 (η̂_0, eq. (18)), kappa (κ(λ_min(G), λ_max(G))), c_hat (min_i |c_i|), L0 (the
    loss with this reduction) and L0_sum, margin = η̂_0^{3/2} − κ√L0_sum/ĉ, applies (margin > 0 and
    λ_min(G) > 0) and rate: where it applies, L_t ≤ L_0 e^{−rate·t} with
    rate = 2ĉ² λ_min(G) K_σ'² margin^{2/3} / N; otherwise ``None``. N = n for ``reduction="mean"`` (the
    default, as for :func:`wideflow.train`) and 1 for "sum".
    """
    X = check_model(model).input(X)
    n = X.shape[0]
    yt = as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=n)
    spec = spectrum(gram(model, X).cpu())
    act = model.activation
    interval = lemma_interval(act, spec["G_max"]) if interval is None else tuple(map(float, interval))
    I0 = middle_third(interval)
    lo, hi = act.interval
    if interval[0] < lo or interval[1] > hi:
        raise InvalidArgument(f"interval {interval} must lie inside σ's active interval {act.interval}.")
    H0 = model.features(X).T
    e = model.output_from_features(H0.T) - yt
    L0_sum = float(0.5 * (e @ e))
    N = _N(reduction, n)
    c_hat = float(model.c.abs().min())
    eh = eta_hat_0(H0, interval)
    out: dict[str, Any] = {"interval": interval, "I0": I0, "eta_0": eta(H0, interval), "eta_hat_0": eh,
                           "kappa": None, "c_hat": c_hat, "L0": L0_sum / N, "L0_sum": L0_sum, "margin": None,
                           "applies": False, "rate": None}
    if spec["lambda_min"] <= 0 or c_hat == 0:
        return out
    kap = kappa(spec["lambda_min"], spec["lambda_max"], act.k_sigma, interval)
    margin = eh**1.5 - kap * math.sqrt(L0_sum) / c_hat
    out.update(kappa=kap, margin=margin, applies=margin > 0)
    if margin > 0:
        out["rate"] = 2 * c_hat**2 * spec["lambda_min"] * act.k_sigma**2 * margin ** (2 / 3) / N
    return out


def lemma3_constant(interval: tuple[float, float], lambda_1: float, lambda_2: float) -> float:
    """K(I, λ_1, λ_2) = min_{λ_1 ≤ v ≤ λ_2} P(N(0, v) ∈ I_0) of Lemma 3 (Appendix E).

    v ↦ P(N(0, v) ∈ (a, b)) = Φ(b/√v) − Φ(a/√v) is monotone (a < 0 < b) or rises then falls (0 ≤ a < b, one
    sign change of its derivative), so its minimum over [λ_1, λ_2] is at an endpoint.
    """
    from scipy.stats import norm

    a, b = middle_third(interval)
    if not 0 < lambda_1 <= lambda_2:
        raise InvalidArgument(f"need 0 < lambda_1 <= lambda_2; got {lambda_1!r}, {lambda_2!r}.")

    def mass(v: float) -> float:
        s = math.sqrt(v)
        return float(norm.cdf(b / s) - norm.cdf(a / s))

    return min(mass(lambda_1), mass(lambda_2))


# ---------------------------------------------------------------------------------------------- checker
def _item(holds: bool | None, detail: str) -> dict[str, Any]:
    return {"holds": holds, "detail": detail}


def check(model: Any, X: Any, y: Any, *, reduction: str = "mean", delta: float = 0.05,
          verbose: bool = True, loss: str = "squared") -> dict[str, Any]:
    """Which of Assumptions 1-4 and Condition 1 hold for this model and data, which theorem applies, and the
    rate that can be guaranteed explicitly (Section 3). Prints a table (``verbose``) and returns a dict:

    - ``constants``: ĉ, L_σ, I, K_σ', λ_min/λ_max/G_min/G_max of G (and of Ḡ for random embeddings),
      ‖G − Ḡ‖, η̂_0 with Lemma 1's interval, κ, Lemma 3's K(I, G_min, G_max), L_0.
    - ``conditions``: {name: {"holds": True/False/None (not applicable), "detail": str}} for Assumptions
      1-4, Condition 1, λ_min(G) > 0, "n <= d, independent" (shallow net), Lemma 3's width condition at
      failure probability ``delta``, and Lemma 1's condition κ√L_0/ĉ < η̂_0^{3/2}.
    - ``theorem``: "Corollary 1", "Theorem 1", "Theorem 2" or "Theorem 3" (or ``None``) and ``theorem_reason``.
      Their rates r ĉ² λ_min have constants r that the paper does not give explicitly (docs/theory.md §5);
    - ``pl_rate``, ``lemma1_rate``: the explicit rates (``None`` where they do not apply), and
      ``guaranteed_rate`` / ``rate_source``: the larger of the two. Rates are per unit GF time with this
      ``reduction``: "mean" (N = n, the default, comparable with the fitted rate of a :func:`wideflow.train`
      run with its default) or "sum" (N = 1, the paper's statements).
    - ``loss``: the training loss. Theorems 1-3, Lemma 1 and the PL bound are proved for the squared loss (6)
      only; with ``loss="logistic"`` the conditions are still measured (they concern the model and the
      data), but no theorem applies and no rate is guaranteed (``theorem`` is ``None`` and says so).
    """
    from scipy.stats import kstest

    check_model(model)
    delta = check_positive_float("delta", delta)
    if delta >= 1:
        raise InvalidArgument(f"delta is a failure probability in (0, 1); got {delta!r}.")
    Xt = model.input(X)
    n, d = Xt.shape
    N = _N(reduction, n)
    loss_fn = get_loss(loss)
    loss_fn.check_targets("y", as_tensor("y", y, ndim=1, dtype=model.dtype, device=model.device, rows=n,
                                         rows_what="one per row of X"))
    act = model.activation
    emb = model.embedding
    G = gram(model, Xt).cpu().double()
    sG = spectrum(G)
    consts: dict[str, Any] = {"c_hat": float(model.c.abs().min()), "L_sigma": act.lipschitz,
                              "interval": act.interval, "K_sigma": act.k_sigma,
                              **{f"{k}_G" if k.startswith("lambda") or k == "condition" else k: v
                                 for k, v in sG.items()}}
    cond: dict[str, dict[str, Any]] = {}

    c = model.c.cpu()
    equal = bool(torch.allclose(c.abs(), c.abs().max().expand_as(c), rtol=1e-12, atol=0))
    plus = float((c > 0).double().mean())
    cond["Assumption 1"] = _item(equal and 0 < plus < 1, f"|c_i| = ĉ = {consts['c_hat']:.4g} for all i: {equal}; "
                                                         f"fraction of c_i > 0: {plus:.3f}")
    lip_ok = act.lipschitz is not None
    cond["Assumption 2"] = _item(lip_ok and act.k_sigma > 0,
                                 f"L_σ = {act.lipschitz}, I = {act.interval}, K_σ' = {act.k_sigma:.4g}")
    W = model.W
    rows = W[: model.m // 2] if model.scaling.symmetrize else W  # the NTK copy rows are not independent draws
    std = model.scaling.init_std(model.D)  # σ_W = D^(-b_W): W/σ_W is the paper's W under a θ-shifted scaling
    sample = (rows.reshape(-1)[:20000].double().cpu() / std).numpy()
    p = float(kstest(sample, "norm").pvalue)
    law = "W_ij ~ N(0, 1)" if std == 1.0 else f"W_ij / σ_W ~ N(0, 1) (σ_W = {std:.4g})"
    cond["Assumption 3"] = _item(p > 1e-3, f"{law}: mean {sample.mean():.3f}, var {sample.var():.3f}, "
                                           f"KS p-value {p:.3g} on {sample.size} entries (holds at initialization)")
    cond["lambda_min(G) > 0"] = _item(sG["lambda_min"] > 1e-12 * max(sG["lambda_max"], 1e-300),
                                      f"λ_min(G) = {sG['lambda_min']:.4g}, λ_max(G) = {sG['lambda_max']:.4g}")
    if isinstance(emb, Identity):
        rank = int(torch.linalg.matrix_rank(Xt.cpu().double()))
        cond["n <= d, independent"] = _item(n <= d and rank == n, f"n = {n}, d = {d}, rank(X) = {rank}")
    else:
        cond["n <= d, independent"] = _item(None, "only for the shallow net (Corollary 1)")

    depth = limit_depth(model)
    random = isinstance(emb, RandomFeatures | DeepRandomFeatures)
    if random:
        Gbar = expected_gram(model, Xt).cpu().double()
        sB = spectrum(Gbar)
        err = float(torch.linalg.matrix_norm(G - Gbar, ord=2))
        consts.update({"lambda_min_Gbar": sB["lambda_min"], "lambda_max_Gbar": sB["lambda_max"],
                       "Gbar_min": sB["G_min"], "Gbar_max": sB["G_max"], "concentration_error": err,
                       "limit_depth": depth})
        pd_bar = sB["lambda_min"] > 1e-12 * max(sB["lambda_max"], 1e-300)
        cond["Condition 1"] = _item(pd_bar and err <= sB["lambda_min"] / 2,
                                    f"‖G − Ḡ‖ = {err:.4g} vs λ_min(Ḡ)/2 = {sB['lambda_min'] / 2:.4g} (D = {model.D})")
        if depth == 1:
            cond["Assumption 4"] = _item(pd_bar and math.isfinite(sB["G_max"]),
                                         f"π_z = N(0, I_d) (sub-Gaussian); λ_min(Ḡ^(1)) = {sB['lambda_min']:.4g}, "
                                         f"Ḡ^(1)_max = {sB['G_max']:.4g}")
        else:
            cond["Assumption 4"] = _item(None, "for the P-3L net (one random layer); deeper nets use Condition 1")
    else:
        cond["Condition 1"] = _item(None, "for random embeddings only")
        cond["Assumption 4"] = _item(None, "for the P-3L net only")

    # Lemma 1 and Lemma 3
    # Lemma 1's condition involves L_0 of the squared loss: not measured for another loss
    l1 = lemma1(model, Xt, y, reduction=reduction) if sG["G_max"] > 0 and loss_fn.name == "squared" else None
    if l1 is not None:
        consts.update({"lemma_interval": l1["interval"], "eta_hat_0": l1["eta_hat_0"], "kappa": l1["kappa"],
                       "L0": l1["L0"]})
        K3 = lemma3_constant(l1["interval"], max(sG["G_min"], 1e-300), sG["G_max"]) if sG["G_min"] > 0 else 0.0
        consts["K_lemma3"] = K3
        need = 2 * math.log(n / delta) / K3**2 if K3 > 0 else math.inf
        cond["Lemma 3 width"] = _item(model.m >= need, f"m = {model.m} vs 2 log(n/δ)/K² = {need:.4g} (δ = {delta})")
        margin = "n/a" if l1["margin"] is None else f"{l1['margin']:.4g}"
        cond["Lemma 1"] = _item(l1["applies"], f"η̂_0^(3/2) − κ√L_0/ĉ = {margin} (I = "
                                               f"({l1['interval'][0]:.3g}, {l1['interval'][1]:.3g}))")
    pl = pl_bound(model, Xt, reduction) if act.globally_active and cond["lambda_min(G) > 0"]["holds"] else None
    lem = None if l1 is None else l1["rate"]

    theorem, reason = _theorem(model, cond)
    if loss_fn.name != "squared":
        theorem, pl, lem = None, None, None
        reason = (f"Theorems 1-3 (and the PL bound and Lemma 1) are proved for the squared loss (6), not "
                  f"loss={loss_fn.name!r}; the conditions above concern only the model and the data")
    candidates = [(r, s) for r, s in ((pl, "PL bound (docs/theory.md §5)"), (lem, "Lemma 1")) if r is not None]
    best = max(candidates, default=(None, None))
    regime = scaling_regime(model)
    report = {
        "model": repr(model), "scaling": model.scaling.name, "abc": model.scaling.abc, "r": regime["r"],
        "regime": regime["regime"], "regime_reasons": regime["reasons"],
        "n": n, "d": d, "D": model.D, "m": model.m,
        "reduction": reduction, "N": N, "loss": loss_fn.name, "constants": consts, "conditions": cond, "theorem": theorem,
        "theorem_reason": reason, "pl_rate": pl, "lemma1_rate": lem, "guaranteed_rate": best[0],
        "rate_source": best[1],
    }
    if verbose:
        print(format_check(report))
    return CheckReport(report)


class CheckReport(dict):
    """What :func:`check` returns: a dict with the keys its docstring lists (so JSON and ``report["theorem"]``
    work as before), shown in Jupyter as the table of Section 3's conditions (:func:`wideflow.display.check_html`)
    and printed by ``str`` as :func:`format_check`'s table."""

    def __str__(self) -> str:
        return format_check(self)

    def _repr_html_(self) -> str:
        return check_html(self)


def _theorem(model: Any, cond: dict[str, dict[str, Any]]) -> tuple[str | None, str]:
    """Pick the result of Section 3 whose hypotheses hold (their ĉ and m conditions have unrecovered
    constants, so "applies" means: for ĉ and m large enough)."""
    if not model.scaling.equivalent("ours"):
        return None, f"Theorems 1-3 are stated for the paper's scaling, not {model.scaling.name!r}"

    def ok(*names: str) -> bool:
        return all(cond[k]["holds"] for k in names)

    base = ("Assumption 1", "Assumption 2", "Assumption 3")
    emb = model.embedding
    if isinstance(emb, Identity):
        if ok(*base, "n <= d, independent"):
            return "Corollary 1", "shallow net with linearly independent inputs (n <= d), Assumptions 1-3"
        return None, "Corollary 1 needs Assumptions 1-3 and linearly independent inputs (n <= d)"
    if isinstance(emb, DeepRandomFeatures) and emb.layers > 1:
        if ok(*base, "Condition 1"):
            return "Theorem 2", "random embedding (Appendix H) with Condition 1 at this D, Assumptions 1-3"
        return None, "Theorem 2 needs Assumptions 1-3 and Condition 1 (‖G − Ḡ‖ <= λ_min(Ḡ)/2)"
    if isinstance(emb, RandomFeatures | DeepRandomFeatures):
        if ok(*base, "Assumption 4"):
            return "Theorem 3", "P-3L net, Assumptions 1-4 (no n <= d needed)"
        return None, "Theorem 3 needs Assumptions 1-4"
    if ok(*base, "lambda_min(G) > 0"):
        return "Theorem 1", "fixed embedding with λ_min(G) > 0, Assumptions 1-3"
    return None, "Theorem 1 needs Assumptions 1-3 and λ_min(G) > 0"


def scaling_regime(model: Any) -> dict[str, Any]:
    """r and the regime of ``model``'s scaling (:meth:`wideflow.scalings.Scaling.analysis`, docs/theory.md §7):
    D grows with the width for random embeddings (P-3L, Appendix H, D = ∞) and is fixed otherwise (the shallow
    net's D = d, a quadratic or user embedding)."""
    width_D = isinstance(model.embedding, RandomFeatures | DeepRandomFeatures) or model.embedding.infinite
    return model.scaling.analysis(width_D=width_D)


def format_check(report: dict[str, Any]) -> str:
    """The table that :func:`check` prints."""
    lines = [f"wideflow check: {report['model']}",
             f"n = {report['n']}, d = {report['d']}, D = {report['D']}, m = {report['m']}, "
             f"scaling = {report['scaling']}, reduction = {report['reduction']} (N = {report['N']:g}), "
             f"loss = {report.get('loss', 'squared')}"]
    if "regime" in report:
        abc = report["abc"]
        lines.append(f"abc exponents a = {abc['a']}, b = {abc['b']}, c = {abc['c']:g}: r = {report['r']:g}, "
                     f"regime: {report['regime']}" + "".join(f"; {why}" for why in report["regime_reasons"]))
    lines.append("")
    width = max(len(k) for k in report["conditions"])
    lines.append(f"{'condition':<{width}}  holds  detail")
    for name, item in report["conditions"].items():
        mark = {True: "yes", False: "NO", None: "n/a"}[item["holds"]]
        lines.append(f"{name:<{width}}  {mark:<5}  {item['detail']}")
    lines.append("")
    lines.append("constants: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in report["constants"].items()))
    lines.append(f"applies: {report['theorem'] or 'none'} ({report['theorem_reason']})")
    rate = report["guaranteed_rate"]
    lines.append("guaranteed rate: " + ("none explicit" if rate is None else
                                        f"L_t <= L_0 exp(-{rate:.4g} t) from the {report['rate_source']}"))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)
