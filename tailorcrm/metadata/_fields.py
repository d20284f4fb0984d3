"""Field types: how each type is stored, checked and written out as JSON.

A :class:`FieldType` knows the column type a field needs, the options that make sense
for it, and how to turn an incoming JSON value into the Python value stored in the
column. The record schemas in :mod:`._schemas` wrap these checks in marshmallow fields.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

TEXT_TYPES = frozenset({"text", "textarea", "email", "phone", "url"})
NUMBER_TYPES = frozenset({"integer", "decimal", "currency", "percent"})
DECIMAL_TYPES = frozenset({"decimal", "currency", "percent"})
CHOICE_TYPES = frozenset({"picklist", "multi_picklist"})
ALL_TYPES = frozenset(
    TEXT_TYPES
    | NUMBER_TYPES
    | CHOICE_TYPES
    | {"boolean", "date", "datetime", "lookup", "autonumber"}
)
#: Types a list can be sorted by: all but multi-picklists.
SORTABLE_TYPES = ALL_TYPES - {"multi_picklist"}

# PostgreSQL's b-tree entries must stay under about 2,700 bytes; 500 characters of up
# to four bytes each keep well within it. Longer text is neither unique nor searched
# through an index.
MAX_INDEXED_LENGTH = 500


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is digits 0 to 9 only: ``str.isdigit`` also takes ``²`` and
    ``①``, which ``int`` cannot read, and full-width digits, which it reads."""
    return text.isascii() and text.isdigit()


_PLAIN_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


def plain_decimal(text: str) -> bool:
    """Whether ``text`` is a number as list filters take it: digits with an
    optional sign and point, without the exponents and underscores that
    ``Decimal`` reads besides."""
    return _PLAIN_DECIMAL.fullmatch(text) is not None


_PLAIN_INTEGER = re.compile(r"[+-]?[0-9]+")


def plain_integer(text: str) -> bool:
    """Whether ``text`` is a whole number as list filters take it: digits with an
    optional sign, and no point (``12.0`` is refused as ``12.5`` is)."""
    return _PLAIN_INTEGER.fullmatch(text) is not None


DEFAULT_MAX_LENGTH = {
    "text": 255,
    "textarea": 32000,
    "email": 254,
    "phone": 40,
    "url": 2048,
}
DEFAULT_PRECISION = {"decimal": (15, 4), "currency": (14, 2), "percent": (5, 2)}
INTEGER_LIMIT = 2**63 - 1
_INTEGER_DIGITS = len(str(INTEGER_LIMIT))
_MAX_DIGITS = 15

# Options that only make sense for some types; anything else is refused so that a
# misplaced option is never silently ignored.
OPTION_TYPES: dict[str, frozenset[str]] = {
    "max_length": TEXT_TYPES,
    "min": NUMBER_TYPES,
    "max": NUMBER_TYPES,
    "precision": DECIMAL_TYPES,
    "scale": DECIMAL_TYPES,
    "options": CHOICE_TYPES,
    "target": frozenset({"lookup"}),
    "on_delete": frozenset({"lookup"}),
    "prefix": frozenset({"autonumber"}),
    "digits": frozenset({"autonumber"}),
    "currency_code": frozenset({"currency"}),
}

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
# An area code may open a number in brackets: "(503) 555-9831".
_PHONE = re.compile(
    r"^\+?\(?[0-9][0-9 ().\-/]*(\s*(x|ext\.?)\s*[0-9]+)?$", re.IGNORECASE
)
_DECIMAL_TEXT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: A date and time as an import reads it: ``T`` or a space, seconds and their
#: decimals optional, ``Z`` or an offset of hours and minutes. Python's own reader
#: takes more (``10:00:00,5``, ``+02:00:30``, ``10:00:00.Z``), which neither an
#: import nor the rules read as a date and time.
_ISO_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
    r"(?::[0-9]{2}(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}(?::?(?P<minutes>[0-9]{2}))?)?"
)


