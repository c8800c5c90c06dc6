"""Property-based tests (hypothesis) over model configurations, data shapes and training arguments.

Each argument is drawn either valid or from a pool of invalid values, and an oracle says which: then
- all valid: the call succeeds and its result has the documented shape (no false rejection);
- something invalid: the call raises one of the documented errors of :mod:`wideflow.errors`, and the
  message names one of the invalid arguments (no crash from deep inside torch, no silent acceptance);
- the two exact engines ("weights" and "kernel") give the same history and the same W;
- an interrupted run resumed from its checkpoint equals the uninterrupted run, bit for bit;
- a saved and loaded model predicts exactly as the original.

Examples are few (``max_examples`` ≤ 60), sizes tiny and the search derandomized: the same examples run
every time, fast (a few seconds in all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import wideflow as wf
from wideflow import errors as E
from wideflow.activations import available_activations
from wideflow.kernels import max_stable_step_size

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DOCUMENTED = (E.InvalidArgument, E.InvalidType)  # every validation error is one of these (or a subclass)
ACTIVATIONS = available_activations()


@pytest.fixture(autouse=True)
def _one_thread(_threads: None) -> None:
    """Tiny problems: one torch thread avoids OpenMP synchronization that costs more than the work."""
    torch.set_num_threads(1)


@dataclass
class Arg:
    """A drawn argument: its name, value, and whether it is valid."""

    name: str
    value: Any
    valid: bool


def arg(name: str, valid: st.SearchStrategy, invalid: list[Any]) -> st.SearchStrategy[Arg]:
    """A valid value 7 times in 8, else one of ``invalid``; an empty ``invalid`` gives valid values only."""
    if not invalid:
        return valid.map(lambda v: Arg(name, v, True))
    return st.integers(0, 7).flatmap(
        lambda k: st.sampled_from(invalid).map(lambda v: Arg(name, v, False)) if k == 7
        else valid.map(lambda v: Arg(name, v, True))
    )


NOT_INT = [0, -3, 2.0, "4", True, None, float("nan")]
BAD_REAL = [0, -1.5, float("nan"), float("inf"), "1.0", True, None]


@st.composite
def model_arguments(draw: st.DrawFn, invalid: bool = True) -> tuple[str, list[Arg]]:
    """A model class and its arguments, each possibly invalid (never with ``invalid=False``)."""
    def bad(*values: Any) -> list[Any]:
        return list(values) if invalid else []

    kind = draw(st.sampled_from(["Shallow", "P3L", "PartiallyTrained", "Quadratic"]))
    scalings = ["ours", "ntk", "mf"] if invalid else ["ours", "mf"]  # odd m is invalid under NTK only
    args = [
        draw(arg("d", st.integers(1, 4), bad(*NOT_INT))),
        draw(arg("m", st.integers(1, 12), bad(*NOT_INT))),
        draw(arg("activation", st.sampled_from(ACTIVATIONS), bad("ReLU", "rleu", "", 3, None))),
        draw(arg("scaling", st.sampled_from(scalings), bad("NTK", "mean-field", 1.0))),
        draw(arg("c_hat", st.floats(0.1, 4.0), bad(*BAD_REAL))),
        draw(arg("seed", st.integers(0, 2**40), bad(-1, 2**64, 1.5, "0", True))),
        draw(arg("dtype", st.sampled_from(["float32", "float64", torch.float64]), bad("float16", torch.int32, "double"))),
        draw(arg("train_c", st.booleans(), bad(1, "yes", None))),
        draw(arg("bias", st.booleans(), bad(0, "no"))),
    ]
    if kind in ("P3L", "PartiallyTrained"):
        args.append(draw(arg("D", st.one_of(st.none(), st.integers(1, 12)), bad(0, -2, 3.0, "8"))))
    if kind == "PartiallyTrained":
        args.append(draw(arg("depth", st.integers(3, 5), bad(2, 0, 3.0))))
    return kind, args


def build(kind: str, args: list[Arg]) -> wf.WideNet:
    kw = {a.name: a.value for a in args}
    d, m = kw.pop("d"), kw.pop("m")
    if kind == "Shallow":
        return wf.Shallow(d, m, **kw)
    if kind == "P3L":
        return wf.P3L(d, m, kw.pop("D"), **kw)
    if kind == "PartiallyTrained":
        return wf.PartiallyTrained(d, m, kw.pop("D"), depth=kw.pop("depth"), **kw)
    return wf.WideNet(wf.embeddings.Quadratic(d), m, **kw)


def invalid_names(args: list[Arg]) -> list[str]:
    """The arguments the oracle finds invalid (odd m under NTK counts as an invalid m)."""
    bad = [a.name for a in args if not a.valid]
    values = {a.name: a for a in args}
    if values["scaling"].valid and values["scaling"].value == "ntk" and values["m"].valid and values["m"].value % 2:
        bad.append("m")
    return bad


def assert_documented(exc: BaseException, names: list[str]) -> None:
    """A documented wideflow error whose message names one of the invalid arguments."""
    assert isinstance(exc, DOCUMENTED), f"{type(exc).__name__}: {exc}"
    assert any(n in str(exc) for n in names), f"message names none of {names}: {exc}"


@settings(SETTINGS, max_examples=60)
@given(model_arguments())
def test_models_raise_iff_an_argument_is_invalid(spec: tuple[str, list[Arg]]) -> None:
    kind, args = spec
    bad = invalid_names(args)
    event("all valid" if not bad else "some invalid")
    if not bad:
        model = build(kind, args)
        assert model.W.shape == (model.m, model.D) and model.c.shape == (model.m,)
        return
    with pytest.raises(Exception) as info:
        build(kind, args)
    assert_documented(info.value, bad)


# ---------------------------------------------------------------------------------------------- inputs X
FLAWS = [None, None, None, None, "no rows", "wrong d", "1-D", "3-D", "scalar", "bool", "complex", "NaN", "Inf"]


@st.composite
def inputs(draw: st.DrawFn, d: int) -> tuple[Any, bool]:
    """An input array for a model of input dimension d (as a tensor, NumPy array or list of any real dtype)
    with at most one flaw from ``FLAWS``, and whether it is valid (no flaw)."""
    flaw = draw(st.sampled_from(FLAWS))
    n = 0 if flaw == "no rows" else draw(st.integers(1, 5))
    cols = d + draw(st.sampled_from([-1, 1])) if flaw == "wrong d" else d
    shape = {"1-D": (n,), "3-D": (1, n, cols), "scalar": ()}.get(flaw, (n, cols))
    kind = {"bool": "bool", "complex": "complex64"}.get(flaw) or draw(st.sampled_from(["float64", "float32", "int64"]))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(draw(st.integers(0, 1000))), dtype=torch.float64)
    if flaw in ("NaN", "Inf"):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = math.nan if flaw == "NaN" else -math.inf
        kind = draw(st.sampled_from(["float64", "float32"]))  # integer arrays cannot hold NaN or Inf
    x = x.to(getattr(torch, kind))
    container = draw(st.sampled_from(["torch", "numpy", "list"]))
    value = x if container == "torch" else x.numpy() if container == "numpy" else x.tolist()
    return value, flaw is None


@SETTINGS
@given(st.data())
def test_forward_accepts_exactly_the_valid_inputs(data: st.DataObject) -> None:
    d = data.draw(st.integers(1, 3))
    model = data.draw(st.sampled_from([wf.Shallow(d, 6), wf.P3L(d, 6, 5, dtype="float32"), wf.WideNet(
        wf.embeddings.Quadratic(d), 4, scaling="ntk")]), label="model")
    X, valid = data.draw(inputs(model.d))
    event("valid X" if valid else "invalid X")
    if valid:
        f = model(X)
        assert f.shape == (np.shape(X)[0],) and f.dtype == model.dtype and bool(torch.isfinite(f).all())
        return
    with pytest.raises(Exception) as info:
        model(X)
    assert_documented(info.value, ["X"])


# ---------------------------------------------------------------------------------------------- train
@st.composite
def train_arguments(draw: st.DrawFn) -> tuple[wf.WideNet, torch.Tensor, list[Arg], bool]:
    d = draw(st.integers(1, 3))
    m = 2 * draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["shallow", "p3l_ntk", "flags"]))
    model = {"shallow": lambda: wf.Shallow(d, m, activation="tanh"),
             "p3l_ntk": lambda: wf.P3L(d, m, 5, scaling="ntk"),
             "flags": lambda: wf.Shallow(d, m, train_c=True, bias=True, scaling="mf")}[kind]()
    n = draw(st.integers(1, 6))
    X, y = wf.data.random_labels(n, d, seed=draw(st.integers(0, 100)))
    bad_y = [y[:-1] if n > 1 else y[:0], y[:, None], torch.cat([y, y[:1]]), torch.where(y > 0, math.nan, y),
             y > 0, ["a"] * n]
    args = [
        draw(arg("y", st.just(y), bad_y)),
        draw(arg("steps", st.integers(1, 6), [0, -2, 3.0, "5"])),
        draw(arg("step_size", st.floats(0.05, 0.5), [0.0, -0.1, math.nan, math.inf, "0.1"])),
        draw(arg("reduction", st.sampled_from(["mean", "sum"]), ["avg", "Mean", None])),
        draw(arg("method", st.sampled_from(["auto", "weights", "kernel"]), ["kernal", "ntk", 0])),
        draw(arg("log_every", st.integers(1, 4), [0, -1, 1.0])),
    ]
    test_set = draw(st.booleans())
    return model, X, args, test_set


@settings(SETTINGS, max_examples=50)
@given(train_arguments())
def test_train_raises_iff_an_argument_is_invalid(spec: tuple) -> None:
    model, X, args, test_set = spec
    kw = {a.name: a.value for a in args}
    bad = [a.name for a in args if not a.valid]
    kernel_refused = kw["method"] == "kernel" and (model.train_c or model.bias)
    event("all valid" if not bad and not kernel_refused else "some invalid")
    if not bad and not kernel_refused:
        # a step size well inside the stable range, so that only bad input can fail
        dmax = max_stable_step_size(model, X, kw["reduction"])  # inf when every feature is 0 on X
        kw["step_size"] *= dmax if math.isfinite(dmax) else 1.0
        extra = {"X_test": X, "y_test": kw["y"]} if test_set else {}
        result = wf.train(model, X, kw.pop("y"), progress=False, **kw, **extra)
        steps, log_every = kw["steps"], kw["log_every"]
        assert list(result.history["step"]) == [*range(0, steps, log_every), steps]
        assert bool(np.isfinite(result.history["train_loss"]).all())
        assert result.model.W.shape == model.W.shape
        return
    with pytest.raises(Exception) as info:
        wf.train(model, X, kw.pop("y"), progress=False, **kw)
    if not bad:
        assert isinstance(info.value, E.KernelEngineUnavailable)
    else:
        assert_documented(info.value, bad)


# ---------------------------------------------------------------------------------------------- engines
@st.composite
def valid_runs(draw: st.DrawFn) -> tuple[wf.WideNet, dict[str, Any]]:
    """A valid model without train_c/bias (the kernel engine moves W only) and a stable run of it."""
    d, m, D = draw(st.integers(1, 4)), 2 * draw(st.integers(1, 8)), draw(st.integers(1, 16))
    # cubic is not Lipschitz (Assumption 2 fails): its kernel grows with h and GD blows up at any fixed step
    kw = dict(activation=draw(st.sampled_from([a for a in ACTIVATIONS if a != "cubic"])),
              scaling=draw(st.sampled_from(["ours", "ntk", "mf"])), seed=draw(st.integers(0, 99)))
    model = draw(st.sampled_from(["shallow", "p3l", "deep", "quadratic"]).map(lambda k: {
        "shallow": lambda: wf.Shallow(d, m, **kw), "p3l": lambda: wf.P3L(d, m, D, **kw),
        "deep": lambda: wf.PartiallyTrained(d, m, D, depth=4, **kw),
        "quadratic": lambda: wf.WideNet(wf.embeddings.Quadratic(d), m, **kw)}[k]()))
    n, n_test, seed = draw(st.integers(1, 8)), draw(st.integers(0, 4)), draw(st.integers(0, 1000))
    X, y = wf.data.random_labels(n, d, seed=seed)
    reduction = draw(st.sampled_from(["mean", "sum"]))
    dmax = max_stable_step_size(model, X, reduction)
    run = dict(X=X, y=y, steps=draw(st.integers(1, 20)), log_every=draw(st.integers(1, 5)), reduction=reduction,
               step_size=0.5 * dmax if math.isfinite(dmax) else 1.0, progress=False)
    if n_test:
        run["X_test"], run["y_test"] = wf.data.random_labels(n_test, d, seed=seed + 1)
    return model, run


@SETTINGS
@given(valid_runs())
def test_engines_agree(spec: tuple[wf.WideNet, dict[str, Any]]) -> None:
    """Weight space and kernel space (docs/theory.md §8) are the same GD: same history and W to rounding.

    Over 300 random configurations (float64) the largest difference, relative to the largest value of its
    column (losses fall to the rounding floor ~1e-16 L_0), was 5.6e-15 in the history and 2.8e-15 in W;
    1e-12 leaves a factor of ~200.
    """
    model, run = spec
    X, y = run.pop("X"), run.pop("y")
    a = wf.train(model, X, y, method="weights", **run)
    b = wf.train(model, X, y, method="kernel", **run)
    assert list(a.history.columns) == list(b.history.columns)
    for col in a.history.columns:
        scale = float(np.abs(a.history[col]).max())
        np.testing.assert_allclose(b.history[col], a.history[col], rtol=0, atol=1e-12 * scale, err_msg=col)
    scale = float(a.model.W.abs().max())
    assert float((a.model.W - b.model.W).abs().max()) <= 1e-12 * scale


class _Stop(Exception):
    pass


@SETTINGS
@given(spec=valid_runs(), method=st.sampled_from(["weights", "kernel"]), data=st.data())
def test_interrupted_and_resumed_equals_uninterrupted(spec: tuple, method: str, data: st.DataObject,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stop a run by an exception at a random logging step, resume from its last checkpoint: the same run."""
    model, run = spec
    X, y = run.pop("X"), run.pop("y")
    run["method"] = method
    log_every, steps = run["log_every"], run["steps"]
    every = log_every * data.draw(st.integers(1, 3), label="checkpoint period in logs")
    stop_at = data.draw(st.sampled_from([*range(0, steps, log_every), steps]), label="stop at step")
    ckpt = tmp_path_factory.mktemp("resume") / "run.ckpt"
    plain = wf.train(model, X, y, **run)

    def stop(state: wf.TrainState) -> dict[str, float]:
        if state.step == stop_at:
            raise _Stop
        return {}

    with pytest.raises(_Stop):
        wf.train(model, X, y, checkpoint=ckpt, checkpoint_every=every, callbacks=[stop], **run)
    resumed = wf.train(model, X, y, checkpoint=ckpt, checkpoint_every=every, resume=ckpt, **run)
    pd.testing.assert_frame_equal(resumed.history, plain.history, check_exact=True)
    assert torch.equal(resumed.model.W, plain.model.W)


@SETTINGS
@given(spec=model_arguments(invalid=False), seed=st.integers(0, 50))
def test_save_load_round_trip(spec: tuple[str, list[Arg]], seed: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Any valid model, saved and loaded, predicts bit-identically."""
    model = build(*spec)
    X, _ = wf.data.random_labels(4, model.d, seed=seed)
    back = wf.load(model.save(tmp_path_factory.mktemp("save") / "model.wfm"))
    assert torch.equal(back(X), model(X)) and back.config == model.config
