"""List pages: the table with what surrounds it, filters, saved views.

The models here hold text and addresses only; the web layer computes the addresses
and runs the queries. The filter builder offers, for each field type, the operators
the API accepts for it (``field__op=value``), with labels people read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..metadata import (
    EntityDef,
    ascii_digits,
    plain_decimal,
    plain_integer,
    precision_scale,
)
from ._format import DEFAULT_LOCALE, Shown, format_value, option_label
from ._pages import SYSTEM_SPECS, Links, Names, Table, table

TEXT_FILTER_TYPES = frozenset({"text", "textarea", "email", "phone", "url"})
NUMBER_FILTER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})
DATE_FILTER_TYPES = frozenset({"date", "datetime"})
#: System columns the filter builder offers after the entity's fields.
FILTER_SYSTEM_FIELDS = ("created_at", "updated_at")
#: The filter builder's note under a date-time value: the input takes seconds
#: (``step="1"``), as record pages show them, and a filter compares to the second.
DATETIME_HELP = "In UTC, to the second, as record pages show it."
#: Page sizes a saved view may choose from.
PAGE_SIZES = (10, 25, 50, 100, 200)
#: The most characters of a long text a list cell shows; the record page has all.
LIST_TEXT_LIMIT = 200

# The two ways of "isnull" get operators of their own in the builder: people pick
# "is blank", not "is null: true".
BLANK = "blank"
NOT_BLANK = "notblank"

_TEXT_LABELS = {
    "contains": "contains",
    "startswith": "starts with",
    "eq": "is",
    "ne": "is not",
}
_NUMBER_LABELS = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "lte": "≤",
    "gt": ">",
    "gte": "≥",
}
_DATE_LABELS = {
    "eq": "is on",
    "ne": "is not on",
    "lt": "is before",
    "lte": "is on or before",
    "gt": "is after",
    "gte": "is on or after",
}
_CHOICE_LABELS = {"eq": "is", "ne": "is not", "in": "is one of", "contains": "has"}
_BLANK_LABELS = {BLANK: "is blank", NOT_BLANK: "is not blank"}
#: Number types whose values a page shows to the field's scale (money shows
#: the decimals it has); a chip shows a filter's own decimals beyond it.
_SCALED = frozenset({"decimal", "percent"})
#: More decimals than a number can hold: the chip shows the text as written.
_CHIP_DECIMALS = 28
_YES_NO = {
    **dict.fromkeys(("true", "1", "yes"), "Yes"),
    **dict.fromkeys(("false", "0", "no"), "No"),
}


def filter_operators(field_type: str) -> tuple[str, ...]:
    """Return the API operators a list filter offers for a field type."""
    if field_type in TEXT_FILTER_TYPES or field_type == "autonumber":
        return ("contains", "startswith", "eq", "ne", "isnull")
    if field_type in NUMBER_FILTER_TYPES or field_type in DATE_FILTER_TYPES:
        return ("eq", "ne", "lt", "lte", "gt", "gte", "isnull")
    if field_type == "picklist":
        return ("eq", "ne", "in", "isnull")
    if field_type == "multi_picklist":
        return ("contains", "isnull")
    if field_type == "boolean":
        return ("eq", "isnull")
    if field_type == "lookup":
        return ("eq", "ne", "isnull")
    return ()


def operator_label(field_type: str, op: str) -> str:
    """Return how an operator (an API one, or ``blank``/``notblank``) reads."""
    if op in _BLANK_LABELS:
        return _BLANK_LABELS[op]
    if field_type in NUMBER_FILTER_TYPES:
        return _NUMBER_LABELS.get(op, op)
    if field_type in DATE_FILTER_TYPES:
        return _DATE_LABELS.get(op, op)
    if field_type in ("picklist", "multi_picklist", "boolean", "lookup"):
        return _CHOICE_LABELS.get(op, op)
    return _TEXT_LABELS.get(op, op)


def builder_operators(field_type: str) -> tuple[tuple[str, str], ...]:
    """Return the builder's choices for a type: ``(code, label)``, blanks split."""
    choices: list[tuple[str, str]] = []
    for op in filter_operators(field_type):
        if op == "isnull":
            choices += [(code, _BLANK_LABELS[code]) for code in (BLANK, NOT_BLANK)]
        else:
            choices.append((op, operator_label(field_type, op)))
    return tuple(choices)


