"""Exceptions raised by wideflow, and the small validators every public entry point shares.

Every error wideflow raises on purpose derives from :class:`WideflowError`, and each concrete class is
also a built-in ``ValueError``, ``TypeError`` or ``RuntimeError`` so that generic handlers still work.
Messages name the argument, the value received and what was expected.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

__all__ = [
    "WideflowError",
    "InvalidArgument",
    "InvalidType",
    "InvalidShape",
    "NonFiniteInput",
    "UnknownName",
    "KernelEngineUnavailable",
    "TrainingDiverged",
    "TrainingStalled",
    "CheckpointError",
    "FileMissing",
    "OutputError",
    "MissingDependency",
]


class WideflowError(Exception):
    """Base class of every error wideflow raises on purpose."""


class InvalidArgument(WideflowError, ValueError):
    """An argument has a value outside what the function accepts."""


class InvalidType(WideflowError, TypeError):
    """An argument has the wrong type or dtype."""


class InvalidShape(InvalidArgument):
    """An array argument has the wrong number of dimensions or the wrong size."""


class NonFiniteInput(InvalidArgument):
    """An array argument contains NaN or Inf."""


class UnknownName(InvalidArgument):
    """A name (activation, scaling, method, ...) is not one of the valid ones."""


class KernelEngineUnavailable(InvalidArgument):
    """``method="kernel"`` was asked for with an option that the kernel-space engine cannot run."""


class CheckpointError(WideflowError, RuntimeError):
    """A saved model or training checkpoint could not be read, or does not match the run it should resume."""


class FileMissing(WideflowError, FileNotFoundError):
    """A file that should be read (a saved model, a configuration) does not exist."""


class OutputError(WideflowError, RuntimeError):
    """A result (history, model, checkpoint) could not be written where it was asked to go."""


class MissingDependency(WideflowError, ImportError):
    """An optional package that a feature needs (TensorBoard event files, the documentation site) is not
    installed; the message names the ``pip install`` extra that brings it."""


class TrainingDiverged(WideflowError, RuntimeError):
    """The training loss became non-finite or exploded.

    Attributes
    ----------
    step:
        The GD step at which divergence was detected.
    last_finite_state:
        The :class:`wideflow.training.TrainState` of the last logged step whose loss was finite
        (``None`` if the very first evaluation already failed).
    max_stable_step_size:
        ``2 N / λ_max(K_0)``, the largest step size for which GD on the linearized dynamics is stable,
        from the tangent kernel K_0 at initialization (docs/theory.md §3).
    history:
        The history rows logged before divergence, as a ``pandas.DataFrame``.
    """

    def __init__(
        self,
        message: str,
        *,
        step: int,
        last_finite_state: Any = None,
        max_stable_step_size: float | None = None,
        history: Any = None,
    ) -> None:
        super().__init__(message)
        self.step = step
        self.last_finite_state = last_finite_state
        self.max_stable_step_size = max_stable_step_size
        self.history = history

    def __reduce__(self) -> tuple:
        """Pickle with the attributes (errors cross process boundaries, e.g. from Dask workers)."""
        return (_rebuild_diverged, (type(self), str(self), self.step, self.last_finite_state,
                                    self.max_stable_step_size, self.history))


class TrainingStalled(TrainingDiverged):
    """No neuron of the trained layer is active on the training set: σ′(h_i(x_a)) = 0 for every neuron i and
    point a (and σ = 0 too when c is trained), so the gradient is exactly 0 while the loss is not and GD can
    never move again (a dead ReLU net, or one saturated to σ′ = 0 in floating point).

    A subclass of :class:`TrainingDiverged` with the same attributes (``step`` is the logging step where it was
    found, ``last_finite_state`` the state there), so that a handler of failed runs sees both.
    """


def _rebuild_diverged(cls: type[TrainingDiverged], message: str, step: int, last: Any, max_step: float | None,
                      history: Any) -> TrainingDiverged:
    return cls(message, step=step, last_finite_state=last, max_stable_step_size=max_step, history=history)


def closest(name: str, valid: Iterable[str]) -> str:
    """A hint sentence suggesting the valid name closest to ``name`` ("" when none is close).

    Case, hyphens and spaces are ignored when comparing, so "ReLU" and "leaky-relu" find their names.
    """
    valid = list(valid)
    folded = {_fold(v): v for v in valid}
    match = difflib.get_close_matches(_fold(str(name)), list(folded), n=1, cutoff=0.5)
    return f" Did you mean {folded[match[0]]!r}?" if match else ""


def _fold(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_")


def unknown_name(argument: str, value: Any, valid: Iterable[str]) -> UnknownName:
    """Build the error for an unknown name, listing the valid ones and the closest match."""
    valid = sorted(valid)
    return UnknownName(
        f"{argument}={value!r} is not known; expected one of {', '.join(map(repr, valid))}."
        + closest(value, valid)
    )


def check_choice(argument: str, value: Any, valid: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``valid`` (strings), else raise :class:`UnknownName`."""
    valid = list(valid)
    if not isinstance(value, str):
        raise InvalidType(
            f"{argument} must be a string, one of {', '.join(map(repr, valid))}; got {type(value).__name__} {value!r}."
        )
    if value not in valid:
        raise unknown_name(argument, value, valid)
    return value


