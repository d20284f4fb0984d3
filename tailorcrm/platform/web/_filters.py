"""List filters as the web pages carry them, and as saved views store them.

A list page keeps its filters in its address, the way the API takes them:
``field__op=value``, one parameter per filter. A saved view stores a JSON condition
in the rules language instead. :func:`condition_of` turns a page's filters into that
condition, ``{"and": [...]}`` with one item per filter, and :func:`filters_of` turns
such a condition back into parameters, so a view opened again shows the same
filters as removable chips. A condition that is not of that shape (written by hand
or through the API) travels as ``filter=<JSON>`` and shows as one chip.

The translation keeps the API's meaning of every operator: ``contains`` and
``startswith`` ignore case, ``ne`` also selects blank values, and ``lt``/``gt`` and
their kin never select a blank value (the rules language would count a blank number
as 0, so those carry an explicit "is not blank").

The quick search (``q``) is kept the same way: each word becomes one item, an
``or`` of a case-ignoring ``contains`` on every field the search looks in (see
:func:`search_items`), and :func:`split_search` finds those items again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from werkzeug.datastructures import MultiDict

from ...errors import BadRequest, Problem
from ...metadata import EntityDef
from ...renderer import BLANK, NOT_BLANK, builder_operators, filter_operators
from ...rules_engine import reads_as_date
from ..query import (
    MAX_SEARCH_WORDS,
    RESERVED_PARAMS,
    SEARCH_TYPES,
    SYSTEM_SPECS,
    parse_list_args,
    search_words,
)
from ..strictjson import MAX_NESTING, JSONRefused, read_json

#: Parameters of a list page that are neither filters nor the query builder's.
PAGE_PARAMS = frozenset(
    {
        "q",
        "start",
        "before",
        "last",
        "view",
        "add_field",
        "add_op",
        "add_value",
        "add_text",
        "add_id",
    }
)
_COMPARISONS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_ORDERED = {"lt", "lte", "gt", "gte"}
_BY_SYMBOL = {symbol: op for op, symbol in _COMPARISONS.items()}
# Text that reads as a date is compared as text, as the API compares it: ``==``
# would compare it as a moment (2024-05-31 equals 2024-05-31T00:00:00Z), which the
# SQL of a list cannot do.
_AS_TEXT = {"eq": "===", "ne": "!=="}
_BY_TEXT_SYMBOL = {symbol: op for op, symbol in _AS_TEXT.items()}
_TEMPORAL = ("date", "datetime")
_TEXT_OPS = {"contains": "contains", "startswith": "starts_with"}
_BY_TEXT_OP = {name: op for op, name in _TEXT_OPS.items()}
_EXACT_CONTAINS = "contains_exact"
# An ordered comparison found without the "is not blank" that goes with it.
_BARE = "bare_"
# An equality that compares text as text (``===``, ``!==``).
_STRICT = "strict_"

Pairs = list[tuple[str, str]]


def field_filters(params: MultiDict[str, str]) -> Pairs:
    """Return the ``field__op=value`` parameters among a page's parameters."""
    return [
        (key, value)
        for key, value in params.items(multi=True)
        if key not in PAGE_PARAMS and key not in RESERVED_PARAMS
    ]


def spec_of(entity: EntityDef, name: str) -> dict[str, Any] | None:
    return entity.fields.get(name) or SYSTEM_SPECS.get(name)


def split_param(param: str) -> tuple[str, str]:
    name, _, op = param.partition("__")
    return name, op or "eq"


def param_label(entity: EntityDef, param: str) -> str | None:
    """The label of the field that a list's filter parameter (``amount__gte``)
    reads, as the chips name it; None for the list's own parameters (``sort``
    is the order, ``sort__gte`` a filter of a field named so) and unknown ones."""
    if not param or param in RESERVED_PARAMS:
        return None
    spec = spec_of(entity, split_param(param)[0])
    return str(spec["label"]) if spec else None


# -- page filters -> condition -----------------------------------------------------


