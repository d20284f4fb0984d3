"""The query builder: every list of records is read through here (principle 7).

It turns list parameters (filters, sort, cursor, field selection) into one SQL query,
so that pages and counts are computed by the database. Record access will be added to
the same query when permissions arrive.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import operator
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..errors import BadRequest, Problem
from ..metadata import (
    DECIMAL_TYPES,
    INTEGER_LIMIT,
    SORTABLE_TYPES,
    TEXT_TYPES,
    Catalog,
    EntityDef,
    FieldValueError,
    ascii_digits,
    convert_date,
    convert_datetime,
    int_of_digits,
    labels_compared,
    plain_decimal,
    plain_integer,
)
from ..rules_engine import ConditionError, by_code_point, check_condition, compile_sql
from .csvio import CellError, match_choice
from .records import record_json
from .search_index import name_conditions, name_order
from .strictjson import JSONRefused, read_json

MAX_LIMIT = 1000
#: A time zone offset after its sign, as a date and time in an address ends.
_OFFSET = re.compile(r"[0-9]{2}(?::?[0-9]{2})?")
#: A date and time without its offset.
_ISO_MOMENT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
)
DEFAULT_LIMIT = 50
#: The most values one ``in`` filter takes: each is a parameter of the statement,
#: and PostgreSQL takes at most 65,535 of them.
MAX_IN_VALUES = 1000
OPERATORS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "contains",
    "startswith",
    "isnull",
)
RESERVED_PARAMS = frozenset({"sort", "limit", "cursor", "fields", "count", "filter"})
SYSTEM_SPECS: dict[str, dict[str, Any]] = {
    "id": {"name": "id", "type": "integer", "label": "ID"},
    "created_at": {"name": "created_at", "type": "datetime", "label": "Created"},
    "updated_at": {"name": "updated_at", "type": "datetime", "label": "Last modified"},
    "created_by": {"name": "created_by", "type": "integer", "label": "Created by"},
    "owner_id": {"name": "owner_id", "type": "integer", "label": "Owner"},
    "version": {"name": "version", "type": "integer", "label": "Version"},
}
_ORDERED_TYPES = frozenset(
    {"integer", "decimal", "currency", "percent", "date", "datetime", "lookup"}
    | TEXT_TYPES
    | {"autonumber"}
)
#: The ordered types whose values are text.
_CODE_POINT_TYPES = TEXT_TYPES | {"autonumber"}
# The layouts and saved views check their sort keys against the same set.
_SORTABLE_TYPES = SORTABLE_TYPES
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


@dataclass
class ListQuery:
    """A parsed list request."""

    filters: list[tuple[dict[str, Any], str, Any]] = field(default_factory=list)
    sort: list[tuple[dict[str, Any], bool]] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    fields: list[str] | None = None
    count: bool = False
    condition: sa.ColumnElement[bool] | None = None
    #: The operation whose record access the list applies: ``read``, or
    #: ``export`` for an export.
    operation: str = "read"


@dataclass
class Page:
    records: list[dict[str, Any]]
    next_cursor: str | None
    total: int | None
    #: The cursor of the page's first row when rows may come before it, for
    #: :func:`run_list_before`; ``None`` when the page starts the list.
    previous_cursor: str | None = None


def _spec(entity: EntityDef, name: str, param: str) -> dict[str, Any]:
    spec = entity.fields.get(name) or SYSTEM_SPECS.get(name)
    if spec is None:
        raise BadRequest.parameter(param, f"{entity.label} has no field {name!r}.")
    return spec


def parse_list_args(
    entity: EntityDef,
    args: Mapping[str, list[str]],
    *,
    user: Mapping[str, Any] | None = None,
    entities: Mapping[str, EntityDef] | None = None,
) -> ListQuery:
    """Parse query-string parameters (each name with its list of values).

    :param user: the caller, for ``$user`` in a ``filter`` condition.
    :param entities: the entities as the caller sees them, to refuse a
        ``filter`` that compares a picklist with a choice's label (see
        :func:`parse_condition`).
    :raises BadRequest: naming the parameter that is wrong.
    """
    query = ListQuery()
    text = single(args, "filter")
    if text is not None:
        query.condition = parse_condition(entity, text, user=user, entities=entities)
    for param, values in args.items():
        if param in RESERVED_PARAMS:
            continue
        name, _, op = param.partition("__")
        op = op or "eq"
        if op not in OPERATORS:
            raise BadRequest.parameter(
                param,
                f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}.",
            )
        spec = _spec(entity, name, param)
        for raw in values:
            query.filters.append((spec, op, _filter_value(spec, op, raw, param)))
    query.sort = _parse_sort(entity, single(args, "sort"))
    query.limit = _parse_limit(single(args, "limit"))
    query.cursor = single(args, "cursor")
    selection = single(args, "fields")
    if selection:
        query.fields = [
            _spec(entity, name.strip(), "fields")["name"]
            for name in selection.split(",")
            if name.strip()
        ]
    count = single(args, "count")
    query.count = count is not None and _parse_bool(count or "true", "count")
    return query


def parse_condition(
    entity: EntityDef,
    text: str,
    *,
    user: Mapping[str, Any] | None = None,
    entities: Mapping[str, EntityDef] | None = None,
) -> sa.ColumnElement[bool]:
    """Turn ``filter=<JSON condition>`` into a WHERE clause for the entity's table.

    :param entities: when given (a filter someone writes now, not one a saved
        view kept), a comparison of a picklist, of the entity or of a record
        its lookups reach, with a choice's label is refused, as in a rule: it
        would select nothing.
    :raises BadRequest: naming ``filter`` and what is wrong: the JSON, a field the
        entity does not have, an operation with no SQL form, a failed static check.
    """
    try:
        # Read as request bodies are: NaN, and a number too large for a float
        # (1e999, which Python would read as infinity), are no JSON.
        condition = read_json(text)
    except JSONRefused as error:
        if error.too_deep:
            message = "The condition is nested too deeply."
            raise _unreadable("too_deep", message) from None
        raise _unreadable(
            "invalid_json", f"The condition is not valid JSON ({error})."
        ) from None

    types = {name: spec["type"] for name, spec in entity.fields.items()}
    types.update({name: spec["type"] for name, spec in SYSTEM_SPECS.items()})
    found = [
        Problem(problem.path, problem.code, problem.message)
        for problem in check_condition(condition, fields=types, user_attributes=True)
    ]
    if not found and entities is not None:
        found = labels_compared(condition, entity, entities)
    if found:
        details = "; ".join(
            f"{problem.field}: {problem.message}" if problem.field else problem.message
            for problem in found[:5]
        )
        raise BadRequest(
            f"filter: {details}",
            problems=[
                Problem(_in_filter(problem.field or ""), problem.code, problem.message)
                for problem in found
            ],
        )

    columns = {name: (entity.table.c[name], kind) for name, kind in types.items()}
    try:
        return compile_sql(condition, columns, user=user)
    except ConditionError as error:
        problem = Problem(_in_filter(error.path), error.code, error.message)
        raise BadRequest(f"filter: {error}", problems=[problem]) from None
    except (OverflowError, ValueError, RecursionError):
        # A literal outside what the database can hold, such as a moment before
        # year 1 once taken to UTC.
        raise BadRequest.parameter(
            "filter", "a value in the condition is out of range."
        ) from None


def _in_filter(path: str) -> str:
    """Where in ``filter`` a problem is: the parameter, then the JSON path."""
    if not path:
        return "filter"
    return f"filter{path}" if path.startswith("[") else f"filter.{path}"


def _unreadable(code: str, message: str) -> BadRequest:
    """The filter cannot be read as a condition at all."""
    return BadRequest(
        f"filter: {message[0].lower()}{message[1:]}",
        problems=[Problem("filter", code, message)],
    )


def single(args: Mapping[str, list[str]], name: str) -> str | None:
    """Parameter ``name`` of ``args`` (each name with its list of values),
    ``None`` when absent.

    :raises BadRequest: it is given more than once; taking one of the values
        would answer as if only that one had been asked for.
    """
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest.parameter(name, "give this parameter only once.")
    return values[0]


def _parse_sort(
    entity: EntityDef, text: str | None
) -> list[tuple[dict[str, Any], bool]]:
    if not text:
        return []
    keys: list[tuple[dict[str, Any], bool]] = []
    for item in text.split(","):
        item = item.strip()
        descending = item.startswith("-")
        spec = _spec(entity, item[1:] if item[:1] in "-+" else item, "sort")
        if spec["type"] not in _SORTABLE_TYPES:
            raise BadRequest.parameter("sort", f"{spec['name']!r} cannot be sorted.")
        if any(spec["name"] == named["name"] for named, _ in keys):
            # As a saved view's: a key named again orders nothing more, and each
            # repeat of a picklist adds its choices to the statement.
            message = (
                f"the list is already sorted by {spec['name']!r}; name each field once."
            )
            raise BadRequest.parameter("sort", message)
        keys.append((spec, descending))
    return keys


def sort_applies(entity: EntityDef, text: str) -> bool:
    """Whether ``text``, a ``sort`` parameter, can order a list of ``entity``
    (it names sortable fields the caller may see)."""
    try:
        _parse_sort(entity, text)
    except BadRequest:
        return False
    return True


def _parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    number = _whole_number(text)
    if number is None or not 1 <= number <= MAX_LIMIT:
        raise BadRequest.parameter(
            "limit", f"enter a whole number from 1 to {MAX_LIMIT}."
        )
    return number


def _whole_number(text: str) -> int | None:
    """The whole number ``text`` writes, or ``None`` when it is no whole number or
    one past :data:`INTEGER_LIMIT` (see :func:`.int_of_digits`)."""
    number = int_of_digits(text) if _INTEGER.match(text) else None
    return None if number is None or abs(number) > INTEGER_LIMIT else number


def _parse_bool(text: str, param: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise BadRequest.parameter(param, f"enter true or false, not {text!r}.")


def _filter_value(spec: dict[str, Any], op: str, raw: str, param: str) -> Any:
    kind = spec["type"]
    if op == "isnull":
        return _parse_bool(raw, param)
    if "\x00" in raw:
        raise BadRequest.parameter(param, "a value cannot hold the NUL character.")
    if op in ("contains", "startswith"):
        if kind not in TEXT_TYPES and kind not in ("multi_picklist", "autonumber"):
            raise BadRequest.parameter(param, f"{op} works on text fields only.")
        if kind == "multi_picklist" and op == "startswith":
            message = "startswith does not apply to multi-picklists."
            raise BadRequest.parameter(param, message)
        # A multi-picklist has a choice that its filter names as a picklist's
        # filter does (interests__contains=Software for software).
        return read_choice(spec, raw) if kind == "multi_picklist" else raw
    if kind == "multi_picklist":
        message = "use contains or isnull on a multi-picklist."
        raise BadRequest.parameter(param, message)
    if op in ("lt", "lte", "gt", "gte") and kind not in _ORDERED_TYPES:
        message = f"{op} does not apply to a {kind} field."
        raise BadRequest.parameter(param, message)
    if op == "in":
        parts = raw.split(",")
        if len(parts) > MAX_IN_VALUES:
            message = f"give at most {MAX_IN_VALUES} values, separated by commas."
            raise BadRequest.parameter(param, message)
        return [_operand(spec, part, param) for part in parts]
    return _operand(spec, raw, param)


def _operand(spec: dict[str, Any], raw: str, param: str) -> Any:
    """A filter's value: a picklist's choice is also read by its label. A sort
    key in a cursor is not: it is the value stored, as written."""
    if spec["type"] == "picklist":
        return read_choice(spec, raw)
    return parse_value(spec, raw, param)


def parse_value(spec: dict[str, Any], raw: str, param: str) -> Any:
    """Turn a query-string value into a value comparable with the column."""
    kind = spec["type"]
    try:
        if kind in ("integer", "lookup"):
            if not plain_integer(raw.strip()):
                raise FieldValueError("invalid", f"{raw!r} is not a whole number.")
            number = _whole_number(raw.strip())
            if number is None:
                message = (
                    f"enter a whole number between -{INTEGER_LIMIT:,} and "
                    f"{INTEGER_LIMIT:,}."
                )
                raise FieldValueError("invalid", message)
            return number
        if kind in DECIMAL_TYPES:
            if not plain_decimal(raw.strip()):
                raise FieldValueError("invalid", f"{raw!r} is not a number.")
            return Decimal(raw.strip())
        if kind == "boolean":
            return _parse_bool(raw, param)
        if kind == "date":
            return convert_date(raw)
        if kind == "datetime":
            return _moment(raw)
    except FieldValueError as error:
        raise BadRequest.parameter(param, error.message) from None
    return raw


def read_choice(spec: Mapping[str, Any], raw: str) -> str:
    """A (multi-)picklist filter's value: the choice it names by its value or its label,
    in any letter case, as an import reads it (``stage=Won`` for ``won``). Other
    text is compared as written: a value no longer offered may still be stored."""
    try:
        return str(match_choice(raw.strip(), spec.get("options") or []))
    except CellError:
        return raw


def _moment(raw: str) -> dt.datetime:
    """A date and time given in an address. A ``+`` there reads as a space, so
    an offset such as ``+01:00`` written as it is arrives as `` 01:00``: the
    refusal then says to write it as ``%2B``."""
    try:
        return convert_datetime(raw)
    except FieldValueError:
        text = raw.strip()
        head, space, offset = text.rpartition(" ")
        if space and _ISO_MOMENT.fullmatch(head) and _OFFSET.fullmatch(offset):
            raise FieldValueError(
                "invalid_datetime",
                f"{text!r} reads a space where its offset has a +: write the + "
                "as %2B in an address.",
            ) from None
        raise


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _condition(
    table: sa.Table, spec: dict[str, Any], op: str, value: Any
) -> sa.ColumnElement[bool]:
    column = table.c[spec["name"]]
    if op == "isnull":
        return column.is_(None) if value else column.is_not(None)
    if op == "contains" and spec["type"] == "multi_picklist":
        # The condition a saved view keeps for this filter, translated by the
        # rules engine, so that the list and the view select the same records:
        # those whose choices hold the value exactly.
        choice = {"contains": [{"var": spec["name"]}, value]}
        return compile_sql(choice, {spec["name"]: (column, "multi_picklist")})
    if op == "contains":
        return _folded(column).like(_folded_text(f"%{_escape_like(value)}%"), "\\")
    if op == "startswith":
        return _folded(column).like(_folded_text(f"{_escape_like(value)}%"), "\\")
    if op == "in":
        return column.in_(value)
    if op == "ne":
        # Blank values are "not equal" to anything, as a user reads the filter.
        return sa.or_(column != value, column.is_(None))
    if op in ("lt", "lte", "gt", "gte") and spec["type"] in _CODE_POINT_TYPES:
        # Text is ordered by code point, as the same condition in a saved view or
        # in filter= orders it, whatever the database's collation.
        column, value = by_code_point(column), by_code_point(sa.literal(value))
    comparisons = {
        "eq": operator.eq,
        "lt": operator.lt,
        "lte": operator.le,
        "gt": operator.gt,
        "gte": operator.ge,
    }
    result: sa.ColumnElement[bool] = comparisons[op](column, value)
    return result


def _folded(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """Lower-case a text column the same way on every database.

    SQLite's own ``lower`` folds ASCII letters only, so the engine replaces it with
    Python's ``str.lower`` on each connection (see :func:`.db.create_engine`);
    PostgreSQL's ``lower`` folds every letter.
    """
    return sa.func.lower(column)


def _folded_text(text: str) -> sa.ColumnElement[Any]:
    """``text`` lower-cased by the database, as :func:`_folded` folds a column.

    Folded in Python, a letter whose lower case the database writes otherwise
    (the capital I with a dot above, on PostgreSQL) would not match itself.
    ``LIKE``'s wildcards and escapes have no case, so a pattern may be folded.
    """
    return sa.func.lower(sa.literal(text, sa.Text()))


def _sort_signature(query: ListQuery) -> str:
    return ",".join(("-" if desc else "") + spec["name"] for spec, desc in query.sort)


def _encode_cursor(query: ListQuery, row: Mapping[Any, Any]) -> str:
    keys = [_cursor_value(row[spec["name"]]) for spec, _ in query.sort]
    body = {"s": _sort_signature(query), "k": keys, "id": row["id"]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Fixed-point: str() would give '0E-8', which the parser rightly refuses.
        return format(value, "f")
    return str(value)


def _decode_cursor(
    query: ListQuery, text: str, param: str = "cursor"
) -> tuple[list[Any], int]:
    try:
        padded = text + "=" * (-len(text) % 4)
        body = json.loads(base64.urlsafe_b64decode(padded.encode()))
        keys, last_id = body["k"], body["id"]
        valid = (
            body["s"] == _sort_signature(query)
            and isinstance(last_id, int)
            and not isinstance(last_id, bool)
            and 0 <= last_id <= INTEGER_LIMIT
            and isinstance(keys, list)
            and len(keys) == len(query.sort)
            and all(key is None or _cursor_key(key) for key in keys)
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        valid = False
    if not valid:
        message = "this cursor is not valid for this list; start over."
        raise BadRequest.parameter(param, message)
    values = [
        None if key is None else parse_value(spec, str(key), param)
        for key, (spec, _) in zip(keys, query.sort, strict=True)
    ]
    return values, last_id


def _cursor_key(key: Any) -> bool:
    """Whether a sort key read from a cursor is text that :func:`_cursor_value`
    could have written: a NUL or a lone surrogate (``"\\ud800"``) would reach
    the database, which cannot take it."""
    if not isinstance(key, str) or "\x00" in key:
        return False
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _after(
    table: sa.Table, query: ListQuery, values: list[Any], last_id: int
) -> sa.ColumnElement[bool]:
    """Rows strictly after the cursor in (sort keys..., id) order, nulls last."""
    alternatives = []
    equal: list[sa.ColumnElement[bool]] = []
    for (spec, descending), value in zip(query.sort, values, strict=True):
        column, value = _comparable(table, spec, value)
        if value is not None:
            beyond = column < value if descending else column > value
            alternatives.append(sa.and_(*equal, sa.or_(beyond, column.is_(None))))
            equal.append(column == value)
        else:
            equal.append(column.is_(None))
    alternatives.append(sa.and_(*equal, table.c.id > last_id))
    return sa.or_(*alternatives)


def _before(
    table: sa.Table, query: ListQuery, values: list[Any], first_id: int
) -> sa.ColumnElement[bool]:
    """Rows strictly before the cursor in (sort keys..., id) order, nulls last."""
    alternatives = []
    equal: list[sa.ColumnElement[bool]] = []
    for (spec, descending), value in zip(query.sort, values, strict=True):
        column, value = _comparable(table, spec, value)
        if value is not None:
            # A comparison with a blank is never true: blanks, which come last,
            # are left out here as they should be.
            ahead = column > value if descending else column < value
            alternatives.append(sa.and_(*equal, ahead))
            equal.append(column == value)
        else:
            alternatives.append(sa.and_(*equal, column.is_not(None)))
            equal.append(column.is_(None))
    alternatives.append(sa.and_(*equal, table.c.id < first_id))
    return sa.or_(*alternatives)


def _comparable(
    table: sa.Table, spec: dict[str, Any], value: Any
) -> tuple[sa.ColumnElement[Any], Any]:
    """The expression a list sorts by, and a cursor's ``value`` as it compares
    with it."""
    if value is not None and spec["type"] == "boolean":
        value = int(value)
    elif value is not None and spec["type"] == "picklist":
        value = _choice_positions(spec).get(value, len(spec.get("options", ())))
    return _sort_key(table, spec), value


def _sort_key(table: sa.Table, spec: dict[str, Any]) -> sa.ColumnElement[Any]:
    column: sa.ColumnElement[Any] = table.c[spec["name"]]
    if spec["type"] == "boolean":
        # Booleans sort false before true everywhere; compare them as 0 and 1.
        return sa.cast(column, sa.Integer)
    if spec["type"] == "picklist":
        # Choices sort in the order the field offers them (a stage from first
        # to last), not by their values; one no longer offered comes after
        # them, and a blank stays null, so it still comes last.
        positions = _choice_positions(spec)
        return sa.case(
            *((column == choice, index) for choice, index in positions.items()),
            (column.is_not(None), len(positions)),
        )
    return column


def _choice_positions(spec: Mapping[str, Any]) -> dict[str, int]:
    return {
        str(option["value"]): index
        for index, option in enumerate(spec.get("options", ()))
    }


def access_where(
    entity: EntityDef, operation: str = "read"
) -> list[sa.ColumnElement[bool]]:
    """The caller's record access to ``entity`` for ``operation``, as WHERE clauses.

    Every read in this module starts from it. ``entity`` comes from the caller's
    view of the catalog (see :func:`tailorcrm.metadata.restrict`); in the full
    catalog, as system jobs use it, nothing is restricted.
    """
    if entity.access is None:
        return []
    clause = entity.access.where(operation, entity.table)
    return [] if clause is None else [clause]


def _where(entity: EntityDef, query: ListQuery) -> list[sa.ColumnElement[bool]]:
    table = entity.table
    access = access_where(entity, query.operation)
    where = [*access]
    where += [_condition(table, spec, op, value) for spec, op, value in query.filters]
    if query.condition is not None:
        where.append(_within(access, query.condition))
    return where


def _within(
    access: list[sa.ColumnElement[bool]], condition: sa.ColumnElement[bool]
) -> sa.ColumnElement[bool]:
    """``condition``, tested only on the records ``access`` lets the caller read.

    A database tests the terms of a WHERE clause in the order it finds cheapest,
    and a condition may stop the query on one record (a whole number past 64
    bits, see :func:`_computed_in_range`). Tested on a record the caller may not
    read, that refusal would tell them what the record holds. Both databases
    evaluate a CASE in its order.
    """
    if not access:
        return condition
    return sa.case((sa.and_(*access), condition), else_=sa.false())


def _order(
    table: sa.Table, query: ListQuery, *, backward: bool = False
) -> list[sa.UnaryExpression[Any]]:
    """The list's order (nulls last, then id), or its exact reverse."""
    order = []
    for spec, descending in query.sort:
        column = _sort_key(table, spec)
        if backward:
            key = column.asc() if descending else column.desc()
            order.append(key.nulls_first())
        else:
            key = column.desc() if descending else column.asc()
            order.append(key.nulls_last())
    order.append(table.c.id.desc() if backward else table.c.id.asc())
    return order


