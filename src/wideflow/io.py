"""Files that are never half-written, and the one JSON form of wideflow's results.

- :func:`atomic_write` writes through a temporary file in the same folder, fsyncs it, renames it into place
  and fsyncs the folder, so that a reader, or a process killed at any instant, sees either the previous file
  or the complete new one. :func:`atomic_torch_save`, :func:`atomic_json` and :func:`atomic_text` are its
  three uses (models and checkpoints, results, reports).
- :func:`read_torch_file` reads back what :func:`atomic_torch_save` wrote, with ``weights_only=True``.
- :func:`json_digest` names a JSON-like value by a short hash (run ids, fingerprints of a sharded run).
- :func:`jsonable` / :func:`to_json` are the JSON policy of every file wideflow writes: NumPy and torch
  scalars become Python numbers, tuples become lists, and a non-finite float (NaN, +inf, -inf) becomes
  ``null``. JSON has no NaN or infinity, and a metric that is undefined (no test set) or unbounded (a rate
  with a zero loss) is "no number" to every reader of the file; the in-memory tables keep NaN and inf.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .errors import CheckpointError, FileMissing, OutputError

__all__ = ["atomic_write", "atomic_torch_save", "atomic_json", "atomic_text", "read_torch_file", "jsonable",
           "to_json", "read_json", "json_digest"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(file)`` on a temporary binary file next to ``path``, fsync it, rename it to ``path`` and
    fsync the folder (the rename itself is then durable).

    Raises :class:`~wideflow.errors.OutputError` naming the path when the folder cannot be made, the file
    cannot be written, or ``path`` is a folder; the temporary file never survives a failure.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write to {str(path)!r}: it is a folder; give a file name.")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if hasattr(os, "O_DIRECTORY"):
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except (OSError, RuntimeError) as exc:  # torch's writer reports some I/O failures as RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise OutputError(f"could not write {str(path)!r}: {reason}.") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` through :func:`atomic_write`."""
    return atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 ``text`` to ``path`` through :func:`atomic_write`."""
    data = text.encode()
    return atomic_write(path, lambda fh: fh.write(data))


def jsonable(value: Any) -> Any:
    """``value`` in plain JSON types under the policy of this module: NumPy/torch scalars to Python numbers,
    tuples to lists, mapping keys to strings, non-finite floats to ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray | torch.Tensor):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(value: Any, *, indent: int | None = 1, sort_keys: bool = False) -> str:
    """The JSON text of ``value`` after :func:`jsonable` (``allow_nan=False``: no invalid JSON is ever written)."""
    return json.dumps(jsonable(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def json_digest(value: Any) -> str:
    """The first 16 hex digits of the SHA-256 of ``value``'s compact JSON with sorted keys (values JSON cannot
    hold are written as their ``str``)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_json(path: str | os.PathLike, value: Any) -> Path:
    """:func:`to_json` of ``value``, with a final newline, to ``path`` through :func:`atomic_write`."""
    return atomic_text(path, to_json(value) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The value of a JSON file that wideflow wrote (``null`` stands for a non-finite or missing number)."""
    return json.loads(Path(path).read_text())


def read_torch_file(path: str | os.PathLike, what: str, *, version: int, keys: set[str], hint: str) -> dict:
    """Read a dict that wideflow wrote with :func:`atomic_torch_save` (tensors, numbers, strings and containers
    only, so ``torch.load(weights_only=True)``), and check its format ``version`` and ``keys``.

    Raises :class:`~wideflow.errors.FileMissing` or :class:`~wideflow.errors.CheckpointError` naming the path,
    ``what`` was expected and ``hint``.
    """
    p = Path(path)
    if not p.exists():
        raise FileMissing(f"{str(path)!r} does not exist; expected {what}.")
    if p.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder; expected {what} (a file).")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling raises many types; all mean "not this kind of file"
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(f"could not read {str(path)!r} as {what}: {type(exc).__name__}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != version or not keys <= set(state):
        raise CheckpointError(f"{str(path)!r} is not {what} (format {version}); {hint}")
    return state
