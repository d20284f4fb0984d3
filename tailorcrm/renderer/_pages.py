"""Page models: what a list, a record page or a form shows, built from metadata.

The builders take an entity, its layout, records in their API form and the display
names of the records their lookups point to; they return plain dataclasses that the
templates turn into HTML. They run no query and know nothing of requests: the caller
passes a :class:`Links` object that knows the addresses.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..metadata import EntityDef, SectionKey
from ._format import DEFAULT_LOCALE, Shown, format_value

SYSTEM_LABELS = {
    "id": "ID",
    "created_at": "Created",
    "updated_at": "Last modified",
    "owner_id": "Owner",
    "created_by": "Created by",
    "version": "Version",
}
SYSTEM_SPECS: dict[str, dict[str, Any]] = {
    "id": {"name": "id", "type": "integer", "label": "ID"},
    "created_at": {"name": "created_at", "type": "datetime", "label": "Created"},
    "updated_at": {"name": "updated_at", "type": "datetime", "label": "Last modified"},
}
# Types a list can sort on (the query builder refuses the others).
SORTABLE = frozenset(
    {
        "text",
        "email",
        "phone",
        "url",
        "integer",
        "decimal",
        "currency",
        "percent",
        "date",
        "datetime",
        "autonumber",
        "picklist",
        "boolean",
    }
)

#: Display names of looked-up records: ``{target entity: {id: name}}``.
Names = Mapping[str, Mapping[int, str]]


class Links(Protocol):
    """Addresses of pages; the web layer provides them."""

    def record(self, entity: str, record_id: int) -> str: ...

    def list(self, entity: str) -> str: ...

    def new(self, entity: str, prefill: Mapping[str, Any] | None = None) -> str: ...


def field_spec(entity: EntityDef, name: str) -> dict[str, Any] | None:
    return entity.fields.get(name) or SYSTEM_SPECS.get(name)


def title_of(entity: EntityDef, record: Mapping[str, Any]) -> str:
    """The name a record goes by: its display field, else the entity label and id."""
    name = entity.display_field
    value = record.get(name) if name else None
    if value not in (None, ""):
        spec = entity.fields.get(name or "")
        if spec is not None and spec["type"] not in ("text", "autonumber", "email"):
            return format_value(spec, value).text
        return str(value)
    return f"{entity.label} #{record.get('id')}"


def show(
    entity: EntityDef,
    name: str,
    record: Mapping[str, Any],
    names: Names,
    links: Links,
    locale: str,
) -> Shown:
    spec = field_spec(entity, name)
    if spec is None:
        return Shown("")
    value = record.get(name)
    href = None
    lookup_names = None
    if spec["type"] == "lookup" and value is not None:
        lookup_names = names.get(spec["target"], {})
        # The names hold only the records the caller may read: a record they
        # may not read is named by its id, with no link to a page that would
        # answer 404.
        if value in lookup_names:
            href = links.record(spec["target"], value)
    return format_value(
        spec, value, locale=locale, lookup_names=lookup_names, record_href=href
    )


# -- lists -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    type: str
    sortable: bool
    #: "asc", "desc" or None when the list is not sorted on this column.
    sorted: str | None = None


@dataclass(frozen=True)
class Row:
    id: int
    title: str
    href: str
    cells: list[Shown]


@dataclass(frozen=True)
class Table:
    columns: list[Column]
    rows: list[Row]


def columns_of(
    entity: EntityDef, names: Sequence[str], sort: Sequence[str] = ()
) -> list[Column]:
    order = {key.lstrip("-"): "desc" if key.startswith("-") else "asc" for key in sort}
    first = sort[0].lstrip("-") if sort else None
    columns = []
    for name in names:
        spec = field_spec(entity, name)
        if spec is None:
            continue
        columns.append(
            Column(
                name=name,
                label=str(spec.get("label", SYSTEM_LABELS.get(name, name))),
                type=spec["type"],
                sortable=spec["type"] in SORTABLE,
                sorted=order.get(name) if name == first else None,
            )
        )
    return columns


def table(
    entity: EntityDef,
    columns: Sequence[str],
    records: Sequence[Mapping[str, Any]],
    names: Names,
    links: Links,
    *,
    sort: Sequence[str] = (),
    locale: str = DEFAULT_LOCALE,
) -> Table:
    """Build the rows of a list or related list."""
    shown = columns_of(entity, columns, sort)
    rows = [
        Row(
            id=int(record["id"]),
            title=title_of(entity, record),
            href=links.record(entity.name, int(record["id"])),
            cells=[
                show(entity, column.name, record, names, links, locale)
                for column in shown
            ],
        )
        for record in records
    ]
    return Table(shown, rows)


# -- record pages ------------------------------------------------------------------


@dataclass(frozen=True)
class FieldItem:
    name: str
    label: str
    type: str
    shown: Shown
    help_text: str = ""


@dataclass(frozen=True)
class RelatedList:
    key: str
    label: str
    entity: str
    entity_label: str
    table: Table
    total: int
    new_href: str
    more_href: str


@dataclass(frozen=True)
class Section:
    label: str
    columns: int
    collapsible: bool
    collapsed: bool
    items: list[Any]
    #: False while the section's ``visible_if`` (or, on a form, every field's)
    #: hides it; a form keeps it in the page, hidden, for its script to show.
    visible: bool = True
    #: The section's ``visible_if`` as written, for the browser; None if it has none.
    visible_if: Any = None
    #: Its ``visible_if`` reads what the caller cannot see: the browser keeps
    #: the state the server rendered.
    state_fixed: bool = False
    #: Whether its ``visible_if`` shows it, whatever its fields' states: for a
    #: section whose state is fixed, the browser judges its fields against it.
    rule_shown: bool = True


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    sections: list[Section]
    #: On a form, how many problems its fields have.
    errors: int = 0

    @property
    def visible(self) -> bool:
        """Whether any of its sections shows; a tab with none is not offered."""
        return any(section.visible for section in self.sections)


@dataclass(frozen=True)
class RelatedRows:
    """The first records of one related list, fetched by the caller."""

    records: Sequence[Mapping[str, Any]]
    total: int


def related_key(item: Mapping[str, Any]) -> str:
    related = item["related"]
    return f"{related['entity']}.{related['field']}"


def sections_of(
    layout: Mapping[str, Any],
    build: Any,
    *,
    skip_empty: bool = True,
    shown: Mapping[SectionKey, bool] | None = None,
    fixed: Collection[SectionKey] = (),
) -> list[Tab]:
    """Walk a form layout, turning each item into whatever ``build`` returns.

    :param shown: whether each section that has a ``visible_if`` is shown, by
        its place (tab index, section index); a section missing here is shown.
    :param fixed: the places of sections whose state the browser must keep.
    """
    shown = shown or {}
    tabs = []
    for number, tab in enumerate(layout["form"]["tabs"]):
        sections = []
        for index, section in enumerate(tab["sections"]):
            items = [built for item in section["items"] if (built := build(item))]
            if skip_empty and not items:
                continue
            sections.append(
                Section(
                    label=str(section.get("label", "")),
                    columns=int(section.get("columns", 1)),
                    collapsible=bool(section.get("collapsible", False)),
                    collapsed=bool(section.get("collapsed", False)),
                    items=items,
                    visible=shown.get((number, index), True),
                    visible_if=section.get("visible_if"),
                    state_fixed=(number, index) in fixed,
                    rule_shown=shown.get((number, index), True),
                )
            )
        if sections:
            tabs.append(Tab(f"tab-{number}", str(tab.get("label", "")), sections))
    return tabs


@dataclass(frozen=True)
class DetailPage:
    entity: str
    entity_label: str
    record_id: int
    title: str
    version: int
    tabs: list[Tab]
    created: Shown
    updated: Shown
    #: The name of the user who owns the record ("" when nobody does).
    owner: str = ""
    #: Whether the caller may change or delete the record (the buttons show).
    can_edit: bool = True
    can_delete: bool = True


def detail_page(
    entity: EntityDef,
    layout: Mapping[str, Any],
    record: Mapping[str, Any],
    names: Names,
    related: Mapping[str, RelatedRows],
    related_entities: Mapping[str, EntityDef],
    links: Links,
    *,
    locale: str = DEFAULT_LOCALE,
    hidden: Collection[str] = (),
    shown: Mapping[SectionKey, bool] | None = None,
) -> DetailPage:
    """Build a record page: fields by layout, then related lists.

    :param related: rows of each related list, keyed ``entity.field``.
    :param related_entities: the entities those lists show.
    :param hidden: fields whose ``visible_if`` is false for the record; they are
        left out, and so is a section left without items.
    :param shown: whether each section with a ``visible_if`` is shown (see
        :func:`sections_of`); a hidden section is left out.
    """
    record_id = int(record["id"])

    def build(item: Mapping[str, Any]) -> Any:
        if "field" in item:
            spec = entity.fields.get(item["field"])
            if spec is None or spec["name"] in hidden:
                return None
            return FieldItem(
                name=spec["name"],
                label=str(spec.get("label", spec["name"])),
                type=spec["type"],
                shown=show(entity, spec["name"], record, names, links, locale),
                help_text=str(spec.get("help_text", "")),
            )
        key = related_key(item)
        child = related_entities.get(item["related"]["entity"])
        rows = related.get(key)
        if child is None or rows is None:
            return None
        lookup = item["related"]["field"]
        return RelatedList(
            key=key,
            label=str(item.get("label") or child.document.get("label_plural", "")),
            entity=child.name,
            entity_label=child.label,
            table=table(
                child,
                item.get("columns") or [],
                rows.records,
                names,
                links,
                locale=locale,
            ),
            total=rows.total,
            new_href=(
                links.new(child.name, {lookup: record_id})
                if child.allows("create")
                else ""
            ),
            more_href=links.list(child.name) + f"?{lookup}={record_id}",
        )

    return DetailPage(
        entity=entity.name,
        entity_label=entity.label,
        record_id=record_id,
        title=title_of(entity, record),
        version=int(record.get("version") or 1),
        tabs=_visible_tabs(sections_of(layout, build, shown=shown)),
        created=format_value(
            SYSTEM_SPECS["created_at"], record.get("created_at"), locale=locale
        ),
        updated=format_value(
            SYSTEM_SPECS["updated_at"], record.get("updated_at"), locale=locale
        ),
    )


def _visible_tabs(tabs: list[Tab]) -> list[Tab]:
    """Tabs without their hidden sections; a tab left empty goes too."""
    found = []
    for tab in tabs:
        sections = [section for section in tab.sections if section.visible]
        if sections:
            found.append(Tab(tab.key, tab.label, sections, tab.errors))
    return found