@contextmanager
def _computed_in_range(connection: sa.Connection, query: ListQuery) -> Iterator[None]:
    """Name the ``filter`` condition when a number it computes for the records
    read is beyond what the database holds (``id + 9223372036854775807``): it
    may be so for some records only, so the condition itself was accepted.

    The statements run under a savepoint, so that the transaction goes on after
    PostgreSQL refused one (a page still shows its view bar and menus).
    """
    if query.condition is None:
        yield
        return
    savepoint = connection.begin_nested()
    try:
        yield
    except sa.exc.DataError:
        savepoint.rollback()
        message = (
            "a number the condition computes for these records is beyond what "
            "the database holds."
        )
        raise BadRequest.parameter("filter", message) from None
    except BaseException:
        # Any other refusal (a cursor of another list, say) leaves nothing open.
        if savepoint.is_active:
            savepoint.rollback()
        raise
    savepoint.commit()


def run_list(connection: sa.Connection, entity: EntityDef, query: ListQuery) -> Page:
    """Run a list query and return one page, its next cursor and the total."""
    with _computed_in_range(connection, query):
        return _run_list(connection, entity, query)


def _run_list(connection: sa.Connection, entity: EntityDef, query: ListQuery) -> Page:
    table = entity.table
    where = _where(entity, query)
    statement = sa.select(table).where(*where)
    if query.cursor:
        values, last_id = _decode_cursor(query, query.cursor)
        statement = statement.where(_after(table, query, values, last_id))
    statement = statement.order_by(*_order(table, query)).limit(query.limit + 1)
    rows = list(connection.execute(statement).mappings().all())
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = _encode_cursor(query, rows[-1])
    previous_cursor = None
    if query.cursor and rows:
        previous_cursor = _encode_cursor(query, rows[0])
    return _page(connection, entity, query, rows, where, next_cursor, previous_cursor)


