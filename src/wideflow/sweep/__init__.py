"""Sweeps: grids of runs on Dask distributed, kept in a results store on disk that never loses work.

- :func:`expand` / :func:`load_spec`: a grid spec (TOML) to run configurations (:mod:`.config`);
- :func:`run_one`: one run with :func:`wideflow.train` (:mod:`.runner`), its rate from :func:`fitted_rate`;
- :func:`train_batched`: compatible small runs trained as one batched program (:mod:`.batched`);
- :func:`run_sweep`: the missing runs of a list on Dask, LocalCluster by default (:mod:`.dask_runner`);
- :func:`load_results`, :func:`load_history`, :func:`load_arrays`: read the store (:mod:`.store`).
"""

from ..fits import fitted_rate
from .batched import train_batched
from .config import DEFAULTS, expand, flatten, load_spec, normalize, run_id
from .dask_runner import run_sweep
from .runner import Outcome, RunOutput, build, run_one
from .store import Store, load_arrays, load_history, load_results

__all__ = [
    "DEFAULTS",
    "expand",
    "load_spec",
    "normalize",
    "run_id",
    "flatten",
    "run_one",
    "build",
    "fitted_rate",
    "RunOutput",
    "Outcome",
    "train_batched",
    "run_sweep",
    "Store",
    "load_results",
    "load_history",
    "load_arrays",
]