def check_positive_int(argument: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ≥ ``minimum`` (bools rejected), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | _np_integer()):
        raise InvalidType(f"{argument} must be an integer >= {minimum}; got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise InvalidArgument(f"{argument} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_positive_float(argument: str, value: Any, *, allow_zero: bool = False, above: float = 0.0) -> float:
    """Return ``value`` as a float if it is a finite real number > ``above`` (≥ with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | _np_number()):
        raise InvalidType(f"{argument} must be a real number; got {type(value).__name__} {value!r}.")
    value = float(value)
    bound_ok = value >= above if allow_zero else value > above
    if not math.isfinite(value) or not bound_ok:
        expected = f"a finite number {'>=' if allow_zero else '>'} {above:g}"
        raise InvalidArgument(f"{argument} must be {expected}; got {value!r}.")
    return value


def check_seed(argument: str, value: Any) -> int:
    """Return ``value`` as an ``int`` if it is a Python or NumPy integer in [0, 2**63) (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, int | _np_integer()):
        raise InvalidType(f"{argument} must be an integer; got {type(value).__name__} {value!r}.")
    if not 0 <= value < 2**63:
        raise InvalidArgument(f"{argument} must be an integer in [0, 2**63); got {value!r}.")
    return int(value)


def check_bool(argument: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """Return ``value`` if it is ``True`` or ``False`` (or ``None`` with ``allow_none``), else raise."""
    if isinstance(value, bool) or (allow_none and value is None):
        return value
    expected = "True, False or None" if allow_none else "True or False"
    raise InvalidType(f"{argument} must be {expected}; got {type(value).__name__} {value!r}.")


def check_non_empty(argument: str, values: Any, what: str) -> list[Any]:
    """``values`` as a list, refusing a string, a non-iterable or an empty collection (``what``: its entries)."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidType(f"{argument} must be a list of {what}; got {type(values).__name__} {values!r}.")
    values = list(values)
    if not values:
        raise InvalidArgument(f"{argument} is empty; expected a non-empty list of {what}.")
    return values


def _np_integer() -> type:
    import numpy as np

    return np.integer


def _np_number() -> type:
    import numpy as np

    return np.number


def not_a_model(argument: str, value: Any) -> InvalidType:
    """The one error for a value that should be a wideflow model (:func:`wideflow.model.check_model`)."""
    return InvalidType(
        f"{argument} must be a wideflow model (WideNet, Shallow, P3L, PartiallyTrained, e.g. wf.P3L(d, m)); "
        f"got {type(value).__name__}."
    )