def count_list(connection: sa.Connection, entity: EntityDef, query: ListQuery) -> int:
    """How many records the query selects, whatever its cursor and limit."""
    with _computed_in_range(connection, query):
        statement = sa.select(sa.func.count()).select_from(entity.table)
        return int(
            connection.execute(statement.where(*_where(entity, query))).scalar_one()
        )


def run_list_before(
    connection: sa.Connection,
    entity: EntityDef,
    query: ListQuery,
    before: str | None,
    *,
    param: str = "before",
) -> Page:
    """Return the page of rows that come just before a cursor, in the list's order.

    The rows are read backwards from the cursor, in the exact reverse of the
    list's order, so a page costs as many statements as one :func:`run_list`
    reads; ``query.cursor`` is not used.

    :param before: the cursor of the row the page ends before (a page's
        ``previous_cursor``); ``None`` for the last page of the list.
    :param param: the parameter that carried the cursor, to name it in an error.
    :returns: the page; its ``previous_cursor`` is ``None`` when no row comes
        before it, its ``next_cursor`` is ``None`` when it is the last page.
    :raises BadRequest: the cursor does not belong to this list and its sort.
    """
    with _computed_in_range(connection, query):
        return _run_list_before(connection, entity, query, before, param)


def _run_list_before(
    connection: sa.Connection,
    entity: EntityDef,
    query: ListQuery,
    before: str | None,
    param: str,
) -> Page:
    table = entity.table
    where = _where(entity, query)
    statement = sa.select(table).where(*where)
    if before is not None:
        values, first_id = _decode_cursor(query, before, param)
        statement = statement.where(_before(table, query, values, first_id))
    statement = statement.order_by(*_order(table, query, backward=True))
    rows = list(connection.execute(statement.limit(query.limit + 1)).mappings())
    more = len(rows) > query.limit
    rows = rows[: query.limit][::-1]
    previous_cursor = _encode_cursor(query, rows[0]) if more else None
    # The row the cursor names comes after this page (unless it was deleted
    # since, and then the next page is merely empty).
    next_cursor = _encode_cursor(query, rows[-1]) if before and rows else None
    return _page(connection, entity, query, rows, where, next_cursor, previous_cursor)