def int_of_digits(text: str) -> int | None:
    """The number that a whole number written in digits (with a sign or not)
    writes, or ``None`` when it has more digits, leading zeros aside, than the
    largest one an integer field holds: such a number is out of range, and
    Python's ``int`` refuses text of more than 4,300 digits (leading zeros
    included) with an error of its own, so it is told apart before ``int``
    reads it."""
    text = text.strip()
    digits = text.lstrip("+-").lstrip("0") or "0"
    if len(digits) > _INTEGER_DIGITS:
        return None
    return -int(digits) if text.startswith("-") else int(digits)


class FieldValueError(ValueError):
    """A value that does not fit its field; ``code`` says which rule it broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def column_type(spec: dict[str, Any]) -> sa.types.TypeEngine[Any]:
    """Return the SQLAlchemy column type for a field document."""
    kind = spec["type"]
    if kind in TEXT_TYPES or kind in ("picklist", "autonumber"):
        return sa.Text()
    if kind == "integer":
        return sa.BigInteger()
    if kind in DECIMAL_TYPES:
        precision, scale = precision_scale(spec)
        return sa.Numeric(precision, scale, asdecimal=True)
    if kind == "boolean":
        return sa.Boolean()
    if kind == "date":
        return sa.Date()
    if kind == "datetime":
        return sa.DateTime()
    if kind == "multi_picklist":
        # A missing value is SQL NULL, not the JSON text 'null', so that isnull
        # filters see it.
        return sa.JSON(none_as_null=True)
    if kind == "lookup":
        return ID_TYPE
    raise ValueError(f"unknown field type {kind!r}")


def precision_scale(spec: dict[str, Any]) -> tuple[int, int]:
    default_precision, default_scale = DEFAULT_PRECISION[spec["type"]]
    precision = spec.get("precision", default_precision)
    return precision, spec.get("scale", min(default_scale, precision))


def max_length(spec: dict[str, Any]) -> int | None:
    if spec["type"] not in TEXT_TYPES:
        return None
    return int(spec.get("max_length", DEFAULT_MAX_LENGTH[spec["type"]]))


def option_values(spec: dict[str, Any]) -> list[str]:
    return [option["value"] for option in spec.get("options", ())]


def convert(spec: dict[str, Any], value: Any) -> Any:
    """Turn a JSON value into the value stored for the field, or raise.

    ``None`` is returned unchanged; required-ness is checked by the caller.

    :raises FieldValueError: the value has the wrong type or breaks a limit.
    """
    if value is None:
        return None
    kind = spec["type"]
    if kind in TEXT_TYPES:
        return _convert_text(spec, value)
    if kind == "integer":
        return _check_range(spec, _convert_integer(value))
    if kind in DECIMAL_TYPES:
        return _check_range(spec, _convert_decimal(spec, value))
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldValueError("invalid_boolean", "Enter true or false.")
        return value
    if kind == "date":
        return convert_date(value)
    if kind == "datetime":
        return convert_datetime(value)
    if kind == "picklist":
        return _convert_choice(spec, value)
    if kind == "multi_picklist":
        return _convert_choices(spec, value)
    if kind == "lookup":
        return _convert_reference(value)
    raise FieldValueError("read_only", "This field is set by the system.")


def to_json(spec: dict[str, Any], value: Any) -> Any:
    """Return the JSON form of a stored value."""
    if value is None:
        return None
    kind = spec["type"]
    if kind in DECIMAL_TYPES:
        # Precision is capped at 15 digits, so a float carries the value exactly.
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        return value.isoformat()
    if kind == "datetime":
        return value.replace(tzinfo=None).isoformat() + "Z"
    return value


def _convert_text(spec: dict[str, Any], value: Any) -> str | None:
    if not isinstance(value, str):
        raise FieldValueError("invalid_text", "Enter text.")
    if not value.strip():
        # Blank is blank: an empty string, or one of spaces only, is stored as
        # null, so that "no value" has one meaning for filters, unique fields,
        # required checks and rules, whichever path the value came in by.
        return None
    if spec["type"] != "textarea":
        # One line of text is kept without the spaces around it, as forms and
        # imports read it, so that "Acme " is "Acme" to unique fields, lookups by
        # name and rules on every path, and an exported file imports unchanged.
        # Long text keeps what it is given, as on every path.
        value = value.strip()
    if "\x00" in value:
        raise FieldValueError("invalid_text", "Text cannot hold the NUL character.")
    if _SURROGATE.search(value):
        raise FieldValueError(
            "invalid_text", "Text holds a broken character (a lone UTF-16 surrogate)."
        )
    limit = max_length(spec)
    if limit is not None and len(value) > limit:
        raise FieldValueError(
            "too_long",
            f"Enter at most {limit} characters (this value has {len(value)}).",
        )
    kind = spec["type"]
    if kind == "email" and not _EMAIL.match(value):
        raise FieldValueError("invalid_email", f"{value!r} is not an email address.")
    if kind == "phone" and not _PHONE.match(value):
        raise FieldValueError("invalid_phone", f"{value!r} is not a phone number.")
    if kind == "url":
        try:
            parts = urlsplit(value)
        except ValueError:
            raise FieldValueError(
                "invalid_url", f"{value!r} is not an http or https address."
            ) from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FieldValueError(
                "invalid_url", f"{value!r} is not an http or https address."
            )
    return value


def _convert_integer(value: Any) -> int:
    if isinstance(value, float | Decimal) and _is_whole(value):
        # The API reads a JSON number written with a point or an exponent as a
        # Decimal (so money stays exact): 7.0 and 1e1 are whole numbers all the
        # same. Their size is judged first, so that 1e9999 is not turned into an
        # int of thousands of digits.
        if abs(Decimal(value)) > INTEGER_LIMIT:
            raise _integer_out_of_range()
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldValueError("invalid_integer", "Enter a whole number.")
    if abs(value) > INTEGER_LIMIT:
        raise _integer_out_of_range()
    return value


def _is_whole(number: float | Decimal) -> bool:
    if isinstance(number, float):
        return number.is_integer()
    return number.is_finite() and number == number.to_integral_value()


def _integer_out_of_range() -> FieldValueError:
    return FieldValueError(
        "out_of_range",
        f"Enter a whole number between -{INTEGER_LIMIT:,} and {INTEGER_LIMIT:,}.",
    )


def _convert_decimal(spec: dict[str, Any], value: Any) -> Decimal:
    if isinstance(value, bool):
        raise FieldValueError("invalid_decimal", "Enter a number.")
    if isinstance(value, str):
        if not _DECIMAL_TEXT.match(value.strip()):
            raise FieldValueError("invalid_decimal", f"{value!r} is not a number.")
        number = Decimal(value.strip())
    elif isinstance(value, int | float | Decimal):
        try:
            number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise FieldValueError("invalid_decimal", "Enter a number.") from None
        if not number.is_finite():
            raise FieldValueError("invalid_decimal", "Enter a finite number.")
    else:
        raise FieldValueError("invalid_decimal", "Enter a number.")
    precision, scale = precision_scale(spec)
    # Magnitude first, from the exponent alone: arithmetic on a number such as
    # 1e9999999 would overflow the decimal context.
    if number and number.adjusted() >= precision - scale:
        raise FieldValueError(
            "out_of_range",
            f"Enter at most {precision - scale} digits before the point.",
        )
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -scale:
        # No more decimals than the scale: nothing to check further.
        return number
    with localcontext() as context:
        context.prec = 2 * _MAX_DIGITS
        context.Emin = -(10**9)
        exact = number.quantize(Decimal(1).scaleb(-scale))
        if exact != number:
            raise FieldValueError(
                "too_many_decimals", f"Enter at most {scale} digits after the point."
            )
    return exact


def _check_range(spec: dict[str, Any], number: int | Decimal) -> Any:
    low, high = spec.get("min"), spec.get("max")
    if low is not None and number < Decimal(str(low)):
        raise FieldValueError("too_small", f"Enter a value of at least {low}.")
    if high is not None and number > Decimal(str(high)):
        raise FieldValueError("too_large", f"Enter a value of at most {high}.")
    return number


def convert_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise FieldValueError("invalid_date", "Enter a date without a time.")
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise FieldValueError("invalid_date", "Enter a date as YYYY-MM-DD.")
    # Spaces around a date are no part of it, as a date and time, a form and an
    # import read it: " 2024-05-01 " is 1 May on every path.
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        raise FieldValueError("invalid_date", "Enter a date as YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FieldValueError(
            "invalid_date", f"{text} is not a date that exists."
        ) from None


def date_text_as_moment(spec: Mapping[str, Any], value: Any) -> Any:
    """A value a rule gives for ``spec``: ISO date text (``2030-01-01``) for a
    datetime field stands for midnight UTC of that day, as a date value does;
    anything else is returned as it is. Spaces around the date are no part of
    it, as :func:`convert` reads a date."""
    if spec["type"] != "datetime" or not isinstance(value, str):
        return value
    text = value.strip()
    if len(text) != 10 or not _ISO_DATE.fullmatch(text):
        return value
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return value
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def rounded_to_scale(spec: Mapping[str, Any], value: Any) -> Any:
    """A number a rule gives for ``spec``, rounded to the field's scale (half away
    from zero), as a whole number for an integer field; anything else, and any
    value for a field that holds no number, is returned as it is.

    :func:`convert` still judges the result: a number with more digits before the
    point than the field keeps is refused, rounded or not.
    """
    kind = spec["type"]
    if kind not in DECIMAL_TYPES and kind != "integer":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return value
    if kind == "integer":
        scale = 0
    else:
        scale = precision_scale(spec if type(spec) is dict else dict(spec))[1]
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        rounded = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return value
    if kind == "integer":
        if not rounded.is_finite():
            # Not a number: the field's own check refuses it.
            return value
        # A whole number, whatever its size: the field's check says its range.
        return int(rounded)
    return rounded


def convert_datetime(value: Any) -> dt.datetime:
    """Return a naive UTC datetime; naive input is taken as UTC."""
    if isinstance(value, str):
        text = value.strip()
        shape = _ISO_DATETIME.fullmatch(text)
        if shape is None and _ISO_DATETIME.fullmatch(text.upper()):
            # ISO 8601 writes them in capitals, and so do the rules, in Python and
            # in the browser; RFC 3339 allows small ones, which no path reads.
            raise FieldValueError(
                "invalid_datetime",
                "Write T and Z in capitals, as in YYYY-MM-DDTHH:MM:SSZ.",
            )
        if shape is None or int(shape["minutes"] or 0) > 59:
            # An offset of +00:60 is no offset: Python would read it as an hour
            # more, where ISO 8601 and the rules' evaluators see no date.
            raise FieldValueError(
                "invalid_datetime", "Enter a date and time as YYYY-MM-DDTHH:MM:SSZ."
            )
        fraction = shape["fraction"] or ""
        if len(fraction) > 6:
            # Python would cut the digits past the sixth without a word; a value is
            # kept as given or refused, as an import refuses it.
            raise FieldValueError(
                "invalid_datetime",
                "Enter at most 6 decimals of a second (microseconds); this value "
                f"has {len(fraction)}.",
            )
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            raise FieldValueError(
                "invalid_datetime", f"{text} is not a date and time that exists."
            ) from None
    if not isinstance(value, dt.datetime):
        raise FieldValueError(
            "invalid_datetime", "Enter a date and time as YYYY-MM-DDTHH:MM:SSZ."
        )
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise FieldValueError(
                "invalid_datetime", "This date and time is out of range."
            ) from None
    return value


def _convert_choice(spec: dict[str, Any], value: Any) -> str:
    allowed = option_values(spec)
    if not isinstance(value, str) or value not in allowed:
        raise FieldValueError(
            "invalid_choice",
            f"{value!r} is not one of the choices: {', '.join(allowed)}.",
        )
    return value


def _convert_choices(spec: dict[str, Any], value: Any) -> list[str] | None:
    if not isinstance(value, list):
        raise FieldValueError("invalid_choice", "Enter a list of choices.")
    if not value:
        # An empty choice is blank, and blank is stored as null.
        return None
    chosen = [_convert_choice(spec, item) for item in value]
    if len(set(chosen)) != len(chosen):
        raise FieldValueError("duplicate_choice", "Choose each value only once.")
    return chosen


def _convert_reference(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FieldValueError("invalid_reference", "Enter the id of a record.")
    if value > INTEGER_LIMIT:
        raise FieldValueError("invalid_reference", "Enter the id of a record.")
    return value
