"""Field state in pages: what the server decided, and what the browser needs to
decide it again while a form is being filled in.

The server always decides (RULES.md): the web layer hands each form the state of
every field and section as the record service judges them, so that a page without
scripts is already right. ``static/field_state.js`` then evaluates the same
``visible_if`` and ``required_if`` conditions on every change, with the same
evaluator of the language (``static/rules.js``).

The browser gets the conditions as written, and a context: the record as the
conditions read it (system columns, computed fields, the related records behind
lookups) and ``$user``. Values the browser cannot type from JSON alone travel
tagged: ``{"$decimal": "12.50"}``, ``{"$date": "2024-05-31"}``,
``{"$datetime": "2024-05-31T14:30:00"}`` (UTC).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..metadata import SectionKey
from ..rules_engine import FieldState

#: The field state conditions the browser evaluates live. ``readonly_if`` is
#: judged on the record as stored, which does not change while the form is open,
#: so the server's answer stands.
LIVE_STATES = ("visible_if", "required_if")


@dataclass(frozen=True)
class FormRules:
    """What the rules make of one form, for the page model."""

    #: Each field's state as the server judged it.
    states: Mapping[str, FieldState] = field(default_factory=dict)
    #: Each field's state were its layout section shown (see ``fixed``).
    unsectioned: Mapping[str, FieldState] = field(default_factory=dict)
    #: Whether each section with a ``visible_if`` is shown, by its place.
    sections: Mapping[SectionKey, bool] = field(default_factory=dict)
    #: Each field's field_state conditions as written.
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Fields that a formula or roll-up computes: shown, never sent.
    computed: frozenset[str] = frozenset()
    #: What the browser evaluates conditions with besides the form's own fields
    #: (see :func:`browser_context`); ``None`` when nothing is evaluated live.
    context: Mapping[str, Any] | None = None
    #: Fields whose conditions read what the caller cannot see: the server's
    #: state stands, and the browser is given neither the conditions nor the
    #: values they read.
    fixed: frozenset[str] = frozenset()
    #: Sections whose ``visible_if`` reads what the caller cannot see: the
    #: server's state stands (their layout does not carry the condition).
    fixed_sections: frozenset[SectionKey] = frozenset()

    def state(self, name: str) -> FieldState:
        return self.states.get(name) or FieldState()

    def live_conditions(self, name: str) -> dict[str, Any]:
        """The conditions the browser evaluates for field ``name``."""
        written = self.conditions.get(name, {})
        live = {key: written[key] for key in LIVE_STATES if key in written}
        if name in self.fixed and live:
            # Which states the field has, not what decides them: what its own
            # conditions decide, which the browser combines with its section's
            # (a section's condition may be judged live).
            own = self.unsectioned.get(name) or self.state(name)
            fixed = {"visible": own.visible, "required": own.required}
            return {**dict.fromkeys(live), "state_fixed": fixed}
        return live


NO_FORM_RULES = FormRules()


def browser_context(
    record: Mapping[str, Any], user: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON that ``field_state.js`` evaluates conditions with.

    :param record: the record as conditions read it (a lookup as its related
        record), without ``$user``, ``$now`` or ``$prior``.
    :param user: what ``$user`` reads.
    """
    return {
        "record": {
            name: browser_value(value)
            for name, value in record.items()
            if not name.startswith("$")
        },
        "user": browser_value(user),
    }


def browser_value(value: Any) -> Any:
    """A value as JSON, tagged where JSON cannot tell its type."""
    if isinstance(value, Decimal):
        return {"$decimal": str(value)} if value.is_finite() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Mapping):
        return {str(key): browser_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [browser_value(item) for item in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)