def _page(
    connection: sa.Connection,
    entity: EntityDef,
    query: ListQuery,
    rows: Sequence[sa.RowMapping],
    where: list[sa.ColumnElement[bool]],
    next_cursor: str | None,
    previous_cursor: str | None,
) -> Page:
    total = None
    if query.count:
        total = connection.execute(
            sa.select(sa.func.count()).select_from(entity.table).where(*where)
        ).scalar_one()
    records = [record_json(entity, row) for row in rows]
    if query.fields is not None:
        keep = ["id", *query.fields]
        records = [{name: record[name] for name in keep} for record in records]
    return Page(records, next_cursor, total, previous_cursor)


SEARCH_TYPES = frozenset({"text", "email", "phone", "url", "autonumber"})
#: The most words a quick search takes.
MAX_SEARCH_WORDS = 10


def search_words(text: str) -> list[str]:
    """Return the words of a quick search.

    :raises BadRequest: there are more than :data:`MAX_SEARCH_WORDS`; a search
        that left some out would show rows that lack them.
    """
    words = text.split()
    if len(words) > MAX_SEARCH_WORDS:
        raise BadRequest(f"Search: enter at most {MAX_SEARCH_WORDS} words.")
    return words


def search_condition(entity: EntityDef, text: str) -> sa.ColumnElement[bool] | None:
    """Quick search: every word appears in one of the entity's short text fields.

    Case is ignored the same way on every database (see :func:`_folded`); blank
    text searches nothing and returns ``None``.

    :raises BadRequest: the search has too many words (:func:`search_words`).
    """
    words = search_words(text)
    names = [
        name for name, spec in entity.fields.items() if spec["type"] in SEARCH_TYPES
    ]
    if not words or not names:
        return None
    table = entity.table
    clauses = []
    for word in words:
        needle = _folded_text(f"%{_escape_like(word)}%")
        clauses.append(
            sa.or_(
                *(_folded(table.c[name]).like(needle, escape="\\") for name in names)
            )
        )
    return sa.and_(*clauses)


