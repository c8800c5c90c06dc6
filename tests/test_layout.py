"""The package's layout keeps the promises of docs/architecture.md: one vocabulary, small modules, private names
kept private, documentation that ships with the repository."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import wideflow as wf

ROOT = Path(wf.__file__).resolve().parent
REPO = ROOT.parents[1]


def _modules() -> list[str]:
    names = (info.name for info in pkgutil.walk_packages([str(ROOT)], prefix="wideflow."))
    return sorted(n for n in names if not n.endswith("__main__"))  # importing __main__ runs the command line


def _public_callables():
    for name in _modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if attr.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if inspect.isclass(value):
                yield f"{name}.{attr}", value.__init__
                for meth, fn in vars(value).items():
                    if not meth.startswith("_") and inspect.isfunction(fn):
                        yield f"{name}.{attr}.{meth}", fn
            elif inspect.isfunction(value):
                yield f"{name}.{attr}", value


def test_every_reduction_defaults_to_mean() -> None:
    """One default for the loss reduction everywhere (docs/theory.md §2), so a run's rate and its bound are in
    the same units without conversion."""
    found = {}
    for qualname, fn in _public_callables():
        parameter = inspect.signature(fn).parameters.get("reduction")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            found[qualname] = parameter.default
    assert len(found) >= 8, found  # train, prepare, pl_bound, lemma1, check, flow, ntk_predictor, ...
    assert {k: v for k, v in found.items() if v != "mean"} == {}


@pytest.mark.parametrize("call", [
    lambda: wf.train("model", [[0.0]], [0.0]),
    lambda: wf.gram("model", [[0.0]]),
    lambda: wf.max_stable_step_size("model", [[0.0]]),
    lambda: wf.pl_bound("model", [[0.0]]),
    lambda: wf.check("model", [[0.0]], [0.0]),
    lambda: wf.gradient_flow("model", [[0.0]], [0.0], t=1.0),
    lambda: wf.ntk_predictor("model", [[0.0]], [0.0]),
    lambda: wf.to_module("model"),
    lambda: wf.engines.prepare("model", [[0.0]], [0.0]),
])
def test_one_error_for_what_is_not_a_model(call) -> None:
    with pytest.raises(wf.errors.InvalidType, match="must be a wideflow model"):
        call()


def test_no_module_is_longer_than_500_lines() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert {k: v for k, v in sizes.items() if v > 500} == {}


def test_private_names_stay_in_their_module() -> None:
    """No ``from .x import _name``, and no ``obj._name`` of a private name that the module does not define itself
    (``self._name`` inside a class hierarchy is the class's own)."""
    offences = []
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        own = {t.attr for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
               for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
               if isinstance(t, ast.Attribute)}
        own |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
        own |= {node.target.id for node in ast.walk(tree)
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}  # declared in a class body
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                offences += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in own
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "argparse"))):
                offences.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    assert offences == []


def test_documentation_ships_with_the_repository() -> None:
    """Citations point to the paper or to docs/ of this repository; every docs/*.md a docstring cites exists."""
    cited = set()
    for path in [*ROOT.rglob("*.py"), *REPO.joinpath("docs").glob("*.md"), REPO / "README.md"]:
        text = path.read_text()
        assert "spec §" not in text and "paper-spec" not in text, path
        cited |= set(re.findall(r"docs/([a-z_\-]+\.md)", text))
    assert cited and all((REPO / "docs" / name).exists() for name in cited), cited
    theory = (REPO / "docs" / "theory.md").read_text()
    for section in range(1, 11):
        assert f"## §{section} " in theory
