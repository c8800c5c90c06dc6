"""Every bad input of the public API gets a clear error.

``CASES`` is the single list of bad inputs: each is the exact code a user would write, the exception it
must raise (a :class:`wideflow.errors.WideflowError` that is also a ``ValueError``/``TypeError``/
``RuntimeError``/``FileNotFoundError``) and words the message must contain (the argument, the value and
what was expected). The table in ``docs/errors.md`` is rendered from the same list by
``python tests/test_errors.py``, and :func:`test_docs_table_is_current` fails when the two drift.
Command-line cases (``wideflow ...``) must print exactly one line and exit with status 2.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import wideflow as wf
from wideflow import diagnostics, gradflow, ntk, sweep, theory
from wideflow import errors as E
from wideflow.cli import main as cli_main
from wideflow.distributed import Shard
from wideflow.kernels import max_stable_step_size
from wideflow.sklearn import WideNetClassifier, WideNetKernel, WideNetRegressor

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

@pytest.fixture(autouse=True)
def _one_thread(_threads: None) -> None:
    """Tiny problems: one torch thread, since OpenMP synchronization on busy cores costs more than the work."""
    torch.set_num_threads(1)


# Small sizes put in front of every `wideflow train` case, so that a case that does run stays fast.
CLI_BASE = ["-n", "8", "--n-test", "8", "-d", "3", "-m", "10", "--steps", "5", "--log-every", "5",
            "--data", "random_labels"]


@dataclass(frozen=True)
class Case:
    """One bad input: ``code`` is evaluated (or, starting with ``wideflow``, run as a command line)."""

    entry: str
    code: str
    error: type[Exception]
    mentions: tuple[str, ...]
    portable: bool = True  # False: the message depends on the machine (e.g. which GPUs it has)
    gap: str = ""  # a known gap in another engineer's module (named here): the test checks it is still open
    builtin: bool = False  # the library's convention is a built-in error (scikit-learn's ValueError)


C = Case
CASES: list[Case] = [
    # ---------------------------------------------------------------- models
    C("models", "wf.Shallow(3, 0)", E.InvalidArgument, ("m", "0", ">= 1")),
    C("models", "wf.Shallow(3, -5)", E.InvalidArgument, ("m", "-5", ">= 1")),
    C("models", "wf.Shallow(3, 10.5)", E.InvalidType, ("m", "10.5", "integer")),
    C("models", "wf.Shallow(3, '10')", E.InvalidType, ("m", "'10'", "integer")),
    C("models", "wf.Shallow(3, True)", E.InvalidType, ("m", "True", "integer")),
    C("models", "wf.Shallow(0, 10)", E.InvalidArgument, ("d", "0", ">= 1")),
    C("models", "wf.P3L(3, 10, D=0)", E.InvalidArgument, ("D", "0", ">= 1")),
    C("models", "wf.P3L(3, 10, D=-4)", E.InvalidArgument, ("D", "-4", ">= 1")),
    C("models", "wf.P3L(3, 10, D=12.0)", E.InvalidType, ("D", "12.0", "integer")),
    C("models", "wf.PartiallyTrained(3, 10, 10, depth=2)", E.InvalidArgument, ("depth", "2", ">= 3")),
    C("models", "wf.Shallow(3, 10, activation='rleu')", E.UnknownName, ("activation", "'rleu'", "'tanh'", "'relu'?")),
    C("models", "wf.Shallow(3, 10, activation='ReLU')", E.UnknownName, ("activation", "'ReLU'", "'relu'?")),
    C("models", "wf.Shallow(3, 10, activation=5)", E.InvalidType, ("activation", "5", "name")),
    C("models", "wf.Shallow(3, 10, activation={'name': 'leaky_relu', 'slop': 0.2})", E.InvalidArgument,
      ("leaky_relu", "slop", "slope")),
    C("models", "wf.Shallow(3, 10, scaling='NTK')", E.UnknownName, ("scaling", "'NTK'", "'ntk'?")),
    C("models", "wf.Shallow(3, 10, scaling='mean_field')", E.UnknownName, ("scaling", "'mean_field'", "'mf'", "'ours'")),
    C("models", "wf.Shallow(3, 11, scaling='ntk')", E.InvalidArgument, ("m=11", "odd", "even")),
    C("models", "wf.Shallow(3, 10, c_hat=0)", E.InvalidArgument, ("c_hat", "0", "> 0")),
    C("models", "wf.Shallow(3, 10, c_hat=float('nan'))", E.InvalidArgument, ("c_hat", "nan", "finite")),
    C("models", "wf.Shallow(3, 10, seed=1.5)", E.InvalidType, ("seed", "1.5", "integer")),
    C("models", "wf.P3L(3, 10, seed='0')", E.InvalidType, ("seed", "'0'", "integer")),
    C("models", "wf.Shallow(3, 10, dtype='float16')", E.InvalidType, ("dtype", "float16", "float64")),
    C("models", "wf.Shallow(3, 10, dtype=torch.int64)", E.InvalidType, ("dtype", "int64", "float64")),
    C("models", "wf.Shallow(3, 10, device='cuda:99')", E.InvalidArgument, ("device", "'cuda:99'"), portable=False),
    C("models", "wf.Shallow(3, 10, device='gpu')", E.InvalidArgument, ("device", "'gpu'", "'cuda'")),
    C("models", "wf.Shallow(3, 10, device='tpu:0')", E.InvalidArgument, ("device", "'tpu:0'", "'cpu'")),
    C("models", "wf.Shallow(3, 10, train_c=1)", E.InvalidType, ("train_c", "1", "True or False")),
    C("models", "wf.WideNet(lambda X: X, 10)", E.InvalidArgument, ("embedding", "d=")),
    C("models", "wf.WideNet(wf.embeddings.Identity(3), 10, d=4)", E.InvalidShape, ("d=4", "3")),
    C("models", "wf.WideNet('identity', 10)", E.InvalidType, ("embedding", "str", "Embedding")),
    C("models", "wf.WideNet({'kind': 'identiy', 'd': 3}, 10)", E.UnknownName, ("'identiy'", "'identity'?")),
    C("models", "wf.WideNet({'kind': 'identity', 'dim': 3}, 10)", E.InvalidArgument, ("identity", "'dim'", "'d'")),
    C("models", "wf.WideNet(lambda X: X[:, 0], 10, d=3)", E.InvalidShape, ("embedding", "(n, D)", "(2,)")),
    C("models", "wf.WideNet(lambda X: X.float(), 10, d=3)(X)", E.InvalidType, ("embedding callable", "float32", "dtype")),
    # ---------------------------------------------------------------- forward pass and parameters
    C("forward", "model(X[:, :2])", E.InvalidShape, ("X", "2 columns", "d = 3")),
    C("forward", "model(X[0])", E.InvalidShape, ("X", "(3,)", "(n, d)", "reshape")),
    C("forward", "model(X[None])", E.InvalidShape, ("X", "(1, 8, 3)", "(n, d)")),
    C("forward", "model(5.0)", E.InvalidShape, ("X", "()", "(n, d)")),
    C("forward", "model(torch.empty(0, 3))", E.InvalidShape, ("X", "empty", "(0, 3)")),
    C("forward", "model(X_nan)", E.NonFiniteInput, ("X", "1 NaN", "finite")),
    C("forward", "model(X_inf)", E.NonFiniteInput, ("X", "Inf", "finite")),
    C("forward", "wf.Shallow(3, 10, dtype='float32')(X * 1e300)", E.NonFiniteInput, ("X", "float32", "finite")),
    C("forward", "model(X > 0)", E.InvalidType, ("X", "torch.bool", "real")),
    C("forward", "model(X.to(torch.complex128))", E.InvalidType, ("X", "complex128", "real")),
    C("forward", "model([['a', 'b', 'c']])", E.InvalidType, ("X", "<U1", "real")),
    C("forward", "model([[1.0, 2.0, 3.0], [4.0]])", E.InvalidType, ("X", "numeric")),
    C("forward", "model(np.array([[1, None, 3]]))", E.InvalidType, ("X", "object", "real")),
    C("forward", "model.features(X[:, :2])", E.InvalidShape, ("X", "2 columns", "d = 3")),
    C("forward", "model.embed(X_nan)", E.NonFiniteInput, ("X", "NaN", "finite")),
    C("forward", "model.W = torch.zeros(10, 4)", E.InvalidShape, ("W", "4 columns", "10, 3")),
    C("forward", "model.W = torch.zeros(9, 3)", E.InvalidShape, ("W", "9 rows", "10, 3")),
    C("forward", "model.to(device='cuda:99')", E.InvalidArgument, ("device", "'cuda:99'"), portable=False),
    C("forward", "model.to(dtype='float16')", E.InvalidType, ("dtype", "float16", "float64")),
    # ---------------------------------------------------------------- train
    C("train", "wf.train('model', X, y)", E.InvalidType, ("model", "str", "WideNet")),
    C("train", "wf.train(model, X, y[:5])", E.InvalidShape, ("y", "5", "8")),
    C("train", "wf.train(model, X[:, :2], y)", E.InvalidShape, ("X", "2 columns", "d = 3")),
    C("train", "wf.train(model, X, y[:, None])", E.InvalidShape, ("y", "(8, 1)", "(n,)")),
    C("train", "wf.train(model, X, y_nan)", E.NonFiniteInput, ("y", "NaN", "finite")),
    C("train", "wf.train(model, X, y_inf)", E.NonFiniteInput, ("y", "Inf", "finite")),
    C("train", "wf.train(model, X[:0], y[:0])", E.InvalidShape, ("X", "empty")),
    C("train", "wf.train(model, X, y > 0)", E.InvalidType, ("y", "torch.bool", "real")),
    C("train", "wf.train(model, X, ['a'] * 8)", E.InvalidType, ("y", "<U1", "real")),
    C("train", "wf.train(model, X, y, steps=0)", E.InvalidArgument, ("steps", "0", ">= 1")),
    C("train", "wf.train(model, X, y, steps=-10)", E.InvalidArgument, ("steps", "-10", ">= 1")),
    C("train", "wf.train(model, X, y, steps=10.0)", E.InvalidType, ("steps", "10.0", "integer")),
    C("train", "wf.train(model, X, y, step_size=0)", E.InvalidArgument, ("step_size", "0", "> 0")),
    C("train", "wf.train(model, X, y, step_size=-0.1)", E.InvalidArgument, ("step_size", "-0.1", "> 0")),
    C("train", "wf.train(model, X, y, step_size=float('inf'))", E.InvalidArgument, ("step_size", "inf", "finite")),
    C("train", "wf.train(model, X, y, step_size=float('nan'))", E.InvalidArgument, ("step_size", "nan", "finite")),
    C("train", "wf.train(model, X, y, step_size='1')", E.InvalidType, ("step_size", "'1'", "real number")),
    C("train", "wf.train(model, X, y, log_every=0)", E.InvalidArgument, ("log_every", "0", ">= 1")),
    C("train", "wf.train(model, X, y, reduction='avg')", E.UnknownName, ("reduction", "'avg'", "'mean'", "'sum'")),
    C("train", "wf.train(model, X, y, method='kernal')", E.UnknownName, ("method", "'kernal'", "'kernel'?")),
    C("train", "wf.train(wf.Shallow(3, 10, train_c=True), X, y, method='kernel')", E.KernelEngineUnavailable,
      ("method='kernel'", "train_c", "'weights'")),
    C("train", "wf.train(model, X, y, X_test=X)", E.InvalidArgument, ("X_test", "y_test", "together")),
    C("train", "wf.train(model, X, y, X_test=X[:, :2], y_test=y)", E.InvalidShape, ("X_test", "2 columns", "d = 3")),
    C("train", "wf.train(model, X, y, X_test=X, y_test=y[:3])", E.InvalidShape, ("y_test", "3", "8")),
    C("train", "wf.train(model, X, y, X_test=X, y_test=y_nan)", E.NonFiniteInput, ("y_test", "NaN")),
    C("train", "wf.train(model, X, y, divergence_factor=0.5)", E.InvalidArgument, ("divergence_factor", "0.5", "> 1")),
    C("train", "wf.train(model, X, y, callbacks=[1])", E.InvalidType, ("callbacks", "int", "callable")),
    C("train", "wf.train(model, X, y, callbacks=lambda state: {})", E.InvalidType, ("callbacks", "function", "list")),
    C("train", "wf.train(model, X, y, steps=3, log_every=1, callbacks=[lambda state: 1.0])", E.InvalidType,
      ("callback", "float", "dict")),
    C("train", "wf.train(model, X, y, progress='yes')", E.InvalidType, ("progress", "'yes'", "True, False or None")),
    C("train", "wf.train(model, X, y, checkpoint_every=100)", E.InvalidArgument, ("checkpoint_every", "checkpoint=")),
    C("train", "wf.train(model, X, y, checkpoint='run.ckpt', checkpoint_every=150)", E.InvalidArgument,
      ("checkpoint_every=150", "log_every=100", "multiple")),
    C("train", "wf.train(model, X, y, checkpoint='a_folder')", E.InvalidArgument, ("checkpoint", "'a_folder'", "folder")),
    C("train", "wf.train(model, X, y, resume='garbage.pt')", E.CheckpointError, ("'garbage.pt'", "checkpoint")),
    C("train", "wf.train(model, X, y, resume='saved_model.pt')", E.CheckpointError,
      ("'saved_model.pt'", "not a wideflow training checkpoint")),
    C("train", "wf.train(model, X, y, steps=20, resume='other_run.ckpt')", E.CheckpointError,
      ("'other_run.ckpt'", "steps", "same")),
    C("train", "wf.train(model, X, y, checkpoint=123)", E.InvalidType, ("checkpoint", "int", "path")),
    C("train", "wf.train(model, X, y, loss='logistc')", E.UnknownName, ("loss", "'logistc'", "'logistic'?")),
    C("train", "wf.train(model, X, y, loss='logistic')", E.InvalidArgument, ("y", "-1 and +1", "logistic")),
    C("train", "wf.train(model, X, torch.ones(8, dtype=torch.float64), loss='logistic')", E.InvalidArgument,
      ("y", "single class", "-1 and +1")),
    C("train", "wf.train(model, X, y_pm, X_test=X, y_test=y, loss='logistic')", E.InvalidArgument,
      ("y_test", "-1 and +1")),
    C("train", "wf.train(model, X, y, step_size=1e6)", E.TrainingDiverged, ("step 1", "step_size=1e+06", "2N/λ_max")),
    C("train", "wf.train(wf.WideNet(lambda X: X * float('nan'), 10, d=3), X, y)", E.TrainingDiverged,
      ("non-finite at step 0", "embedding", "not finite")),
    # ---------------------------------------------------------------- kernels
    C("kernels", "wf.gram(model, X[:, :2])", E.InvalidShape, ("X", "2 columns", "d = 3")),
    C("kernels", "wf.gram(model, X, X[:, :2])", E.InvalidShape, ("X2", "2 columns", "d = 3")),
    C("kernels", "wf.gram(model, X_nan)", E.NonFiniteInput, ("X", "NaN")),
    C("kernels", "wf.gram('model', X)", E.InvalidType, ("model", "str", "WideNet")),
    C("kernels", "wf.gram(model, X, block=0)", E.InvalidArgument, ("block", "0", ">= 1")),
    C("kernels", "wf.limit_gram(X, X[:, :2])", E.InvalidShape, ("X2", "2 columns", "3")),
    C("kernels", "wf.limit_gram(X[0])", E.InvalidShape, ("X", "(3,)", "(n, d)")),
    C("kernels", "wf.limit_gram(X, activation='rlu')", E.UnknownName, ("activation", "'rlu'", "'relu'?")),
    C("kernels", "wf.tangent_kernel(H, c[:5], 'relu', G)", E.InvalidShape, ("c", "5", "10")),
    C("kernels", "wf.tangent_kernel(H, c, 'relu', G[:4])", E.InvalidShape, ("G", "(4, 8)", "(8, 8)")),
    C("kernels", "wf.tangent_kernel(H.T, c, 'relu', G)", E.InvalidShape, ("H", "(8, 10)", "(m, n)")),
    # ---------------------------------------------------------------- data generators
    C("data", "wf.data.random_labels(0, 3)", E.InvalidArgument, ("n", "0", ">= 1")),
    C("data", "wf.data.random_labels(10, -1)", E.InvalidArgument, ("d", "-1", ">= 1")),
    C("data", "wf.data.random_labels(10.0, 3)", E.InvalidType, ("n", "10.0", "integer")),
    C("data", "wf.data.random_labels(10, 3, seed=1.5)", E.InvalidType, ("seed", "1.5", "integer")),
    C("data", "wf.data.quadratic_teacher(10, 3, m_teacher=0)", E.InvalidArgument, ("m_teacher", "0", ">= 1")),
    C("data", "wf.data.quadratic_teacher(10, 3, activation='relux')", E.UnknownName, ("activation", "'relux'", "'relu'?")),
    C("data", "wf.data.axis_xor(10, 1)", E.InvalidArgument, ("d", "1", ">= 2")),
    # ---------------------------------------------------------------- save and load
    C("save/load", "wf.load('missing.pt')", E.FileMissing, ("'missing.pt'", "does not exist")),
    C("save/load", "wf.load('garbage.pt')", E.CheckpointError, ("'garbage.pt'", "wideflow model")),
    C("save/load", "wf.load('other_run.ckpt')", E.CheckpointError, ("'other_run.ckpt'", "not a wideflow model file")),
    C("save/load", "wf.load('a_folder')", E.CheckpointError, ("'a_folder'", "folder")),
    C("save/load", "wf.load('saved_model.pt', device='cuda:99')", E.InvalidArgument, ("device", "'cuda:99'"),
      portable=False),
    C("save/load", "wf.WideNet(lambda X: X, 10, d=3).save('callable.pt')", E.InvalidArgument, ("callable", "cannot be saved")),
    C("save/load", "model.save('a_folder')", E.OutputError, ("'a_folder'", "folder")),
    C("save/load", "model.save('garbage.pt/model.wfm')", E.OutputError, ("'garbage.pt/model.wfm'", "could not write")),
    C("save/load", "from wideflow.tensorboard import TensorBoardLogger; TensorBoardLogger(5)", E.InvalidType,
      ("log_dir", "int 5", "folder")),
    C("save/load", "from wideflow.tensorboard import TensorBoardLogger; TensorBoardLogger('tb', tracker='eta')",
      E.InvalidType, ("tracker", "'eta'", "FeatureTracker")),
    # ---------------------------------------------------------------- D = ∞ and sharded runs
    C("D = ∞", "wf.P3L(3, 16, D=math.inf).W", E.InvalidArgument, ("D = ∞", "W", "features")),
    C("D = ∞", "setattr(wf.P3L(3, 16, D=math.inf), 'W', torch.zeros(16, 5))", E.InvalidArgument, ("D = ∞", "W")),
    C("D = ∞", "wf.P3L(3, 16, D=math.inf).embed(X)", E.InvalidArgument, ("D = ∞", "Φ", "wf.gram")),
    C("D = ∞", "wf.train(wf.P3L(3, 16, D=math.inf), X, y, method='weights')", E.KernelEngineUnavailable,
      ("method='weights'", "D = ∞", "'kernel'")),
    C("D = ∞", "wf.P3L(3, 16, D=-math.inf)", E.InvalidArgument, ("D=-inf", "integer", "math.inf")),
    C("D = ∞", "wf.PartiallyTrained(3, 16, D=float('nan'))", E.InvalidArgument, ("D=nan", "math.inf")),
    C("sharded runs", "wf.train(model, X, y, distributed=True)", E.InvalidArgument, ("distributed=True", "torchrun")),
    C("sharded runs", "wf.train(model, X, y, method='weights', distributed=True)", E.InvalidArgument,
      ("method='weights'", "sharded", "'kernel'")),
    C("sharded runs", "Shard(0, 4, (0, 16)).check_no_other_layout('sharded.ckpt')", E.CheckpointError,
      ("'sharded.ckpt'", "2 processes", "4", "--nproc_per_node 2")),
    # ---------------------------------------------------------------- building blocks
    C("building blocks", "wf.get_activation('leaky_relu', slope=2.0)", E.InvalidArgument, ("slope", "2.0", "(0, 1]")),
    C("building blocks", "wf.get_activation('sigmoid', slope=0.1)", E.InvalidArgument, ("sigmoid", "slope")),
    C("building blocks", "wf.register_activation('relu', torch.relu, torch.sign)", E.InvalidArgument,
      ("'relu'", "already registered", "overwrite=True")),
    C("building blocks", "wf.get_scaling('lazy')", E.UnknownName, ("scaling", "'lazy'", "'ntk'")),
    # ---------------------------------------------------------------- scalings by exponents (Appendix C)
    C("scalings", "wf.richness(0.7)", E.InvalidArgument, ("r=0.7", "[0, 1/2]", "wf.abc_scaling")),
    C("scalings", "wf.richness(-0.1)", E.InvalidArgument, ("r=-0.1", "[0, 1/2]")),
    C("scalings", "wf.richness(float('nan'))", E.InvalidArgument, ("r", "nan", "finite")),
    C("scalings", "wf.richness('0.3')", E.InvalidType, ("r", "'0.3'", "real number")),
    C("scalings", "wf.richness(0.3, symmetrize='yes')", E.InvalidType, ("symmetrize", "'yes'", "True, False")),
    C("scalings", "wf.get_scaling('ours').shifted(math.inf)", E.InvalidArgument, ("theta", "inf", "finite")),
    C("scalings", "wf.get_scaling('ours').shifted(None)", E.InvalidType, ("theta", "None", "real number")),
    C("scalings", "wf.abc_scaling([0, 0, 0], [0, 0.5, 0.5], c=0)", E.InvalidArgument,
      ("unstable", "tangent kernel grows like n^1", "allow_unstable=True")),
    C("scalings", "wf.abc_scaling([0, 0.5, 0.25], [0, 0, 0], c=0.5)", E.InvalidArgument,
      ("unstable", "initial output grows", "a_out + b_out = 0.25")),
    C("scalings", "wf.abc_scaling([0, 0, 1], [0, 0, 0], c=0)", E.InvalidArgument,
      ("unstable", "initial features grow", "a_W + b_W = 0")),
    C("scalings", "wf.abc_scaling([0.5, 0.5, 1], [0, 0, 0], c=-1)", E.InvalidArgument,
      ("layer 1", "fixed", "a_1 + b_1", "0.5")),
    C("scalings", "wf.abc_scaling([0, 0.5], [0, 0], c=-1)", E.InvalidArgument, ("2 entries", "3 entries")),
    C("scalings", "wf.abc_scaling([0, 0.5, 1], [0, 0], c=-1)", E.InvalidArgument, ("a has 3", "b has 2")),
    C("scalings", "wf.abc_scaling([0, 0.5, 'one'], [0, 0, 0], c=-1)", E.InvalidType, ("a[2]", "'one'", "real number")),
    C("scalings", "wf.get_scaling('richness(abc)')", E.InvalidArgument, ("richness(abc)", "'abc'", "[0, 1/2]")),
    C("scalings", "wf.get_scaling('{\"a\": [0, 0.5, 1]}')", E.InvalidArgument, ("'a', 'b', 'c'", "richness")),
    C("scalings", "wf.get_scaling('{a: 1}')", E.InvalidArgument, ("not valid JSON", "richness(R)")),
    C("scalings", "wf.get_scaling(0.3)", E.InvalidType, ("scaling", "float", "richness(R)")),
    C("scalings", "wf.P3L(3, 10, D=math.inf, scaling='mf_lr_sqrtD')", E.InvalidArgument,
      ("mf_lr_sqrtD", "D = ∞", "D^-0.5")),
    C("scalings", "wf.P3L(3, 10, D=math.inf, scaling=wf.Scaling('x', 1.0, 0.2, False, 1, -0.6))", E.InvalidArgument,
      ("'x'", "D = ∞", "a_W + b_W < 1/2")),
    C("scalings", "wf.P3L(3, 11, scaling=wf.richness(0.2, symmetrize=True))", E.InvalidArgument,
      ("m=11", "symmetrize", "even")),
    C("scalings", "sweep.normalize({'model': {'scaling': 'richness(0.9)'}})", E.InvalidArgument,
      ("model.scaling='richness(0.9)'", "r=0.9", "[0, 1/2]")),
    C("scalings", "sweep.normalize({'model': {'scaling': {'richness': 0.2, 'sym': True}}})", E.InvalidArgument,
      ("model.scaling", "'sym'", "'symmetrize'")),
    C("building blocks", "wf.embeddings.RandomFeatures(3, 0)", E.InvalidArgument, ("D", "0", ">= 1")),
    C("building blocks", "wf.embeddings.DeepRandomFeatures(3, 10, layers=0)", E.InvalidArgument, ("layers", "0", ">= 1")),
    C("building blocks", "wf.embeddings.Function(5, 3)", E.InvalidType, ("fn", "int", "callable")),
    # ---------------------------------------------------------------- data loader, sweeps and configuration files
    C("data files", "wf.data.load_dataset('data.txt')", E.InvalidArgument, ("'data.txt'", "'.txt'", ".npz, .csv")),
    C("data files", "wf.data.load_dataset('garbage.npz')", E.InvalidArgument, ("'garbage.npz'", ".npz")),
    C("data files", "wf.data.load_dataset('words.csv')", E.InvalidType, ("'x2'", "real numbers", "'abc'")),
    C("data files", "wf.data.load_dataset('holes.csv')", E.NonFiniteInput, ("holes.csv", "NaN", "row 2")),
    C("data files", "wf.data.load_dataset('missing.npz')", E.FileMissing, ("'missing.npz'", "does not exist")),
    C("data files", "wf.data.load_dataset('a_folder.csv')", E.InvalidArgument, ("'a_folder.csv'", "folder")),
    C("data files", "wf.data.load_dataset('onerow.csv')", E.InvalidShape, ("'onerow.csv'", "one row", "at least 2")),
    C("data files", "wf.data.load_train_test('train3.csv', 'train3.csv', test_fraction=0.2)", E.InvalidArgument,
      ("test_path='train3.csv'", "test_fraction=0.2", "one way")),
    C("data files", "wf.data.load_train_test('train3.csv', standardize='yes')", E.UnknownName,
      ("standardize", "'yes'", "'xy'")),
    C("data files", "wf.data.load_train_test('train3.csv', 'test1.csv')", E.InvalidShape,
      ("'test1.csv'", "'train3.csv'", "missing: ['x2', 'x3']", "extra: []")),
    C("data files", "wf.data.split_dataset(X, y, 0.01)", E.InvalidArgument, ("test_fraction=0.01", "n=8", "at least one")),
    C("data files", "sweep.normalize({'data': {'kind': 'file', 'path': 'x.csv', 'test_fraction': 1.5}})",
      E.InvalidArgument, ("data.test_fraction", "1.5", "[0, 1)")),
    C("configuration files", "sweep.normalize({'model': {'m': 0}})", E.InvalidArgument, ("model.m", "0", ">= 1")),
    C("configuration files", "sweep.normalize({'modle': {}})", E.UnknownName, ("'modle'", "'model'?")),
    C("configuration files", "sweep.normalize({'model': {'activaton': 'relu'}})", E.UnknownName,
      ("'activaton'", "'activation'?")),
    C("configuration files", "sweep.normalize({'model': {'scaling': 'ntk', 'm': 11}})", E.InvalidArgument,
      ("model.m=11", "odd", "even")),
    C("configuration files", "sweep.normalize({'train': {'loss': 'hinge'}})", E.UnknownName,
      ("train.loss", "'hinge'", "'logistic'")),
    C("configuration files", "sweep.normalize({'train': {'device': 'gpu'}})", E.InvalidArgument,
      ("train.device", "'gpu'", "'cuda'?")),
    C("configuration files", "sweep.run_sweep([{'train': {'device': 'cuda:99'}}], 'store', progress=False)",
      E.InvalidArgument, ("configs[0]", "train.device", "'cuda:99'"), portable=False),
    C("configuration files", "sweep.expand({'grid': {'model.m': []}})", E.InvalidType, ("model.m", "non-empty list")),
    C("configuration files", "sweep.load_spec('bad.toml')", E.InvalidArgument, ("'bad.toml'", "not valid TOML")),
    C("configuration files", "sweep.load_spec('missing.toml')", E.FileMissing, ("'missing.toml'", "does not exist")),
    C("configuration files", "sweep.load_results('a_folder')", E.InvalidArgument, ("'a_folder'", "results store")),
    # ---------------------------------------------------------------- theory, flow, NTK, diagnostics, interop
    C("other modules", "theory.check(model, X, y[:5])", E.InvalidShape, ("y", "5", "8")),
    C("other modules", "theory.spectrum(torch.zeros(3, 4))", E.InvalidShape, ("G", "square", "(3, 4)")),
    C("other modules", "theory.concentration(X, Ds=[0])", E.InvalidArgument, ("Ds", "0", ">= 1")),
    C("other modules", "theory.concentration(X, Ds=[])", E.InvalidArgument, ("Ds", "empty", "widths")),
    C("other modules", "theory.concentration(X, seeds=[])", E.InvalidArgument, ("seeds", "empty")),
    C("other modules", "theory.pl_bound(wf.Shallow(3, 10, activation='linear'), X, reduction='avg')",
      E.UnknownName, ("reduction", "'avg'")),
    C("other modules", "theory.fit_rate(None)", E.InvalidType, ("history", "DataFrame", "NoneType")),
    C("other modules", "gradflow.gradient_flow(model, X, y, t=-1.0)", E.InvalidArgument, ("t", "-1.0", "> 0")),
    C("other modules", "gradflow.gradient_flow(model, X, y, t=1.0, loss='logistic')", E.InvalidArgument,
      ("y", "-1 and +1")),
    C("other modules", "wf.check(model, X, y, loss='logistic')", E.InvalidArgument, ("y", "-1 and +1")),
    C("other modules", "gradflow.gradient_flow(model, X, y, t=1.0, solver='rk5')", E.UnknownName, ("solver", "'rk5'")),
    C("other modules", "gradflow.gradient_flow(model, X, y, times=[1.0, 0.5])", E.InvalidArgument, ("times", "increasing")),
    C("other modules", "ntk.ntk_kernel(X, c_hat=-1)", E.InvalidArgument, ("c_hat", "-1", "> 0")),
    # depth 0 is valid (the shallow net: G^(0) = XXᵀ/d, see test_depth_zero_is_the_shallow_net); below 0 is not
    C("other modules", "ntk.ntk_kernel(X, depth=-1)", E.InvalidArgument, ("depth", "-1", ">= 0")),
    C("other modules", "wf.kernels.limit_gram(X, depth=-1)", E.InvalidArgument, ("depth", "-1", ">= 0")),
    C("other modules", "ntk.ntk_predictor(model, X, y, limit='inf')", E.UnknownName, ("limit", "'inf'", "'both'")),
    C("other modules", "diagnostics.kernel_drift(torch.eye(3), torch.eye(4))", E.InvalidShape,
      ("Kt", "(3, 3)", "(4, 4)")),
    C("other modules", "diagnostics.kernel_drift(torch.ones(3, 4), torch.ones(3, 4))", E.InvalidShape,
      ("K0", "square", "(3, 4)")),
    C("other modules", "diagnostics.kernel_target_alignment(torch.eye(3), torch.ones(4))", E.InvalidShape,
      ("y", "(4,)", "(3,)")),
    C("other modules", "diagnostics.relative_weight_change(model, wf.Shallow(3, 12))", E.InvalidShape,
      ("model_t", "12", "10")),
    C("other modules", "diagnostics.neuron_displacement(H, H[:, :5])", E.InvalidShape, ("Ht", "(10, 5)", "(10, 8)")),
    C("other modules", "diagnostics.width_sweep(lambda m, s, seed: wf.Shallow(3, m), X, y, widths=[])",
      E.InvalidArgument, ("widths", "empty")),
    C("other modules", "wf.to_module('model')", E.InvalidType, ("model", "str", "WideNet")),
    C("other modules", "wf.from_module(torch.nn.Linear(3, 4))", E.InvalidArgument, ("net", "Linear(d, m)")),
    C("other modules", "WideNetRegressor(m=0).fit(X.numpy(), y.numpy())", E.InvalidArgument, ("m", "0", ">= 1")),
    C("other modules", "WideNetRegressor(m=8).fit(X.numpy(), y.numpy()[:5])", ValueError, ("inconsistent", "[8, 5]"),
      builtin=True),
    C("other modules", "WideNetRegressor(m=8).fit(X_nan.numpy(), y.numpy())", ValueError, ("NaN",), builtin=True),
    C("other modules", "WideNetClassifier(m=8).fit(X.numpy(), np.zeros(8))", ValueError,
      ("at least 2 classes", "one class"), builtin=True),
    C("other modules", "WideNetClassifier(m=8).fit(X.numpy(), y.numpy())", ValueError, ("Unknown label type",),
      builtin=True),
    C("other modules", "WideNetClassifier(m=8, steps=2, kind='quadratic', dtype='float32').fit(X.numpy(), "
      "y_pm.numpy()).predict_proba(np.full((2, 3), 1e20))", E.NonFiniteInput, ("X", "non-finite", "probabilities")),
    C("other modules", "WideNetKernel(model, kind='ntk')(X.numpy())", E.UnknownName, ("kind", "'ntk'", "'tangent'")),
    C("other modules", "WideNetKernel('model')(X.numpy())", E.InvalidType, ("model", "str", "WideNet")),
    # ---------------------------------------------------------------- command line
    C("command line", "wideflow train -m 0", E.InvalidArgument, ("m", "0", ">= 1")),
    C("command line", "wideflow train --activation rleu", E.UnknownName, ("'rleu'", "'relu'?")),
    C("command line", "wideflow train --scaling ntk -m 11", E.InvalidArgument, ("m=11", "even")),
    C("command line", "wideflow train --data noy.csv", E.InvalidArgument, ("'noy.csv'", "['y']", "['a', 'b']")),
    C("command line", "wideflow train --data onerow.csv", E.InvalidShape, ("'onerow.csv'", "one row", "at least 2")),
    C("command line", "wideflow train --data train3.csv --test-data test1.csv", E.InvalidShape,
      ("'test1.csv'", "['x1']", "missing: ['x2', 'x3']")),
    C("command line", "wideflow train --data nothere.csv", E.FileMissing, ("'nothere.csv'", "does not exist")),
    C("command line", "wideflow train --data train3.csv --test-fraction 1.5", E.InvalidArgument,
      ("test_fraction", "1.5", "strictly between 0 and 1")),
    C("command line", "wideflow train --data random_labels --test-fraction 0.2", E.InvalidArgument,
      ("--test-fraction 0.2", "'random_labels'", "--n-test")),
    C("command line", "wideflow check --data words.csv", E.InvalidType, ("'x2'", "real numbers", "'abc'")),
    C("command line", "wideflow train --scaling 'richness(0.8)'", E.InvalidArgument,
      ("scaling='richness(0.8)'", "r=0.8", "[0, 1/2]")),
    C("command line", "wideflow train --device cuda:99", E.InvalidArgument, ("'cuda:99'",), portable=False),
    C("command line", "wideflow train --steps 0", E.InvalidArgument, ("steps", "0")),
    C("command line", "wideflow train --step-size -1", E.InvalidArgument, ("step_size", "-1")),
    C("command line", "wideflow train --data axis_xor -d 1", E.InvalidArgument, ("d", "1", ">= 2")),
    C("command line", "wideflow train -n 0", E.InvalidArgument, ("n", "0", ">= 1")),
    C("command line", "wideflow train --method kernal", E.UnknownName, ("'kernal'", "'kernel'?")),
    C("command line", "wideflow train --reduction avg", E.UnknownName, ("'avg'", "'mean'")),
    C("command line", "wideflow train --step-size 1e6 --activation linear", E.TrainingDiverged, ("diverged", "2N/λ_max")),
    C("command line", "wideflow train --out garbage.pt", E.OutputError, ("--out", "'garbage.pt'", "folder")),
    C("command line", "wideflow train --tensorboard garbage.pt", E.OutputError, ("log_dir", "'garbage.pt'", "folder")),
    C("command line", "wideflow train --tensorboard garbage.pt/runs", E.OutputError,
      ("log_dir", "'garbage.pt/runs'", "Not a directory", "writable folder")),
    C("command line", "wideflow train --loss logist", E.UnknownName, ("'logist'", "'logistic'?")),
    C("command line", "wideflow train --loss logistic", E.InvalidArgument, ("y", "-1 and +1")),
    C("command line", "wideflow train --checkpoint-every 5", E.InvalidArgument, ("checkpoint_every", "checkpoint=")),
    C("command line", "wideflow train --resume garbage.pt", E.CheckpointError, ("'garbage.pt'", "checkpoint")),
    C("command line", "wideflow sweep bad.toml --dry-run", E.InvalidArgument, ("'bad.toml'", "TOML")),
    C("command line", "wideflow sweep grid_m0.toml --dry-run", E.InvalidArgument, ("model.m", "0", ">= 1")),
    C("command line", "wideflow sweep missing.toml --dry-run", E.FileMissing, ("'missing.toml'", "does not exist")),
    C("command line", "wideflow sweep grid_cuda.toml", E.InvalidArgument, ("configs[0]", "train.device", "'cuda:99'"),
      portable=False),
    C("command line", "wideflow results a_folder", E.InvalidArgument, ("'a_folder'", "results store")),
    C("command line", "wideflow sweep grid_ok.toml --store garbage.pt", E.InvalidArgument,
      ("store='garbage.pt'", "is a file", "folder")),
    C("command line", "wideflow sweep grid_ok.toml --store garbage.pt/s", E.OutputError,
      ("'garbage.pt/s/runs'", "Not a directory")),
    C("command line", "wideflow reproduce exp1 --out out --seeds 0", E.InvalidArgument, ("seeds", "0", ">= 1")),
    C("command line", "wideflow check -m 0", E.InvalidArgument, ("m", "0", ">= 1")),
    C("command line", "wideflow check --delta 0", E.InvalidArgument, ("delta", "0", "> 0")),
    C("command line", "wideflow check --data noy.csv", E.InvalidArgument, ("'noy.csv'", "['y']", "header")),
    C("command line", "wideflow check --data holes.csv", E.NonFiniteInput, ("'holes.csv'", "NaN", "['x2']", "row 2")),
    C("command line", "wideflow check --data randm_labels", E.UnknownName,
      ("--data='randm_labels'", ".npz or .csv", "'random_labels'?")),
    C("command line", "wideflow train --data train3.csv --test-fraction 0", E.InvalidArgument,
      ("--test-fraction", "0.0", "between 0 and 1")),
    C("command line", "wideflow train --data train3.csv --test-fraction 0.2 --test-data train3.csv", E.InvalidArgument,
      ("--test-data train3.csv", "--test-fraction 0.2", "one way")),
    C("command line", "wideflow train --data train3.csv -d 5", E.InvalidShape, ("'train3.csv'", "d=3", "expected d=5")),
    C("command line", "wideflow train --data train3.csv", E.InvalidArgument,
      ("-n 8", "generator", "'train3.csv'", "--test-fraction")),
    C("command line", "wideflow sweep grid_m0.toml --test-fraction 0.2 --dry-run", E.InvalidArgument,
      ("--test-fraction", "--data FILE", "'grid_m0.toml'")),
    C("command line", "wideflow sweep grid_m0.toml --data noy.csv --dry-run", E.InvalidArgument, ("'noy.csv'", "['y']")),
    C("command line", "wideflow reproduce exp1 --out out --config missing.toml", E.FileMissing,
      ("'missing.toml'", "does not exist")),
    C("command line", "wideflow reproduce exp1 --out out --preset tiny --device gpu", E.InvalidArgument,
      ("--device", "'gpu'", "'cuda'?")),
    C("command line", "wideflow reproduce exp1 --out out --preset tiny --device cuda:99", E.InvalidArgument,
      ("train.device", "'cuda:99'"), portable=False),
    C("command line", "wideflow reproduce exp1 --out out --preset tiny --config preset_m0.toml", E.InvalidArgument,
      ("preset_m0.toml", "exp1.m", ">= 1")),
    C("command line", "wideflow reproduce exp1 --out out --preset tiny --config preset_typo.toml", E.UnknownName,
      ("unknown key 'stpes' in [exp1] of", "preset_typo.toml", "'steps'?")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_big.toml",
      E.InvalidArgument, ("real.n_test + max(real.n)", "1797", "digits")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_odd.toml",
      E.InvalidArgument, ("real.m", "[15]", "even")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_txt.toml",
      E.InvalidArgument, ("real.data", "'mydata.txt'", "'digits'", ".npz, .csv")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_nofile.toml",
      E.FileMissing, ("'nothere.csv'", "does not exist")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_noy.toml",
      E.InvalidArgument, ("'noy.csv'", "['y']")),
    C("command line", "wideflow reproduce real --out out --preset tiny --config preset_real_small.toml",
      E.InvalidArgument, ("real.n_test + max(real.n)", "3 points", "'train3.csv'")),
]


# ------------------------------------------------------------------------------------------------ running
@contextlib.contextmanager
def _workspace() -> Iterator[dict[str, Any]]:
    """A temporary working folder with the files the cases name, and the names their code uses."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            X, y = wf.data.random_labels(8, 3, seed=0)
            model = wf.Shallow(3, 10)
            X_nan, X_inf, y_nan, y_inf = X.clone(), X.clone(), y.clone(), y.clone()
            X_nan[2, 1] = float("nan")
            X_inf[0, 0] = float("inf")
            y_nan[3] = float("nan")
            y_inf[3] = -float("inf")
            Path("garbage.pt").write_bytes(b"this is not a torch file")
            Path("garbage.npz").write_bytes(b"this is not a numpy archive")
            Path("words.csv").write_text("x1,x2,y\n1.0,2.0,0.5\n3.0,abc,1.5\n")
            Path("holes.csv").write_text("x1,x2,y\n1.0,2.0,0.5\n3.0,,1.5\n")
            Path("noy.csv").write_text("a,b\n1,2\n3,4\n")
            Path("onerow.csv").write_text("x1,x2,x3,y\n1,2,3,4\n")
            Path("train3.csv").write_text("x1,x2,x3,y\n1,2,3,0.5\n4,5,6,-0.5\n7,8,9,0.25\n")
            Path("test1.csv").write_text("x1,y\n1,2\n4,5\n")
            Path("bad.toml").write_text("[base\nmodel = ")
            Path("grid_m0.toml").write_text("[base]\nmodel = {kind = 'shallow', d = 3, m = 0}\n")
            Path("grid_ok.toml").write_text("[base]\nmodel = {kind = 'shallow', d = 3, m = 8}\n"
                                            "data = {kind = 'random_labels', n = 4}\ntrain = {steps = 2}\n")
            Path("preset_m0.toml").write_text("[exp1]\nm = 0\n")
            Path("preset_typo.toml").write_text("[exp1]\nstpes = 10\n")
            Path("preset_real_big.toml").write_text("[real]\nn = [2000]\n")
            Path("preset_real_odd.toml").write_text("[real]\nm = [15]\n")
            Path("preset_real_txt.toml").write_text("[real]\ndata = 'mydata.txt'\n")
            Path("preset_real_nofile.toml").write_text("[real]\ndata = 'nothere.csv'\n")
            Path("preset_real_noy.toml").write_text("[real]\ndata = 'noy.csv'\n")
            Path("preset_real_small.toml").write_text("[real]\ndata = 'train3.csv'\n")
            Path("grid_cuda.toml").write_text("[base]\nmodel = {kind = 'shallow', d = 3, m = 8}\n"
                                              "train = {device = 'cuda:99'}\n")
            Path("a_folder").mkdir()
            Path("a_folder.csv").mkdir()
            model.save("saved_model.pt")
            wf.train(model, X, y, steps=2, log_every=1, checkpoint="other_run.ckpt", progress=False)
            Path("sharded.ckpt.rank0-of-2").write_bytes(b"")
            Path("sharded.ckpt.rank1-of-2").write_bytes(b"")
            H = model.features(X).T
            ns = {"wf": wf, "torch": torch, "np": np, "sweep": sweep, "theory": theory, "gradflow": gradflow, "ntk": ntk,
                  "diagnostics": diagnostics, "WideNetRegressor": WideNetRegressor,
                  "WideNetClassifier": WideNetClassifier, "WideNetKernel": WideNetKernel, "y_pm": torch.sign(y),
                  "math": math, "Shard": Shard,
                  "X": X, "y": y, "model": model, "X_nan": X_nan,
                  "X_inf": X_inf, "y_nan": y_nan, "y_inf": y_inf, "H": H, "c": model.c, "G": wf.gram(model, X)}
            yield ns
        finally:
            os.chdir(old)


