"""The paper's experiments (Section 4), one module each, and the driver that reproduces them.

- :mod:`.exp1`: Experiment 1 / Figure 1, random labels fitted by the shallow net (Corollary 1);
- :mod:`.exp2`: Experiment 2 / Figure 2, quadratic embedding against the plain shallow net;
- :mod:`.exp3`: Experiment 3 / Figures 3-4, the P-3L net under the three scalings of Table 1;
- :mod:`.sensitivity`: Experiment 3's verdicts under each reading of the paper's unstated choices;
- :mod:`.real`: Experiment 3's comparison on scikit-learn's digits;
- :mod:`.precision`: float32 against float64 over the paper's 50000 steps, both engines;
- :mod:`.limits`: the m → ∞ limit at D = ∞ under ours and NTK (exponents, extrapolated curves);
- :mod:`.richness`: the richness family between ours (r = 0) and NTK (r = ½) of Appendix C, exponents against m;
- :mod:`.stats` and :mod:`.compare`: the paired test behind every verdict and the test-error claims;
- :func:`reproduce`: grids through :func:`wideflow.sweep.run_sweep`, then tables, figures, claims and
  ``summary.json`` per experiment; :func:`write_report` writes ``REPORT.md`` over all of them.

Each experiment module defines ``NAME``, ``TITLE``, ``KEYS`` (its preset table's keys and validators),
``configs(settings)`` (its run configurations), ``tables(runs, history, arrays, settings)`` (tidy
DataFrames from the results), ``figures(tables, folder, settings)`` and ``claims(tables, settings)``
(the paper's claims with the measured numbers and a verdict), so that the verdicts are plain functions
of DataFrames; optionally ``prepare(settings, folder)`` (files its runs read), ``title(settings)`` (a title that
depends on the settings, used instead of ``TITLE``), ``extras(tables, settings)``
(tables of ``summary.json`` beyond the claims) and ``run(settings, store, progress=...)`` (runs trained in this
process instead of by the sweep, returning the results table and how many were trained now).
"""

from .common import PRESETS, Claim, load_preset, preset_path
from .report import write_report
from .reproduce import ALL, EXPERIMENTS, RunsFailed, reproduce

__all__ = ["ALL", "EXPERIMENTS", "PRESETS", "Claim", "RunsFailed", "load_preset", "preset_path", "reproduce",
           "write_report"]
