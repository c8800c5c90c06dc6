r"""Watching a run in TensorBoard: a ``callbacks`` entry for :func:`wideflow.train` that writes the history.

At each logged state (every ``log_every`` GD steps of eq. (9)) :class:`TensorBoardLogger` writes the scalars

- ``loss/train``: L_t of eq. (6), the history's ``train_loss``;
- ``loss/test``: the history's ``test_error``, with a test set;
- ``rate/train``: the linear rate −Δ log L / Δt between this logged state and the previous one, per unit of GD
  time t = step·δ: the rate that Theorems 1-3 guarantee and :func:`wideflow.check` bounds (docs/theory.md §5);
- ``features/<column>``: with ``tracker`` (a :class:`wideflow.diagnostics.FeatureTracker`), its columns, the
  feature displacement ‖h_t − h_0‖ among them; these also go into the history, as the tracker's would.

to TensorBoard event files in ``log_dir`` (``tensorboard --logdir DIR`` shows them while the run goes). The
files are written by ``torch.utils.tensorboard``, which needs the ``tensorboard`` package
(``pip install "wideflow[tensorboard]"``); the same package reads them back and serves them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import InvalidType, MissingDependency, OutputError
from .training import TrainState

__all__ = ["TensorBoardLogger", "INSTALL"]

INSTALL = 'pip install "wideflow[tensorboard]"'


class TensorBoardLogger:
    """A ``callbacks`` entry for :func:`wideflow.train` that writes the history to TensorBoard (module docstring).

    Parameters
    ----------
    log_dir: the folder of the event files (made if missing); one logger per run.
    tracker: a callback whose columns are written under ``features/`` and returned as history columns, e.g.
        :class:`~wideflow.diagnostics.FeatureTracker` for the feature displacement.
    flush: write the events to disk at every logged state (so TensorBoard shows a running run); else when the
        writer's buffer fills and at :meth:`close`.

    Use it as a context manager, or call :meth:`close` when the run ends.
    """

    def __init__(self, log_dir: str | os.PathLike, *, tracker: Callable[[TrainState], dict[str, float]] | None = None,
                 flush: bool = True) -> None:
        if not isinstance(log_dir, str | os.PathLike):
            raise InvalidType(f"log_dir must be the path of a folder for the event files; got "
                              f"{type(log_dir).__name__} {log_dir!r}.")
        if tracker is not None and not callable(tracker):
            raise InvalidType(f"tracker must be a callback (TrainState -> dict), such as a FeatureTracker; got "
                              f"{type(tracker).__name__} {tracker!r}.")
        self.log_dir = Path(log_dir)
        if self.log_dir.exists() and not self.log_dir.is_dir():
            raise OutputError(f"log_dir={str(self.log_dir)!r} is a file; expected a folder (made if missing) for "
                              "the TensorBoard event files.")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch.utils.tensorboard imports the tensorboard package
            raise MissingDependency(f"TensorBoardLogger writes event files with the tensorboard package, which is "
                                    f"not installed ({exc}); {INSTALL}.") from None
        self.tracker, self.flush = tracker, flush
        try:
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        except OSError as exc:
            raise OutputError(f"log_dir={str(self.log_dir)!r} cannot be made or written: {exc.strerror or exc}; "
                              "expected a writable folder for the TensorBoard event files.") from None
        self.previous: tuple[float, float] | None = None  # (time, train_loss) of the last logged state

    def __call__(self, state: TrainState) -> dict[str, float]:
        columns = {} if self.tracker is None else self.tracker(state)
        scalars = {"loss/train": state.train_loss}
        if state.test_error is not None:
            scalars["loss/test"] = state.test_error
        rate = self.rate(state)
        if rate is not None:
            scalars["rate/train"] = rate
        scalars.update({f"features/{name}": value for name, value in columns.items()})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), global_step=state.step)
        if self.flush:
            self.writer.flush()
        self.previous = (state.time, state.train_loss)
        return columns

    def rate(self, state: TrainState) -> float | None:
        """−(log L_t − log L_s)/(t − s) from the previous logged state s; ``None`` at the first state, or when
        a loss is 0 or not finite."""
        if self.previous is None:
            return None
        t0, l0 = self.previous
        lt = state.train_loss
        if not (state.time > t0 and 0 < l0 < math.inf and 0 < lt < math.inf):
            return None
        return -(math.log(lt) - math.log(l0)) / (state.time - t0)

    def close(self) -> None:
        """Write what is buffered and close the event file."""
        self.writer.close()

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
