"""Claims on runs: how two sweep drivers share one results store without computing a run twice.

A driver computes a run only while it holds the run's lock, ``STORE/locks/<run_id>.lock``, an OS file lock
(``flock`` through the `filelock <https://py-filelock.readthedocs.io>`_ package): taken without waiting just
before the run's task is submitted (so two drivers split a sweep between them, task by task), held until the
run's result is written to the store, released by the OS if the driver dies. What a driver
guarantees, with any number of drivers on one store of a local file system:

- every run is written by at most one driver at a time, so no run folder mixes two attempts;
- a run is computed once: a driver that finds a run locked leaves it to the holder and, when the lock is free,
  reads the result the holder wrote (a finished run, or a failure recorded after this sweep began); it runs the
  run itself only if the holder died before writing anything;
- every run of the sweep is in the store when the driver returns.

File locks on network file systems (NFS) depend on the server; there the guarantee is the store's own: files
are written atomically, so a run computed twice is written twice, whole, never corrupted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import OutputError

__all__ = ["Claims", "modified_since"]


class Claims(contextlib.AbstractContextManager):
    """The locks a driver holds on runs of the store at ``store_path``; all released on exit."""

    def __init__(self, store_path: Path) -> None:
        self.folder = store_path / "locks"
        self.held: dict[str, FileLock] = {}

    def take(self, rid: str) -> bool:
        """Lock run ``rid`` without waiting: True if this driver now holds it, False if another does.

        Raises :class:`~wideflow.errors.OutputError` when the lock cannot be created (a read-only store)."""
        if rid in self.held:
            return True
        try:
            self.folder.mkdir(exist_ok=True)
            lock = FileLock(self.folder / f"{rid}.lock", timeout=0, thread_local=False)
            lock.acquire()
        except Timeout:
            return False
        except OSError as exc:
            raise OutputError(f"cannot write to the results store {str(self.folder.parent)!r}: "
                              f"{exc.strerror or exc}; give a store on a writable disk.") from None
        self.held[rid] = lock
        return True

    def probe(self) -> None:
        """Take and release a lock, so that a store that cannot be written fails before any run starts."""
        if self.take(".probe"):
            self.release(".probe")

    def release(self, rid: str) -> None:
        """Give up the lock of ``rid`` (after its result is written)."""
        lock = self.held.pop(rid, None)
        if lock is not None:
            lock.release()

    def __exit__(self, *exc: object) -> None:
        for rid in list(self.held):
            self.release(rid)


def modified_since(path: Path, t0: float) -> bool:
    """Whether ``path`` exists and was last written at or after ``t0`` (``time.time()`` seconds)."""
    try:
        return os.stat(path).st_mtime >= t0
    except FileNotFoundError:
        return False
