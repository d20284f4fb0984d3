"""Values as people read them: money with its symbol, dates in their locale, links.

Formatting works on the API form of a record (``record_json``): dates and datetimes
arrive as ISO text, numbers as ``int``/``float``, lookups as record ids. Nothing here
escapes HTML; the templates do that for every value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from ..metadata import precision_scale

DEFAULT_LOCALE = "en_US"
DEFAULT_CURRENCY = "USD"
# Schemes a value may link to; anything else (``javascript:``, ``data:``) is shown as
# plain text.
SAFE_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class Shown:
    """One value ready for a template: its text, and a link when it has one."""

    text: str
    href: str | None = None
    #: A hint for styling: ``number``, ``boolean``, ``choice``, ``empty``...
    kind: str = "text"
    #: For picklists, the label of each chosen value (shown as badges).
    parts: tuple[str, ...] = ()


EMPTY = Shown("", kind="empty")


def pick_locale(accepted: list[str]) -> str:
    """Return the first locale Babel knows among the browser's preferences."""
    for tag in accepted:
        try:
            return str(Locale.parse(tag.replace("-", "_")))
        except (ValueError, UnknownLocaleError):
            continue
    return DEFAULT_LOCALE


def option_label(spec: Mapping[str, Any], value: str) -> str:
    for option in spec.get("options", ()):
        if option["value"] == value:
            return str(option.get("label") or value)
    return value


def _with_scale(pattern: str, scale: int) -> babel_numbers.NumberPattern:
    # A pattern of its own: a locale's parsed patterns are shared and must not
    # change.
    parsed = babel_numbers.parse_pattern(pattern)
    parsed.frac_prec = (scale, scale)
    return parsed


def format_number(spec: Mapping[str, Any], value: Any, locale: str) -> str:
    """Format a number the way ``locale`` writes it, with the field's scale.

    Money shows its currency's symbol and at least the currency's decimals (more
    when the stored value has them, so a unit price of 0.0125 is not rounded on
    screen); percents are stored as 12.5 for 12.5 %.
    """
    kind = spec["type"]
    number = Decimal(str(value))
    if number.is_zero():
        # Minus zero is zero: a filter of -0 read "> -$0.00".
        number = number.copy_abs()
    if kind == "integer":
        return str(babel_numbers.format_decimal(number, locale=locale))
    if kind == "currency":
        return str(
            babel_numbers.format_currency(
                number, currency_code(spec), locale=locale, decimal_quantization=False
            )
        )
    _, scale = precision_scale(dict(spec))
    found = Locale.parse(locale)
    if kind == "percent":
        pattern = _with_scale(found.percent_formats[None].pattern, scale)
        return str(pattern.apply(number / 100, found))
    pattern = _with_scale(found.decimal_formats[None].pattern, scale)
    return str(pattern.apply(number, found))


def currency_code(spec: Mapping[str, Any]) -> str:
    return str(spec.get("currency_code") or DEFAULT_CURRENCY)


def currency_unit(spec: Mapping[str, Any], locale: str) -> str:
    """How a money field's unit reads next to an input: "$ USD", "€ EUR", "CHF"."""
    code = currency_code(spec)
    symbol = str(babel_numbers.get_currency_symbol(code, locale=locale))
    return code if symbol == code else f"{symbol} {code}"


def format_date(value: str, locale: str) -> str:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return str(babel_dates.format_date(day, format="medium", locale=locale))


def format_datetime(value: str, locale: str) -> str:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    text = babel_dates.format_datetime(
        moment, format="medium", tzinfo=dt.UTC, locale=locale
    )
    return f"{text} UTC"


def format_value(
    spec: Mapping[str, Any],
    value: Any,
    *,
    locale: str = DEFAULT_LOCALE,
    lookup_names: Mapping[int, str] | None = None,
    record_href: str | None = None,
) -> Shown:
    """Return how one field's value reads on a page.

    :param lookup_names: for a lookup, the display name of each target id.
    :param record_href: for a lookup, the address of the record it points to.
    """
    if value is None or value == "" or value == []:
        return EMPTY
    kind = spec["type"]
    if kind in ("integer", "decimal", "currency", "percent"):
        return Shown(format_number(spec, value, locale), kind="number")
    if kind == "boolean":
        return Shown("Yes" if value else "No", kind="boolean")
    if kind == "date":
        return Shown(format_date(str(value), locale), kind="date")
    if kind == "datetime":
        return Shown(format_datetime(str(value), locale), kind="date")
    if kind == "picklist":
        label = option_label(spec, value)
        return Shown(label, kind="choice", parts=(label,))
    if kind == "multi_picklist":
        labels = [option_label(spec, item) for item in value]
        return Shown(", ".join(labels), kind="choice", parts=tuple(labels))
    if kind == "lookup":
        name = (lookup_names or {}).get(value)
        text = name if name else f"#{value}"
        return Shown(text, href=record_href, kind="lookup")
    if kind == "email":
        return Shown(value, href=f"mailto:{value}", kind="link")
    if kind == "phone":
        return Shown(value, href="tel:" + "".join(value.split()), kind="link")
    if kind == "url":
        href = value if value.lower().startswith(SAFE_SCHEMES) else None
        return Shown(value, href=href, kind="link")
    return Shown(str(value), kind="multiline" if kind == "textarea" else "text")
