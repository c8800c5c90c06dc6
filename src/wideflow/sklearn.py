r"""scikit-learn estimators around the general model (2)-(3) trained by the GD rule (9), and its kernels.

- :class:`WideNetRegressor`: least squares (eq. (6)).
- :class:`WideNetClassifier`: the logistic loss (:mod:`wideflow.losses`); several classes are one-vs-rest, the
  K binary problems trained together as one batched kernel-space run (docs/theory.md §8) when the kernel
  engine runs them.
- :class:`WideNetKernel`: the tangent kernel of the trained layer, or the kernel of the features, of a model at
  initialization or after training, as a ``sklearn.gaussian_process.kernels.Kernel`` that is also a
  ``kernel=`` of ``SVR``, ``SVC`` and ``KernelRidge``.

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
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.gaussian_process.kernels import Kernel
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "wideflow.sklearn needs scikit-learn >= 1.6, which is an optional extra of wideflow; install it with "
        '`pip install "wideflow[sklearn]"` (or `pip install "scikit-learn>=1.6"`).'
    ) from exc

import numpy as np
import pandas as pd
import torch

from .engines import KernelEngine, Problem, choose_method, prepare
from .errors import (
    InvalidArgument,
    InvalidType,
    NonFiniteInput,
    check_choice,
    check_positive_int,
)
from .kernels import embedding_gram, max_stable_step_size
from .losses import LOSSES, softplus
from .model import WideNet, check_model
from .registry import build_model
from .scalings import Scaling
from .training import train
from .training.loop import DIVERGENCE_FACTOR, Driver
from .training.train import diverged_error

__all__ = ["WideNetClassifier", "WideNetKernel", "WideNetRegressor"]


class _WideNetEstimator(BaseEstimator):
    """The constructor arguments and the model shared by :class:`WideNetRegressor` and :class:`WideNetClassifier`."""

    def __init__(
        self,
        kind: str = "p3l",
        m: int = 256,
        D: int | None = None,
        depth: int | None = None,
        activation: str = "relu",
        scaling: str | dict | Scaling = "ours",
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

    def _settings(self, X: np.ndarray, curvature: float) -> tuple[WideNet, int, float]:
        """The untrained model, the number of steps and δ ("auto": min(1, ½ of GD's stability limit at
        initialization, 2N/(ℓ''·λ_max(K_0)), with ℓ'' ≤ ``curvature``); docs/theory.md §2)."""
        steps = check_positive_int("steps", self.steps)
        if not isinstance(self.verbose, bool):
            raise InvalidArgument(f"verbose must be True or False; got {self.verbose!r}.")
        model = self._build_model(X.shape[1])
        if isinstance(self.step_size, str):
            check_choice("step_size", self.step_size, ["auto"])
            return model, steps, min(1.0, 0.5 * max_stable_step_size(model, X, self.reduction) / curvature)
        return model, steps, self.step_size

    def _tags(self, tags: Any) -> Any:
        tags.non_deterministic = self.random_state is None or isinstance(self.random_state, np.random.RandomState)
        return tags


def _writable(X: np.ndarray) -> np.ndarray:
    """torch cannot wrap a read-only array (a memory map, say) without copying it."""
    return np.require(X, requirements="W")

class WideNetRegressor(RegressorMixin, _WideNetEstimator):
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
        σ, the scaling ("ours", "ntk", "mf", ``wf.richness(r)``, any spelling of :func:`wideflow.get_scaling`)
        and ĉ of Assumption 1, as in :class:`wideflow.WideNet`.
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

    def fit(self, X: Any, y: Any) -> WideNetRegressor:
        """Draw the initialization and train W on (X, y) by ``steps`` GD steps (eq. (9)). Returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        X, y = _writable(X), _writable(y)
        model, steps, step_size = self._settings(X, 1.0)
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
        X = _writable(validate_data(self, X, dtype=np.float64, reset=False))
        with torch.no_grad():
            return self.model_(X).cpu().numpy()

    def __sklearn_tags__(self) -> Any:
        """The two tags that differ from a plain regressor's, each for a reason of the model itself:

        - ``non_deterministic`` when ``random_state`` is ``None`` or a ``RandomState`` (a new seed per fit);
        - ``regressor_tags.poor_score`` for ``kind="quadratic"``: then f(−x) = f(x) for every x, since
          h_i(x) = xᵀW_i x/d, so no training can fit the linear target of scikit-learn's score check.
        """
        tags = self._tags(super().__sklearn_tags__())
        tags.regressor_tags.poor_score = self.kind == "quadratic"
        return tags


