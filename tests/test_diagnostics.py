"""Feature-learning diagnostics (the feature-learning remark of Section 2, Figure 4) and the plots over their tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow import plotting
from wideflow.diagnostics import (
    METRICS,
    FeatureTracker,
    kernel_target_alignment,
    relative_weight_change,
    sweep_exponents,
    width_sweep,
)
from wideflow.errors import InvalidArgument
from wideflow.gradflow import compare_gd_to_flow
from wideflow.theory import concentration

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small matrices: OpenMP sync costs more than the work


@pytest.mark.parametrize("method", ["kernel", "weights"])
@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
def test_weight_change_from_features_is_exact(method: str, scaling: str) -> None:
    # ‖W_t − W_0‖² = tr(ΔH G⁺ ΔHᵀ)/(s_h² D) (docs/theory.md §8) must equal the norm of the real weight
    # change; D = 24 > n = 10 so G is invertible. Agreement to 1e-9 relative: float64 with cond(G) ≈ 1e2.
    X, y = wf.data.axis_xor(10, 6, seed=0)
    model = wf.P3L(6, 32, D=24, scaling=scaling)
    tracker = FeatureTracker(model, X, y)
    res = wf.train(model, X, y, steps=20, step_size=0.5, log_every=10, method=method, callbacks=[tracker])
    assert set(METRICS) <= set(res.history.columns)
    row = res.history.iloc[-1]
    assert row["weight_change"] == pytest.approx(relative_weight_change(model, res.model), rel=1e-9)
    # at step 0 nothing has moved (1e-14: the engines form H_0 with another summation order)
    assert res.history.iloc[0][["feature_displacement", "weight_change", "kernel_drift"]].abs().max() < 1e-14


def test_weight_change_with_a_singular_gram() -> None:
    # n = 12 > D = 5: G is singular, yet ΔH lies in the range of G and the pseudo-inverse formula stays exact
    X, y = wf.data.random_labels(12, 5, seed=0)
    model = wf.Shallow(5, 16)
    tracker = FeatureTracker(model, X, y)
    res = wf.train(model, X, y, steps=10, step_size=0.5, log_every=10, method="kernel", callbacks=[tracker])
    assert res.history.iloc[-1]["weight_change"] == pytest.approx(relative_weight_change(model, res.model), rel=1e-8)


def test_tangent_kernel_drift_is_order_one_under_ours_and_shrinks_like_inverse_sqrt_m_under_ntk() -> None:
    # K_t moves by O(1) under ours and by O(1/√m) under NTK (docs/theory.md §3). Same data, same GF time
    # (100 steps of δ = 1), widths 64..1024, 2 seeds. Measured exponents of the drift against m: ours −0.04,
    # NTK −0.63 (−½ plus the O(1/m) corrections at m = 64). The bands ±0.15 around 0 and [−0.8, −0.35] around
    # −½ separate the regimes; the drift's level under ours must stay O(1): above 0.1 at every width.
    X, y = wf.data.axis_xor(16, 6, seed=0)
    sweep = width_sweep(lambda m, s, seed: wf.P3L(6, m, D=256, scaling=s, seed=seed), X, y, [64, 256, 1024],
                        ("ours", "ntk"), seeds=(0, 1), steps=100, step_size=1.0, log_every=50, progress=False)
    assert {"scaling", "m", "seed", "step", "time", "train_loss", *METRICS} <= set(sweep.columns)
    assert len(sweep) == 2 * 3 * 2 * 3  # scalings × widths × seeds × logged steps (0, 50, 100)
    exps = sweep_exponents(sweep, "kernel_drift").set_index("scaling")["exponent"]
    assert abs(exps["ours"]) < 0.15, exps
    assert -0.8 < exps["ntk"] < -0.35, exps
    last = sweep[sweep["step"] == 100]
    assert (last[last["scaling"] == "ours"]["kernel_drift"] > 0.1).all()
    # features move by O(1/√m) under NTK too (the feature-learning remark): measured exponent −0.49
    assert sweep_exponents(sweep, "feature_displacement").set_index("scaling").loc["ntk", "exponent"] < -0.35


def test_scatter_and_per_neuron_tables() -> None:
    X, y = wf.data.axis_xor(12, 6, seed=0)
    Xt, yt = wf.data.axis_xor(5, 6, seed=1)
    model = wf.P3L(6, 16, D=32)
    tracker = FeatureTracker(model, X, y, scatter_times=(0, 20), scatter_points=(2, 3))
    res = wf.train(model, X, y, steps=20, step_size=1.0, X_test=Xt, y_test=yt, log_every=10, callbacks=[tracker])
    scatter = tracker.scatter()
    assert sorted(scatter["time"].unique()) == [0.0, 20.0] and len(scatter) == 2 * 16
    end = scatter[scatter["time"] == 20.0]
    H_end = res.model.features(X)
    H_test_end = res.model.features(Xt)
    assert np.allclose(end["h_x1"], H_end[2].numpy(), atol=1e-12)  # x_1 = X[2], a training input
    assert np.allclose(end["h_x2"], H_test_end[3].numpy(), atol=1e-12)  # x_2 = X_test[3], as in Figure 4
    assert (end["x2_from"] == "test").all()
    per = tracker.per_neuron()
    assert list(per.columns) == ["neuron", "displacement", "relative", "time"] and len(per) == 16
    rms = ((H_end - model.features(X)) ** 2).mean(dim=0).sqrt().numpy()  # over the n points, per neuron
    assert np.allclose(per["displacement"], rms, atol=1e-12)
    with pytest.raises(InvalidArgument, match="not a training point"):
        FeatureTracker(model, X, y, scatter_points=(12, 0))


def test_kernel_target_alignment() -> None:
    y = torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)
    assert kernel_target_alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    assert kernel_target_alignment(torch.eye(3, dtype=torch.float64), y) == pytest.approx(
        float(y @ y) / (3**0.5 * float(y @ y)))  # yᵀIy/(‖I‖_F‖y‖²) = 1/√3


def test_plots_render_to_png(tmp_path) -> None:
    # figures are built without pyplot, so no backend is selected or needed by the plotting module
    X, y = wf.data.axis_xor(10, 5, seed=0)
    Xt, yt = wf.data.axis_xor(4, 5, seed=1)
    model = wf.P3L(5, 16, D=16, activation="tanh")
    tracker = FeatureTracker(model, X, y, scatter_times=(0, 10))
    res = wf.train(model, X, y, steps=10, step_size=1.0, X_test=Xt, y_test=yt, log_every=5, callbacks=[tracker])
    sweep = pd.concat([res.history.assign(scaling=s, m=m) for s in ("ours", "ntk") for m in (16, 64)])
    figures = {
        "loss": plotting.plot_loss(res.history),
        "concentration": plotting.plot_concentration(concentration(X, "tanh", Ds=(16, 64), seeds=range(2),
                                                                   progress=False)),
        "sweep": plotting.plot_width_sweep(sweep, "kernel_drift"),
        "scatter": plotting.plot_feature_scatter(tracker.scatter()),
        "displacement": plotting.plot_displacement(tracker.per_neuron()),
        "gd_vs_flow": plotting.plot_gd_vs_flow(compare_gd_to_flow(model, X, y, t=1.0, step_sizes=(0.5, 0.25))),
    }
    for name, fig in figures.items():
        path = plotting.save_figure(fig, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000, name
    with pytest.raises(InvalidArgument, match="no column"):
        plotting.plot_width_sweep(res.history, "kernel_drift")
