"""Quickstart: train the partially-trained 3-layer network of eqs. (4)-(5) on the data of Exp 3.

    python examples/quickstart.py            # n = 256, m = D = 1024, 2000 GD steps (about a minute on 2 cores)
    python examples/quickstart.py --tiny     # a few seconds (also: WIDEFLOW_TINY=1)

It builds the model, looks at the Gram matrix G^(1) of the theorems next to its D → ∞ limit Ḡ^(1), trains W
by full-batch GD with the paper's step convention (eq. (9): step size δ = 1, learning rate δ·m), and hands the
trained network to plain PyTorch.
"""

from __future__ import annotations

import argparse
import os

import torch

import wideflow as wf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WIDEFLOW_TINY") == "1",
                        help="a few-second run (the smoke test)")
    args = parser.parse_args()
    n, m, steps = (32, 64, 50) if args.tiny else (256, 1024, 2000)
    d = 20

    # Exp 3 data (Appendix I.3): y = |x1| - |x2| plus d - 2 uniform nuisance coordinates.
    X, y = wf.data.axis_xor(n, d, seed=0)
    X_test, y_test = wf.data.axis_xor(500, d, seed=1)

    # f(x) = (1/m) Σ_i c_i σ(h_i(x)),  h_i(x) = (1/√D) Σ_j W_ij σ(z_jᵀx/√d), D = m, z and c fixed.
    model = wf.P3L(d, m, scaling="ours", seed=0)
    print(model)

    # The theorems' rate is set by λ_min(Ḡ^(1)); the empirical G^(1) concentrates around it as D grows.
    G, G_bar = wf.gram(model, X), wf.limit_gram(X)
    lam, lam_bar = torch.linalg.eigvalsh(G)[0].item(), torch.linalg.eigvalsh(G_bar)[0].item()
    concentration = torch.linalg.matrix_norm(G - G_bar, ord=2).item()
    print(f"λ_min(G^(1)) = {lam:.4f}   λ_min(Ḡ^(1)) = {lam_bar:.4f}   ‖G − Ḡ‖ = {concentration:.4f}")

    result = wf.train(model, X, y, steps=steps, step_size=1.0, X_test=X_test, y_test=y_test,
                      log_every=max(1, steps // 10))
    print(result.history.to_string(index=False))
    print(f"engine: {result.method}, {result.wall_time:.1f} s")

    # The trained network as a plain torch.nn.Module (W materialized), usable in any PyTorch code.
    module = result.model.to_module()
    with torch.no_grad():
        diff = (module(X_test) - result.model(X_test)).abs().max().item()
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    print(f"torch module: {trainable} trained parameters (W), max |module − model| = {diff:.1e}")


if __name__ == "__main__":
    main()