class _CliFailure(Exception):
    def __init__(self, status: int, stderr: str) -> None:
        super().__init__(stderr)
        self.status, self.stderr = status, stderr


def _run_cli(code: str) -> None:
    argv = shlex.split(code)[1:]
    if argv[0] == "train":
        argv = argv[:1] + CLI_BASE + argv[1:]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = cli_main(argv)
    raise _CliFailure(status, err.getvalue())


@dataclass
class Outcome:
    """What a case did: the exception class name and message (or ``None`` if nothing was raised)."""

    error: str | None
    message: str
    clear: bool  # the expected class, a WideflowError, and every mentioned word in the message
    problem: str = ""


def run_case(case: Case, ns: dict[str, Any]) -> Outcome:
    """Run one case in the namespace of :func:`_workspace` and judge its error."""
    try:
        if case.code.startswith("wideflow "):
            _run_cli(case.code)
        else:
            exec(compile(case.code, "<case>", "exec"), dict(ns))
    except _CliFailure as exc:
        lines = exc.stderr.strip().splitlines()
        if exc.status != 2 or len(lines) != 1 or not lines[0].startswith("wideflow: error: "):
            return Outcome(None, exc.stderr, False, f"exit status {exc.status}, stderr {exc.stderr!r}")
        name, _, message = lines[0].removeprefix("wideflow: error: ").partition(": ")
        ok = name == case.error.__name__
        return _judge(case, name, message, ok)
    except Exception as exc:  # noqa: BLE001 - the point is to see what a user would see
        ours = isinstance(exc, E.WideflowError) or case.builtin
        return _judge(case, type(exc).__name__, str(exc), type(exc) is case.error and ours)
    return Outcome(None, "", False, "no error was raised")


