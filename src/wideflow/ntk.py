r"""The infinite-width kernel of the NTK regime and its closed-form training dynamics (docs/theory.md §3, §6).

Under every scaling of Table 1, one GD step moves the training outputs by −(δ/N) K_t e to first order, with
the tangent kernel of the trained layer K_t = (1/m) Σ_i c_i² σ'(h_i^t(x_a)) σ'(h_i^t(x_b)) G_ab
(:func:`wideflow.kernels.tangent_kernel`). At initialization h_i^0(x) ~ N(0, G(x, x)) i.i.d. over i (W_ij ~
N(0, 1), hidden multiplier 1/√D), so as m → ∞

    K_0 → Θ = ĉ² E_{(u, v) ~ N(0, G|_{x,x'})}[σ'(u) σ'(v)] ⊙ G,

and with D → ∞ too, G → Ḡ. Under the NTK scaling the kernel stays at Θ during training (lazy training), so
the outputs follow the linear ODE df/dt = −(1/N) Θ (f − y), solved here in closed form like neural-tangents'
``predict.gradient_descent_mse``:

    f_t(X) = y + e^{−tΘ/N} (f_0(X) − y),
    f_t(X*) = f_0(X*) − Θ(X*, X) Θ⁻¹ (I − e^{−tΘ/N}) (f_0(X) − y),

or, for GD with step δ after k = t/δ steps, with (I − δΘ/N)^k in place of e^{−tΘ/N}. Θ⁻¹(I − e^{−tΘ/N}) is
evaluated spectrally as (1 − e^{−tλ/N})/λ, which tends to t/N on (near-)null directions, so a singular Θ is
handled and t = ∞ gives the minimum-norm interpolant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from ._tensor import as_tensor
from .activations import Activation, get_activation
from .engines import REDUCTIONS
from .errors import InvalidArgument, InvalidShape, check_choice, check_positive_float
from .kernels import DEFAULT_NODES, dual_kernel, expected_gram, gram, limit_gram
from .model import check_model

__all__ = ["ntk_kernel", "ntk_kernel_of", "gradient_descent_mse", "ntk_predictor", "NTKPredictor"]

LIMITS = ("both", "m")


def _theta(G12: torch.Tensor, g1: torch.Tensor, g2: torch.Tensor, act: Activation, c2: float,
           nodes: int) -> torch.Tensor:
    return c2 * dual_kernel(G12, g1, g2, act, derivative=True, nodes=nodes) * G12


def ntk_kernel(X: Any, X2: Any = None, activation: str | Activation = "relu", c_hat: float = 1.0, depth: int = 1,
               *, nodes: int = DEFAULT_NODES) -> torch.Tensor:
    """Θ(X, X2) = ĉ² E[σ'(u)σ'(v)] ⊙ Ḡ, the m, D → ∞ limit of the tangent kernel K_0, float64
    (docs/theory.md §3).

    Ḡ = :func:`~wideflow.kernels.limit_gram` with the same ``depth`` (0: shallow net, 1: P-3L, L−2: the
    partially-trained L-layer net); (u, v) ~ N(0, Ḡ restricted to the pair).
    """
    act = get_activation(activation)
    c_hat = check_positive_float("c_hat", c_hat)
    X = as_tensor("X", X, ndim=2, dtype=torch.float64)
    G12 = limit_gram(X, X2, act, depth, nodes=nodes)
    g1 = torch.diagonal(limit_gram(X, None, act, depth, nodes=nodes)) if X2 is not None else torch.diagonal(G12)
    g2 = torch.diagonal(G12) if X2 is None else torch.diagonal(limit_gram(X2, None, act, depth, nodes=nodes))
    return _theta(G12, g1, g2, act, c_hat**2, nodes)


def ntk_kernel_of(model: Any, X: Any, X2: Any = None, *, limit: str = "both",
                  nodes: int = DEFAULT_NODES) -> torch.Tensor:
    """Θ for a concrete model: its activation, ĉ² = mean c_i², and its Gram matrix.

    ``limit="m"``: m → ∞ at the model's own embedding (its empirical G); ``limit="both"``: m and D → ∞
    (G replaced by :func:`~wideflow.kernels.expected_gram`, which is G itself for deterministic
    embeddings). In the model's dtype and device.
    """
    check_model(model)
    limit = check_choice("limit", limit, LIMITS)
    kernel = gram if limit == "m" else expected_gram
    X = model.input(X)
    G12 = kernel(model, X, None if X2 is None else model.input(X2, "X2"))
    g1 = torch.diagonal(G12) if X2 is None else torch.diagonal(kernel(model, X))
    g2 = torch.diagonal(G12) if X2 is None else torch.diagonal(kernel(model, model.input(X2, "X2")))
    c2 = float((model.c**2).mean())
    return _theta(G12.double(), g1.double(), g2.double(), model.activation, c2, nodes).to(model.dtype)


@dataclass
class NTKPredictor:
    """Closed-form outputs of the linear dynamics df/dt = −(1/N) Θ (f − y) (module docstring).

    Call it with a time t (a number, ``math.inf``, or a 1-D sequence of times) to get (f_train, f_test):
    shapes (n,) and (n_test,), or (T, n) and (T, n_test) for a sequence; f_test is ``None`` without a test
    kernel. With ``step_size`` δ the prediction is GD's after t/δ steps (t must be a multiple of δ).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    y: torch.Tensor
    N: float
    f_train_0: torch.Tensor
    k_test_train: torch.Tensor | None = None
    f_test_0: torch.Tensor | None = None
    step_size: float | None = None

    def __call__(self, t: float | Sequence[float] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        times = torch.as_tensor(t, dtype=self.y.dtype).reshape(-1)
        if bool((times < 0).any()) or bool(torch.isnan(times).any()):
            raise InvalidArgument(f"t must be >= 0 (math.inf for the end of training); got {t!r}.")
        lam = self.eigenvalues.clamp_min(0)
        V = self.eigenvectors
        r0 = V.T @ (self.f_train_0 - self.y)  # initial residual in the eigenbasis
        decay, gain = self._spectral(times[:, None], lam[None, :])  # (T, n) each
        f_train = self.y + (decay * r0) @ V.T
        f_test = None
        if self.k_test_train is not None:
            assert self.f_test_0 is not None
            f_test = self.f_test_0 - (gain * r0) @ (self.k_test_train @ V).T
        if torch.as_tensor(t).ndim == 0:
            return f_train[0], None if f_test is None else f_test[0]
        return f_train, f_test

    def _spectral(self, t: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per eigenvalue: the decay factor of the residual and (1 − decay)/λ, with their λ → 0 limits.

        Eigenvalues below eps·λ_max are treated as exact zeros: the residual does not decay there, and the
        test gain is t/N (0 at t = ∞, since Θ(X*, X) vanishes on the null space of a PSD joint kernel).
        """
        positive = lam > torch.finfo(lam.dtype).eps * max(float(self.eigenvalues.abs().max()), 1e-300)
        finite = torch.isfinite(t)
        zero_inf = torch.where(finite, t, torch.zeros_like(t))
        if self.step_size is None:
            x = -t * lam / self.N
            decay, spent = torch.exp(x), -torch.expm1(x)
            elapsed = zero_inf / self.N
        else:
            k = torch.round(zero_inf / self.step_size)
            if not bool(torch.allclose(k * self.step_size, zero_inf, rtol=1e-9, atol=1e-12)):
                raise InvalidArgument(f"t must be a multiple of step_size={self.step_size} for the GD prediction.")
            factor = 1 - self.step_size * lam / self.N  # in (−1, 1] for a stable step (checked at construction)
            steps = torch.where(finite, k, torch.full_like(k, math.inf))
            # (1 − δλ/N)^k as e^{k log1p(−δλ/N)} keeps the digits of 1 − decay (expm1) for a positive factor;
            # a negative factor (δλ/N in (1, 2)) is raised to the integer power k directly (→ 0 as k → ∞)
            x = steps * torch.log1p(-(1 - factor).clamp_max(1 - 1e-300))
            signed = torch.where(finite, factor.pow(k), torch.zeros_like(factor))
            decay = torch.where(factor > 0, torch.exp(x), signed)
            spent = torch.where(factor > 0, -torch.expm1(x), 1 - signed)
            elapsed = k * self.step_size / self.N
        safe = torch.where(positive, lam, torch.ones_like(lam))
        decay = torch.where(positive, decay, torch.ones_like(decay))
        gain = torch.where(positive, spent / safe, elapsed + torch.zeros_like(lam))
        return decay, gain

    def history(self, times: Sequence[float], y_test: Any = None) -> pd.DataFrame:
        """A table like :attr:`wideflow.TrainResult.history`: time, train_loss (with this N) and test_error."""
        f_train, f_test = self(list(times))
        rows = {"time": list(map(float, times)),
                "train_loss": (0.5 * ((f_train - self.y) ** 2).sum(dim=1) / self.N).tolist()}
        if y_test is not None and f_test is not None:
            yt = as_tensor("y_test", y_test, ndim=1, dtype=self.y.dtype, rows=f_test.shape[1])
            rows["test_error"] = (0.5 * ((f_test - yt) ** 2).mean(dim=1)).tolist()
        return pd.DataFrame(rows)


def gradient_descent_mse(k_train_train: Any, y_train: Any, *, reduction: str = "mean", step_size: float | None = None,
                         f_train_0: Any = None, k_test_train: Any = None, f_test_0: Any = None) -> NTKPredictor:
    """The closed-form predictor of GF (or GD with ``step_size``) on L = (1/2N) Σ_a (f(x_a) − y_a)² with a
    fixed kernel Θ = ``k_train_train`` (n, n), like neural-tangents' ``predict.gradient_descent_mse``.

    ``f_train_0``/``f_test_0``: outputs at t = 0 (default 0, as for the symmetrized NTK model);
    ``k_test_train`` (n_test, n): Θ(X_test, X) for test predictions. ``reduction``: "mean" (N = n, the
    default of every wideflow function, so that rates compare with those of :func:`wideflow.train`) or "sum".
    """
    reduction = check_choice("reduction", reduction, REDUCTIONS)
    K = as_tensor("k_train_train", k_train_train, ndim=2, dtype=torch.float64)
    n = K.shape[0]
    if K.shape != (n, n):
        raise InvalidShape(f"k_train_train must be square; got shape {tuple(K.shape)}.")
    y = as_tensor("y_train", y_train, ndim=1, dtype=torch.float64, rows=n)
    N = float(n) if reduction == "mean" else 1.0
    f0 = torch.zeros_like(y) if f_train_0 is None else as_tensor("f_train_0", f_train_0, ndim=1,
                                                                  dtype=torch.float64, rows=n)
    lam, V = torch.linalg.eigh(0.5 * (K + K.T))
    if step_size is not None:
        step_size = check_positive_float("step_size", step_size)
        if step_size * float(lam[-1]) >= 2 * N:
            raise InvalidArgument(
                f"step_size={step_size} is unstable for this kernel: GD diverges for step_size >= 2N/λ_max(Θ) "
                f"= {2 * N / float(lam[-1]):.4g}."
            )
    Kt = ft0 = None
    if k_test_train is not None:
        Kt = as_tensor("k_test_train", k_test_train, ndim=2, dtype=torch.float64, cols=n)
        ft0 = torch.zeros(Kt.shape[0], dtype=torch.float64) if f_test_0 is None else as_tensor(
            "f_test_0", f_test_0, ndim=1, dtype=torch.float64, rows=Kt.shape[0])
    elif f_test_0 is not None:
        raise InvalidArgument("f_test_0 was given without k_test_train.")
    # The predictor is a value: it keeps copies, never the caller's tensors (``as_tensor`` may return them).
    return NTKPredictor(lam, V, y.clone(), N, f0.clone(), None if Kt is None else Kt.clone(),
                        None if ft0 is None else ft0.clone(), step_size)


def ntk_predictor(model: Any, X: Any, y: Any, X_test: Any = None, *, reduction: str = "mean",
                  step_size: float | None = None, limit: str = "both",
                  nodes: int = DEFAULT_NODES) -> NTKPredictor:
    """The NTK-limit predictor for ``model``: Θ = :func:`ntk_kernel_of` (``limit`` "both" or "m") and the
    model's own outputs at initialization as f_0 (0 for the symmetrized NTK model).

    Under ``scaling="ntk"`` a finite model approaches this prediction as m (and D) grow; under "ours" and
    "mf" the kernel moves by O(1) during training and the prediction is only the linearization at t = 0.
    """
    X = check_model(model).input(X)
    K = ntk_kernel_of(model, X, limit=limit, nodes=nodes)
    kw: dict[str, Any] = {}
    if X_test is not None:
        Xs = model.input(X_test, "X_test")
        kw = {"k_test_train": ntk_kernel_of(model, Xs, X, limit=limit, nodes=nodes).cpu(),
              "f_test_0": model(Xs).cpu()}
    yt = as_tensor("y", y, ndim=1, dtype=torch.float64, rows=X.shape[0])
    return gradient_descent_mse(K.cpu(), yt, reduction=reduction, step_size=step_size,
                                f_train_0=model(X).cpu(), **kw)

