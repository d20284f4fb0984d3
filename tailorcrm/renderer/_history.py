"""Page models of a record's field history and of the metadata revisions.

The builders take history entries in their API form (``at``, ``user``, ``via``,
``kind``, ``field``, ``old``, ``new``) and format the values the way the record
page does; they run no query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..metadata import EntityDef
from ._format import DEFAULT_LOCALE, EMPTY, Shown, format_value
from ._pages import SYSTEM_LABELS, SYSTEM_SPECS, Links, Names

VIA_LABELS = {
    "api": "API",
    "web": "Web page",
    "import": "Import",
    "automation": "Automation",
    "rule": "Formula or roll-up",
    "system": "System",
}
KIND_LABELS = {"create": "Created", "update": "Changed", "delete": "Deleted"}


@dataclass(frozen=True)
class HistoryRow:
    at: Shown
    user: str
    via: str
    kind: str
    kind_label: str
    #: The field's label; empty for a creation or deletion.
    field: str
    old: Shown
    new: Shown


@dataclass(frozen=True)
class HistoryTable:
    rows: list[HistoryRow]
    #: The address of the older entries (or of the whole history), if any.
    more_href: str | None = None


def _spec(entity: EntityDef, name: str | None) -> Mapping[str, Any] | None:
    if name is None:
        return None
    return entity.fields.get(name) or entity.hidden_fields.get(name)


def _shown(
    spec: Mapping[str, Any] | None,
    value: Any,
    names: Names,
    links: Links,
    locale: str,
) -> Shown:
    if value is None:
        return EMPTY
    if spec is None:
        return Shown(f"#{value}" if isinstance(value, int) else str(value))
    if spec["type"] != "lookup":
        return format_value(spec, value, locale=locale)
    target = spec["target"]
    lookup_names = names.get(target, {})
    # Only a record the caller may read (one that has a name) gets a link.
    readable = isinstance(value, int) and value in lookup_names
    return format_value(
        spec,
        value,
        locale=locale,
        lookup_names=lookup_names,
        record_href=links.record(target, value) if readable else None,
    )


def history_rows(
    entity: EntityDef,
    entries: Sequence[Mapping[str, Any]],
    names: Names,
    links: Links,
    *,
    locale: str = DEFAULT_LOCALE,
) -> list[HistoryRow]:
    """The rows of a record's history table, in the order of ``entries``.

    :param names: display names of the records that lookup values point to.
    """
    rows = []
    for entry in entries:
        name = entry["field"]
        spec = _spec(entity, name)
        label = ""
        if name is not None:
            label = str(spec["label"]) if spec else SYSTEM_LABELS.get(name, name)
        old, new = entry["old"], entry["new"]
        if entry["kind"] != "update":
            # A deletion keeps every value the record had; the table shows that
            # it happened, the API shows the values.
            old = new = None
        rows.append(
            HistoryRow(
                at=format_value(SYSTEM_SPECS["updated_at"], entry["at"], locale=locale),
                user=str(entry["user"]["username"]),
                via=VIA_LABELS.get(entry["via"], entry["via"]),
                kind=entry["kind"],
                kind_label=KIND_LABELS.get(entry["kind"], entry["kind"]),
                field=label,
                old=_shown(spec, old, names, links, locale),
                new=_shown(spec, new, names, links, locale),
            )
        )
    return rows


def looked_up(
    entity: EntityDef, entries: Sequence[Mapping[str, Any]]
) -> dict[str, set[int]]:
    """The ids that the lookup values of ``entries`` point to, by target entity."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        spec = _spec(entity, entry["field"])
        if spec is None or spec["type"] != "lookup" or entry["kind"] != "update":
            continue
        for value in (entry["old"], entry["new"]):
            if isinstance(value, int) and not isinstance(value, bool):
                wanted.setdefault(spec["target"], set()).add(value)
    return wanted