def condition_of(
    entity: EntityDef,
    pairs: Sequence[tuple[str, str]],
    custom: Any,
    search: str = "",
) -> Any:
    """Return the JSON condition of a page's filters, ``filter=`` and search.

    :param custom: the page's ``filter=`` condition, already parsed, or ``None``.
    :param search: the page's quick search (``q``); its items come last.
    :returns: ``{"and": [...]}``, or ``None`` when the page has no filter.
    :raises BadRequest: a filter does not parse, as the list page would say.
    """
    items: list[Any] = []
    if isinstance(custom, dict) and list(custom) == ["and"]:
        if isinstance(custom["and"], list) and custom["and"]:
            items += custom["and"]
        else:
            items.append(custom)
    elif custom is not None:
        items.append(custom)
    for param, raw in pairs:
        query = parse_list_args(entity, {param: [raw]})
        for spec, op, value in query.filters:
            items.append(_item(spec, op, value))
    items += search_items(entity, search)
    return {"and": items} if items else None


def search_items(entity: EntityDef, text: str) -> list[Any]:
    """Return the quick search ``text`` as items of a condition, one per word.

    Each word must appear, case ignored, in one of the fields the search looks
    in, as :func:`..query.search_condition` has it: ``{"or": [{"contains":
    [{"lower": {"var": field}}, word]}, ...]}``.

    :raises BadRequest: the search has more words than it takes, as the list
        refuses it.
    """
    words = search_words(text.lower())
    names = _search_fields(entity)
    if not names:
        return []
    return [
        {"or": [{"contains": [{"lower": {"var": name}}, word]} for name in names]}
        for word in words
    ]


def split_search(entity: EntityDef, items: Any) -> tuple[str, list[Any]]:
    """Find the items :func:`search_items` wrote among a condition's items.

    :param items: the list of an ``{"and": [...]}`` condition.
    :returns: the search text they make (``""`` for none), and the other items
        in their order. An item written for fields the entity searches no more
        stays among the others: it still selects what it did, as a condition.
    """
    if not isinstance(items, list):
        return "", []
    names = _search_fields(entity)
    words: list[str] = []
    rest = []
    for item in items:
        word = _search_word(item, names)
        if word is None or len(words) >= MAX_SEARCH_WORDS:
            rest.append(item)
        else:
            words.append(word)
    return " ".join(words), rest


def _search_fields(entity: EntityDef) -> list[str]:
    return [
        name for name, spec in entity.fields.items() if spec["type"] in SEARCH_TYPES
    ]


def _search_word(item: Any, names: list[str]) -> str | None:
    if not names or not isinstance(item, dict) or list(item) != ["or"]:
        return None
    parts = item["or"]
    if not isinstance(parts, list) or len(parts) != len(names):
        return None
    word = None
    for name, part in zip(names, parts, strict=True):
        shape = _shape_of(part)
        if shape is None or shape[:2] != (name, "contains"):
            return None
        if word is not None and shape[2] != word:
            return None
        word = shape[2]
    if not word or word.split() != [word]:
        return None
    return word


def _item(spec: dict[str, Any], op: str, value: Any) -> Any:
    var = {"var": spec["name"]}
    if op == "isnull":
        blank = {"is_blank": var}
        return blank if value else {"!": blank}
    if op in _TEXT_OPS:
        if spec["type"] == "multi_picklist":
            return {"contains": [var, value]}
        return {_TEXT_OPS[op]: [{"lower": var}, value.lower()]}
    if op == "in":
        items = [_json_value(item) for item in value]
        if spec["type"] in ("date", "datetime"):
            # ``in`` compares items exactly, and a date is no text: each value is
            # compared as a moment, as ``eq`` compares it.
            return {"or": [{"==": [var, item]} for item in items]}
        return {"in": [var, items]}
    symbol = _COMPARISONS[op]
    if op in _AS_TEXT and spec["type"] not in _TEMPORAL and _date_like(value):
        symbol = _AS_TEXT[op]
    comparison = {symbol: [var, _json_value(value)]}
    if op in _ORDERED:
        return {"and": [{"!": {"is_blank": var}}, comparison]}
    return comparison