@dataclass(frozen=True)
class FilterField:
    """A field the filter builder offers, with what its value input needs."""

    name: str
    label: str
    type: str
    operators: tuple[tuple[str, str], ...]
    #: ``text``, ``number``, ``date``, ``datetime-local``, ``select`` or ``lookup``.
    input: str
    #: Values to choose from, for picklists and booleans: ``(value, label)``.
    choices: tuple[tuple[str, str], ...] = ()
    #: For lookups: the address that finds target records by name, and its label.
    lookup_href: str = ""
    target_label: str = ""
    #: What the value input takes, when its type does not say it all.
    help: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "operators": [list(pair) for pair in self.operators],
            "input": self.input,
            "choices": [list(pair) for pair in self.choices],
            "lookup": self.lookup_href,
            "target": self.target_label,
            "help": self.help,
        }


def filter_fields(
    entity: EntityDef,
    *,
    lookup_href: Any = None,
    target_label: Any = None,
) -> list[FilterField]:
    """Return the fields a list of ``entity`` can be filtered by, in label order.

    :param lookup_href: called with a target entity's name, returns the address
        of its type-ahead search.
    :param target_label: called with a target entity's name, returns its label.
    """
    specs = list(entity.fields.values())
    specs += [SYSTEM_SPECS[name] for name in FILTER_SYSTEM_FIELDS]
    found = []
    for spec in specs:
        kind = spec["type"]
        operators = builder_operators(kind)
        if not operators:
            continue
        target = spec.get("target", "")
        found.append(
            FilterField(
                name=spec["name"],
                label=str(spec.get("label", spec["name"])),
                type=kind,
                operators=operators,
                input=_input_of(kind),
                choices=_choices_of(spec),
                lookup_href=lookup_href(target) if target and lookup_href else "",
                target_label=target_label(target) if target and target_label else "",
                help=DATETIME_HELP if kind == "datetime" else "",
            )
        )
    return sorted(found, key=lambda item: item.label.lower())


def _input_of(kind: str) -> str:
    if kind in NUMBER_FILTER_TYPES:
        return "number"
    if kind == "date":
        return "date"
    if kind == "datetime":
        return "datetime-local"
    if kind in ("picklist", "multi_picklist", "boolean"):
        return "select"
    if kind == "lookup":
        return "lookup"
    return "text"


