"""Results are values: nothing a result holds moves when the user edits, in place, the inputs, the initial model or
its embedding after the call (a trained model never refers to the initial model's tensors; the kernel engine's
W_0 is drawn again from the seed, or copied when the model had formed or been given its W). Every public entry
point that returns something built from the user's tensors is called, everything the user holds is edited in
place, and what the result holds is compared bit for bit with the same call without the edits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import wideflow as wf

D_IN = 5


def _snapshot(result) -> dict[str, torch.Tensor]:
    X_new = torch.linspace(-1, 1, 3 * D_IN, dtype=torch.float64).reshape(3, D_IN)
    out = {"f_new": result.model(X_new).clone(), "history": torch.tensor(result.history["train_loss"].to_numpy())}
    if not result.model.embedding.infinite:
        out["W"] = result.model.W.clone()
    return out


def _vandalize(model: wf.WideNet, *tensors: torch.Tensor) -> None:
    """Edit in place everything the user holds: the data, c, W (if formed), the embedding's weights."""
    with torch.no_grad():
        for t in tensors:
            t.mul_(-3.0).add_(1.0)
        model.c.mul_(0.0)
        if not model.embedding.infinite:
            model.W.mul_(0.0)
        for w in model.embedding.weights():
            w.mul_(0.0)


CALLS = {
    "train-kernel": lambda model, X, y: wf.train(model, X, y, steps=60, method="kernel", log_every=20),
    "train-weights": lambda model, X, y: wf.train(model, X, y, steps=60, method="weights", log_every=20),
    "train-logistic": lambda model, X, y: wf.train(model, X, y, steps=60, method="kernel", log_every=20,
                                                   loss="logistic"),
    # tanh: a ReLU flow chatters where a neuron's pre-activation sits at the kink, and the adaptive solver then
    # takes ~10^4 steps; the value semantics under test do not depend on the activation
    "gradient_flow": lambda model, X, y: wf.gradient_flow(model, X, y, t=3.0, points=4),
}
ACTIVATION = {"gradient_flow": "tanh"}


@pytest.mark.parametrize("read_W_first", [False, True])
@pytest.mark.parametrize("D", [24, math.inf])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_result_does_not_move_when_its_inputs_are_edited(call: str, D: float, read_W_first: bool) -> None:
    if math.isinf(D) and (call == "train-weights" or read_W_first):
        pytest.skip("no W at D = ∞")
    results = []
    for vandal in (False, True):
        X, y = wf.data.axis_xor(16, D_IN, seed=0)
        model = wf.P3L(D_IN, 32, D=D, seed=1, activation=ACTIVATION.get(call, "relu"))
        if read_W_first:
            _ = model.W  # the initial W formed before training: the result must copy it, not refer to it
        result = CALLS[call](model, X, y)
        if vandal:
            _vandalize(model, X, y)
        results.append(_snapshot(result))
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


