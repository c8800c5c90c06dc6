"""The documentation site (mkdocs.yml) builds with warnings as errors, and its API reference has every public
name: wideflow.__all__ and the public names of each submodule that has a page under docs/api/."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wideflow as wf

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]'); it is in the dev extra")
    pytest.importorskip("mkdocstrings_handlers.python",
                        reason="mkdocstrings-python is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} s")
    return out


def _anchors(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text()))


def _documented(name: str, obj: object, prefix: str, anchors: set[str]) -> bool:
    """``obj`` has an entry: under its public name, or under its defining path (a function that shares its
    name with its module, such as wideflow.training.train, is documented where it is defined)."""
    real = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    return f"{prefix}.{name}" in anchors or real in anchors


@pytest.mark.integration
def test_site_builds_strictly_with_every_public_name(site: Path) -> None:
    top = site / "api" / "wideflow" / "index.html"
    anchors, text = _anchors(top), top.read_text()
    missing = []
    for name in wf.__all__:
        obj = getattr(wf, name)
        if inspect.ismodule(obj):
            if not (API / f"{name}.md").exists():
                missing.append(f"a page for wideflow.{name}")
        elif callable(obj):
            if not _documented(name, obj, "wideflow", anchors):
                missing.append(f"wideflow.{name}")
        elif f"wideflow.{name}" not in text:
            missing.append(f"wideflow.{name}")
    pages = sorted(p.stem for p in API.glob("*.md") if p.stem not in ("index", "wideflow"))
    assert len(pages) >= 20
    for page in pages:
        module = importlib.import_module(f"wideflow.{page}")
        anchors = _anchors(site / "api" / page / "index.html")
        names = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
        missing += [f"wideflow.{page}.{n}" for n in names
                    if not _documented(n, getattr(module, n), f"wideflow.{page}", anchors)]
    assert missing == []
    for page in ("index", "theory", "scalings", "reproductions", "errors"):
        assert (site / ("index.html" if page == "index" else f"{page}/index.html")).exists()


@pytest.mark.integration
def test_no_sphinx_role_is_left_in_the_rendered_docstrings(site: Path) -> None:
    """docs_hooks.py turns :func:`x` into the name in code; a role left over reads as ':func:' on the page."""
    left = {p.relative_to(site).as_posix() for p in site.rglob("*.html")
            if re.search(r":(?:func|class|meth|mod|data|attr|exc):<code>", p.read_text())}
    assert left == set()


def test_the_readme_names_the_command_that_builds_and_serves_the_site() -> None:
    assert "mkdocs serve" in (REPO / "README.md").read_text() and (REPO / "mkdocs.yml").exists()
