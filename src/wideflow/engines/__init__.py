"""GD engines: one training problem (:func:`prepare`), run in kernel space or in weight space.

- :mod:`.problem`: :func:`prepare` checks a run's inputs once and builds the :class:`Problem` (G, G_test, H_0,
  H_test,0, c, y, N, the step coefficients); :meth:`Problem.stack` batches R of them.
- :mod:`.kernel`: :class:`KernelEngine`, the kernel-space step of docs/theory.md §8 over a leading batch axis;
  the only place where that step is written.
- :mod:`.weights`: :class:`WeightsEngine`, the weight-space step (eqs. (8)-(9)), same interface.
- :mod:`.cost`: :func:`engine_costs` and :func:`choose_method`, from plain numbers.
"""

from .base import Engine
from .cost import METHODS, choose_method, engine_costs
from .kernel import KernelEngine
from .problem import REDUCTIONS, Problem, check_data, prepare
from .weights import WeightsEngine

__all__ = ["Engine", "KernelEngine", "WeightsEngine", "Problem", "prepare", "check_data", "make_engine",
           "engine_costs", "choose_method", "METHODS", "REDUCTIONS"]

ENGINES: dict[str, type[Engine]] = {"weights": WeightsEngine, "kernel": KernelEngine}


def make_engine(problem: Problem) -> Engine:
    """The engine of ``problem.space`` ("kernel" or "weights") for a prepared problem."""
    return ENGINES[problem.space](problem)
