"""The ``wideflow`` command line: one module per sub-command, each with a ``register(subparsers)``.

Errors that wideflow raises on purpose (:class:`wideflow.errors.WideflowError`) and operating-system errors
(a file that cannot be read or written) are printed on one line, ``wideflow: error: CLASS: message``, and
exit with status 2, as argparse does for malformed options; ``--debug`` shows the traceback instead.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import WideflowError

# Sub-command modules of this package; each defines register(subparsers) and sets func=handler(args) -> int.
COMMANDS: tuple[str, ...] = ("train_cmd", "sweep_cmd", "results_cmd", "reproduce_cmd", "check_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wideflow",
        description="Wide networks trained by gradient flow with feature learning and linear convergence "
        "(Chen, Vanden-Eijnden & Bruna, ICLR 2022).",
    )
    parser.add_argument("--version", action="version", version=f"wideflow {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (WideflowError, OSError) as exc:
        # errors of the input or of the machine (a file that cannot be read or written), not bugs: one line
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"wideflow: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wideflow: interrupted", file=sys.stderr)
        return 130
