"""Pages: one layout around one HTML fragment per page, filled with ``string.Template``.

Fragments are static HTML the coordinator ships; the only values substituted are the page's
title, its navigation state and the sign-in options, all escaped here. Everything live is fetched
by the page's own module from the JSON API.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

PAGES_DIR = Path(__file__).parent / "pages"
STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Page:
    path: str
    fragment: str  # file name in pages/, without .html
    title: str
    nav: str | None  # the navigation label, None for pages not in the menu
    signed_in: bool  # only for a signed-in visitor (others go to sign-in first)


PAGES = (
    Page("/", "overview", "Koretex — inference on a network of Macs", None, False),
    Page("/models", "models", "Models", "Models", False),
    Page("/leaderboard", "leaderboard", "Leaderboard", "Leaderboard", False),
    Page("/points", "points", "How points work", "Points", False),
    Page("/dashboard", "dashboard", "Dashboard", "Dashboard", True),
    Page("/credits", "credits", "Credits", "Credits", True),
    Page("/run-a-node", "run-a-node", "Run a node", "Run a node", True),
    Page("/signin", "signin", "Sign in", None, False),
)


@cache
def _template(name: str) -> Template:
    return Template((PAGES_DIR / f"{name}.html").read_text(encoding="utf-8"))


def _navigation(current: str) -> str:
    links = []
    for page in PAGES:
        if page.nav is None:
            continue
        here = ' aria-current="page"' if page.path == current else ""
        links.append(f'<li><a href="{page.path}"{here}>{html.escape(page.nav)}</a></li>')
    return "\n".join(links)


def render(page: Page, *, signed_in: bool, site: dict[str, object]) -> str:
    """The full HTML document for ``page``."""
    return _template("layout").substitute(
        title=html.escape(page.title),
        navigation=_navigation(page.path),
        main=_template(page.fragment).template,
        script=page.fragment,
        signed_in="true" if signed_in else "false",
        site=html.escape(json.dumps(site), quote=True),
    )


def render_error(status: int, headline: str, detail: str, *, signed_in: bool) -> str:
    """An error page in the site's layout (never a stack trace)."""
    main = (
        f'<section class="hero"><p class="eyebrow">Error {status}</p>'
        f"<h1>{html.escape(headline)}</h1><p>{html.escape(detail)}</p>"
        '<p><a class="button" href="/">Back to the overview</a></p></section>'
    )
    return _template("layout").substitute(
        title=html.escape(headline), navigation=_navigation(""), main=main, script="common",
        signed_in="true" if signed_in else "false", site=html.escape("{}"),
    )