def display_names(
    connection: sa.Connection,
    catalog: Catalog,
    entity: EntityDef,
    records: Sequence[Mapping[str, Any]],
    fields: Sequence[str] | None = None,
) -> dict[str, dict[int, str]]:
    """Return the display name of every record the lookups of ``records`` point to.

    One query per target entity, whatever the number of records, so a page costs
    the same number of statements for 5 rows or 500.

    :param fields: the lookup fields to resolve (default: all of them).
    """
    wanted: dict[str, set[int]] = {}
    for name in fields if fields is not None else list(entity.fields):
        spec = entity.fields.get(name)
        if spec is None or spec["type"] != "lookup":
            continue
        ids = {record[name] for record in records if record.get(name) is not None}
        if ids:
            wanted.setdefault(spec["target"], set()).update(ids)
    names: dict[str, dict[int, str]] = {}
    for target_name, ids in wanted.items():
        target = catalog.entities.get(target_name)
        if target is None or target.removed:
            continue
        names[target_name] = names_of(connection, target, ids)
    return names


def names_of(
    connection: sa.Connection, target: EntityDef, ids: Iterable[int]
) -> dict[int, str]:
    """Display names of some records of one entity, by id.

    A record whose display field is blank, or hidden from the caller, goes by
    its entity's label and id (``Opportunity #3``), as its own page names it.
    """
    table = target.table
    shown = target.display_field
    named = shown if shown and shown in target.fields else None
    column = table.c[named] if named else table.c.id
    rows = connection.execute(
        sa.select(table.c.id, column).where(
            table.c.id.in_(list(ids)), *access_where(target)
        )
    ).all()
    label = target.label
    return {
        int(record_id): str(value)
        if named and value not in (None, "")
        else f"{label} #{record_id}"
        for record_id, value in rows
    }


