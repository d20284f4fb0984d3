"""JSON read and written as RFC 8259 defines it, for the API and the command line.

Python's :mod:`json` reads more than JSON: ``NaN``, ``Infinity``, and numbers too
large for a float (``1e999``) as infinity. Stored, such a value comes back out as
``NaN`` or ``Infinity``, which strict parsers reject and PostgreSQL refuses to
store. It also keeps the last of two values given under one name, where RFC 8259
leaves what happens open: the other is lost without a word, and another reader
of the same text may keep the first. A text nested deeply enough runs the
parser, or a recursive walk after it, out of stack. Every JSON text from outside
(a request body, a metadata file) is read here, and metadata leaving the system is
written here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from decimal import Decimal
from typing import Any

from ..errors import Problem
from ..metadata import json_path
from ..rules_engine import MAX_DEPTH

#: The deepest nesting of arrays and objects a JSON text may have. A condition
#: within the rules engine's limit (:data:`MAX_DEPTH`), an operation and its list
#: of operands being two levels, fits inside a rule document with room to spare;
#: anything deeper is refused before a recursive validator or writer could run
#: out of stack.
MAX_NESTING = 4 * MAX_DEPTH

_CONSTANTS = ("NaN", "Infinity", "-Infinity")

# A place in a value being walked: the place of its parent and its key there.
_Place = tuple["_Place", str | int] | None


class JSONRefused(ValueError):
    """A text that is not JSON, or a value that JSON cannot hold.

    :ivar problems: what is wrong, each naming where when it can: a JSON path
        such as ``fields[2].max``, or ``line 3, column 7`` for text that does not
        parse.
    """

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(" ".join(str(problem) for problem in problems))
        self.problems = problems

    @property
    def too_deep(self) -> bool:
        """Whether the value nests deeper than :data:`MAX_NESTING`."""
        return any(problem.code == "too_deep" for problem in self.problems)


class _Refused:
    """A number JSON cannot hold, kept as written until its place is known."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _Repeated(dict[str, Any]):
    """An object that gives one or more names twice, kept until its place is
    known."""

    def __init__(self, items: dict[str, Any], *, names: list[str]) -> None:
        super().__init__(items)
        self.names = names


def read_json(text: str | bytes, *, exact_numbers: bool = False) -> Any:
    """Parse a JSON text, refusing what RFC 8259 does not allow.

    :param exact_numbers: read numbers with a fraction as ``Decimal`` (record
        values, so money stays exact) rather than as floats (metadata).
    :raises JSONRefused: the text is not JSON; it holds ``NaN``, ``Infinity``, a
        number too large for a float, a whole number of more digits than Python
        reads (4,300), or an object that gives a name twice (each named by its
        JSON path); or it nests deeper than :data:`MAX_NESTING`.
    """
    try:
        value = json.loads(
            text,
            parse_float=Decimal if exact_numbers else _finite_float,
            parse_int=_whole_number,
            parse_constant=_Refused,
            object_pairs_hook=_object,
        )
    except RecursionError:
        raise JSONRefused([_too_deep()]) from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise JSONRefused([Problem(where, "invalid_json", f"{error.msg}.")]) from None
    except ValueError as error:
        # Text that is not UTF-8.
        raise JSONRefused([Problem(None, "invalid_json", f"{error}.")]) from None

    problems = _refusals(value)
    if problems:
        raise JSONRefused(problems)
    return value


def write_json(value: Any, *, indent: int | None = None) -> str:
    """Return ``value`` as a JSON text, its text as written rather than escaped.

    :raises JSONRefused: the value holds ``NaN`` or an infinity (each named by
        its JSON path), or nests deeper than :data:`MAX_NESTING`; Python's
        :mod:`json` would write the former as ``NaN`` and ``Infinity``.
    """
    problems = _refusals(value)
    if problems:
        raise JSONRefused(problems)
    return json.dumps(value, indent=indent, ensure_ascii=False, allow_nan=False)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) == len(pairs):
        return found
    counts = Counter(name for name, _ in pairs)
    return _Repeated(found, names=[name for name, count in counts.items() if count > 1])


def _whole_number(text: str) -> int | _Refused:
    # Python's int refuses text of more than 4,300 digits (see
    # sys.get_int_max_str_digits), in words meant for the programmer.
    try:
        return int(text)
    except ValueError:
        return _Refused(text)


def _finite_float(text: str) -> float | _Refused:
    number = float(text)
    return number if math.isfinite(number) else _Refused(text)


def _refusals(value: Any) -> list[Problem]:
    """The numbers JSON cannot hold, in document order, or that it nests too deep.

    The walk keeps its own stack, so a value nested deeper than Python's
    recursion limit is measured all the same.
    """
    problems = []
    pending: list[tuple[Any, int, _Place]] = [(value, 1, None)]
    while pending:
        item, depth, place = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                return [_too_deep()]
            if isinstance(item, _Repeated):
                problems += [
                    Problem(
                        json_path(_parts((place, name))),
                        "duplicate_key",
                        f"{name!r} is given more than once; give each name once.",
                    )
                    for name in item.names
                ]
            children = item.items() if isinstance(item, dict) else enumerate(item)
            pending += [
                (child, depth + 1, (place, key))
                for key, child in reversed(list(children))
            ]
            continue

        reason = _reason(item)
        if reason is not None:
            problems.append(Problem(json_path(_parts(place)), "not_finite", reason))
    return problems


def _reason(item: Any) -> str | None:
    """Why JSON cannot hold a number, or ``None`` when it can (or is no number)."""
    if isinstance(item, _Refused):
        if item.literal in _CONSTANTS:
            return f"{item.literal} is not a JSON number."
        digits = item.literal.lstrip("-")
        if digits.isdigit():
            return f"A whole number of {len(digits):,} digits is too large."
        return f"{item.literal} is too large a number."
    if isinstance(item, float) and not math.isfinite(item):
        name = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
        return f"{name} is not a JSON number."
    return None


def _parts(place: _Place) -> list[str | int]:
    parts: list[str | int] = []
    while place is not None:
        place, key = place
        parts.append(key)
    return parts[::-1]


def _too_deep() -> Problem:
    message = f"Arrays and objects nest more than {MAX_NESTING} deep."
    return Problem(None, "too_deep", message)
