"""The Jinja2 environment: package templates, escaping always on, no HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

STATIC_DIR = Path(__file__).parent / "static"


class Renderer:
    """Turns page models into HTML.

    Every value is escaped: autoescaping is on for every template, whatever its
    name, so a label such as ``<script>`` or ``" onmouseover=`` is shown as text.
    """

    def __init__(self, *, globals: Mapping[str, Any] | None = None) -> None:
        self.environment = Environment(
            loader=PackageLoader("tailorcrm.renderer", "templates"),
            autoescape=True,
            extensions=["jinja2.ext.do"],
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.globals.update(globals or {})

    def render(self, template: str, /, **context: Any) -> str:
        return self.environment.get_template(template).render(**context)