def _judge(case: Case, name: str, message: str, class_ok: bool) -> Outcome:
    missing = [w for w in case.mentions if w not in message]
    problem = "" if class_ok else f"raised {name}, expected {case.error.__name__}"
    if missing:
        problem += f" message lacks {missing}"
    return Outcome(name, message, class_ok and not missing, problem.strip())


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    torch.set_num_threads(1)
    with _workspace() as ns:
        return [run_case(case, ns) for case in CASES]


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.code for c in CASES])
def test_bad_input_gets_a_clear_error(index: int, outcomes: list[Outcome]) -> None:
    case, outcome = CASES[index], outcomes[index]
    if case.gap:  # another module's known gap: when it is fixed, drop gap= and run `python tests/test_errors.py`
        assert not outcome.clear, f"{case.code}: the gap in {case.gap} is fixed; drop gap= from the case"
        return
    assert outcome.clear, f"{case.code}: {outcome.problem}; message: {outcome.message!r}"


def test_error_classes_are_builtin_subclasses() -> None:
    """Generic handlers keep working: every concrete class is also a built-in exception."""
    builtin = (ValueError, TypeError, RuntimeError, FileNotFoundError, ImportError)
    for name in E.__all__:
        cls = getattr(E, name)
        if cls is not E.WideflowError:
            assert issubclass(cls, E.WideflowError) and issubclass(cls, builtin), name


