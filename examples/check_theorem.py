"""Check a theorem of the paper on your own data: which assumptions hold, which result applies, the rate it
guarantees, and whether gradient descent shows it.

    python examples/check_theorem.py                        # demo data: n = 40 points in d = 10
    python examples/check_theorem.py --data my_data.csv     # a CSV with a header row and a target column "y"
    python examples/check_theorem.py --data my_data.npz     # or numpy.savez(..., X=X, y=y)
    python examples/check_theorem.py --tiny                 # seconds (also: WIDEFLOW_TINY=1)

The model is the P-3L net (4)-(5) under the paper's scaling. ``wf.check`` tests Assumptions 1-4 and
Condition 1 on it and on the data, says which of Corollary 1 and Theorems 1-3 applies, and gives the rate
that is guaranteed explicitly: the PL bound 2ĉ²λ_min(G)K_σ'² (docs/theory.md §5; σ with |σ'| ≥ K_σ'
everywhere, hence the default leaky ReLU) or Lemma 1's rate (any σ of Assumption 2, when ĉ is large enough). The
theorems are about the gradient flow (10); GD with a step well inside its stability limit follows it, so the
script trains by GD up to the time at which the bound promises a loss e³ ≈ 20 times smaller, and compares
the slowest decay rate −Δlog L/Δt it saw with the guaranteed one. Losses are sums, L = ½ Σ_a (f(x_a) − y_a)²,
as in the paper's statements.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
import torch

import wideflow as wf
from wideflow.kernels import max_stable_step_size


def demo_data(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth target of two coordinates, y = tanh(x_1 x_2), on Gaussian inputs (stands in for your data)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return X, torch.tanh(X[:, 0] * X[:, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help=".csv (header, column y) or .npz (arrays X, y)")
    parser.add_argument("-m", type=int, default=None, help="width m = D (default 1024, or 64 with --tiny)")
    parser.add_argument("--activation", default="leaky_relu", help="σ (default: leaky ReLU of slope 1/2)")
    parser.add_argument("--c-hat", type=float, default=1.0, help="ĉ of Assumption 1")
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WIDEFLOW_TINY") == "1",
                        help="a few-second run (the smoke test)")
    args = parser.parse_args()
    m = args.m or (64 if args.tiny else 1024)
    max_steps = 400 if args.tiny else 20000

    if args.data is not None:
        X, y = wf.data.load_dataset(args.data)
    else:
        X, y = demo_data(*((12, 5) if args.tiny else (40, 10)))
    n, d = X.shape
    activation = wf.get_activation("leaky_relu", slope=0.5) if args.activation == "leaky_relu" else args.activation
    model = wf.P3L(d, m, activation=activation, c_hat=args.c_hat, seed=0)

    report = wf.check(model, X, y, reduction="sum")  # prints the table of assumptions and constants
    rate = report["guaranteed_rate"]
    if rate is None:
        failed = [name for name, item in report["conditions"].items() if item["holds"] is False]
        print(f"\nno explicit rate is guaranteed here (not holding: {', '.join(failed) or 'none'}). Try a larger "
              "--c-hat (Lemma 1 needs κ√L_0/ĉ < η̂_0^{3/2}) or a globally active σ such as leaky_relu.")
        return

    # GD at a quarter of the linear stability limit 2/λ_max(K_0), up to GF time T = 3/rate.
    step_size = 0.25 * max_stable_step_size(model, X, reduction="sum")
    steps = min(max_steps, math.ceil(3 / rate / step_size))
    result = wf.train(model, X, y, steps=steps, step_size=step_size, reduction="sum",
                      log_every=max(1, steps // 200))
    t = result.history["time"].to_numpy()
    L = result.history["train_loss"].to_numpy()
    observed = -np.diff(np.log(L)) / np.diff(t)
    bound = L[0] * np.exp(-rate * t)
    print(f"\nGD: {steps} steps of δ = {step_size:.3g} (GF time {t[-1]:.4g}); L_0 = {L[0]:.4g}, L_T = {L[-1]:.4g}")
    print(f"guaranteed rate ({report['rate_source']}): {rate:.4g}; slowest observed rate: {observed.min():.4g}; "
          f"fastest: {observed.max():.4g}")
    holds = bool((observed >= rate).all() and (L <= bound * (1 + 1e-9)).all())
    print(f"{report['rate_source']}: L_t <= L_0 exp(-{rate:.4g} t) "
          + ("holds at every logged time." if holds else "is VIOLATED at some logged time."))


if __name__ == "__main__":
    main()
