"""The TensorBoard callback writes the history, and the events read back equal it (wideflow.tensorboard)."""

from __future__ import annotations

import contextlib
import io
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import wideflow as wf
from wideflow.cli import main
from wideflow.errors import MissingDependency

pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install -e '.[tensorboard]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from wideflow.tensorboard import TensorBoardLogger  # noqa: E402


def _events(folder: Path) -> dict[str, tuple[list[int], np.ndarray]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: ([e.step for e in acc.Scalars(tag)], np.array([e.value for e in acc.Scalars(tag)]))
            for tag in acc.Tags()["scalars"]}


def test_events_read_back_equal_the_history(tmp_path: Path, one_torch_thread) -> None:
    X, y = wf.data.axis_xor(24, 4, seed=0)
    Xt, yt = wf.data.axis_xor(16, 4, seed=1)
    model = wf.P3L(4, 32)
    with TensorBoardLogger(tmp_path / "tb", tracker=wf.FeatureTracker(model, X, y)) as logger:
        result = wf.train(model, X, y, steps=60, log_every=10, X_test=Xt, y_test=yt, callbacks=[logger],
                          progress=False)
    history = result.history
    assert "feature_displacement" in history  # the tracker's columns still reach the history
    events = _events(tmp_path / "tb")
    steps = list(history["step"])
    # TensorBoard stores scalars as float32: a relative error of 2^-24 ≈ 6e-8 each, so 1e-6 is ample
    for tag, column in [("loss/train", "train_loss"), ("loss/test", "test_error"),
                        ("features/feature_displacement", "feature_displacement"), ("features/eta", "eta")]:
        assert events[tag][0] == steps
        np.testing.assert_allclose(events[tag][1], history[column], rtol=1e-6, atol=1e-30)
    rate = -np.diff(np.log(history["train_loss"])) / np.diff(history["time"])
    assert events["rate/train"][0] == steps[1:]
    np.testing.assert_allclose(events["rate/train"][1], rate, rtol=1e-6)


def test_wideflow_train_tensorboard_dir(tmp_path: Path, one_torch_thread) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "-n", "16", "--n-test", "8", "-d", "3", "-m", "16", "--steps", "20", "--log-every",
                     "10", "--tensorboard", str(tmp_path / "tb")]) == 0
    events = _events(tmp_path / "tb")
    assert set(events) == {"loss/train", "loss/test", "rate/train"} and events["loss/train"][0] == [0, 10, 20]
    last = out.getvalue().splitlines()[-2].split()  # the history's last row: step, time, train_loss, test_error
    assert math.isclose(events["loss/test"][1][-1], float(last[3]), rel_tol=1e-5)  # printed with 6 digits


def test_rate_is_left_out_where_a_loss_is_zero(tmp_path: Path) -> None:
    """An interpolating run reaches L = 0 exactly: log 0 has no rate, and the logger writes none."""
    with TensorBoardLogger(tmp_path / "tb") as logger:
        for step, loss in [(0, 0.5), (1, 0.0), (2, 0.0)]:
            logger(wf.TrainState(step=step, time=float(step), train_loss=loss, test_error=None, f=None, H=None))
    events = _events(tmp_path / "tb")
    assert events["loss/train"][0] == [0, 1, 2] and "rate/train" not in events


def test_without_the_tensorboard_package_the_error_names_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what an install without it sees
    with pytest.raises(MissingDependency, match=r'pip install "wideflow\[tensorboard\]"'):
        TensorBoardLogger(tmp_path / "tb")
    assert main(["train", "-n", "8", "-d", "3", "-m", "8", "--steps", "2", "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wideflow: error: MissingDependency:")
