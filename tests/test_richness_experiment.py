"""``wideflow reproduce richness``: the claim rules on tables built to satisfy or violate each claim, the settings it
refuses, and the tiny preset end to end (Appendix C, docs/theory.md §7)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from wideflow.errors import InvalidArgument, InvalidType
from wideflow.experiments import richness
from wideflow.experiments.common import experiment_settings, load_preset
from wideflow.experiments.reproduce import ALL, EXPERIMENTS, reproduce

MS = [512, 1024, 2048, 4096]
RS = [0.0, 0.125, 0.25, 0.375, 0.5]
SETTINGS = {"m": MS, "r": RS, "n": 64, "steps": 1000, "step_size": 1.0, "resamples": 100}


def _final(disp_q=lambda r: -r, drift_q=lambda r: -r, error=lambda r: 0.3 + 0.2 * r, seeds: int = 6,
           zero_error: float = 0.5) -> pd.DataFrame:
    """A ``richness_final`` table: displacement ∝ m^disp_q(r), kernel drift ∝ m^drift_q(r), test error error(r),
    each times a 1 % log-normal noise (seed-to-seed scatter of the slopes ≈ 0.01/log(8) ≈ 0.005, far inside the
    0.1 margin)."""
    rng = np.random.default_rng(5)
    rows = []
    for r in RS:
        for m in MS:
            x = m / MS[0]
            for seed in range(seeds):
                def jitter() -> float:
                    return float(np.exp(0.01 * rng.standard_normal()))
                rows.append({"r": r, "m": m, "seed": seed, "train_loss": 0.1, "test_error": error(r) * jitter(),
                             "displacement": 3.0 * x ** disp_q(r) * MS[0] ** -r * jitter(),
                             "kernel_drift": 0.6 * x ** drift_q(r) * jitter(), "rate": 0.01, "rate_r2": 1.0,
                             "zero_error": zero_error})
    return pd.DataFrame(rows)


def _verdicts(final: pd.DataFrame) -> dict[str, str]:
    return {c.id: c.verdict for c in richness.claims({"richness_final": final}, SETTINGS)}


def test_features_moving_like_m_to_the_minus_r_reproduce_every_claim() -> None:
    assert _verdicts(_final()) == {"richness.displacement_exponent": "reproduced",
                                   "richness.kernel_drift_bound": "reproduced",
                                   "richness.displacement_falls_with_r": "reproduced",
                                   "richness.test_error_against_r": "reproduced"}
    # a kernel that moves faster to its limit than the features (m^(-3/4) at r = 1/2, as ReLU's does) is within
    # the bound
    assert _verdicts(_final(drift_q=lambda r: -1.5 * r))["richness.kernel_drift_bound"] == "reproduced"


def test_each_claim_fails_on_the_table_that_contradicts_it() -> None:
    # lazy at half the predicted rate: q = -r/2 is 0.25 away from -1/2 at r = 1/2, beyond the 0.1 margin
    half = _verdicts(_final(disp_q=lambda r: -r / 2))
    assert half["richness.displacement_exponent"] == "not reproduced"
    # a kernel that does not settle while the features do (q_K = 0 at every r)
    assert _verdicts(_final(drift_q=lambda r: 0.0))["richness.kernel_drift_bound"] == "not reproduced"
    # features that move more the lazier the scaling: the table's 512^(-r) turned into e^(6r) (log 512 ≈ 6.2)
    rising = _final(disp_q=lambda r: 0.0)
    rising["displacement"] *= np.exp(12.5 * rising["r"])
    assert _verdicts(rising)["richness.displacement_falls_with_r"] == "not reproduced"
    # the test error falling with r is stated as measured: the opposite of Figure 3's ordering
    falling = _verdicts(_final(error=lambda r: 0.4 - 0.2 * r))
    assert falling["richness.test_error_against_r"] == "not reproduced"


def test_a_task_no_model_learns_cannot_tell_how_the_test_error_moves_with_r() -> None:
    # every test error (0.45 to 0.55) above 0.9 x that of predicting 0 (0.5 x 0.9 = 0.45): inconclusive even
    # though the slope is significant
    claims = richness.claims({"richness_final": _final(error=lambda r: 0.46 + 0.2 * r)}, SETTINGS)
    claim = next(c for c in claims if c.id == "richness.test_error_against_r")
    assert claim.verdict == "inconclusive" and claim.measured["judged"] is False
    assert "no r beats" in claim.headline and claim.test["p_value"] < 1e-6


def test_settings_that_cannot_measure_the_family_are_refused() -> None:
    with pytest.raises(InvalidArgument, match=r"richness.r entry: r=0.7 is outside \[0, 1/2\]"):
        richness.r_grid("richness.r", [0, 0.7])
    with pytest.raises(InvalidArgument, match=r"richness.r must be strictly increasing"):
        richness.r_grid("richness.r", [0.25, 0.0])
    with pytest.raises(InvalidType, match=r"at least 2 exponents"):
        richness.r_grid("richness.r", [0.25])
    with pytest.raises(InvalidType, match=r"richness.symmetrize must be true or false; got 'yes'"):
        richness.flag("richness.symmetrize", "yes")
    base = {**SETTINGS, "n_test": 10, "symmetrize": True, "seeds": 2, "d": 5, "activation": "relu", "c_hat": 1.0}
    with pytest.raises(InvalidArgument, match=r"odd widths \[33\]"):
        richness.run_configs({**base, "m": [16, 33, 64]})
    with pytest.raises(InvalidArgument, match="richness.n_test=0"):
        richness.run_configs({**base, "n_test": 0})
    assert richness.r_grid("richness.r", [0, 0.5]) == [0.0, 0.5]


def test_the_quick_preset_measures_what_the_family_needs() -> None:
    # at least 5 values of r from 0 to 1/2, 4 widths and 5 seeds, and `reproduce all` runs it
    s = experiment_settings(load_preset("quick", experiment_keys={k: v.KEYS for k, v in EXPERIMENTS.items()}),
                            "richness")
    assert len(s["r"]) >= 5 and s["r"][0] == 0.0 and s["r"][-1] == 0.5
    assert len(s["m"]) >= 4 and s["seeds"] >= 5 and "richness" in ALL
    configs = richness.run_configs(s)
    assert len(configs) == len(s["r"]) * len(s["m"]) * s["seeds"]
    # r = 1/2 with the pairing is NTK itself, every other r a richness(r, symmetrize=True)
    names = {c["tags"]["r"]: c["model"]["scaling"] for c in configs}
    assert names[0.5] == "ntk" and names[0.25] == "richness(0.25, symmetrize=True)"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("richness")
    return out, reproduce(["richness"], out, preset="tiny", progress=False)["richness"]


def test_tiny_preset_trains_every_run_and_writes_the_phase_figure_and_its_data(tiny) -> None:
    out, summary = tiny
    folder = out / "richness"
    s = summary["settings"]
    n_runs = len(s["r"]) * len(s["m"]) * s["seeds"]
    assert summary["runs"]["total"] == n_runs and summary["runs"]["failed"] == 0
    assert [c["id"] for c in summary["claims"]] == ["richness.displacement_exponent", "richness.kernel_drift_bound",
                                                    "richness.displacement_falls_with_r",
                                                    "richness.test_error_against_r"]
    for fig in ("richness_phase", "richness_vs_m", "richness_curves"):
        assert (folder / f"{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = pd.read_csv(folder / "richness_curves.csv")
    assert len(curves) == n_runs * (s["steps"] // s["log_every"] + 1)
    start = curves[curves["step"] == 0]
    # at t = 0 nothing has moved: the tracker's H_0 (model.features) and the engine's differ by float64 round-off
    # (measured ≤ 1.6e-16 relative)
    assert (start["displacement"] < 1e-12).all() and (start["kernel_drift"] < 1e-12).all()
    phase = pd.read_csv(folder / "richness_phase.csv")
    assert len(phase) == len(s["r"]) * len(s["m"]) and phase.notna().all().all()
    fits = pd.read_csv(folder / "richness_fits.csv")
    assert len(fits) == len(s["r"]) * len(richness.FITTED)
    disp = fits[fits["quantity"] == "displacement"].set_index("r")
    assert disp["predicted_exponent"].to_dict() == {r: -r for r in s["r"]}
    assert summary["richness"] and "richness" in (out / "REPORT.md").read_text()


def test_the_displacement_falls_with_r_already_at_the_tiny_preset(tiny) -> None:
    # widths 16-64 cannot fix the exponents (2 seeds), but the ordering in r is large: at r = 1/2 the features
    # move by about 64^(-1/2) = 1/8 of what they move at r = 0; the ratio is asserted below a half
    final = pd.read_csv(tiny[0] / "richness" / "richness_final.csv")
    at = final[final["m"] == final["m"].max()].groupby("r")["displacement"].mean()
    assert at[0.5] < 0.5 * at[0.25] < 0.5 * at[0.0]
    assert math.isfinite(final["rate"].min()) and (final["rate"] > 0).all()


def test_a_repeated_command_trains_nothing_and_gives_the_same_verdicts(tiny) -> None:
    out, summary = tiny
    again = reproduce(["richness"], out, preset="tiny", progress=False)["richness"]
    assert again["runs"]["computed_now"] == 0
    assert again["claims"] == summary["claims"]