def _date_like(value: Any) -> bool:
    return isinstance(value, str) and reads_as_date(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# -- condition -> page filters -----------------------------------------------------


def filters_of(entity: EntityDef, condition: Any) -> Pairs | None:
    """Return a condition as ``field__op=value`` parameters, if it has that shape.

    :returns: the parameters (none for no condition), or ``None`` when the
        condition says more than a page's filters can, such as an ``or``.
    """
    if condition is None:
        return []
    items = [condition]
    if isinstance(condition, dict) and list(condition) == ["and"]:
        items = condition["and"]
        if not isinstance(items, list) or not items:
            return None
    pairs = []
    for item in items:
        pair = _pair_of(entity, item)
        if pair is None:
            return None
        pairs.append(pair)
    return pairs


def _pair_of(entity: EntityDef, item: Any) -> tuple[str, str] | None:
    found = _shape_of(item)
    if found is None:
        return None
    name, op, raw = found
    spec = spec_of(entity, name)
    if spec is None:
        return None
    if op.startswith(_STRICT):
        # Only what _item writes: date-like text compared as text on a field
        # that is no date.
        op = op.removeprefix(_STRICT)
        if spec["type"] in _TEMPORAL or not reads_as_date(raw):
            return None
    if op.startswith(_BARE):
        # Without "is not blank" a blank number counts as 0 and would be selected
        # by "< 5"; a blank date is never selected, as the API's filter has it.
        if spec["type"] not in ("date", "datetime"):
            return None
        op = op.removeprefix(_BARE)
    # Text filters ignore case; only a multi-picklist's "contains" matches exactly.
    if spec["type"] == "multi_picklist":
        if op in _TEXT_OPS:
            return None
        if op == _EXACT_CONTAINS:
            op = "contains"
    if op not in filter_operators(spec["type"]):
        return None
    param = f"{name}__{op}"
    try:
        parsed = parse_list_args(entity, {param: [raw]})
    except BadRequest:
        return None
    [written] = parsed.filters
    if op == "in" and _item(*written) != item:
        # ``in`` finds an item as ``===`` does: a list the page's filter would
        # not write selects other records (the choice "1" is not the number 1,
        # the number 1 is not the text "1").
        return None
    if (
        spec["type"] in ("picklist", "multi_picklist")
        and op in ("eq", "ne", "contains")
        and written[2] != raw
    ):
        # The page's filter reads a choice's label as the choice (stage=Won);
        # the condition compares the text as written, which no choice is.
        return None
    return param, raw


def _shape_of(item: Any) -> tuple[str, str, str] | None:
    """Recognise one item that :func:`_item` writes: ``(field, op, raw value)``.

    A ``contains`` that does not fold case (what a multi-picklist filter writes)
    comes back as :data:`_EXACT_CONTAINS`, and an ordered comparison without its
    "is not blank" with :data:`_BARE` before the operator.
    """
    if not isinstance(item, dict) or len(item) != 1:
        return None
    [(operator, args)] = item.items()
    if operator == "is_blank":
        name = _var(args)
        return (name, "isnull", "true") if name else None
    if operator == "!" and isinstance(args, dict) and list(args) == ["is_blank"]:
        name = _var(args["is_blank"])
        return (name, "isnull", "false") if name else None
    if operator == "and":
        return _guarded(args)
    if not isinstance(args, list) or len(args) != 2:
        return None
    left, right = args
    if operator in _BY_SYMBOL:
        name, raw = _var(left), _raw(right)
        if name is None or raw is None:
            return None
        op = _BY_SYMBOL[operator]
        return name, _BARE + op if op in _ORDERED else op, raw
    if operator in _BY_TEXT_SYMBOL:
        name = _var(left)
        if name is None or not isinstance(right, str) or "\x00" in right:
            return None
        return name, _STRICT + _BY_TEXT_SYMBOL[operator], right
    if operator == "in":
        return _in_shape(left, right)
    if operator not in _BY_TEXT_OP or not isinstance(right, str):
        return None
    if isinstance(left, dict) and list(left) == ["lower"]:
        name = _var(left["lower"])
        if name is None or right != right.lower():
            return None
        return name, _BY_TEXT_OP[operator], right
    name = _var(left)
    if name is None or operator != "contains":
        return None
    return name, _EXACT_CONTAINS, right


def _guarded(args: Any) -> tuple[str, str, str] | None:
    """``{"and": [not blank, comparison]}``: how lt, lte, gt and gte are kept."""
    if not isinstance(args, list) or len(args) != 2:
        return None
    guard, comparison = (_shape_of(arg) for arg in args)
    if guard is None or comparison is None:
        return None
    if guard[1:] != ("isnull", "false") or guard[0] != comparison[0]:
        return None
    name, op, raw = comparison
    op = op.removeprefix(_BARE)
    return (name, op, raw) if op in _ORDERED else None


def _in_shape(left: Any, right: Any) -> tuple[str, str, str] | None:
    name = _var(left)
    if not name or not isinstance(right, list) or not right:
        return None
    values = [_raw(value) for value in right]
    if any(value is None or "," in value for value in values):
        return None
    return name, "in", ",".join(str(value) for value in values)


def _var(expression: Any) -> str | None:
    if not isinstance(expression, dict) or list(expression) != ["var"]:
        return None
    name = expression["var"]
    if isinstance(name, list) and len(name) == 1:
        name = name[0]
    if not isinstance(name, str) or not name or "." in name or "$" in name:
        return None
    return name


def _raw(value: Any) -> str | None:
    """A literal as the text of a query parameter, or ``None`` for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str) and "\x00" not in value:
        return value
    return None


def check_single(params: MultiDict[str, str]) -> None:
    """Refuse a list that gives its sort or its ``filter=`` condition twice.

    The list refuses to guess which one was meant; a view taking the first
    would drop the other without a word.

    :raises BadRequest: naming the parameter, as the form of a view shows it.
    """
    for name in ("sort", "filter"):
        if len(params.getlist(name)) > 1:
            message = "the list gives it more than once; keep one."
            raise BadRequest(
                f"{name}: give this parameter only once.",
                problems=[Problem(name, "repeated", message)],
            )


def parse_custom(text: str | None) -> Any:
    """Parse a page's ``filter=`` parameter (checked later by the query builder).

    It is read as the list reads it (:func:`..strictjson.read_json`), so that a
    view is never saved from a text the list refuses: one that names an
    operation twice would otherwise keep only the last, and ``NaN`` would be a
    number.

    :raises BadRequest: it is not JSON, or it nests deeper than
        :data:`MAX_NESTING`; that is checked before the JSON is parsed.
    """
    if text is None:
        return None
    check_nesting(text)
    try:
        return read_json(text)
    except JSONRefused as error:
        raise BadRequest(
            f"filter: the condition is not valid JSON ({error})."
        ) from None


def check_nesting(text: str) -> None:
    """Refuse a ``filter=`` text that nests deeper than :data:`MAX_NESTING`.

    :raises BadRequest: as the API words it for a condition nested too deeply.
    """
    if nesting(text) > MAX_NESTING:
        raise BadRequest("filter: the condition is nested too deeply.")


def nesting(text: str) -> int:
    """Return how deep the arrays and objects of a JSON text nest, without parsing.

    One pass over the text, with no recursion, so any text can be measured.
    Brackets inside strings do not count; a text that is not JSON gets a number
    all the same, and the parser refuses it afterwards.
    """
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def builder_param(
    entity: EntityDef, name: str, code: str, values: Sequence[str]
) -> tuple[str, str]:
    """Turn what the filter builder sent into one ``field__op=value`` parameter.

    :param code: an API operator, or ``blank``/``notblank``.
    :raises BadRequest: with a message for the person who filled in the builder.
    """
    spec = spec_of(entity, name)
    if spec is None:
        raise BadRequest("Choose a field to filter by.")
    label = str(spec.get("label", name))
    offered = filter_operators(spec["type"])
    if code in (BLANK, NOT_BLANK) and "isnull" in offered:
        return f"{name}__isnull", "true" if code == BLANK else "false"
    if code not in offered or code == "isnull":
        ways = [f"“{text}”" for _, text in builder_operators(spec["type"])]
        if not ways:
            raise BadRequest(f"Choose how to compare {label}.")
        listed = ", ".join(ways[:-1]) + f" or {ways[-1]}" if len(ways) > 1 else ways[0]
        raise BadRequest(f"{label} is not compared that way; choose {listed}.")
    values = [value.strip() for value in values if value.strip()]
    if not values:
        raise BadRequest(f"Enter a value to compare {label} with.")
    if len(values) > 1 and code != "in":
        raise BadRequest(f"Choose one value for {label}, or use “is one of”.")
    if code == "in" and any("," in value for value in values):
        raise BadRequest(f"A value of {label} holds a comma; filter on it with “is”.")
    raw = ",".join(values)
    param = f"{name}__{code}"
    try:
        parse_list_args(entity, {param: [raw]})
    except BadRequest as error:
        message = error.message.removeprefix(f"{param}: ")
        raise BadRequest(f"{label}: {message}") from None
    return param, raw
