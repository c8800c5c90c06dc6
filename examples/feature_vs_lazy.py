"""Feature learning against lazy training: a compact Figure 4 of the paper (Exp 3, Section 4.3).

    python examples/feature_vs_lazy.py                   # n = 256, m = D ∈ {256, 1024}, 5000 steps (minutes)
    python examples/feature_vs_lazy.py --tiny            # seconds (also: WIDEFLOW_TINY=1)
    python examples/feature_vs_lazy.py --out docs/img    # where feature_vs_lazy.png and the CSV go

The same P-3L network (D = m, only W trained) under the three scalings of Table 1 — ours (1/m, 1/√D,
learning rate δ·m), NTK (1/√m, symmetrized so that f_0 = 0, learning rate δ) and mean-field (1/m, 1/D,
learning rate δ·m·D) — trained by full-batch GD with δ = 1 on y = |x1| − |x2|.

Top row: training loss (solid) and test error (dashed) against GF time, one colour per m.
Bottom row: each dot is a neuron i of the trained layer at (h_i(x_1), h_i(x_2)), x_1 a training input and
x_2 a test input, at initialization (grey) and after training (colour), for the largest m. Under our
scaling the features move by O(1); under NTK they barely move; under MF they start near 0 (the 1/D
multiplier) and spread out. The printed table measures it: ‖H_T − H_0‖ / ‖H_0‖ over the training set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

import wideflow as wf

SCALINGS = ("ours", "ntk", "mf")
TITLES = {"ours": "ours: 1/m, 1/√D", "ntk": "NTK: 1/√m (lazy)", "mf": "mean field: 1/m, 1/D"}


def run(scaling: str, m: int, data: tuple[torch.Tensor, ...], steps: int) -> tuple[pd.DataFrame, dict]:
    """Train one P-3L model; return its history and the features of neuron i at (x_1, x_2), before and after."""
    X, y, X_test, y_test = data
    model = wf.P3L(X.shape[1], m, scaling=scaling, seed=0)
    H0 = model.features(X).T  # (m, n)
    H0_test = model.features(X_test[:1]).T
    result = wf.train(model, X, y, steps=steps, step_size=1.0, X_test=X_test, y_test=y_test,
                      log_every=max(1, steps // 200))
    H, H_test = result.final_state.H, result.final_state.H_test
    history = result.history.assign(scaling=scaling, m=m)
    return history, {
        "scaling": scaling,
        "m": m,
        "train_loss": result.final_train_loss,
        "test_error": result.final_test_error,
        "feature_movement": float(torch.linalg.norm(H - H0) / torch.linalg.norm(H0)),
        "h0": (H0[:, 0].cpu(), H0_test[:, 0].cpu()),
        "hT": (H[:, 0].cpu(), H_test[:, 0].cpu()),
    }


def plot(histories: pd.DataFrame, finals: list[dict], path: Path) -> None:
    widths = sorted(histories["m"].unique())
    colors = dict(zip(widths, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=False))
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    axes = fig.subplots(2, 3)
    for k, scaling in enumerate(SCALINGS):
        top, bottom = axes[0, k], axes[1, k]
        for m in widths:
            h = histories[(histories.scaling == scaling) & (histories.m == m)]
            top.plot(h["time"], h["train_loss"], color=colors[m], label=f"m = {m}")
            top.plot(h["time"], h["test_error"], color=colors[m], linestyle="--")
        top.set_yscale("log")
        top.set_title(TITLES[scaling])
        top.set_xlabel("GF time t (= GD steps, δ = 1)")
        final = next(f for f in finals if f["scaling"] == scaling and f["m"] == widths[-1])
        bottom.scatter(*final["h0"], s=4, color="0.65", label="initialization")
        bottom.scatter(*final["hT"], s=4, color=colors[widths[-1]], label="after training")
        bottom.set_xlabel("$h_i(x_1)$, $x_1$ a training input")
        bottom.set_title(f"m = {widths[-1]}: ‖H_T − H_0‖/‖H_0‖ = {final['feature_movement']:.2f}", fontsize=9)
    axes[0, 0].set_ylabel("training loss (solid), test error (dashed)")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].set_ylabel("$h_i(x_2)$, $x_2$ a test input")
    axes[1, 0].legend(fontsize=8, markerscale=3)
    fig.savefig(path, dpi=72)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", default=os.environ.get("WIDEFLOW_TINY") == "1",
                        help="a few-second run (the smoke test)")
    parser.add_argument("--out", type=Path, default=Path("out/examples"), help="output folder")
    parser.add_argument("--steps", type=int, default=None, help="GD steps (default 5000, or 40 with --tiny)")
    args = parser.parse_args()
    n, n_test, widths, steps = (32, 100, (32, 64), 40) if args.tiny else (256, 500, (256, 1024), 5000)
    steps = args.steps or steps
    d = 20
    X, y = wf.data.axis_xor(n, d, seed=0)
    X_test, y_test = wf.data.axis_xor(n_test, d, seed=1)

    histories, finals = [], []
    for scaling in SCALINGS:
        for m in widths:
            history, final = run(scaling, m, (X, y, X_test, y_test), steps)
            histories.append(history)
            finals.append(final)
    table = pd.DataFrame([{k: v for k, v in f.items() if k not in ("h0", "hT")} for f in finals])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))

    args.out.mkdir(parents=True, exist_ok=True)
    all_histories = pd.concat(histories, ignore_index=True)
    all_histories.to_csv(args.out / "feature_vs_lazy.csv", index=False)
    plot(all_histories, finals, args.out / "feature_vs_lazy.png")
    print(f"wrote {args.out / 'feature_vs_lazy.png'} and {args.out / 'feature_vs_lazy.csv'}")


if __name__ == "__main__":
    main()
