r"""A scikit-learn regressor around the general model (2)-(3) trained by the GD rule (9).

scikit-learn is an optional extra (``pip install "wideflow[sklearn]"``); importing this module without it
raises an ``ImportError`` that says so. The rest of wideflow never imports it.

>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from wideflow.sklearn import WideNetRegressor
>>> reg = make_pipeline(StandardScaler(), WideNetRegressor(m=256, steps=500))  # doctest: +SKIP
>>> reg.fit(X, y).score(X_test, y_test)  # doctest: +SKIP

The model has no output bias (the paper's f has none), so targets far from zero are best centred, e.g. with
``sklearn.compose.TransformedTargetRegressor(regressor, transformer=StandardScaler())``.
"""

from __future__ import annotations

from typing import Any

try:
    from sklearn.base import BaseEstimator, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "wideflow.sklearn needs scikit-learn >= 1.6, which is an optional extra of wideflow; install it with "
        '`pip install "wideflow[sklearn]"` (or `pip install "scikit-learn>=1.6"`).'
    ) from exc

import numpy as np
import torch

from .errors import InvalidArgument, InvalidType, check_choice, check_positive_int
from .kernels import max_stable_step_size
from .model import WideNet
from .registry import build_model
from .training import train

__all__ = ["WideNetRegressor"]


