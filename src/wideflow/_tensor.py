"""Conversion of user arrays to tensors, with the checks of every public entry point.

Every array a user hands to wideflow goes through :func:`as_tensor`, which rejects, with an error naming
the argument, what it got and what was expected: non-numeric dtypes (bool, complex, strings, objects),
the wrong number of dimensions, empty arrays, sizes that do not match the model or the other inputs,
and NaN/Inf (also values that only overflow when cast to the model's dtype).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import InvalidArgument, InvalidShape, InvalidType, NonFiniteInput, closest

__all__ = ["as_tensor", "parse_device", "resolve_device", "resolve_dtype", "check_shape"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_dtype(dtype: Any) -> torch.dtype:
    """Accept ``torch.float32``/``torch.float64`` or their names; anything else is an error."""
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise InvalidType(
        f"dtype must be torch.float32 or torch.float64 (or 'float32'/'float64'); got {dtype!r}."
        + (closest(dtype, _DTYPES) if isinstance(dtype, str) else "")
    )


def parse_device(device: Any, argument: str = "device") -> torch.device:
    """Parse ``device`` ("cpu", "cuda", "cuda:K", "mps" or a ``torch.device``) without asking whether it
    exists on this machine (a run configuration may name the device of another machine's workers)."""
    if not isinstance(device, str | torch.device):
        raise InvalidType(
            f"{argument} must be a string such as 'cpu' or 'cuda:0', or a torch.device; got {type(device).__name__} "
            f"{device!r}."
        )
    kind = device.type if isinstance(device, torch.device) else device.split(":", 1)[0]
    if kind not in _DEVICE_TYPES:
        hint = " Did you mean 'cuda'?" if kind.lower() == "gpu" else closest(kind, _DEVICE_TYPES)
        raise InvalidArgument(
            f"{argument}={str(device)!r} is not supported; expected 'cpu', 'cuda', 'cuda:K' or 'mps'.{hint}"
        )
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgument(
            f"{argument}={str(device)!r} is not a valid device string; expected 'cpu', 'cuda', 'cuda:K' (K an index) "
            "or 'mps'."
        ) from None


def resolve_device(device: Any, argument: str = "device") -> torch.device:
    """Parse ``device`` (see :func:`parse_device`) and check that it exists here."""
    dev = parse_device(device, argument)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgument(
                f"{argument}={str(device)!r} was asked for, but CUDA is not available on this machine; use 'cpu'."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InvalidArgument(
                f"{argument}={str(device)!r} does not exist: this machine has {count} CUDA device(s), "
                f"'cuda:0' to 'cuda:{count - 1}'."
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidArgument(f"{argument}={str(device)!r} was asked for, but MPS is not available on this machine.")
    return dev


def as_tensor(
    argument: str,
    value: Any,
    *,
    ndim: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    rows: int | None = None,
    cols: int | None = None,
    rows_name: str = "n",
    rows_what: str = "to match the other inputs",
    cols_name: str = "d",
    cols_what: str = "the model's input dimension",
) -> torch.Tensor:
    """Convert ``value`` (tensor, NumPy array or nested list) to a tensor of ``dtype`` on ``device``.

    Real numeric inputs (floats, integers) are converted to ``dtype``; booleans, complex numbers,
    strings and objects are rejected, as are empty arrays, NaN/Inf and shapes other than the one
    asked for. ``rows``/``cols`` pin the first/second dimension when given; ``*_name`` and ``*_what`` say
    in the error what that size is (e.g. "d", "the model's input dimension").
    """
    t = _to_torch(argument, value)
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int(t.dtype)):
        raise InvalidType(f"{argument} must hold real numbers; got a tensor of dtype {t.dtype}.")
    if t.ndim != ndim:
        raise InvalidShape(_ndim_message(argument, tuple(t.shape), ndim))
    if t.numel() == 0:
        raise InvalidShape(f"{argument} is empty (shape {tuple(t.shape)}); at least one point is needed.")
    both = rows is not None and cols is not None
    full = f" {argument} must have shape ({rows_name}, {cols_name}) = ({rows}, {cols})." if both else ""
    if rows is not None and t.shape[0] != rows:
        unit = "entries" if ndim == 1 else "rows"
        raise InvalidShape(f"{argument} has {t.shape[0]} {unit}; expected {rows_name} = {rows}, {rows_what}.{full}")
    if cols is not None and t.shape[1] != cols:
        raise InvalidShape(f"{argument} has {t.shape[1]} columns; expected {cols_name} = {cols}, {cols_what}.{full}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise NonFiniteInput(_nonfinite_message(argument, t))
    t = t.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteInput(
            f"{argument} has {int((~torch.isfinite(t)).sum())} value(s) too large for {str(dtype).removeprefix('torch.')}"
            f" (largest finite {torch.finfo(dtype).max:.3g}); rescale the data or use dtype=torch.float64."
        )
    return t


def check_shape(argument: str, value: Any, shape: tuple[int, ...], names: str, context: str = "") -> torch.Tensor:
    """Check that ``value`` is a real floating tensor of exactly ``shape``, described as ``names`` (e.g.
    "(m, n)"); ``context`` ends the sentence of the error (e.g. " to match H of shape (m, n) = (10, 8)")."""
    if not isinstance(value, torch.Tensor):
        raise InvalidType(f"{argument} must be a torch.Tensor of shape {names}{context}; got {type(value).__name__}.")
    if not value.is_floating_point():
        raise InvalidType(f"{argument} must be a floating-point tensor; got dtype {value.dtype}.")
    if tuple(value.shape) != tuple(shape):
        raise InvalidShape(f"{argument} must have shape {names} = {tuple(shape)}{context}; got {tuple(value.shape)}.")
    return value


def _to_torch(argument: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InvalidType(
            f"{argument} must be a numeric array (a tensor, a NumPy array or a rectangular nested list); "
            f"could not convert it ({exc})."
        ) from None
    if arr.dtype.kind not in "fiu":
        raise InvalidType(f"{argument} must hold real numbers; got an array of dtype {arr.dtype}.")
    # np.ascontiguousarray would turn a 0-d array into a 1-d one, and hide a scalar's shape
    return torch.from_numpy(arr if arr.flags.c_contiguous else arr.copy())


def _ndim_message(argument: str, shape: tuple[int, ...], ndim: int) -> str:
    if ndim == 1:
        hint = " For a column of shape (n, 1) use y.reshape(-1)." if len(shape) == 2 and shape[1] == 1 else ""
        return f"{argument} must have shape (n,), one value per point; got shape {shape}.{hint}"
    if ndim == 2:
        hint = (" For a single point use X.reshape(1, -1); for d = 1 use X.reshape(-1, 1)."
                if len(shape) == 1 else "")
        return f"{argument} must have shape (n, d), one row per point; got shape {shape}.{hint}"
    return f"{argument} must have {ndim} dimensions; got shape {shape}."


def _nonfinite_message(argument: str, t: torch.Tensor) -> str:
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    first = tuple(int(i) for i in (~torch.isfinite(t)).nonzero()[0])
    return (f"{argument} contains {nan} NaN and {inf} Inf value(s), the first at index {first}; "
            "all entries must be finite.")


def _is_int(dtype: torch.dtype) -> bool:
    return dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
