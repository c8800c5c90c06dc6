"""Conversion of user arrays to tensors, with the checks of every public entry point."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import InvalidArgument, InvalidShape, InvalidType, NonFiniteInput

__all__ = ["as_tensor", "resolve_device", "resolve_dtype"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_dtype(dtype: Any) -> torch.dtype:
    """Accept ``torch.float32``/``torch.float64`` or their names; anything else is an error."""
    if isinstance(dtype, str) and dtype in _DTYPES:
        return _DTYPES[dtype]
    if dtype in (torch.float32, torch.float64):
        return dtype
    raise InvalidType(f"dtype must be torch.float32 or torch.float64 (or 'float32'/'float64'); got {dtype!r}.")


def resolve_device(device: Any) -> torch.device:
    """Parse ``device`` and check that it exists on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument(f"device={device!r} is not a valid torch device ({exc}).") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgument(f"device={device!r} was asked for, but CUDA is not available on this machine.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidArgument(
                f"device={device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidArgument(f"device={device!r} was asked for, but MPS is not available on this machine.")
    elif dev.type != "cpu":
        raise InvalidArgument(f"device={device!r} is not supported; expected 'cpu', 'cuda' or 'cuda:K'.")
    return dev


def as_tensor(
    argument: str,
    value: Any,
    *,
    ndim: int,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
    cols: int | None = None,
    rows: int | None = None,
) -> torch.Tensor:
    """Convert ``value`` (tensor, NumPy array or nested list) to a tensor of ``dtype`` on ``device``.

    Real numeric inputs (floats, integers) are converted to ``dtype``; booleans, complex numbers,
    strings and objects are rejected, as are empty arrays, NaN/Inf and shapes other than the one
    asked for. ``rows``/``cols`` pin the first/second dimension when given.
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise InvalidType(f"{argument} must be a numeric array; could not convert it ({exc}).") from None
        if arr.dtype.kind not in "fiu":
            raise InvalidType(f"{argument} must hold real numbers; got an array of dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int(t.dtype)):
        raise InvalidType(f"{argument} must hold real numbers; got a tensor of dtype {t.dtype}.")
    if t.ndim != ndim:
        want = "(n,)" if ndim == 1 else "(n, d)" if ndim == 2 else f"{ndim} dimensions"
        raise InvalidShape(f"{argument} must have shape {want}; got shape {tuple(t.shape)}.")
    if t.shape[0] == 0:
        raise InvalidShape(f"{argument} is empty (shape {tuple(t.shape)}); at least one point is needed.")
    if rows is not None and t.shape[0] != rows:
        raise InvalidShape(f"{argument} has {t.shape[0]} rows; expected {rows} to match the other inputs.")
    if cols is not None and t.shape[1] != cols:
        raise InvalidShape(f"{argument} has {t.shape[1]} columns; expected {cols} (the model's input dimension d).")
    t = t.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteInput(f"{argument} contains {bad} NaN or Inf value(s); all entries must be finite.")
    return t


def _is_int(dtype: torch.dtype) -> bool:
    return dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
