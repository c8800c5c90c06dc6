"""Run configurations and grid specs of a sweep.

A *run configuration* is a plain JSON-serializable nested dict with the sections ``model``, ``data``,
``train``, ``record`` and ``tags`` (see :data:`DEFAULTS`). :func:`normalize` fills in the defaults, checks
every key and value, and writes the configuration in one canonical form, so that :func:`run_id` (the hash
of that form) names a run the same way whatever the user left implicit.

A *grid spec* (a TOML file, parsed) describes many runs at once::

    [base]                          # a partial run configuration shared by every run
    model = {kind = "p3l", d = 20}
    train = {steps = 2000}

    [grid]                          # product axes: every combination of the listed values
    model.scaling = ["ours", "ntk", "mf"]
    data.n = [16, 32, 64]

    [[zip]]                         # zipped axes: the lists of one group vary together
    model.m = [256, 1024]
    tags.label = ["small", "large"]

    seeds = 3                       # a seed axis: 0, 1, 2 (or an explicit list)
    seed_keys = ["model.seed", "data.seed"]   # the keys the seed axis sets (this is the default)

:func:`expand` turns it into run configurations: the product of the grid axes (in file order), the zip
groups and the seeds, the last axis varying fastest.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._tensor import parse_device
from ..activations import get_activation
from ..engines import METHODS, REDUCTIONS
from ..errors import (
    FileMissing,
    InvalidArgument,
    InvalidType,
    check_choice,
    check_positive_float,
    check_positive_int,
    unknown_name,
)
from ..io import json_digest
from ..losses import LOSSES
from ..data import STANDARDIZE
from ..registry import DATA_KINDS, DEFAULT_DEPTH, TEST_SEED_OFFSET, model_shape
from ..scalings import get_scaling

__all__ = ["DEFAULTS", "normalize", "run_id", "expand", "load_spec", "read_toml", "flatten"]

DTYPES = ("float32", "float64")

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"kind": "p3l", "d": 20, "m": 1024, "D": None, "depth": DEFAULT_DEPTH, "activation": "relu",
              "scaling": "ours", "c_hat": 1.0, "seed": 0, "train_c": False, "bias": False},
    "data": {"kind": "axis_xor", "n": 200, "n_test": 500, "seed": 0, "test_seed": None},
    "train": {"steps": 1000, "step_size": 1.0, "reduction": "mean", "method": "auto", "log_every": 100,
              "dtype": "float64", "device": "cpu", "loss": "squared"},
    "record": {"features": False},
    "tags": {},
}
_SPEC_KEYS = ("base", "grid", "zip", "seeds", "seed_keys")
# The settings of a file's test split and standardization (wideflow.data.load_train_test) at their defaults:
# left out of run_id, so that file runs configured before they existed keep their ids.
FILE_SPLIT_DEFAULTS: dict[str, Any] = {"seed": DEFAULTS["data"]["seed"],
                                       **{k: DATA_KINDS["file"].options[k] for k in ("test_fraction", "standardize")}}


def normalize(config: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical, fully explicit form of a run configuration (a new dict; the input is not changed).

    Missing keys take the values of :data:`DEFAULTS`; unknown keys and invalid values raise
    :class:`~wideflow.errors.InvalidArgument` (or a subclass) naming the key. Values that only have one
    meaning are written out: ``model.D`` is the embedding dimension the model will have (d for
    ``shallow``, d² for ``quadratic``, m when left empty for ``p3l``/``deep``), ``model.depth`` is ``None``
    except for ``deep``, ``data.test_seed`` is ``data.seed +`` :data:`~wideflow.registry.TEST_SEED_OFFSET`
    when not given, and the data kind's keyword options (e.g. ``m_teacher``) are filled in with their defaults.
    The kinds and their defaults are those of :mod:`wideflow.registry`.
    """
    if not isinstance(config, Mapping):
        raise InvalidType(f"a run configuration must be a dict; got {type(config).__name__}.")
    for section in config:
        if section not in DEFAULTS:
            raise unknown_name("configuration section", section, DEFAULTS)
    model = _model(_merged("model", config.get("model", {}), DEFAULTS["model"]))
    out = {
        "model": model,
        "data": _data(config.get("data", {}), model["d"]),
        "train": _train(_merged("train", config.get("train", {}), DEFAULTS["train"])),
        "record": _record(_merged("record", config.get("record", {}), DEFAULTS["record"])),
        "tags": _tags(config.get("tags", {})),
    }
    _canonical_json(out)
    return out


