"""Training checkpoints: an engine's state, the random generators and the histories, in one atomic file.

A checkpoint is written by :class:`~wideflow.training.loop.Driver` at logging steps and read by
:func:`wideflow.train` (``resume=``); it is only resumed by the run it was written for (same model, data and
settings, compared through ``settings``), and the resumed history and final weights are bit-identical to an
uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..engines import Engine
from ..errors import CheckpointError, InvalidArgument, InvalidType, check_positive_int
from ..io import atomic_torch_save, read_torch_file

__all__ = ["save_checkpoint", "load_checkpoint", "checkpoint_steps", "previous", "check_checkpointing", "fingerprint",
           "FORMAT"]

FORMAT = 2


def fingerprint(*tensors: torch.Tensor | None) -> str:
    """SHA-256 of the data, so that a checkpoint is only resumed on the data it was written for."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(b"-" if t is None else t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_checkpointing(checkpoint: Any, checkpoint_every: Any, resume: Any, steps: int, log_every: int) -> int:
    """Validate the checkpoint arguments of :func:`wideflow.train`; return the checkpoint period (a multiple of
    ``log_every``; by default about ten checkpoints per run)."""
    for name, path in (("checkpoint", checkpoint), ("resume", resume)):
        if path is not None and not isinstance(path, str | os.PathLike):
            raise InvalidType(f"{name} must be a path (str or os.PathLike); got {type(path).__name__} {path!r}.")
        if path is not None and Path(path).is_dir():
            raise InvalidArgument(f"{name}={str(path)!r} is a folder; expected the path of a checkpoint file in it.")
    if checkpoint_every is None:
        return log_every * max(1, steps // (10 * log_every))
    checkpoint_every = check_positive_int("checkpoint_every", checkpoint_every)
    if checkpoint is None:
        raise InvalidArgument(f"checkpoint_every={checkpoint_every} was given without checkpoint=PATH.")
    if checkpoint_every % log_every:
        raise InvalidArgument(
            f"checkpoint_every={checkpoint_every} must be a multiple of log_every={log_every}: checkpoints "
            "are written at logging steps so that a resumed history is identical."
        )
    return checkpoint_every


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def save_checkpoint(path: str | os.PathLike, engine: Engine, settings: dict, step: int,
                    rows: list[list[dict[str, float]]]) -> None:
    """Write the checkpoint of ``engine`` at ``step`` atomically (:func:`wideflow.io.atomic_torch_save`); the one it
    replaces stays as ``PATH.prev`` (the processes of a sharded run resume at a step all of them have)."""
    state = {
        "format": FORMAT,
        "wideflow_version": __version__,
        "settings": settings,
        "step": step,
        "engine": {k: None if v is None else v.detach().cpu().clone() for k, v in engine.state_dict().items()},
        "history": [list(r) for r in rows],
        "rng": _rng_states(),
    }
    if os.path.exists(path):  # a second name for the current file (no copy), then the new file replaces it
        tmp = f"{previous(path)}.{os.getpid()}.tmp"
        try:
            os.link(path, tmp)
        except OSError:  # a file system without hard links
            shutil.copy2(path, tmp)
        os.replace(tmp, previous(path))
    atomic_torch_save(state, path)


def previous(path: str | os.PathLike) -> str:
    """The file that keeps the checkpoint before the latest one."""
    return f"{os.fspath(path)}.prev"


def checkpoint_steps(path: str | os.PathLike) -> dict[int, str]:
    """The steps of the checkpoints kept at ``path`` (the latest and :func:`previous`), {step: file}."""
    found = {}
    for candidate in (previous(path), os.fspath(path)):
        if os.path.exists(candidate):
            state = read_torch_file(candidate, "a wideflow training checkpoint", version=FORMAT, keys={"step"},
                                    hint="resume with a checkpoint written by train(..., checkpoint=PATH).")
            found[int(state["step"])] = candidate
    return found


def load_checkpoint(path: str | os.PathLike, engine: Engine, settings: dict) -> tuple[int, list[list[dict]]]:
    """Restore ``engine`` and the random generators from the checkpoint at ``path``; return (step, histories).

    Raises :class:`~wideflow.errors.CheckpointError` naming the settings that differ when the checkpoint was
    written by another run, and when its engine state does not fit this run.
    """
    state = read_torch_file(
        path, "a wideflow training checkpoint written by train(..., checkpoint=PATH)", version=FORMAT,
        keys={"format", "settings", "step", "engine", "history", "rng"},
        hint="saved models are read with wf.load instead.",
    )
    saved = state["settings"]
    if saved != settings:
        diff = sorted(k for k in set(settings) | set(saved) if saved.get(k) != settings.get(k))
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, this run {settings.get(k)!r}" for k in diff
                           if k not in ("data", "model"))
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by a different run (settings differ in {diff}"
            f"{': ' + detail if detail else ''}); resume with the same model, data and training arguments, or "
            "start afresh without resume."
        )
    current = engine.state_dict()
    restored = state["engine"]
    if set(restored) != set(current) or any(
        (restored[k] is None) != (current[k] is None)
        or (current[k] is not None and restored[k].shape != current[k].shape)
        for k in current
    ):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its engine state does not match this run.")
    engine.load_state_dict({k: None if v is None else v.to(engine.device) for k, v in restored.items()})
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"]), [list(r) for r in state["history"]]
