"""MkDocs hook of the documentation site (mkdocs.yml): the docstrings' Sphinx roles as inline code.

wideflow's docstrings name other objects as Sphinx does, :func:`wideflow.train` or :class:`~wideflow.model.P3L`
(the ~ shows the last part only); mkdocstrings renders them verbatim as ":func:" followed by the name in code.
This hook turns each into the name in code, in the HTML of every page.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):<code>(~?)([^<]+)</code>")


def shown(match: re.Match[str]) -> str:
    """``~a.b.c`` shows ``c``; ``a.b.c`` shows itself (a leading dot of a relative name is dropped)."""
    tilde, name = match.group(1), match.group(2)
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name.lstrip('.')}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(shown, html)