class WideNetRegressor(RegressorMixin, BaseEstimator):
    r"""Least-squares regression with the general model (2)-(3), only W trained, by full-batch GD (9).

    f(x) = s_o Σ_i c_i σ(h_i(x)), h_i(x) = s_h Σ_j W_ij φ_j(x), with (s_o, s_h) and the learning-rate factor of
    Table 1 for ``scaling`` (docs/theory.md §6). ``fit`` runs :func:`wideflow.train` from the initialization drawn with
    ``random_state``; everything is deterministic given it.

    Parameters
    ----------
    kind:
        The model kind, a name of :data:`wideflow.registry.MODEL_KINDS`: ``"p3l"`` (the P-3L net of
        eqs. (4)-(5)), ``"deep"`` (the L-layer net of Appendix H), ``"shallow"`` (Φ(x) = x, eq. (1)) or
        ``"quadratic"`` (Φ(x) = vec(xxᵀ), Exp 2).
    m:
        Width of the trained layer.
    D:
        Embedding dimension of ``"p3l"`` and ``"deep"`` (``None``: D = m); the other kinds fix it (d, d²).
    depth:
        L ≥ 3 for ``"deep"`` (``None``: the kind's default, 3); the other kinds have none.
    activation, scaling, c_hat:
        σ, the scaling ("ours", "ntk", "mf") and ĉ of Assumption 1, as in :class:`wideflow.WideNet`.
    steps, reduction, method:
        Number of GD steps, "mean" or "sum" loss and engine, as in :func:`wideflow.train`.
    step_size:
        δ (GF time = steps·δ), or ``"auto"``: the paper's δ = 1 unless GD linearized at initialization is
        unstable there, in which case half its stability limit, δ = min(1, ½·2N/λ_max(K_0)) (see
        :func:`wideflow.kernels.max_stable_step_size`). Inputs far from unit scale (say ‖x‖²/d ≫ 1) need it.
    train_c, bias:
        Beyond the paper: also train c, and add trained biases b_i.
    random_state:
        Seed of the initialization (and of the random embedding): an int, or ``None`` / a
        ``numpy.random.RandomState`` from which an int seed is drawn.
    dtype, device:
        "float64" or "float32"; "cpu" or "cuda[:k]".
    verbose:
        Show a progress bar during ``fit``.

    Attributes
    ----------
    model_: the trained :class:`wideflow.WideNet`.
    history_: the training history (``pandas.DataFrame`` with step, time, train_loss).
    method_: the engine that ran ("weights" or "kernel").
    step_size_: the step size δ that was used.
    n_features_in_, feature_names_in_: as in every scikit-learn estimator.
    """

    def __init__(
        self,
        kind: str = "p3l",
        m: int = 256,
        D: int | None = None,
        depth: int | None = None,
        activation: str = "relu",
        scaling: str = "ours",
        c_hat: float = 1.0,
        steps: int = 1000,
        step_size: float | str = "auto",
        reduction: str = "mean",
        method: str = "auto",
        train_c: bool = False,
        bias: bool = False,
        random_state: int | np.random.RandomState | None = 0,
        dtype: str = "float64",
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.kind = kind
        self.m = m
        self.D = D
        self.depth = depth
        self.activation = activation
        self.scaling = scaling
        self.c_hat = c_hat
        self.steps = steps
        self.step_size = step_size
        self.reduction = reduction
        self.method = method
        self.train_c = train_c
        self.bias = bias
        self.random_state = random_state
        self.dtype = dtype
        self.device = device
        self.verbose = verbose

    # ------------------------------------------------------------------ scikit-learn API
    def fit(self, X: Any, y: Any) -> WideNetRegressor:
        """Draw the initialization and train W on (X, y) by ``steps`` GD steps (eq. (9)). Returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        # torch cannot wrap a read-only array (a memory map, say) without copying it
        X, y = np.require(X, requirements="W"), np.require(y, requirements="W")
        steps = check_positive_int("steps", self.steps)
        if not isinstance(self.verbose, bool):
            raise InvalidArgument(f"verbose must be True or False; got {self.verbose!r}.")
        model = self._build_model(X.shape[1])
        if isinstance(self.step_size, str):
            check_choice("step_size", self.step_size, ["auto"])
            step_size = min(1.0, 0.5 * max_stable_step_size(model, X, self.reduction))
        else:
            step_size = self.step_size
        result = train(model, X, y, steps=steps, step_size=step_size, reduction=self.reduction,
                       method=self.method, log_every=max(1, steps // 100), progress=self.verbose)
        self.model_ = result.model
        self.history_ = result.history
        self.method_ = result.method
        self.step_size_ = result.step_size
        return self

    def predict(self, X: Any) -> np.ndarray:
        """f(X) of the trained model, shape (n,), as a NumPy array of the model's dtype."""
        check_is_fitted(self)
        X = np.require(validate_data(self, X, dtype=np.float64, reset=False), requirements="W")
        with torch.no_grad():
            return self.model_(X).cpu().numpy()

    def __sklearn_tags__(self) -> Any:
        """The two tags that differ from a plain regressor's, each for a reason of the model itself:

        - ``non_deterministic`` when ``random_state`` is ``None`` or a ``RandomState`` (a new seed per fit);
        - ``regressor_tags.poor_score`` for ``kind="quadratic"``: then f(−x) = f(x) for every x, since
          h_i(x) = xᵀW_i x/d, so no training can fit the linear target of scikit-learn's score check.
        """
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None or isinstance(self.random_state, np.random.RandomState)
        tags.regressor_tags.poor_score = self.kind == "quadratic"
        return tags

    # ------------------------------------------------------------------ model
    def _seed(self) -> int:
        if isinstance(self.random_state, bool):
            raise InvalidType(f"random_state must be an int, None or a RandomState; got {self.random_state!r}.")
        if isinstance(self.random_state, int | np.integer):
            return int(self.random_state)
        if self.random_state is None or isinstance(self.random_state, np.random.RandomState):
            return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        raise InvalidType(
            f"random_state must be an int, None or a numpy RandomState; got {type(self.random_state).__name__}."
        )

    def _build_model(self, d: int) -> WideNet:
        """The untrained model for inputs of dimension ``d``, from the constructor arguments."""
        return build_model(self.kind, d, self.m, D=self.D, depth=self.depth, activation=self.activation,
                           scaling=self.scaling, c_hat=self.c_hat, seed=self._seed(), dtype=self.dtype,
                           device=self.device, train_c=self.train_c, bias=self.bias)