def test_errors_survive_pickling() -> None:
    """Errors cross process boundaries (Dask workers, subprocesses) with their message and attributes."""
    X, y = wf.data.random_labels(8, 3, seed=0)
    with pytest.raises(E.TrainingDiverged) as info:
        wf.train(wf.Shallow(3, 10), X, y, step_size=1e6, progress=False)
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is E.TrainingDiverged and str(back) == str(info.value)
    assert back.step == info.value.step and back.max_stable_step_size == info.value.max_stable_step_size
    assert back.last_finite_state.step == info.value.last_finite_state.step
    pd.testing.assert_frame_equal(back.history, info.value.history)
    stalled = E.TrainingStalled("stalled", step=3, last_finite_state=None, max_stable_step_size=0.5,
                                history=info.value.history)
    back = pickle.loads(pickle.dumps(stalled))
    assert type(back) is E.TrainingStalled and (str(back), back.step, back.max_stable_step_size) == ("stalled", 3, 0.5)
    for name in E.__all__:
        cls = getattr(E, name)
        if not issubclass(cls, E.TrainingDiverged):
            assert str(pickle.loads(pickle.dumps(cls("m=0 is bad")))) == "m=0 is bad", name


def test_debug_flag_shows_the_traceback() -> None:
    """``--debug`` re-raises the exception instead of printing one line."""
    with pytest.raises(E.InvalidArgument, match="m must be"):
        cli_main(["--debug", "train", *CLI_BASE, "-m", "0"])


