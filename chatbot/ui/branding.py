"""Afina's page: Chainlit's HTML without requests to outside hosts (KaTeX's CDN stylesheet)."""

from __future__ import annotations

import re
from collections.abc import Callable

# the stylesheet link Chainlit's index.html carries even with ``latex = false``
CDN_LINK = re.compile(r"<link\b[^>]*https://cdn\.jsdelivr\.net/[^>]*>", re.S)


def offline_html(template: Callable[[str], str]) -> Callable[[str], str]:
    """``template`` (Chainlit's ``get_html_template``) with links to CDN stylesheets removed."""

    def html(root_path: str) -> str:
        return CDN_LINK.sub("", template(root_path))

    html.__doc__ = offline_html.__doc__
    return html


def install() -> None:
    """Serve the page without CDN links (formulas are off: ``latex = false``)."""
    import chainlit.server

    if not getattr(chainlit.server.get_html_template, "afina", False):
        patched = offline_html(chainlit.server.get_html_template)
        patched.afina = True  # type: ignore[attr-defined]
        chainlit.server.get_html_template = patched
