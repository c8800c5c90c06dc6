"""wideflow: feature learning with global convergence guarantees, executable.

Chen, Vanden-Eijnden & Bruna, "On Feature Learning in Neural Networks with Global Convergence
Guarantees", ICLR 2022. The public surface is exactly what this module lists in ``__all__``.
"""

from . import activations, data, embeddings, errors, scalings
from ._version import __version__
from .activations import Activation, get_activation, register_activation
from .training import TrainResult, TrainState, train
from .errors import TrainingDiverged, TrainingStalled, WideflowError
from .interop import from_module, to_module
from .kernels import gram, limit_gram, max_stable_step_size, tangent_kernel
from . import diagnostics, display, engines, gradflow, ntk, theory, training  # wideflow.plotting (matplotlib) is imported on demand
from .diagnostics import FeatureTracker, width_sweep
from .gradflow import compare_gd_to_flow, flow, gradient_flow
from .ntk import ntk_kernel, ntk_predictor
from .theory import check, fit_rate, lemma1, pl_bound
from .model import P3L, PartiallyTrained, Shallow, WideNet, load
from .scalings import Scaling, abc_scaling, get_scaling, richness
from .sweep import load_results

__all__ = [
    "__version__",
    "activations",
    "data",
    "embeddings",
    "errors",
    "scalings",
    "Activation",
    "get_activation",
    "register_activation",
    "Scaling",
    "get_scaling",
    "richness",
    "abc_scaling",
    "WideNet",
    "Shallow",
    "P3L",
    "PartiallyTrained",
    "load",
    "train",
    "TrainResult",
    "TrainState",
    "gram",
    "limit_gram",
    "tangent_kernel",
    "diagnostics",
    "display",
    "engines",
    "training",
    "gradflow",
    "flow",
    "ntk",
    "theory",
    "FeatureTracker",
    "width_sweep",
    "gradient_flow",
    "compare_gd_to_flow",
    "ntk_kernel",
    "ntk_predictor",
    "check",
    "fit_rate",
    "lemma1",
    "pl_bound",
    "WideflowError",
    "TrainingDiverged",
    "TrainingStalled",
    "max_stable_step_size",
    "to_module",
    "from_module",
    "load_results",
]
