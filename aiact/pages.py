"""HTML pages from Jinja2 templates (`aiact/templates/`), autoescaped, with one inline style
sheet: every page the suite writes is a single self-contained file (no CDN, no script)."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

if TYPE_CHECKING:
    from jinja2 import Environment


@cache
def _environment() -> Environment:
    """The template environment, made on first use: a stage that writes no page (a verdict
    task) does not pay for importing Jinja2."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("aiact", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["as_json"] = _as_json
    environment.filters["number"] = _number
    return environment


def _as_json(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


def _number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def trusted(markup: str) -> Markup:
    """Mark markup the suite made itself (a figure from aiact.plots) as safe to embed."""
    return Markup(markup)


def render(template: str, **context: Any) -> str:
    """Render `aiact/templates/<template>` (which extends base.html.j2) to a page."""
    return _environment().get_template(template).render(**context)
