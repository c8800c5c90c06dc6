"""Checkpoints, exact resume and saved models.

- A training subprocess is SIGKILLed mid-run (once between two checkpoints, once in the middle of writing a
  checkpoint); a new process resumes from the checkpoint and must end bit-identical (history and final W)
  to an uninterrupted run, for both engines.
- ``wf.load`` in a fresh process (standing in for another machine: nothing is shared but the file)
  gives exactly the predictions of the saved model, for every kind of model.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow.errors import CheckpointError, FileMissing, OutputError

@pytest.fixture(autouse=True)
def _one_thread(_threads: None) -> None:
    """Tiny problems: one torch thread, since OpenMP synchronization on busy cores costs more than the work."""
    torch.set_num_threads(1)


# The run that gets interrupted: 200 steps, a row every 10, a checkpoint every 40.
CHILD = textwrap.dedent(
    """
    import io, sys, time
    from pathlib import Path
    import torch
    import wideflow as wf

    torch.set_num_threads(1)
    STEPS, LOG, EVERY = 200, 10, 40


    def run(method, ckpt=None, resume=None, kill_at=None, kill_in_save_at=None, marker=None):
        X, y = wf.data.random_labels(20, 4, seed=3)
        Xt, yt = wf.data.random_labels(10, 4, seed=4)
        model = wf.P3L(4, 64, 48, seed=5, train_c=method == "weights_c")
        seen = []

        def cb(state):
            seen.append(state.step)
            if state.step == kill_at:
                Path(marker).write_text("ready")
                time.sleep(600)
            return {"norm_H": float(state.H.norm())}

        if kill_in_save_at is not None:
            real_save = torch.save

            def save(obj, f, *args, **kwargs):
                if isinstance(obj, dict) and obj.get("step") == kill_in_save_at:
                    buf = io.BytesIO()
                    real_save(obj, buf, *args, **kwargs)
                    f.write(buf.getvalue()[: len(buf.getvalue()) // 2])  # half is on disk when the kill comes
                    f.flush()
                    Path(marker).write_text("ready")
                    time.sleep(600)
                return real_save(obj, f, *args, **kwargs)

            torch.save = save
        res = wf.train(model, X, y, steps=STEPS, step_size=0.5, X_test=Xt, y_test=yt, log_every=LOG,
                       method="weights" if method == "weights_c" else method, checkpoint=ckpt,
                       checkpoint_every=EVERY if ckpt else None, resume=resume, callbacks=[cb], progress=False)
        return {"history": res.history.to_dict("list"), "W": res.model.W.clone(), "c": res.model.c.clone(),
                "seen": seen}


    if __name__ == "__main__":
        mode, out = sys.argv[1], sys.argv[2]
        if mode == "victim":
            method, ckpt, marker, kill_at, in_save = sys.argv[3:8]
            run(method, ckpt, None, int(kill_at) if kill_at != "-" else None,
                int(in_save) if in_save != "-" else None, marker)
        else:  # "finish": resume each interrupted run, then run each without interruption, in one process
            results = {}
            for spec in sys.argv[3:]:
                method, ckpt = spec.split("=")
                results[ckpt] = {"resumed": run(method, ckpt, ckpt), "plain": run(method)}
            torch.save(results, out)
    """
)

# (engine, kill between checkpoints at step, kill while writing the checkpoint of step)
SCENARIOS = [("kernel", 130, None), ("weights", 130, None), ("weights_c", None, 160)]


def _python(script: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _kill_when_ready(proc: subprocess.Popen, marker: Path, timeout: float = 240.0) -> None:
    """SIGKILL ``proc`` once it has written ``marker`` (it then sleeps mid-run)."""
    t0 = time.monotonic()
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the training process ended before the kill: {proc.communicate()[1][-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("the training process did not reach the kill point in time")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """Run each scenario's victim until it is killed, record its checkpoint, then resume all in one process."""
    tmp = tmp_path_factory.mktemp("kill")
    script = tmp / "child.py"
    script.write_text(CHILD)
    victims = []
    for method, kill_at, in_save in SCENARIOS:
        ckpt, marker = tmp / f"{method}.ckpt", tmp / f"{method}.ready"
        proc = _python(script, "victim", "-", method, str(ckpt), str(marker), str(kill_at or "-"), str(in_save or "-"))
        victims.append((proc, marker, ckpt))
    for proc, marker, _ in victims:
        _kill_when_ready(proc, marker)
    at_kill = {ckpt.name: torch.load(ckpt, weights_only=True)["step"] for _, _, ckpt in victims}
    leftovers = {ckpt.name: sorted(p.name for p in tmp.glob(f".{ckpt.name}.*.tmp")) for _, _, ckpt in victims}
    out = tmp / "results.pt"
    proc = _python(script, "finish", str(out), *(f"{m}={tmp / f'{m}.ckpt'}" for m, _, _ in SCENARIOS))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    results = {Path(k).name: v for k, v in torch.load(out, weights_only=True).items()}
    return tmp, {"step": at_kill, "tmp": leftovers}, results


@pytest.mark.integration
@pytest.mark.parametrize("method,kill_at,in_save", SCENARIOS)
def test_sigkill_then_resume_is_bit_identical(interrupted: tuple, method: str, kill_at: int | None,
                                               in_save: int | None) -> None:
    _, at_kill, results = interrupted
    name = f"{method}.ckpt"
    # killed at step 130 the last checkpoint is that of step 120; killed while writing step 160's, the
    # rename never happened and the file is still the complete checkpoint of step 120
    assert at_kill["step"][name] == 120
    if in_save is not None:
        assert len(at_kill["tmp"][name]) == 1, "the half-written temporary file should be the only trace"
    resumed, plain = results[name]["resumed"], results[name]["plain"]
    assert resumed["seen"][0] == 120, "the resumed run must start at the checkpoint, not at step 0"
    assert plain["seen"][0] == 0
    pd.testing.assert_frame_equal(pd.DataFrame(resumed["history"]), pd.DataFrame(plain["history"]), check_exact=True)
    assert torch.equal(resumed["W"], plain["W"]) and torch.equal(resumed["c"], plain["c"])
    assert list(pd.DataFrame(plain["history"])["step"]) == list(range(0, 201, 10))


def test_resume_of_a_finished_run_returns_it(tmp_path: Path) -> None:
    """Resuming a finished run's checkpoint recomputes nothing and gives the same result."""
    X, y = wf.data.random_labels(12, 3, seed=0)
    model = wf.Shallow(3, 16)
    ckpt = tmp_path / "run.ckpt"
    first = wf.train(model, X, y, steps=30, log_every=10, checkpoint=ckpt, progress=False)
    seen: list[int] = []
    again = wf.train(model, X, y, steps=30, log_every=10, checkpoint=ckpt, resume=ckpt, progress=False,
                     callbacks=[lambda s: seen.append(s.step) or {}])
    assert seen == [30]
    pd.testing.assert_frame_equal(first.history, again.history, check_exact=True)
    assert torch.equal(first.model.W, again.model.W)


def test_resume_refuses_another_run(tmp_path: Path) -> None:
    """A checkpoint is only resumed by the run that wrote it: other data or other settings are refused."""
    X, y = wf.data.random_labels(12, 3, seed=0)
    model = wf.Shallow(3, 16)
    ckpt = tmp_path / "run.ckpt"
    wf.train(model, X, y, steps=20, log_every=10, checkpoint=ckpt, progress=False)
    with pytest.raises(CheckpointError, match=r"differ in \['data'\]"):
        wf.train(model, X, y + 1, steps=20, log_every=10, resume=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="step_size: checkpoint 1.0, this run 0.5"):
        wf.train(model, X, y, steps=20, step_size=0.5, log_every=10, resume=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="model"):
        wf.train(wf.Shallow(3, 16, seed=1), X, y, steps=20, log_every=10, resume=ckpt, progress=False)


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way (disk full) raises OutputError and leaves the previous checkpoint intact."""
    X, y = wf.data.random_labels(12, 3, seed=0)
    model = wf.Shallow(3, 16)
    ckpt = tmp_path / "run.ckpt"
    wf.train(model, X, y, steps=20, log_every=10, checkpoint=ckpt, progress=False)
    before = ckpt.read_bytes()

    def full_disk(obj: object, f: io.BufferedWriter, *args: object, **kwargs: object) -> None:
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        wf.train(model, X, y, steps=40, log_every=10, checkpoint=ckpt, progress=False)
    assert ckpt.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is removed after a failed write"


# ---------------------------------------------------------------------------------------------- saved models
LOAD_CHILD = textwrap.dedent(
    """
    import sys
    import torch
    import wideflow as wf

    torch.set_num_threads(1)
    X = torch.load(sys.argv[1], weights_only=True)
    out = {}
    for path in sys.argv[3:]:
        model = wf.load(path)
        out[path] = {"f": model(X), "repr": repr(model), "W": model.W}
    torch.save(out, sys.argv[2])
    """
)


def _models() -> dict[str, wf.WideNet]:
    """One model of every kind: classes, embeddings, scalings, activations with parameters, flags, dtypes."""
    E = wf.embeddings
    return {
        "shallow": wf.Shallow(3, 12, seed=1),
        "p3l_ntk": wf.P3L(3, 12, 20, scaling="ntk", seed=2),
        "deep_mf": wf.PartiallyTrained(3, 12, 10, depth=4, scaling="mf", activation="tanh", seed=3),
        "quadratic": wf.WideNet(E.Quadratic(3), 12, activation={"name": "leaky_relu", "slope": 0.3}, seed=4),
        "features_spec": wf.WideNet({"kind": "random_features", "d": 3, "D": 15, "activation": {"name": "erf"},
                                     "seed": 9}, 12, c_hat=2.5, seed=5),
        "c_and_bias": wf.Shallow(3, 12, train_c=True, bias=True, activation="softplus", seed=6),
        "float32": wf.P3L(3, 12, dtype="float32", seed=7),
    }


@pytest.fixture(scope="module")
def trained() -> tuple[torch.Tensor, dict[str, wf.WideNet]]:
    X, y = wf.data.random_labels(10, 3, seed=11)
    out = {}
    for name, model in _models().items():
        out[name] = wf.train(model, X, y, steps=15, step_size=0.5, log_every=5, progress=False).model
    return X, out


def test_load_gives_identical_predictions(tmp_path: Path, trained: tuple) -> None:
    """Saved after training (the kernel engine's W is lazy), loaded here: same predictions, bit for bit."""
    X, models = trained
    for name, model in models.items():
        path = model.save(tmp_path / f"{name}.wfm")
        back = wf.load(path)
        assert type(back) is type(model) and back.config == model.config, name
        assert torch.equal(back(X), model(X)) and torch.equal(back.W, model.W), name
        assert torch.equal(back.c, model.c), name
        assert (back.b is None) == (model.b is None) and (back.b is None or torch.equal(back.b, model.b)), name


@pytest.mark.integration
def test_load_in_a_fresh_process(tmp_path: Path, trained: tuple) -> None:
    """Only the file travels: a new interpreter rebuilds every model with bit-identical predictions."""
    X, models = trained
    paths = [str(model.save(tmp_path / f"{name}.wfm")) for name, model in models.items()]
    torch.save(X, tmp_path / "X.pt")
    script = tmp_path / "load_child.py"
    script.write_text(LOAD_CHILD)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "X.pt"), str(tmp_path / "out.pt"), *paths],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    for (name, model), path in zip(models.items(), paths, strict=True):
        assert torch.equal(out[path]["f"], model(X)), name
        assert torch.equal(out[path]["W"], model.W), name
        assert out[path]["repr"] == repr(model), name


def test_corrupt_model_files_are_refused(tmp_path: Path) -> None:
    model = wf.Shallow(3, 12)
    path = model.save(tmp_path / "m.wfm")
    state = torch.load(path, weights_only=True)
    state["W"] = state["W"][:5]
    torch.save(state, tmp_path / "short.wfm")
    with pytest.raises(CheckpointError, match="corrupt"):
        wf.load(tmp_path / "short.wfm")
    state = torch.load(path, weights_only=True)
    state["config"]["activation"] = {"name": "my_unregistered_activation"}
    torch.save(state, tmp_path / "unknown.wfm")
    with pytest.raises(CheckpointError, match="register_activation"):
        wf.load(tmp_path / "unknown.wfm")
    buf = io.BytesIO(path.read_bytes())
    (tmp_path / "truncated.wfm").write_bytes(buf.getvalue()[:100])
    with pytest.raises(CheckpointError, match="could not read"):
        wf.load(tmp_path / "truncated.wfm")
    with pytest.raises(FileMissing):
        wf.load(tmp_path / "nothing.wfm")
    assert issubclass(FileMissing, FileNotFoundError)