def test_docs_table_is_current(outcomes: list[Outcome]) -> None:
    """docs/errors.md is what `python tests/test_errors.py` renders from CASES (portable messages)."""
    want = render(outcomes).splitlines()
    have = DOC.read_text(encoding="utf-8").splitlines()
    assert len(have) == len(want), "docs/errors.md is stale: run `python tests/test_errors.py`"
    for i, (h, w) in enumerate(zip(have, want, strict=True)):
        if h != w and not _nonportable_row(w):
            pytest.fail(f"docs/errors.md line {i + 1} is stale: run `python tests/test_errors.py`\n{h}\n{w}")


def test_depth_zero_is_the_shallow_net() -> None:
    """depth=0 is not a bad input: limit_gram gives G^(0) = XXᵀ/d of the identity embedding (docs/theory.md §4) and
    ntk_kernel the NTK-regime kernel of the shallow net, the same as ntk_kernel_of(wf.Shallow) computes."""
    X, _ = wf.data.random_labels(6, 3, seed=0)
    # float64 sums of 3 products: agreement to a few ulps; 1e-15 absolute on entries of size ~1
    torch.testing.assert_close(wf.kernels.limit_gram(X, depth=0), X @ X.T / 3, rtol=0, atol=1e-15)
    shallow = wf.Shallow(3, 10, scaling="ntk", activation="tanh")
    torch.testing.assert_close(ntk.ntk_kernel(X, activation="tanh", depth=0),
                               ntk.ntk_kernel_of(shallow, X, limit="both"), rtol=0, atol=1e-15)