class WideNetClassifier(ClassifierMixin, _WideNetEstimator):
    r"""Classification with the general model (2)-(3), only W trained by full-batch GD (9) on the logistic loss.

    Two classes: one model, trained with labels −1 (``classes_[0]``) and +1 (``classes_[1]``) on
    L = (1/N) Σ_a log(1 + exp(−y_a f(x_a))) (:mod:`wideflow.losses`); P(classes_[1] | x) = sigmoid(f(x)).
    K > 2 classes: one-vs-rest, K binary models from the same initialization, class k against the others,
    trained together as one batched kernel-space run (R = K on the engine's batch axis, docs/theory.md §8)
    when the kernel engine runs them, else one after the other with the weights engine; the scores are the K
    outputs f_k(x), the prediction their argmax and the probabilities the normalized sigmoid(f_k(x)). The
    parameters are those of :class:`WideNetRegressor`; ``step_size="auto"`` is min(1, ½ of GD's stability limit
    at initialization), with ℓ'' ≤ ¼ for the logistic loss (4 times the squared loss's limit).

    Attributes
    ----------
    classes_: the class labels, sorted.
    models_: the trained :class:`wideflow.WideNet` of each binary problem (one for two classes, else K).
    history_: the training history (step, time, train_loss, train_accuracy; with a ``class`` column for K > 2).
    method_, step_size_, n_features_in_, feature_names_in_: as in :class:`WideNetRegressor`.
    """

    def fit(self, X: Any, y: Any) -> WideNetClassifier:
        """Train one model (two classes) or K one-vs-rest models on (X, y) by ``steps`` GD steps. Returns ``self``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"WideNetClassifier needs samples of at least 2 classes in the data; got only one "
                             f"class: {self.classes_[0]!r}.")
        X = _writable(X)
        k_runs = [1] if len(self.classes_) == 2 else range(len(self.classes_))
        targets = [np.where(codes == k, 1.0, -1.0) for k in k_runs]
        model, steps, step_size = self._settings(X, LOSSES["logistic"].max_curvature)
        self.models_, histories, self.method_ = _train_one_vs_rest(
            model, X, targets, steps=steps, step_size=step_size, reduction=self.reduction, method=self.method,
            log_every=max(1, steps // 100), progress=self.verbose)
        self.history_ = histories[0] if len(histories) == 1 else pd.concat(
            [h.assign(**{"class": c}) for h, c in zip(histories, self.classes_, strict=True)], ignore_index=True)
        self.step_size_ = step_size
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """f(X) (n,) for two classes (positive: ``classes_[1]``), else the K one-vs-rest outputs (n, K)."""
        check_is_fitted(self)
        X = _writable(validate_data(self, X, dtype=np.float64, reset=False))
        with torch.no_grad():
            scores = torch.stack([model(X) for model in self.models_], dim=1).cpu().numpy()
        if not np.isfinite(scores).all():
            rows = np.flatnonzero(~np.isfinite(scores).all(axis=1))
            raise NonFiniteInput(
                f"X gives non-finite model outputs f(x) at rows {rows[:5].tolist()} ({len(rows)} rows), so "
                "their class and probabilities are undefined; the inputs overflow the model (scale them, e.g. "
                "with StandardScaler)."
            )
        return scores[:, 0] if len(self.models_) == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, K), each row summing to 1: (1 − sigmoid(f), sigmoid(f)) for two classes, the
        normalized sigmoid(f_k) for K > 2, computed in log space (log sigmoid(f) = −softplus(−f)), so no
        margin overflows or gives NaN."""
        scores = torch.from_numpy(np.asarray(self.decision_function(X), dtype=np.float64))
        if scores.ndim == 1:
            scores = torch.stack([-scores, scores], dim=1)  # sigmoid(−f) = 1 − sigmoid(f)
        return torch.softmax(-softplus(-scores), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The class of each row: ``classes_[1]`` where f > 0 (two classes), else the argmax of the K outputs."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    def __sklearn_tags__(self) -> Any:
        """``non_deterministic`` when ``random_state`` is ``None`` or a ``RandomState`` (a new seed per fit);
        ``classifier_tags.poor_score`` for ``kind="quadratic"``, whose f is even in x (f(−x) = f(x)), so it
        cannot separate classes that lie on opposite sides of the origin, as those of scikit-learn's score check."""
        tags = self._tags(super().__sklearn_tags__())
        tags.classifier_tags.poor_score = self.kind == "quadratic"
        return tags


def _train_one_vs_rest(model: WideNet, X: np.ndarray, targets: list[np.ndarray], *, steps: int, step_size: float,
                       reduction: str, method: str, log_every: int, progress: bool
                       ) -> tuple[list[WideNet], list[pd.DataFrame], str]:
    """Train ``model`` on each ±1 target with the logistic loss: one batched :class:`KernelEngine` run over the
    targets when the kernel engine is the one :func:`wideflow.train` would pick, else :func:`wideflow.train`
    per target. Returns the trained models, their histories and the engine."""
    resolved = choose_method(method, m=model.m, n=X.shape[0], D=model.D, n_test=0, steps=steps,
                             log_every=log_every, trains_neurons=model.train_c or model.bias)
    if resolved != "kernel" or len(targets) == 1:
        results = [train(model, X, t, steps=steps, step_size=step_size, reduction=reduction, method=resolved,
                         log_every=log_every, progress=progress, loss="logistic") for t in targets]
        return [r.model for r in results], [r.history for r in results], resolved
    problems = [prepare(model, X, t, reduction=reduction, step_size=step_size, loss="logistic") for t in targets]
    engine = KernelEngine(Problem.stack(problems))
    driver = Driver(engine, steps=steps, log_every=log_every, progress=progress).run()
    if driver.diverged:
        r = min(driver.diverged)
        raise diverged_error(driver.diverged[r], problems[r], driver.rows[r], DIVERGENCE_FACTOR)
    return engine.finish(), [pd.DataFrame(rows) for rows in driver.rows], resolved


KINDS = ("tangent", "features")


class WideNetKernel(Kernel):
    r"""A kernel of a :class:`wideflow.WideNet`, at initialization or after training (``result.model``).

    - ``kind="tangent"``: the tangent kernel of the trained layer in GD-step units (docs/theory.md §3),
      K(x, x′) = s_o² · (lr factor) · s_h² · Σ_i c_i² σ′(h_i(x)) σ′(h_i(x′)) · Φ(x)·Φ(x′)
      = s_o γ · Σ_i c_i² σ′(h_i(x)) σ′(h_i(x′)) · G(x, x′), which is (1/m) Σ_i c_i² σ′σ′ · G under each scaling of
      Table 1 (γ of :meth:`wideflow.scalings.Scaling.gamma`; G(x, x′) = Φ(x)·Φ(x′)/D, eq. (12)). One GD step
      moves the outputs by −(δ/N) K e to first order (eq. (13)). Only W's kernel: trained c or b add their own.
    - ``kind="features"``: (1/m) Σ_i σ(h_i(x)) σ(h_i(x′)), the kernel of the last hidden layer.

    A ``sklearn.gaussian_process.kernels.Kernel`` without hyperparameters (the model is fixed), so it serves
    ``GaussianProcessRegressor`` (optionally ``+ WhiteKernel()``), and as ``kernel=`` of ``SVR``, ``SVC`` and
    ``KernelRidge``, which call it on two arrays. Matrices are float64 NumPy arrays.

    The model is held as given, as scikit-learn holds parameters (and, at D = ∞, so that the kernel and the model
    stay one random function): editing the model in place changes the kernel; pass ``model.clone()`` to freeze it.
    """

    def __init__(self, model: WideNet, kind: str = "tangent") -> None:
        self.model = model
        self.kind = kind

    def _parts(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs as a tensor, the per-neuron factors (n, m)): c_i σ′(h_i(x)) or σ(h_i(x))."""
        model = check_model(self.model)
        check_choice("kind", self.kind, KINDS)
        Xt = model.input(_writable(X) if isinstance(X, np.ndarray) else X)
        with torch.no_grad():
            H = model.features(Xt)
            if self.kind == "features":
                return Xt, model.activation(H)
            return Xt, model.activation.deriv(H) * model.c

    def _scale(self) -> float:
        model = self.model
        if self.kind == "features":
            return 1.0 / model.m
        return model.s_o * model.scaling.gamma(model.m, model.D)

    def __call__(self, X: Any, Y: Any = None, eval_gradient: bool = False) -> Any:
        """K(X, Y) (n_X, n_Y), or K(X, X); with ``eval_gradient``, also its gradient in the (no) hyperparameters."""
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        Xt, A = self._parts(X)
        Yt, B = (Xt, A) if Y is None else self._parts(Y)
        with torch.no_grad():
            K = A @ B.T
            if self.kind == "tangent":
                K = K * embedding_gram(self.model.embedding, Xt, None if Y is None else Yt)
            K = (K * self._scale()).double().cpu().numpy()
        if Y is None:
            K = 0.5 * (K + K.T)  # exactly symmetric (the two triangles of a product may differ by rounding)
        return (K, np.empty((K.shape[0], K.shape[0], 0))) if eval_gradient else K

    def diag(self, X: Any) -> np.ndarray:
        """K(x, x) for each row of X (n,), without forming the n × n matrix."""
        Xt, A = self._parts(X)
        with torch.no_grad():
            d = (A * A).sum(dim=1)
            if self.kind == "tangent":
                emb = self.model.embedding
                d = d * torch.cat([embedding_gram(emb, Xt[i : i + 1]).reshape(1) for i in range(len(Xt))])
            return (d * self._scale()).double().cpu().numpy()

    def is_stationary(self) -> bool:
        """Not stationary: K(x, x′) is not a function of x − x′."""
        return False

    @property
    def requires_vector_input(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"WideNetKernel({self.model!r}, kind={self.kind!r})"