def run_id(config: Mapping[str, Any]) -> str:
    """A stable name of a run: the first 16 hex digits of the SHA-256 of its canonical JSON.

    The configuration is normalized first, so two configurations that describe the same run (keys in
    another order, a default written out or not, ``1`` for ``1.0``) have the same id. ``train.loss`` enters
    the hash only when it is not "squared", and a file's ``data.seed``, ``data.test_fraction`` and
    ``data.standardize`` only when they differ from :data:`FILE_SPLIT_DEFAULTS`, so the runs of configurations
    written before these keys existed keep their ids.
    """
    canonical = normalize(config)
    if canonical["train"]["loss"] == "squared":
        canonical["train"] = {k: v for k, v in canonical["train"].items() if k != "loss"}
    if not DATA_KINDS[canonical["data"]["kind"]].synthetic:
        canonical["data"] = {k: v for k, v in canonical["data"].items()
                             if k not in FILE_SPLIT_DEFAULTS or v != FILE_SPLIT_DEFAULTS[k]}
    return json_digest(canonical)  # normalize has checked that it is plain JSON


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level with dotted keys: ``{"model": {"m": 8}}`` → ``{"model.m": 8}``; an empty
    dict (no tags) gives no column."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """Read a grid spec from a TOML file; :class:`~wideflow.errors.FileMissing` if there is none."""
    return read_toml(path, "grid spec")


def read_toml(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """The parsed TOML file ``path`` (``what`` it holds names it in errors): :class:`~wideflow.errors.FileMissing`
    if it does not exist, :class:`~wideflow.errors.InvalidArgument` if it is not valid TOML."""
    path = Path(path)
    if not path.exists():
        raise FileMissing(f"{what} {str(path)!r} does not exist; expected a TOML file.")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{str(path)!r} is not valid TOML: {exc}") from None


def expand(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Expand a grid spec (see the module docstring) into normalized run configurations.

    Raises :class:`~wideflow.errors.InvalidArgument` (or :class:`~wideflow.errors.InvalidType`) for an
    unknown top-level key, an axis that is not a non-empty list, zipped lists of different lengths, an
    invalid run (naming the run and the key) or two runs that are the same run.
    """
    if not isinstance(spec, Mapping):
        raise InvalidType(f"a grid spec must be a dict (a parsed TOML file); got {type(spec).__name__}.")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise unknown_name("grid spec key", key, _SPEC_KEYS)
    base = spec.get("base", {})
    if not isinstance(base, Mapping):
        raise InvalidType(f"[base] must be a table (a partial run configuration); got {base!r}.")
    axes: list[list[dict[str, Any]]] = []  # each axis: the list of its points, a point = {dotted key: value}
    for key, values in _axis_leaves("grid", spec.get("grid", {})):
        axes.append([{key: v} for v in _axis_values(f"grid axis {key!r}", values)])
    zips = spec.get("zip", [])
    if isinstance(zips, Mapping):
        zips = [zips]
    if not isinstance(zips, list):
        raise InvalidType(f"zip must be a table or an array of tables ([[zip]]); got {zips!r}.")
    for i, group in enumerate(zips):
        axes.append(_zip_points(i, group))
    seeds = _seed_axis(spec)
    if seeds:
        axes.append(seeds)

    configs: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for combo in itertools.product(*axes):
        raw = copy.deepcopy(dict(base))
        for point in combo:
            for key, value in point.items():
                _set_path(raw, key, value)
        label = ", ".join(f"{k}={v!r}" for point in combo for k, v in point.items())
        try:
            cfg = normalize(raw)
        except (InvalidArgument, InvalidType) as exc:
            raise type(exc)(f"grid run {len(configs)} ({label or 'the base configuration'}): {exc}") from None
        rid = run_id(cfg)
        if rid in seen:
            raise InvalidArgument(
                f"grid runs {seen[rid]} and {len(configs)} ({label}) are the same run after normalization; "
                "remove the repeated axis value (or make the runs differ, e.g. by a tags entry)."
            )
        seen[rid] = len(configs)
        configs.append(cfg)
    return configs