@pytest.mark.integration
def test_a_cluster_sweep_checks_devices_on_its_workers(tmp_path: Path) -> None:
    """On an existing cluster the device of each run is checked on the workers before any run is submitted
    (the driver's own devices do not matter there); nothing is written to the store."""
    distributed = pytest.importorskip("distributed")
    configs = [{"model": {"kind": "shallow", "d": 3, "m": 8}, "data": {"n": 4, "n_test": 0}, "train": {"steps": 2}}]
    configs.append({**configs[0], "train": {"steps": 2, "device": "cuda:99"}})
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        with pytest.raises(E.InvalidArgument, match=r"configs\[1\]: on worker .*train.device='cuda:99'"):
            sweep.run_sweep(configs, tmp_path / "s", scheduler=client, progress=False)
    assert not list((tmp_path / "s" / "runs").glob("*/metrics.json"))


# ------------------------------------------------------------------------------------------------ divergence
def _autograd_max_step(model: wf.WideNet, X: torch.Tensor) -> float:
    """2N/λ_max of K = Σ_θ (lr factor of θ)·J_θ J_θᵀ, with the Jacobians J_θ = ∂f/∂θ taken by autograd
    through f = s_o σ(s_h Φ Wᵀ + b) c (eqs. (2)-(3)), independently of wideflow's formula."""
    Phi = model.embed(X)
    b0 = torch.zeros(model.m, dtype=model.dtype) if model.b is None else model.b

    def f(W: torch.Tensor, c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model.s_o * model.activation(model.s_h * Phi @ W.T + b) @ c

    JW, Jc, Jb = torch.func.jacrev(f, argnums=(0, 1, 2))(model.W, model.c, b0)
    K = model.scaling.lr_factor(model.m, model.D) * JW.flatten(1) @ JW.flatten(1).T
    neuron = model.scaling.neuron_lr_factor(model.m)
    if model.train_c:
        K = K + neuron * Jc @ Jc.T
    if model.bias:
        K = K + neuron * Jb @ Jb.T
    return 2 * X.shape[0] / float(torch.linalg.eigvalsh(K)[-1])


@pytest.mark.parametrize("scaling", ["ours", "ntk", "mf"])
@pytest.mark.parametrize("flags", [{}, {"train_c": True}, {"bias": True}, {"train_c": True, "bias": True}])
def test_max_stable_step_size_is_2N_over_lambda_max(scaling: str, flags: dict) -> None:
    """wideflow's δ_max (tangent kernel formula with the c and b terms) equals the autograd one."""
    X, _ = wf.data.random_labels(7, 3, seed=2)
    model = wf.P3L(3, 10, 6, scaling=scaling, activation="tanh", seed=3, **flags)
    if model.b is not None:
        model.b = 0.3 * torch.randn(model.m, dtype=model.dtype, generator=torch.Generator().manual_seed(0))
    # float64 eigenvalues of a 7x7 matrix assembled in two different orders: agreement to ~1e-15 relative;
    # 1e-10 leaves room for the conditioning of λ_max
    assert max_stable_step_size(model, X) == pytest.approx(_autograd_max_step(model, X), rel=1e-10)
    assert max_stable_step_size(model, X, "sum") == pytest.approx(max_stable_step_size(model, X) / 7, rel=1e-12)


DIVERGENCE_MODELS = {
    # σ linear: f is linear in W, so e_{k+1} = (I − (δ/N) K) e_k exactly and δ_max is the exact threshold
    "linear": lambda: wf.Shallow(5, 64, activation="linear"),
    "relu_ntk": lambda: wf.Shallow(5, 512, scaling="ntk"),
    "relu_ours": lambda: wf.Shallow(5, 512),
}


@pytest.mark.parametrize("name", list(DIVERGENCE_MODELS))
def test_converges_below_max_step_and_diverges_above_twice_it(name: str) -> None:
    """GD at 0.9·δ_max converges; at 2.5·δ_max it raises TrainingDiverged within a few dozen steps.

    Between 2 and about 2.5 times δ_max ReLU nets may "catapult" (the loss spikes, the kernel shrinks, then
    GD converges; Lewkowycz et al. 2020): measured over seeds 0-1 and m ∈ {512, 4096}, 2.05·δ_max diverged
    in 1 of 8 runs, 2.2·δ_max in 5 of 8, and 2.5·δ_max in 8 of 8, at steps 12-16. So 2.5 is tested.
    """
    X, y = wf.data.random_labels(16, 5, seed=1)
    model = DIVERGENCE_MODELS[name]()
    dmax = max_stable_step_size(model, X)
    result = wf.train(model, X, y, steps=300, step_size=0.9 * dmax, log_every=20, progress=False)
    loss = result.history["train_loss"].to_numpy()
    if name == "linear":
        # every mode of the residual shrinks by |1 − δλ_i/N| ≤ 0.8 per step: the loss never increases
        assert np.all(np.diff(loss) <= 1e-15)
    else:
        # measured final/initial loss after 300 steps: 3e-2 (ours), 3e-4 (ntk); 0.1 is the bound
        assert loss[-1] < 0.1 * loss[0]
    with pytest.raises(E.TrainingDiverged) as info:
        wf.train(model, X, y, steps=300, step_size=2.5 * dmax, log_every=20, progress=False)
    err = info.value
    assert err.step <= 60 and err.max_stable_step_size == pytest.approx(dmax, rel=1e-12)
    assert err.last_finite_state is not None and err.last_finite_state.step < err.step
    assert math.isfinite(err.last_finite_state.train_loss)
    assert list(err.history["step"]) == list(range(0, err.last_finite_state.step + 1, 20))
    if name == "linear":
        with pytest.raises(E.TrainingDiverged):  # the linear model's threshold is exact: 1.1·δ_max diverges too
            wf.train(model, X, y, steps=300, step_size=1.1 * dmax, log_every=20, progress=False)


def test_blow_up_between_logging_steps_is_caught() -> None:
    """A loss that explodes and comes back (every ReLU dies after a huge step) between two history rows
    is still caught, at the step it happened: the loss of every step is checked, not only logged ones."""
    X, y = wf.data.random_labels(16, 5, seed=1)
    model = wf.Shallow(5, 512)
    dmax = max_stable_step_size(model, X)
    with pytest.raises(E.TrainingDiverged) as every_step:
        wf.train(model, X, y, steps=200, step_size=3 * dmax, log_every=1, progress=False)
    with pytest.raises(E.TrainingDiverged) as sparse:
        wf.train(model, X, y, steps=200, step_size=3 * dmax, log_every=200, progress=False)
    with pytest.raises(E.TrainingDiverged) as beyond:  # log_every > steps: rows at 0 and 200 only
        wf.train(model, X, y, steps=200, step_size=3 * dmax, log_every=10_000, progress=False)
    assert sparse.value.step == every_step.value.step == beyond.value.step < 200
    assert "detected at step 200" in str(sparse.value)
    assert sparse.value.last_finite_state.step == 0 and len(sparse.value.history) == 1


def test_initial_loss_near_zero_is_not_divergence() -> None:
    """NTK's symmetrized start has f_0 = 0; with y tiny, L_0 ~ 1e-30, yet ordinary training is not flagged."""
    X, y = wf.data.random_labels(8, 3, seed=0)
    model = wf.Shallow(3, 64, scaling="ntk")
    wf.train(model, X, 1e-15 * y, steps=50, log_every=10, progress=False)


# ------------------------------------------------------------------------------------------------ the doc
HEADER = """\
# Errors: each bad input and what it gets

Every error wideflow raises on purpose is a `wideflow.errors.WideflowError`, and each concrete class is also a
built-in exception, so `except ValueError` keeps working:

| class | also a | raised for |
|---|---|---|
| `InvalidArgument` | `ValueError` | a value outside what the function accepts (m ≤ 0, step_size ≤ 0, odd m under NTK, a device that does not exist, ...) |
| `InvalidShape` | `ValueError` (via `InvalidArgument`) | an array with the wrong number of dimensions or sizes: n differing between X and y, d not matching the model, empty data |
| `NonFiniteInput` | `ValueError` (via `InvalidArgument`) | NaN or Inf in an input array |
| `UnknownName` | `ValueError` (via `InvalidArgument`) | an unknown activation, scaling, method, reduction or embedding kind; lists the valid names and suggests the closest |
| `KernelEngineUnavailable` | `ValueError` (via `InvalidArgument`) | `method="kernel"` with an option only the weight-space engine runs |
| `InvalidType` | `TypeError` | the wrong type or dtype (bool, complex, strings, objects; a float where an integer is needed) |
| `FileMissing` | `FileNotFoundError` | a file to read does not exist |
| `CheckpointError` | `RuntimeError` | a model or checkpoint file that cannot be read or belongs to another run |
| `OutputError` | `RuntimeError` | a result file that cannot be written |
| `MissingDependency` | `ImportError` | an optional package a feature needs is not installed (TensorBoard event files: `pip install "wideflow[tensorboard]"`) |
| `TrainingDiverged` | `RuntimeError` | the loss became non-finite or exploded; carries `step`, `last_finite_state`, `max_stable_step_size` (2N/λ_max(K_0)) and `history` |
| `TrainingStalled` | `RuntimeError` (via `TrainingDiverged`) | a net left with no active neuron on the training set: the gradient is exactly 0 while the loss is not; the same attributes |
| `DistributedMismatch` (`wideflow.distributed`) | `RuntimeError` | the processes of a sharded run were given different models, data or settings (found by a fingerprint all-gather at the start, on every rank, naming what differs) |
| `DistributedFailure` (`wideflow.distributed`) | `RuntimeError` | another process of a sharded run died or cannot be reached (the all-reduce failed) |

The command line prints the same error on one line, `wideflow: error: CLASS: message`, and exits with status 2
(as argparse does for malformed options; also for operating-system errors such as an unwritable `--out`);
`wideflow --debug ...` shows the traceback instead.

## Divergence

`wf.train` records the loss of every GD step on the device (no synchronization per step) and checks it at
each logging step: when the loss of any step is NaN/Inf or exceeds `divergence_factor` (default 1e8) times
max(L_0, loss of the zero predictor), it raises `TrainingDiverged` with the first such `step`, the
`last_finite_state` (the `TrainState` of the last logged step), the `history` so far and
`max_stable_step_size` = 2N/λ_max(K_0), where K_0 is the tangent kernel at initialization of every trained
parameter (W, and c and b when trained), as neural-tangents' `max_learning_rate` computes it. A blow-up
between two logging steps is caught even when the loss comes back down.
`wf.max_stable_step_size(model, X, reduction)` gives the same number before training. GD converges below it;
between 1 and about 2.5 times it ReLU nets may "catapult" (the loss rises, the kernel shrinks, GD converges); above
that they mostly diverge (`tests/test_errors.py` checks 0.9x and 2.5x).

A **spike beyond the catapult range** is divergence too, even when the loss comes back down: at a step size above
6·δ_max (`CATAPULT_RANGE` in `wideflow.training.loop`; the largest catapult step size Lewkowycz et al. (2020) report
for ReLU nets, about 12/λ_0 in their units, is 6·δ_max here), a loss above 1e3 (`SPIKE_FACTOR`) times max(L_0, loss of
the zero predictor) at any step raises `TrainingDiverged` at that step. δ_max is computed only when a loss crosses that
line. Measured (both ends are checked in `tests/test_dead_runs.py`): catapults at 1.5-2.2·δ_max (ReLU, m = 512 and 4096, ours and NTK, two
seeds) rose up to 9e7-fold and converged, so the factor 1e8 alone applies there; beyond 6·δ_max the runs that the
factor did not stop rose at most 39-fold (P3L, m = 256, 10·δ_max; tanh nets up to 1e4·δ_max: 5-fold) and trained
on; the case that motivated the rule, P3L(5, 10) on 12 points at step_size 1e6 (3e4·δ_max), rose 3.5e7-fold at
step 1, killed every neuron and fell back to the loss of f ≡ 0.

A **dead net** stops with `TrainingStalled` (a `TrainingDiverged`, so handlers of failed runs see it): a run that
had active neurons and, at a logging step, has none left on the training set (σ′(h_i(x_a)) = 0 for every neuron i
and point a, and σ(h_i(x_a)) = 0 too when c is trained) while its loss is not zero has a gradient that is exactly zero
for ever, whatever is trained (W, b, c). The error names the logging step, the loss and the stable step size;
`history` ends at the last logged step. The check is one comparison over H at logging steps, summed over the
blocks of a sharded run, in every engine and in batched sweeps (only the dead run of a batch stops). A net that
starts with no active neuron (MF at D = ∞ with ReLU) is warned of when it is built instead. Sweeps record either
error as a failed run.

## Checkpoints and saved models

```python
result = wf.train(model, X, y, steps=100_000, checkpoint="run.ckpt", resume="run.ckpt")
```

writes `run.ckpt` every `checkpoint_every` steps (a multiple of `log_every`; about ten per run by default)
and at the end, atomically (a temporary file in the same folder, fsync, rename: a run killed at any instant
leaves the previous checkpoint intact). It holds the engine state, the random-generator states, the history
and the run's settings with a hash of the data. Rerunning the same call after an interruption continues from
the checkpoint (a missing file starts from step 0) and ends bit-identical to an uninterrupted run, history and
final W, on the same machine with the same number of torch threads (a BLAS sum may be split differently
otherwise); `tests/test_resume_and_saved_models.py` SIGKILLs training processes, once mid-write, to show it. A checkpoint
written by another run (other data, model or settings) is refused with a `CheckpointError` that names what
differs. `model.save(path)` stores the configuration (class, embedding spec and seed, m, activation and its
parameters, scaling, ĉ, dtype, flags), the embedding's random weights and c, W, b; `wf.load(path,
device=...)` rebuilds it, without re-drawing anything, with bit-identical predictions in any process. Both
files are read with `torch.load(weights_only=True)`.

## Sweeps: one store, several drivers, disks that cannot be written

A sweep's results store keeps every run in its own folder, written atomically (a run is finished once its
`metrics.json` exists), so a driver killed at any instant loses only the runs in flight, and the same sweep
started again computes only the rest. Two or more `wideflow sweep` (or `run_sweep`) drivers may share one
store at the same time: a driver computes a run only while it holds the run's lock (`STORE/locks/<run_id>.lock`, an
OS file lock taken just before the run's task is submitted and released once its result is written; the OS
releases it if the driver dies). A driver that finds a run locked leaves it to the holder and, once the lock is free,
reads what the holder wrote (a finished run, or a failure recorded since its own sweep began); it computes the run
itself only if the holder died first. So every run is computed once and written by one driver, and each driver
returns with the whole table; the command prints how many runs it computed (`tests/test_shared_store.py` starts
two `wideflow sweep` processes on one store: 16 runs, 8 computed by each, measured). Batched runs are claimed
together, task by task. File locks on a network file system depend on its server; there the guarantee is the
store's own: a run computed twice is written twice, whole, never mixed. A store that cannot be written (a
read-only disk, a full one) is an `OutputError` naming the store: before any run starts when the locks cannot be
made, otherwise at the first write that fails, with every finished run kept and the count of them in the message.
A finished sweep reads from a read-only store without writing anything.

## Sharded runs and D = ∞

A sharded run (`wf.train(..., distributed=True)` under torchrun) compares a fingerprint of the model, the data
and the settings across processes before the first step and raises `DistributedMismatch` on every rank when they
differ. A process that dies (killed, out of memory) makes the all-reduce of the outputs fail on the others: they
stop with `DistributedFailure` at once when its connections close, and within the collective timeout
(`wideflow.distributed.TIMEOUT`, 60 s) otherwise. The loss is the same number on every rank, so a divergence
raises `TrainingDiverged` on all ranks at the same step. Checkpoints are one file per rank
(`PATH.rank{{r}}-of-{{P}}`, the previous one kept as `.prev`); `resume=PATH` continues from the latest step that every
rank has, with the same number of processes (checkpoints of another number are refused with a `CheckpointError`:
each holds one block of neurons). `tests/test_distributed.py` kills a rank mid-run, resumes bit for bit, diverges
and mismatches on purpose. wideflow ends the process group it started when the process exits (a process that
exits with a live gloo group aborts with "terminate called without an active exception").

A D = ∞ model reveals its Gaussian features lazily and conditions new inputs on the revealed ones through
eigenvalue decompositions in float64, with eigenvalues below 1e-12 times the largest taken as 0 (no jitter):
repeated, near-duplicate (1e-12 apart) and zero-norm inputs and a numerically singular Ḡ give finite values and a
PSD covariance, and an input met again gets exactly its values (`tests/test_infinite.py`).

## The bad inputs tried

Generated by `python tests/test_errors.py` from the list `CASES` that `tests/test_errors.py` runs, so this table
and the tests cannot drift. The names in the code are: `X, y = wf.data.random_labels(8, 3)`,
`model = wf.Shallow(3, 10)`, `X_nan`/`X_inf`/`y_nan`/`y_inf` (copies with one NaN or Inf entry),
`H = model.features(X).T`, `c = model.c`, `G = wf.gram(model, X)`, the modules `sweep`, `theory`, `flow`,
`ntk`, `diagnostics` of wideflow and `wideflow.sklearn.WideNetRegressor`; the files `garbage.pt` (not a torch
file), `saved_model.pt` (a saved model), `other_run.ckpt` (a checkpoint of another run), `garbage.npz`,
`words.csv` (a text cell), `holes.csv` (an empty cell), `noy.csv` (columns a, b: no `y`), `onerow.csv` (one
data row), `train3.csv` (inputs x1, x2, x3 and y, three rows), `test1.csv` (x1 and y), `bad.toml` (not TOML),
`grid_m0.toml` (a grid spec
with m = 0), `grid_cuda.toml` (a grid spec whose runs ask for `cuda:99`), `preset_m0.toml` and
`preset_typo.toml` (reproduce presets with m = 0 and a misspelt key), `sharded.ckpt.rank0-of-2` and
`sharded.ckpt.rank1-of-2` (the checkpoint files of a 2-process run) and the folders `a_folder` and
`a_folder.csv` exist; `Shard` is `wideflow.distributed.Shard`. `wideflow train` runs with `{cli}` in front of its own options.
Messages marked † depend on the machine (they were rendered on one without CUDA). "clear: no" rows are
known gaps of other modules; the test checks that they are still open, so this table is updated when they close.
The scikit-learn estimator follows scikit-learn's convention (a `ValueError` from its input checks).
Accepted on purpose: `depth=0` in `wf.kernels.limit_gram` and `ntk.ntk_kernel` is the shallow net (no fixed
random layer, G^(0) = XXᵀ/d); only negative depths are errors.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _nonportable_row(line: str) -> bool:
    return line.endswith("† |")


def render(outcomes: list[Outcome]) -> str:
    """The Markdown of docs/errors.md for the given outcomes of CASES."""
    out = [HEADER.format(cli=" ".join(CLI_BASE))]
    entry = None
    for i, (case, outcome) in enumerate(zip(CASES, outcomes, strict=True), 1):
        if case.entry != entry:
            entry = case.entry
            out += ["", f"### {entry}", "", "| # | code | error | clear | message |", "|---|---|---|---|---|"]
        mark = "" if case.portable else " †"
        verdict = "yes" if outcome.clear else f"no: gap in {case.gap}" if case.gap else "no"
        error = f"`{outcome.error}`" if outcome.error else "(none)"
        out.append(f"| {i} | `{_cell(case.code)}` | {error} | {verdict} | {_cell(outcome.message)}{mark} |")
    clear = sum(o.clear for o in outcomes)
    gaps = sorted({c.gap.split(" (")[0] for c, o in zip(CASES, outcomes, strict=True) if not o.clear and c.gap})
    others = f" The others are open gaps in {', '.join(gaps)}." if gaps else ""
    out += ["", f"**{clear} of {len(CASES)} bad inputs get a clear error** (the expected class, naming the argument, "
            f"the value and what was expected).{others}", ""]
    return "\n".join(out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    with _workspace() as namespace:
        results = [run_case(case, namespace) for case in CASES]
    for case, result in zip(CASES, results, strict=True):
        if not result.clear:
            print(f"NOT CLEAR: {case.code}: {result.problem}: {result.message!r}", file=sys.stderr)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(render(results), encoding="utf-8")
    print(f"wrote {DOC}: {sum(r.clear for r in results)} of {len(CASES)} clear")