LOOKUP_LIMIT = 10


def _name_column(entity: EntityDef) -> sa.ColumnElement[Any]:
    shown = entity.display_field
    if shown and shown in entity.fields:
        column = entity.table.c[shown]
        return column if isinstance(column.type, sa.Text) else sa.cast(column, sa.Text)
    return sa.cast(entity.table.c.id, sa.Text)


def lookup_query(
    connection: sa.Connection,
    entity: EntityDef,
    text: str,
    *,
    limit: int = LOOKUP_LIMIT,
) -> sa.Select[Any]:
    """Return the statement :func:`lookup_matches` runs (``id``, ``name``)."""
    column = _name_column(entity)
    select = sa.select(entity.table.c.id, column.label("name")).where(
        *access_where(entity)
    )
    if entity.display_field not in entity.fields:
        # Records go by their label and id (see names_of): they come in the
        # order of their ids, not of the ids' text (#1, #10, #2).
        if text.strip():
            parts = name_conditions(connection, column, text.strip())
            select = select.where(sa.or_(*parts))
        return select.order_by(entity.table.c.id).limit(limit)
    order = [name_order(connection, column), entity.table.c.id]
    if not text.strip():
        return select.order_by(*order).limit(limit)
    parts = name_conditions(connection, column, text.strip())
    if len(parts) == 1:
        return select.where(parts[0]).order_by(*order).limit(limit)
    # Each part is one index range read in order; the first ``limit`` of all of
    # them are among the first ``limit`` of each.
    found = sa.union_all(
        *(
            sa.select(select.where(part).order_by(*order).limit(limit).subquery())
            for part in parts
        )
    ).subquery()
    return (
        sa.select(found.c.id, found.c.name)
        .order_by(name_order(connection, found.c.name), found.c.id)
        .limit(limit)
    )


