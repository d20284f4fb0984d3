"""Dates and datetimes: reading ISO 8601 text, calendar arithmetic, differences.

A value is temporal when it is a :class:`datetime.date`, a
:class:`datetime.datetime`, or text in ISO 8601 extended form (``2024-05-31``,
``2024-05-31T14:30``, ``2024-05-31T14:30:00.5+02:00``, ``...Z``). The offset may
also be written ``+0200`` or ``+02``, as Python's ``%z`` writes it and as the API
and an import read it, so that a text is the same moment on every path. Nothing
else is guessed: ``31/05/2024`` or ``20240531`` is not a date. A datetime without
an offset is taken as UTC, which is how the platform stores datetimes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any

UTC = dt.UTC

# An offset is +02:00, +0200 or +02. Its minutes stop at 59: Python's
# fromisoformat would read +00:60 as an hour and +00:99 as 1:39, where ISO 8601
# (and the browser's evaluator) has no date.
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-5][0-9])?)?)?"
)

UNITS = ("days", "months", "years")

# Adding more than this many days (about 27,000 years) can only leave the calendar.
_MAX_DAYS = 10_000_000


def looks_temporal(text: str) -> bool:
    """Cheap test that ``text`` has the shape of an ISO date, before parsing it."""
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and text[0].isdigit()


def parse(value: Any) -> dt.date | None:
    """Return the date or datetime that ``value`` stands for, or ``None``."""
    if isinstance(value, dt.date):
        return value

    if not isinstance(value, str) or not looks_temporal(value):
        return None

    known = _parsed.get(value, _UNSEEN)
    if known is not _UNSEEN:
        return known[0]
    return _remember(value)[0]


def reads_as_date(text: str) -> bool:
    """Whether comparisons in the language read ``text`` as a date or datetime.

    ``==`` compares two such texts as moments, which SQL cannot do on a text
    column; ``===`` compares them as text.
    """
    return parse(text) is not None


def text_instant(text: str) -> dt.datetime | None:
    """``instant(parse(text))`` for text, or ``None`` when it is not a date."""
    if not looks_temporal(text):
        return None
    known = _parsed.get(text, _UNSEEN)
    if known is _UNSEEN:
        known = _remember(text)
    return known[1]


# Rules compare the same few date texts over and over (a record's fields, the
# dates written in rules), so what each text stands for is kept. Values are
# immutable; the table starts afresh when full.
_parsed: dict[str, tuple[dt.date | None, dt.datetime | None]] = {}
_UNSEEN: Any = object()
_PARSED_LIMIT = 4096


# 2024-05-31T14:30:00.123456+02:00: no ISO text is longer, so no longer text is kept.
_LONGEST_ISO = 32


def _remember(text: str) -> tuple[dt.date | None, dt.datetime | None]:
    if len(text) > _LONGEST_ISO:
        return None, None
    value = _parse_text(text)
    entry = (value, instant(value) if value is not None else None)
    if len(_parsed) >= _PARSED_LIMIT:
        _parsed.clear()
    _parsed[text] = entry
    return entry


def _parse_text(value: str) -> dt.date | None:
    if not _ISO.fullmatch(value):
        return None

    try:
        if len(value) == 10:
            return dt.date.fromisoformat(value)
        return dt.datetime.fromisoformat(value)
    except ValueError:
        # The shape is right but the calendar says no: 2024-02-30, 25:00.
        return None


def instant(value: dt.date) -> dt.datetime:
    """The moment a date or datetime starts, as an aware datetime.

    A date is its midnight in UTC, a naive datetime is read as UTC, so that any two
    temporal values compare.
    """
    if not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def calendar_date(value: dt.date) -> dt.date:
    """The calendar day of a date or datetime, in the datetime's own offset."""
    return value.date() if isinstance(value, dt.datetime) else value


def add(value: dt.date, amount: int, unit: str) -> dt.date | None:
    """Move ``value`` by ``amount`` units; ``None`` when the result leaves the calendar.

    Months and years keep the day of the month where it exists and otherwise take
    the month's last day: 31 January plus one month is 28 (or 29) February.
    """
    try:
        if unit == "days":
            if abs(amount) > _MAX_DAYS:
                return None
            return value + dt.timedelta(days=amount)
        months = amount if unit == "months" else amount * 12
        return _add_months(value, months)
    except (OverflowError, ValueError):
        return None


def diff(start: dt.date, end: dt.date, unit: str) -> int:
    """Whole units from ``start`` to ``end``; negative when ``end`` comes first.

    Days count calendar days. Months count complete months, the inverse of
    :func:`add`: from 31 January to 29 February 2024 is one month.
    """
    first, last = calendar_date(start), calendar_date(end)
    if unit == "days":
        return (last - first).days

    months = (last.year - first.year) * 12 + (last.month - first.month)
    if months > 0 and _add_months(first, months) > last:
        months -= 1
    elif months < 0 and _add_months(first, months) < last:
        months += 1

    if unit == "years":
        return int(months / 12)
    return months


def _add_months(value: dt.date, months: int) -> dt.date:
    index = value.year * 12 + (value.month - 1) + months
    year, month = divmod(index, 12)
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise OverflowError("year out of range")
    last_day = calendar.monthrange(year, month + 1)[1]
    return value.replace(year=year, month=month + 1, day=min(value.day, last_day))
