"""``wideflow train``: train one model on one of the paper's data sets or on a user's file (``--data FILE``,
:mod:`.data_args`), print the history, and with ``--out DIR`` write ``DIR/history.csv``, the trained model ``DIR/model.pt`` (:func:`wideflow.load` reads it) and the loss
figure ``DIR/loss.png``. ``--checkpoint P`` writes a training checkpoint as it goes and ``--resume P``
continues from it: a run killed and started again with the same arguments and ``--resume P`` writes the
same history as an uninterrupted one (:func:`wideflow.train`). ``--tensorboard DIR`` writes the history to
TensorBoard event files as the run goes (:class:`wideflow.tensorboard.TensorBoardLogger`).

:func:`add_model_arguments` and :func:`model_from_args` are shared with ``wideflow check``: the model and data kinds, their help texts and defaults are those of
:mod:`wideflow.registry`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..io import atomic_write
from ..losses import LOSSES
from ..model import WideNet
from ..registry import DEFAULT_DEPTH, MODEL_KINDS, build_model
from ..training import TrainResult, train
from .data_args import DEFAULT_D, add_data_arguments, data_file, data_from_args, describe_data


def add_model_arguments(p: argparse.ArgumentParser, *, n: int, n_test: int | None = None) -> None:
    """--model, the data options (:func:`.data_args.add_data_arguments`), -d, -m, -D, --depth, --activation,
    --scaling, --c-hat, --seed."""
    p.add_argument("--model", choices=list(MODEL_KINDS), default="p3l",
                   help="; ".join(f"{name}: {kind.help}" for name, kind in MODEL_KINDS.items()))
    add_data_arguments(p, n=n, n_test=n_test)
    p.add_argument("-d", type=int, default=None,
                   help=f"input dimension (a generator's: default {DEFAULT_D}; a file's: its number of input columns, "
                        "checked when given)")
    p.add_argument("-m", type=int, default=1024, help="width of the trained layer")
    p.add_argument("-D", type=int, default=None, help="embedding dimension of p3l and deep (default m)")
    p.add_argument("--depth", type=int, default=None, help=f"L for --model deep (default {DEFAULT_DEPTH})")
    p.add_argument("--activation", default="relu")
    p.add_argument("--scaling", default="ours",
                   help="ours, ntk, mf, mup, sp, 'richness(R)' for R in [0, 1/2] (optionally 'richness(R, "
                        "symmetrize=True)'), or Yang & Hu's exponents as JSON, '{\"a\": [0, 0.5, 1], \"b\": [0, 0, 0], "
                        "\"c\": -1}' (docs/theory.md §7)")
    p.add_argument("--c-hat", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model and of the data (a generator's draw, a file's --test-fraction split)")


def model_from_args(args: argparse.Namespace, d: int | None = None, **settings: Any) -> WideNet:
    """The model named by the arguments of :func:`add_model_arguments` for inputs of dimension ``d`` (default
    ``-d``, or :data:`~.data_args.DEFAULT_D`; ``settings``: dtype, device, ...)."""
    d = d if d is not None else DEFAULT_D if args.d is None else args.d
    return build_model(args.model, d, args.m, D=args.D, depth=args.depth, activation=args.activation,
                       scaling=args.scaling, c_hat=args.c_hat, seed=args.seed, **settings)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model by full-batch GD and print its history")
    add_model_arguments(p, n=200, n_test=500)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--step-size", type=float, default=1.0)
    p.add_argument("--reduction", default="mean", help="mean (N = n, the default) or sum (N = 1)")
    p.add_argument("--method", default="auto")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--loss", default="squared",
                   help=f"one of {', '.join(LOSSES)}: squared (eq. (6), the default) or logistic (binary, labels "
                        "±1, as axis_xor's; the history then has train_accuracy and test_accuracy)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="write a training checkpoint to this file as the run goes (and at the end)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints, a multiple of --log-every (default: about ten per run)")
    p.add_argument("--resume", type=Path, default=None,
                   help="continue from this checkpoint, written by the same command (a missing file starts afresh)")
    p.add_argument("--out", type=Path, default=None,
                   help="a folder for history.csv, the trained model model.pt and the loss figure loss.png")
    p.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                   help="write the history (losses, test error, rate) to TensorBoard event files in DIR as the run "
                        "goes; view with 'tensorboard --logdir DIR' (pip install 'wideflow[tensorboard]')")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise OutputError(f"--out {str(args.out)!r} is a file; expected a folder (made if missing) for "
                          "history.csv, model.pt and loss.png.")
    data = data_from_args(args)
    X, y, Xt, yt = data
    model = model_from_args(args, X.shape[1], dtype=args.dtype, device=args.device)
    checkpoint = args.checkpoint if args.checkpoint is not None or args.resume is None else args.resume
    callbacks = []
    if args.tensorboard is not None:
        from ..tensorboard import TensorBoardLogger  # the optional tensorboard package, only when asked for

        callbacks.append(TensorBoardLogger(args.tensorboard))
    try:
        result = train(model, X, y, steps=args.steps, step_size=args.step_size, X_test=Xt, y_test=yt,
                       reduction=args.reduction, method=args.method, log_every=args.log_every, loss=args.loss,
                       checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume,
                       callbacks=callbacks)
    finally:
        for cb in callbacks:
            cb.close()
    if data_file(args.data) is not None:
        print(describe_data(args, data))
    print(result.history.to_string(index=False))
    print(f"method={result.method} wall_time={result.wall_time:.2f}s")
    if args.out is not None:
        write_outputs(result, args.out)
    return 0


def write_outputs(result: TrainResult, folder: Path) -> None:
    """history.csv, model.pt and loss.png in ``folder``, each written atomically (:mod:`wideflow.io`)."""
    from ..plotting import plot_loss  # matplotlib, imported only when a figure is asked for

    atomic_write(folder / "history.csv", lambda fh: result.history.to_csv(fh, index=False))
    result.model.save(folder / "model.pt")
    fig = plot_loss(result.history)
    fig.axes[0].set_title(f"{result.loss} loss, method={result.method}", fontsize="small")
    atomic_write(folder / "loss.png", lambda fh: fig.savefig(fh, format="png", dpi=120))
