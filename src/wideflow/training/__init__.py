"""Training: :func:`train` (full-batch GD on W, eq. (9)), its results, the one driver loop and checkpoints.

- :mod:`.train`: :func:`train`, the public entry point.
- :mod:`.loop`: :func:`gradient_descent` (a generator of snapshots at logging steps) and
  :class:`~.loop.Driver`, which owns logging, callbacks, divergence, checkpoints and progress for R runs.
- :mod:`.results`: :class:`TrainState`, :class:`TrainResult`.
- :mod:`.checkpoint`: atomic checkpoints that resume bit-identically.
"""

from .loop import Driver, Snapshot, gradient_descent
from .results import TrainResult, TrainState
from .train import train

__all__ = ["train", "TrainResult", "TrainState", "gradient_descent", "Driver", "Snapshot"]
