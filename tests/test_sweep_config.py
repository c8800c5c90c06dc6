"""Run configurations and grid specs (wideflow.sweep.config): canonical form, run ids, expansion, errors."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest
import torch

from wideflow.cli import main
import wideflow as wf
from wideflow.errors import InvalidArgument, InvalidType, UnknownName, WideflowError
from wideflow.registry import MODEL_KINDS, TEST_SEED_OFFSET, build_model, model_shape
from wideflow.sweep import DEFAULTS, expand, flatten, load_spec, normalize, run_id

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sweeps" / "exp3_scalings.toml"
SMALL = {"model": {"kind": "shallow", "d": 4, "m": 8}, "data": {"kind": "random_labels", "n": 5}, "train": {"steps": 10}}


def test_normalize_fills_every_default_and_resolves_implicit_values() -> None:
    cfg = normalize({})
    assert set(cfg) == set(DEFAULTS)
    assert cfg["model"]["D"] == cfg["model"]["m"] == 1024  # P-3L: D defaults to m
    assert cfg["model"]["depth"] is None  # only meaningful for kind "deep"
    assert cfg["data"]["test_seed"] == cfg["data"]["seed"] + TEST_SEED_OFFSET
    assert TEST_SEED_OFFSET == 10_000  # pinned: every stored run id depends on it
    shallow = normalize({"model": {"kind": "shallow", "d": 7}})
    assert shallow["model"]["D"] == 7
    quadratic = normalize({"model": {"kind": "quadratic", "d": 7}})
    assert quadratic["model"]["D"] == 49
    deep = normalize({"model": {"kind": "deep", "depth": 5, "m": 16}})
    assert (deep["model"]["depth"], deep["model"]["D"]) == (5, 16)
    teacher = normalize({"data": {"kind": "quadratic_teacher"}})
    assert teacher["data"]["m_teacher"] == 5 and teacher["data"]["teacher_seed"] == 0


def test_run_id_is_stable_and_names_the_run_not_its_spelling() -> None:
    # Pinned: a change of the canonical form renames every stored run (a store then recomputes everything).
    assert run_id(SMALL) == "2d9b5285470a4212"
    spelled_out = {
        "train": {"log_every": 100, "steps": 10, "step_size": 1},  # int 1 for 1.0, keys reordered
        "data": {"n": 5, "kind": "random_labels", "test_seed": 10_000},
        "model": {"m": 8, "kind": "shallow", "d": 4, "D": 4, "activation": {"name": "relu"}},
        "tags": {},
    }
    assert run_id(spelled_out) == run_id(SMALL)
    changes = [("model", "seed", 1), ("model", "scaling", "mf"), ("data", "n", 6), ("train", "step_size", 0.5),
               ("train", "dtype", "float32"), ("record", "features", True), ("tags", "label", "x")]
    ids = {run_id(SMALL)}
    for section, key, value in changes:
        changed = {**SMALL, section: {**SMALL.get(section, {}), key: value}}
        ids.add(run_id(changed))
    assert len(ids) == len(changes) + 1


@pytest.mark.parametrize(
    ("config", "error", "words"),
    [
        ({"model": {"widht": 8}}, UnknownName, ["widht", "'m'"]),
        ({"modle": {}}, UnknownName, ["modle", "Did you mean 'model'"]),
        ({"model": {"m": 0}}, InvalidArgument, ["model.m", "0"]),
        ({"model": {"kind": "shallow", "d": 4, "D": 9}}, InvalidArgument, ["model.D=9", "D = 4"]),
        ({"model": {"kind": "p3l", "depth": 5}}, InvalidArgument, ["model.depth=5", "deep"]),
        ({"model": {"scaling": "NTK"}}, UnknownName, ["model.scaling", "'ntk'"]),
        ({"model": {"activation": "rleu"}}, UnknownName, ["rleu"]),
        ({"data": {"d": 3}}, InvalidArgument, ["data.d=3", "model.d"]),
        ({"data": {"kind": "axis_xor", "m_teacher": 3}}, UnknownName, ["m_teacher"]),
        ({"train": {"step_size": -1}}, InvalidArgument, ["train.step_size", "-1"]),
        ({"train": {"reduction": "avg"}}, UnknownName, ["train.reduction", "'mean'"]),
        ({"record": {"features": "yes"}}, InvalidType, ["record.features"]),
        ({"tags": {"x": float("nan")}}, InvalidType, ["JSON"]),
    ],
)
def test_invalid_configurations_name_the_key_and_the_value(config: dict, error: type, words: list[str]) -> None:
    with pytest.raises(error) as info:
        normalize(config)
    for word in words:
        assert word in str(info.value)


GRID_TOML = """
seeds = 2

[base]
model = { kind = "shallow", d = 4 }
data = { kind = "random_labels", n = 5 }
tags = { experiment = "t" }

[grid]
model.scaling = ["ours", "mf"]
model.m = [8, 16, 32]