def _choices_of(spec: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    if spec["type"] == "boolean":
        return (("true", "Yes"), ("false", "No"))
    return tuple(
        (str(option["value"]), str(option.get("label") or option["value"]))
        for option in spec.get("options", ())
    )


def filter_label(
    spec: Mapping[str, Any],
    op: str,
    raw: str,
    *,
    lookup_names: Mapping[int, str] | None = None,
    locale: str = DEFAULT_LOCALE,
) -> str:
    """Return how an active filter ``field__op=raw`` reads on its chip."""
    label = str(spec.get("label", spec["name"]))
    kind = spec["type"]
    if op == "isnull":
        word = raw.strip().lower()
        if word in ("true", "1", "yes"):
            return f"{label} {operator_label(kind, BLANK)}"
        if word in ("false", "0", "no"):
            return f"{label} {operator_label(kind, NOT_BLANK)}"
        # Neither: the filter is refused, and its chip shows what was written,
        # to be removed, rather than a meaning the list does not apply.
        return f"{label} {operator_label(kind, BLANK)}: “{raw}”"
    if op == "in":
        shown = ", ".join(
            _value_text(spec, part, lookup_names, locale) for part in raw.split(",")
        )
    else:
        shown = _value_text(spec, raw, lookup_names, locale)
    return f"{label} {operator_label(kind, op)} {shown}"


def _value_text(
    spec: Mapping[str, Any],
    raw: str,
    lookup_names: Mapping[int, str] | None,
    locale: str,
) -> str:
    kind = spec["type"]
    if kind in ("picklist", "multi_picklist"):
        return option_label(spec, raw)
    if kind == "boolean":
        # Every spelling the filter takes reads as the record pages show it.
        return _YES_NO.get(raw.strip().lower(), raw)
    if kind == "lookup":
        digits = raw.strip()
        # An id has at most 19 digits; past 4,300, int would refuse to read it.
        known = ascii_digits(digits) and len(digits) < 20
        name = (lookup_names or {}).get(int(digits)) if known else None
        return name or f"#{digits}"
    if kind in NUMBER_FILTER_TYPES:
        taken = plain_integer if kind == "integer" else plain_decimal
        if not taken(raw.strip()):
            # The filter is refused: its chip shows what was written.
            return raw
        try:
            number = Decimal(raw.strip())
        except (InvalidOperation, ValueError):
            return raw
        if not number.is_finite():
            return raw
        decimals = -int(number.as_tuple().exponent)
        if decimals > _CHIP_DECIMALS:
            return raw
        if kind in _SCALED and decimals > precision_scale(dict(spec))[1]:
            # A filter may compare with more decimals than the field keeps
            # ("below 1.2345" of a field of 3): the chip shows the value compared
            # with, not the field's rounding of it ("below 1.234" would leave
            # out the 1.234 the list shows).
            spec = {**spec, "scale": decimals}
        try:
            return format_value(spec, number, locale=locale).text
        except ArithmeticError:
            # More digits than a number is shown with (1e400): the filter is
            # refused, and its chip shows what was written, to be removed.
            return raw
    if kind in DATE_FILTER_TYPES:
        try:
            return format_value(spec, raw.strip(), locale=locale).text
        except OverflowError:
            # A moment whose offset takes it past year 9999 in UTC: the filter
            # is refused, and its chip shows what was written, to be removed.
            return raw
    return f"“{raw}”"


# -- the table ---------------------------------------------------------------------


def list_table(
    entity: EntityDef,
    columns: Sequence[str],
    records: Sequence[Mapping[str, Any]],
    names: Names,
    links: Links,
    *,
    sort: Sequence[str] = (),
    locale: str = DEFAULT_LOCALE,
    limit: int = LIST_TEXT_LIMIT,
) -> Table:
    """Build a list page's table, as :func:`._pages.table` does, with long text cut.

    A long text (a textarea's value) shows its first ``limit`` characters and an
    ellipsis, so a row keeps a sensible height; the record page shows it whole.
    """
    built = table(entity, columns, records, names, links, sort=sort, locale=locale)
    rows = [
        dataclasses.replace(row, cells=[_clipped(cell, limit) for cell in row.cells])
        for row in built.rows
    ]
    return Table(built.columns, rows)


def _clipped(cell: Shown, limit: int) -> Shown:
    if cell.kind != "multiline" or len(cell.text) <= limit:
        return cell
    return dataclasses.replace(cell, text=cell.text[:limit].rstrip() + "…")


# -- page models -------------------------------------------------------------------


@dataclass(frozen=True)
class Chip:
    """An active filter or search, with the address of the list without it."""

    label: str
    remove_href: str


@dataclass(frozen=True)
class FilterBuilder:
    """The form that adds a filter; it works as a plain GET form without scripts."""

    action: str
    fields: Sequence[FilterField]
    #: The list's current parameters, kept when a filter is added.
    hidden: Sequence[tuple[str, str]]
    #: The field chosen in a first step or before an error, if any.
    field: FilterField | None = None
    op: str = ""
    value: str = ""
    error: str = ""
    #: The control the error is about: ``field``, ``op`` or ``value``; it is
    #: described by the error and marked invalid, and the error takes focus.
    error_at: str = ""

    @property
    def fields_json(self) -> list[dict[str, Any]]:
        """The fields as list.js reads them (from a ``data-`` attribute)."""
        return [item.as_json() for item in self.fields]

    @property
    def all_operators(self) -> tuple[tuple[str, str], ...]:
        """Every operator, for the form before a field is chosen (no scripts)."""
        seen: dict[str, str] = {}
        for item in self.fields:
            for code, label in builder_operators(item.type):
                if code not in seen:
                    seen[code] = _generic_label(code, label)
        return tuple(seen.items())


def _generic_label(code: str, label: str) -> str:
    generic = {"eq": "is / =", "ne": "is not / ≠", "lt": "< / before"}
    generic.update({"lte": "≤ / on or before", "gt": "> / after"})
    generic.update({"gte": "≥ / on or after"})
    return generic.get(code, label)


@dataclass(frozen=True)
class ViewChoice:
    id: int
    label: str
    shared: bool
    owner: str
    selected: bool


@dataclass(frozen=True)
class ColumnChoice:
    name: str
    label: str
    checked: bool


@dataclass(frozen=True)
class ViewBar:
    """The saved views of a list and what can be done with the one in use."""

    choices: Sequence[ViewChoice]
    current: Mapping[str, Any] | None
    #: The list differs from the view as saved (filters or sort changed).
    changed: bool
    may_share: bool
    #: Address of the page to rename or delete the current view, when allowed.
    manage_href: str | None
    #: Address that saves the list's filters and sort into the current view.
    update_action: str | None
    save_action: str
    columns: Sequence[ColumnChoice]
    page_size: int
    page_sizes: Sequence[int] = PAGE_SIZES
    #: Problems of a view that was just refused, and the values sent.
    errors: Sequence[str] = ()
    label: str = ""
    shared: bool = False
    #: The JSON condition a view saved now would keep (empty: no filter).
    condition: str = ""

    @property
    def shared_choices(self) -> list[ViewChoice]:
        return [choice for choice in self.choices if choice.shared]

    @property
    def own_choices(self) -> list[ViewChoice]:
        return [choice for choice in self.choices if not choice.shared]


@dataclass(frozen=True)
class ListPage:
    """A page of a list with what surrounds it; addresses come from the caller."""

    entity: str
    entity_label: str
    label_plural: str
    table: Table
    total: int
    #: Position of the first row shown (1-based) and of the last.
    first: int
    last: int
    search: str
    searchable: bool
    #: Address of each sortable column's header (toggles its direction).
    sort_hrefs: Mapping[str, str]
    next_href: str | None
    first_href: str | None
    new_href: str
    export_href: str
    #: Filters and the search in force, each with the address that removes it.
    active_filters: Sequence[Chip] = ()
    clear_href: str | None = None
    filter_builder: FilterBuilder | None = None
    views: ViewBar | None = None
    #: The list's current parameters, for forms that come back to the same list.
    state: str = ""
    #: Why the list could not be shown as asked (a filter that does not parse).
    error: str = ""
    #: When the problem is the list's sort or place rather than a filter: the
    #: address of the list with its filters and without that sort or place.
    retry_href: str | None = None
    #: A notice from the view in use (its filter was cleared, say).
    notice: str = ""
    #: Whether saving the view keeps the list as the notice describes it: a
    #: cleared filter, yes; a filter that shows the caller nothing is kept as
    #: stored, so saving changes nothing the notice says.
    notice_saved: bool = True
    total_text: str = ""
    import_href: str = ""
    #: How many of the rows listed an export leaves out, and why (the caller's
    #: export scope is narrower than what they read); blank when none.
    export_note: str = ""
    #: Whether the caller may delete records of the entity (bulk delete shows).
    can_delete: bool = True
    #: Addresses of the page before this one and of the last page, when there
    #: are such pages.
    previous_href: str | None = None
    last_href: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status_text(self) -> str:
        """``26–50 of 1,234``, or that nothing matches."""
        if not self.total or not self.table.rows:
            return f"0 {self.label_plural.lower()}"
        return f"{self.first:,}–{self.last:,} of {self.total_text or self.total}"