def lookup_matches(
    connection: sa.Connection,
    entity: EntityDef,
    text: str,
    *,
    limit: int = LOOKUP_LIMIT,
) -> list[tuple[int, str]]:
    """Return ``(id, display name)`` of the records whose name starts with ``text``.

    Case is ignored; the first ``limit`` are returned by name. A display field that
    holds text is searched through its index (see :mod:`.search_index`); blank
    text lists the first records by name. A record whose display field is blank,
    or hidden from the caller, goes by its entity's label and id, as
    :func:`names_of` names it.
    """
    statement = lookup_query(connection, entity, text, limit=limit)
    named = entity.display_field in entity.fields
    return [
        (
            int(record_id),
            str(value) if named and value else f"{entity.label} #{record_id}",
        )
        for record_id, value in connection.execute(statement).all()
    ]


def records_named(connection: sa.Connection, entity: EntityDef, name: str) -> list[int]:
    """Return the ids of up to two records whose display name is ``name``, any case.

    A record that goes by its entity's label and id (``Account #3``, see
    :func:`names_of`) is found by that name too, as the pages show it.
    """
    text = name.strip()
    conditions = name_conditions(connection, _name_column(entity), text, exact=True)
    statement = (
        sa.select(entity.table.c.id)
        .where(sa.or_(*conditions), *access_where(entity))
        .limit(2)
    )
    found = [int(record_id) for record_id in connection.execute(statement).scalars()]
    unnamed = _unnamed_id(entity, text)
    if unnamed is None or unnamed in found or len(found) > 1:
        return found

    shown = names_of(connection, entity, [unnamed]).get(unnamed)
    if shown is not None and shown.lower() == text.lower():
        found.append(unnamed)
    return found


def _unnamed_id(entity: EntityDef, text: str) -> int | None:
    """The id in ``text`` when it is written as a record without a name is
    named (``Account #3``, in any case)."""
    prefix = f"{entity.label} #"
    number = text[len(prefix) :]
    if text[: len(prefix)].lower() != prefix.lower() or not ascii_digits(number):
        return None
    return int(number) if len(number) < 19 else None
