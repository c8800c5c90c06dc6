r"""Which engine a run should use: the operation count of each for the whole run (docs/theory.md §8).

Plain numbers in, plain numbers out: the sweeps decide from a configuration, :func:`wideflow.train` from a
model, with the same function.
"""

from __future__ import annotations

from ..errors import check_choice

__all__ = ["engine_costs", "choose_method", "METHODS"]

METHODS = ("auto", "weights", "kernel")


def engine_costs(m: int, n: int, D: int, n_test: int, steps: int, log_every: int) -> dict[str, float]:
    """Floating-point operations of a whole run with each engine, counting the matrix products.

    Both engines form H_0 = s_h W_0 Φᵀ once (2 m n D). ``weights`` then spends 4 m n D per step (the gradient
    product and the new features) and 2 m n_test D per logging step (test features). ``kernel`` forms G,
    G(X, X_test) and H_test,0 once (2 D n (n + n_test) + 2 m n_test D), then spends 2 m n² per step and
    2 m n n_test per logging step. The element-wise work, O(m n) per step, is the same for both.
    """
    logs = steps // log_every + 2
    start = 2.0 * m * n * D
    return {
        "weights": start + 4.0 * m * n * D * steps + 2.0 * m * n_test * D * logs,
        "kernel": start + 2.0 * D * n * (n + n_test) + 2.0 * m * n_test * D + 2.0 * m * n * n * steps
        + 2.0 * m * n * n_test * logs,
    }


def choose_method(method: str, *, m: int, n: int, D: int, n_test: int, steps: int, log_every: int,
                  trains_neurons: bool = False) -> str:
    """Resolve ``method``: "auto" takes the engine with the smaller :func:`engine_costs` for the whole run.

    For long runs this is the kernel engine when D > n/2 (2 m n² < 4 m n D per step) and the weights engine
    otherwise; a model that trains c or biases (``trains_neurons``) always uses the weights engine, since the
    kernel engine only moves W. benchmarks/RESULTS.md shows that the measured crossover is the counted one.
    """
    method = check_choice("method", method, METHODS)
    if method != "auto":
        return method
    if trains_neurons:
        return "weights"
    if D == float("inf"):
        return "kernel"  # at D = ∞ only the kernel engine exists
    costs = engine_costs(m, n, D, n_test, steps, log_every)
    return "kernel" if costs["kernel"] < costs["weights"] else "weights"