def test_the_issue_example_gives_the_unedited_result() -> None:
    X, y = wf.data.axis_xor(40, 10, seed=0)
    X_new, _ = wf.data.axis_xor(7, 10, seed=1)
    runs = []
    for edit in (False, True):
        model = wf.P3L(10, 128, 256, seed=1)
        res = wf.train(model, X, y, steps=200, method="kernel")
        if edit:
            with torch.no_grad():
                model.W.mul_(0.0)
        runs.append((res.model.W.clone(), res.model(X_new)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_a_checkpoint_does_not_move_when_the_model_is_edited(tmp_path) -> None:
    X, y = wf.data.axis_xor(16, D_IN, seed=0)
    finals = []
    class Interrupted(Exception):
        pass

    def interrupt_at_40(state):
        if state.step == 40:
            raise Interrupted
        return {}

    for vandal in (False, True):
        model = wf.P3L(D_IN, 32, D=24, seed=1)
        path = tmp_path / f"run{vandal}.pt"
        with pytest.raises(Interrupted):
            wf.train(model, X, y, steps=80, log_every=20, checkpoint=path, checkpoint_every=20,
                     callbacks=[interrupt_at_40])
        if vandal:
            _vandalize(model, X, y)
        X2, y2 = wf.data.axis_xor(16, D_IN, seed=0)
        resumed = wf.train(wf.P3L(D_IN, 32, D=24, seed=1), X2, y2, steps=80, log_every=20, resume=path)
        finals.append(_snapshot(resumed))
    X, y = wf.data.axis_xor(16, D_IN, seed=0)
    whole = _snapshot(wf.train(wf.P3L(D_IN, 32, D=24, seed=1), X, y, steps=80, log_every=20))
    for key in finals[0]:
        assert torch.equal(finals[0][key], finals[1][key]), key
        assert torch.equal(finals[0][key], whole[key]), key


def test_the_ntk_predictor_does_not_move_when_its_inputs_are_edited() -> None:
    X, y = wf.data.axis_xor(12, D_IN, seed=0)
    X_test, _ = wf.data.axis_xor(5, D_IN, seed=1)
    out = []
    for vandal in (False, True):
        model = wf.P3L(D_IN, 32, D=24, scaling="ntk", seed=1)
        Xc, yc, Xt = X.clone(), y.clone(), X_test.clone()
        theta = wf.ntk.ntk_kernel_of(model, Xc)
        theta_test = wf.ntk.ntk_kernel_of(model, Xt, Xc)
        f0, ft0 = model(Xc), model(Xt)
        direct = wf.ntk.gradient_descent_mse(theta, yc, k_test_train=theta_test, f_train_0=f0, f_test_0=ft0)
        of_model = wf.ntk.ntk_predictor(model, Xc, yc, Xt)
        if vandal:
            _vandalize(model, Xc, yc, Xt, theta, theta_test, f0, ft0)
        out.append([*direct(2.0), *of_model(2.0)])
    for a, b in zip(*out):
        assert torch.equal(a, b)


def test_a_fitted_estimator_does_not_move_when_its_training_arrays_are_edited() -> None:
    pytest.importorskip("sklearn")
    import numpy as np

    from wideflow.sklearn import WideNetClassifier, WideNetRegressor

    X, y = wf.data.axis_xor(24, D_IN, seed=0)
    X_new = np.linspace(-1, 1, 3 * D_IN).reshape(3, D_IN)
    for make in (lambda: WideNetRegressor(kind="p3l", m=32, steps=30),
                 lambda: WideNetClassifier(kind="p3l", m=32, steps=30)):
        out = []
        for vandal in (False, True):
            Xn, yn = X.numpy().copy(), y.numpy().copy()
            est = make().fit(Xn, yn)
            if vandal:
                Xn *= -3.0
                yn *= -1.0
            out.append(est.predict(X_new))
        assert np.array_equal(out[0], out[1])


def test_a_sweep_result_does_not_move_when_its_configurations_are_edited() -> None:
    """A sweep's outcome keeps its own copy of the configuration and its own arrays (batched and one by one)."""
    from wideflow.sweep import expand, train_batched
    from wideflow.sweep.runner import run_guarded

    spec = {"base": {"model": {"kind": "p3l", "d": D_IN, "m": 32, "D": 24}, "data": {"kind": "axis_xor", "n": 12},
                     "train": {"steps": 40, "log_every": 20}, "record": {"features": True}}, "seeds": 2}
    for run in (train_batched, lambda configs: [run_guarded(c) for c in configs]):
        configs = expand(spec)
        outcomes = run(configs)
        kept = [(o.config["model"]["m"], {k: v.copy() for k, v in o.output.arrays.items()}) for o in outcomes]
        for config in configs:
            config["model"]["m"] = 999
            config["train"]["steps"] = 1
        for outcome, (m, arrays) in zip(outcomes, kept, strict=True):
            assert outcome.config["model"]["m"] == m == 32 and outcome.config["train"]["steps"] == 40
            for key, value in arrays.items():
                assert np.array_equal(outcome.output.arrays[key], value), key


def test_a_kernel_of_a_cloned_model_does_not_move_when_the_model_is_edited() -> None:
    """WideNetKernel holds its model as given (scikit-learn's convention); model.clone() freezes it."""
    from wideflow.sklearn import WideNetKernel

    X, _ = wf.data.axis_xor(16, D_IN, seed=0)
    model = wf.P3L(D_IN, 32, D=24, seed=1)
    frozen, live = WideNetKernel(model.clone()), WideNetKernel(model)
    before = frozen(X.numpy())
    _vandalize(model, X)
    X, _ = wf.data.axis_xor(16, D_IN, seed=0)
    assert np.array_equal(frozen(X.numpy()), before) and not np.array_equal(live(X.numpy()), before)