# ------------------------------------------------------------------------------------------- sections
def _merged(section: str, given: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise InvalidType(f"configuration section {section!r} must be a dict; got {given!r}.")
    for key in given:
        if key not in defaults:
            raise unknown_name(f"{section} key", key, defaults)
    return {**defaults, **given}


def _model(m: dict[str, Any]) -> dict[str, Any]:
    kind = m["kind"]
    d, width, D, depth = model_shape(kind, m["d"], m["m"], m["D"], m["depth"], prefix="model.")
    activation = m["activation"]
    get_activation(activation)
    if isinstance(activation, Mapping):
        activation = dict(activation)
        if set(activation) == {"name"}:
            activation = activation["name"]
    scaling_obj = get_scaling(m["scaling"], "model.scaling")
    scaling = scaling_obj.config  # one canonical spelling: a name, "richness(r)" or the abc exponents
    if scaling_obj.symmetrize and width % 2:
        raise InvalidArgument(
            f"model.m={width} is odd, but model.scaling={scaling!r} symmetrizes the initialization (neuron i + m/2 "
            "copies neuron i with c negated); pass an even model.m."
        )
    flags = {}
    for name in ("train_c", "bias"):
        if not isinstance(m[name], bool):
            raise InvalidType(f"model.{name} must be true or false; got {m[name]!r}.")
        flags[name] = m[name]
    return {
        "kind": kind, "d": d, "m": width, "D": D, "depth": depth, "activation": activation,
        "scaling": scaling,
        "c_hat": check_positive_float("model.c_hat", m["c_hat"]),
        "seed": check_positive_int("model.seed", m["seed"], minimum=0),
        **flags,
    }


def _data(given: Any, d: int) -> dict[str, Any]:
    if not isinstance(given, Mapping):
        raise InvalidType(f"configuration section 'data' must be a dict; got {given!r}.")
    if "d" in given:
        raise InvalidArgument(f"data.d={given['d']!r} is not a setting: the data's dimension is model.d={d}.")
    kind = check_choice("data.kind", given.get("kind", DEFAULTS["data"]["kind"]), DATA_KINDS)
    if not DATA_KINDS[kind].synthetic:
        return _file_data(kind, given)
    out = _merged("data", given, {**DEFAULTS["data"], **DATA_KINDS[kind].options})
    out["kind"] = kind
    out["n"] = check_positive_int("data.n", out["n"])
    out["n_test"] = check_positive_int("data.n_test", out["n_test"], minimum=0)
    out["seed"] = check_positive_int("data.seed", out["seed"], minimum=0)
    if out["test_seed"] is None:
        out["test_seed"] = out["seed"] + TEST_SEED_OFFSET
    out["test_seed"] = check_positive_int("data.test_seed", out["test_seed"], minimum=0)
    return out


def _file_data(kind: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """A user's data set, read by ``wideflow.data.load_train_test(path, test_path, seed=seed, d=model.d,
    **options)``.

    The test set is read from ``test_path`` or held out, a ``test_fraction`` of the points drawn with ``seed``
    (the seed axis sets it, so each seed has its own split); the options (``test_fraction``, ``standardize``,
    the loader's ``x_key``, ``y_column``, ...) are written out with their defaults.
    """
    out = _merged("data", given, {"kind": kind, "seed": FILE_SPLIT_DEFAULTS["seed"], **DATA_KINDS[kind].options})
    for key in ("path", "test_path"):
        value = out[key]
        if value is None and key == "test_path":
            continue
        if not isinstance(value, str) or not value:
            raise InvalidType(f"data.{key} must be the path of a .npz or .csv file; got {value!r}.")
    out["seed"] = check_positive_int("data.seed", out["seed"], minimum=0)
    fraction = out["test_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise InvalidArgument(f"data.test_fraction must be a number in [0, 1) (0: no held-out test set); "
                              f"got {fraction!r}.")
    if fraction and out["test_path"] is not None:
        raise InvalidArgument(f"data.test_path={out['test_path']!r} and data.test_fraction={fraction!r} were both "
                              "given; expected one way to get a test set.")
    out["test_fraction"] = float(fraction)
    out["standardize"] = check_choice("data.standardize", out["standardize"], STANDARDIZE)
    return out


def _train(t: dict[str, Any]) -> dict[str, Any]:
    # only the name is checked: the runs may go to another machine's workers (whether the device exists
    # where the runs execute is checked by run_sweep before it starts them)
    if not isinstance(t["device"], str):
        raise InvalidType(f"train.device must be a device name such as 'cpu' or 'cuda:0'; got {t['device']!r}.")
    parse_device(t["device"], "train.device")
    return {
        "steps": check_positive_int("train.steps", t["steps"]),
        "step_size": check_positive_float("train.step_size", t["step_size"]),
        "reduction": check_choice("train.reduction", t["reduction"], REDUCTIONS),
        "method": check_choice("train.method", t["method"], METHODS),
        "log_every": check_positive_int("train.log_every", t["log_every"]),
        "dtype": check_choice("train.dtype", t["dtype"], DTYPES),
        "device": t["device"],
        "loss": check_choice("train.loss", t["loss"], LOSSES),
    }


def _record(r: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(r["features"], bool):
        raise InvalidType(f"record.features must be true or false; got {r['features']!r}.")
    return {"features": r["features"]}


def _tags(tags: Any) -> dict[str, Any]:
    if not isinstance(tags, Mapping):
        raise InvalidType(f"tags must be a dict of free-form labels; got {tags!r}.")
    return copy.deepcopy(dict(tags))


def _canonical_json(config: Mapping[str, Any]) -> str:
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidType(f"a run configuration must be JSON-serializable (no NaN, no objects): {exc}") from None


# ------------------------------------------------------------------------------------------- grid axes
def _axis_leaves(where: str, table: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, list of values) for every list in a table; TOML's ``model.m = [...]`` is nested."""
    if not isinstance(table, Mapping):
        raise InvalidType(f"{where} must be a table of axes (key = [values]); got {table!r}.")
    for key, value in table.items():
        name = f"{prefix}{key}"
        if not prefix and key in _SPEC_KEYS:
            raise InvalidArgument(
                f"{key!r} appears inside {where}, but it is a top-level key of the grid spec; in TOML, keys after "
                "a [table] header belong to that table, so write it before the first header."
            )
        if isinstance(value, Mapping):
            yield from _axis_leaves(where, value, f"{name}.")
        else:
            yield name, value


def _axis_values(what: str, values: Any) -> list[Any]:
    if not isinstance(values, list) or not values:
        raise InvalidType(f"{what} must be a non-empty list of values; got {values!r}.")
    return values


def _zip_points(index: int, group: Any) -> list[dict[str, Any]]:
    leaves = list(_axis_leaves(f"zip group {index}", group))
    if not leaves:
        raise InvalidArgument(f"zip group {index} is empty; give it at least one axis (key = [values]).")
    lists = {key: _axis_values(f"zip group {index} axis {key!r}", values) for key, values in leaves}
    lengths = {key: len(v) for key, v in lists.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidArgument(f"the lists of zip group {index} must have equal lengths; got {lengths}.")
    return [dict(zip(lists, point, strict=True)) for point in zip(*lists.values(), strict=True)]


def _seed_axis(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    seeds = spec.get("seeds")
    keys = spec.get("seed_keys", ["model.seed", "data.seed"])
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise InvalidType(f"seed_keys must be a non-empty list of dotted keys such as 'model.seed'; got {keys!r}.")
    if seeds is None:
        if "seed_keys" in spec:
            raise InvalidArgument("seed_keys was given without seeds = K (or a list of seeds).")
        return []
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        values = list(range(check_positive_int("seeds", seeds)))
    else:
        values = _axis_values("seeds", seeds)
        for s in values:
            check_positive_int("seeds entry", s, minimum=0)
    return [{key: s for key in keys} for s in values]


def _set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config[a][b] = value`` for ``"a.b"``; a dict value is merged into an existing dict."""
    parts = dotted.split(".")
    node = config
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InvalidArgument(f"axis {dotted!r} goes through {part!r}, which is not a section.")
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), dict):
        node[last] = {**node[last], **copy.deepcopy(dict(value))}
    else:
        node[last] = copy.deepcopy(value)