[[zip]]
data.n = [5, 6]
train.steps = [10, 20]
"""


def test_expand_is_the_product_of_grid_zip_and_seeds_in_file_order() -> None:
    configs = expand(tomllib.loads(GRID_TOML))
    assert len(configs) == 2 * 3 * 2 * 2
    key = [(c["model"]["scaling"], c["model"]["m"], c["data"]["n"], c["train"]["steps"], c["model"]["seed"])
           for c in configs]
    assert key[:5] == [("ours", 8, 5, 10, 0), ("ours", 8, 5, 10, 1), ("ours", 8, 6, 20, 0), ("ours", 8, 6, 20, 1),
                       ("ours", 16, 5, 10, 0)]
    assert all(c["data"]["seed"] == c["model"]["seed"] for c in configs)  # default seed_keys: both
    assert all(c["tags"] == {"experiment": "t"} for c in configs)
    assert len({run_id(c) for c in configs}) == len(configs)


def test_expand_merges_dict_values_and_accepts_custom_seed_keys() -> None:
    spec = {"base": {"model": {"kind": "p3l", "d": 3, "m": 8}},
            "grid": {"model": [{"scaling": "ours"}, {"scaling": "ntk", "c_hat": 2.0}]},
            "seeds": [3, 5], "seed_keys": ["model.seed"]}
    configs = expand(spec)
    assert [(c["model"]["scaling"], c["model"]["c_hat"], c["model"]["seed"]) for c in configs] == [
        ("ours", 1.0, 3), ("ours", 1.0, 5), ("ntk", 2.0, 3), ("ntk", 2.0, 5)]
    assert all(c["model"]["d"] == 3 and c["data"]["seed"] == 0 for c in configs)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"gird": {}}, ["gird", "Did you mean 'grid'"]),
        ({"grid": {"model": {"m": 8}}}, ["grid axis 'model.m'", "non-empty list"]),
        ({"grid": {"model": {"m": []}}}, ["non-empty list"]),
        ({"zip": [{"model": {"m": [8, 16]}, "data": {"n": [5]}}]}, ["equal lengths", "model.m"]),
        ({"grid": {"model": {"m": [8, 8]}}}, ["grid runs 0 and 1", "same run"]),
        ({"grid": {"model": {"m": [8, -1]}}}, ["grid run 1", "model.m=-1"]),
        ({"grid": {"seeds": [1, 2]}}, ["top-level key", "before the first header"]),
        ({"seed_keys": ["model.seed"]}, ["without seeds"]),
        ({"seeds": 0}, ["seeds"]),
    ],
)
def test_grid_spec_errors_say_what_to_fix(spec: dict, words: list[str]) -> None:
    with pytest.raises(WideflowError) as info:
        expand({"base": SMALL, **spec})
    for word in words:
        assert word in str(info.value)


def test_flatten_gives_dotted_columns_and_drops_empty_sections() -> None:
    flat = flatten(normalize(SMALL))
    assert flat["model.m"] == 8 and flat["data.n"] == 5 and flat["train.steps"] == 10
    assert not any(k.startswith("tags") for k in flat)
    assert flatten({"tags": {"a": {"b": 1}}}) == {"tags.a.b": 1}


def test_file_data_kind_fills_the_loader_options() -> None:
    cfg = normalize({"data": {"kind": "file", "path": "x.npz"}})["data"]
    assert cfg["path"] == "x.npz" and cfg["test_path"] is None and "x_key" in cfg
    with pytest.raises(InvalidType, match="data.path"):
        normalize({"data": {"kind": "file"}})


def test_the_example_grid_expands_and_dry_run_lists_it_without_creating_a_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = expand(load_spec(EXAMPLE))
    assert len(configs) == 3 * 2 * 3 * 2
    assert {c["model"]["scaling"] for c in configs} == {"ours", "ntk", "mf"}
    store = tmp_path / "store"
    assert main(["sweep", str(EXAMPLE), "--dry-run", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "36 runs (36 to run)" in out
    assert run_id(configs[0]) in out and "model.scaling" in out
    assert not store.exists()


def test_an_invalid_grid_file_is_a_one_line_error_with_exit_status_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text("[grid]\nmodel.widht = [8, 16]\n")
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "widht" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_registered_model_kind_is_one_constructor_for_sweeps_cli_and_estimator(kind: str) -> None:
    """A configuration's model (sweep.build), the command line's and the estimator's all come from
    wideflow.registry.build_model, which is the named constructor of the kind: identical parameters."""
    from wideflow.cli.train_cmd import add_model_arguments, model_from_args
    from wideflow.sweep import build

    direct = {"shallow": lambda: wf.Shallow(4, 8, seed=3), "quadratic": lambda: wf.WideNet({"kind": "quadratic",
              "d": 4}, 8, seed=3), "p3l": lambda: wf.P3L(4, 8, seed=3),
              "deep": lambda: wf.PartiallyTrained(4, 8, depth=3, seed=3)}[kind]()
    model, _ = build(normalize({"model": {"kind": kind, "d": 4, "m": 8, "seed": 3}}))
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, n=5)
    from_cli = model_from_args(parser.parse_args(["--model", kind, "-d", "4", "-m", "8", "--seed", "3"]))
    for other in (model, from_cli, build_model(kind, 4, 8, seed=3)):
        assert other.config == direct.config
        assert torch.equal(other.W, direct.W) and torch.equal(other.c, direct.c)
    assert parser.get_default("model") in MODEL_KINDS


def test_model_shape_writes_out_d_and_depth_and_names_the_argument() -> None:
    assert model_shape("quadratic", 3, 8) == (3, 8, 9, None)
    assert model_shape("p3l", 3, 8) == (3, 8, 8, None)
    assert model_shape("deep", 3, 8, 5) == (3, 8, 5, 3)  # D = 5 given, depth: the kind's default L = 3
    with pytest.raises(InvalidArgument, match="depth=4 only applies to kind='deep'"):
        model_shape("shallow", 3, 8, depth=4)
    with pytest.raises(UnknownName, match="model.kind='p4l'"):
        model_shape("p4l", 3, 8, prefix="model.")
