"""Strict CSV reading for record imports.

:func:`read_csv` turns an uploaded file into a header and a stream of numbered rows;
:func:`parse_cell` turns one cell into the Python value of a field type. Both refuse
what they cannot read with certainty rather than guess: a file that is not UTF-8, a
number with thousands separators, a date in a local format. The importer collects the
:class:`CellError` of every cell and reports them together with their row numbers.

Rows are numbered the way a spreadsheet shows the same file: the header is row 1, a
value holding line breaks still counts as one row, and a blank line (or a row of
blank cells) counts as a row even though it is never yielded.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import BinaryIO

from ..metadata import INTEGER_LIMIT, int_of_digits

# Comma first: when the header holds as many commas as another candidate, the file
# is read as comma-separated, the format most tools write by default.
DELIMITERS = (",", ";", "\t", "|")

_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Messages of the standard csv module, reworded for the person who made the file.
_CSV_PROBLEMS = {
    "unexpected end of data": (
        "a quoted value is never closed; check that every opening quote has a "
        "closing quote"
    ),
    "expected after": (
        "a closing quote is followed by other characters; write a quote inside a "
        "quoted value as two quotes"
    ),
    "new-line character seen in unquoted field": (
        "a value holds a line break without being quoted; put the value in quotes"
    ),
    "field larger than field limit": "a value is too long to import",
}

_TRUE_WORDS = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", "n", "f"})

# Only ASCII digits are accepted; ``\d`` would also match digits of other scripts.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[T ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)


class CsvFormatError(ValueError):
    """The file cannot be read as CSV at all, so no row of it is imported.

    ``row`` is the spreadsheet row number where reading stopped, or ``None`` when
    the problem concerns the whole file.
    """

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row


class CellError(ValueError):
    """One cell holds a value its field type cannot accept.

    ``code`` names the broken rule (``invalid_integer``, ``invalid_choice``, ...)
    and ``message`` is a sentence for the person who made the file.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _UndecodableLine(Exception):
    """A line of the file is not valid UTF-8."""


class CsvReader:
    """The header of a CSV file and an iterator over its remaining rows.

    Iterating yields ``(row_number, values)`` for every row that is not blank, in
    file order, reading the file only as far as the rows taken. The rows can be
    read once; :class:`CsvFormatError` is raised at the first row that cannot be
    read. A row may hold more or fewer values than the header names.
    """

    def __init__(
        self,
        header: list[str],
        delimiter: str,
        rows: Iterator[tuple[int, list[str]]],
    ) -> None:
        self.header = header
        self.delimiter = delimiter
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        return self._rows

    def __repr__(self) -> str:
        name = _DELIMITER_NAMES[self.delimiter]
        return f"<CsvReader {len(self.header)} columns, {name}-separated>"


def read_csv(stream: BinaryIO) -> CsvReader:
    """Read the header of a CSV file and prepare to stream its rows.

    The file must be UTF-8, with or without a byte order mark. The delimiter is
    the one of comma, semicolon, tab and pipe that occurs most often outside
    quotes in the header; a tie goes to the comma. Lines may end in CRLF, LF or CR,
    and quoted values may hold line breaks and doubled quotes. Blank lines are
    skipped, and so are rows whose every cell is blank (``,,,``). Column names
    are stripped of surrounding spaces.

    :param stream: the file opened in binary mode; it is read lazily while the
        returned reader is iterated and is not closed.
    :returns: a reader whose ``header`` and ``delimiter`` are known and whose
        rows have not been read yet.
    :raises CsvFormatError: if the file is empty, its header names no column,
        names a column twice (ignoring letter case), is not valid UTF-8 or is
        not well-formed CSV.
    """
    lines = _decoded_lines(stream)
    peeked, blank_lines, failure = _peek_header(lines)
    delimiter = _detect_delimiter(peeked[blank_lines:])
    replayed = _replay(peeked, failure, lines)
    reader = csv.reader(replayed, delimiter=delimiter, strict=True)
    rows = _numbered_rows(reader)
    first = next(rows, None)
    if first is None:
        raise CsvFormatError(
            "The file is empty; it needs a header row naming the columns."
        )

    header_row, names = first
    header = [name.strip() for name in names]
    _check_header(header, header_row)
    return CsvReader(header, delimiter, _with_values(rows))


def _with_values(
    rows: Iterator[tuple[int, list[str]]],
) -> Iterator[tuple[int, list[str]]]:
    """Leave out rows whose every cell is blank, as a spreadsheet saves its empty
    rows (``,,,``): they hold no record, only the delimiters."""
    for row, values in rows:
        if any(value.strip() for value in values):
            yield row, values


def _decoded_lines(stream: BinaryIO) -> Iterator[str]:
    # Splitting the raw bytes on LF is safe before decoding: in UTF-8 the byte 0x0A
    # only ever stands for a line feed, never for part of a longer character; so
    # is splitting on CR (0x0D).
    raws = iter(stream)
    first = next(raws, None)
    if first is None:
        return
    if first.startswith(codecs.BOM_UTF8):
        first = first[len(codecs.BOM_UTF8) :]
    # Lines that end in CR alone, as some spreadsheets save "CSV (Macintosh)",
    # are known by the first line break. Such a file may still hold a line feed
    # inside a quoted value, where a cell has a line break of its own, so every
    # piece read up to a line feed is split at its carriage returns, not only
    # the first. In a file whose lines end in LF or CRLF a carriage return alone
    # stays where it is, for the reader to take or refuse.
    first_break = first.find(b"\r")
    cr_alone = first_break != -1 and first[first_break + 1 : first_break + 2] != b"\n"
    for raw in itertools.chain([first], raws):
        for line in raw.splitlines(keepends=True) if cr_alone else [raw]:
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                raise _UndecodableLine from None


def _peek_header(
    lines: Iterator[str],
) -> tuple[list[str], int, _UndecodableLine | None]:
    """Read the lines up to the end of the header.

    Returns the lines read, how many of them are blank lines before the header,
    and the decoding failure that stopped the reading early, if any. The failure
    is kept rather than raised so that it surfaces with its row number once the
    CSV reader reaches it.
    """
    peeked: list[str] = []
    blank_lines = 0
    in_quotes = False
    try:
        for line in lines:
            peeked.append(line)
            if len(peeked) == blank_lines + 1 and not line.strip("\r\n"):
                blank_lines += 1
                continue

            if line.count('"') % 2:
                in_quotes = not in_quotes

            if not in_quotes:
                break
    except _UndecodableLine as failure:
        return peeked, blank_lines, failure

    return peeked, blank_lines, None


def _detect_delimiter(header_lines: list[str]) -> str:
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    for char in "".join(header_lines):
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char in counts:
            counts[char] += 1

    return max(DELIMITERS, key=counts.__getitem__)


def _replay(
    peeked: list[str], failure: _UndecodableLine | None, rest: Iterator[str]
) -> Iterator[str]:
    yield from peeked
    if failure is not None:
        raise failure

    yield from rest


def _numbered_rows(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    row = 0
    while True:
        row += 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except _UndecodableLine:
            raise CsvFormatError(
                f"Row {row} is not valid UTF-8 text; save the file with UTF-8 "
                "encoding and import it again.",
                row=row,
            ) from None
        except csv.Error as err:
            raise CsvFormatError(
                f"Row {row} cannot be read: {_describe_csv_problem(err)}.", row=row
            ) from err

        if values:
            yield row, values


def _describe_csv_problem(err: csv.Error) -> str:
    text = str(err)
    for fragment, description in _CSV_PROBLEMS.items():
        if fragment in text:
            return description

    return text


def _check_header(header: list[str], row: int) -> None:
    if not any(header):
        raise CsvFormatError(
            f"Row {row} holds no column names; the first row must name the columns.",
            row=row,
        )

    counts = Counter(name.casefold() for name in header if name)
    repeated: list[str] = []
    seen: set[str] = set()
    for name in header:
        key = name.casefold()
        if counts[key] > 1 and key not in seen:
            repeated.append(name)
        seen.add(key)

    if repeated:
        names = ", ".join(f"'{name}'" for name in repeated)
        noun = "column" if len(repeated) == 1 else "columns"
        raise CsvFormatError(
            f"Row {row} names the {noun} {names} more than once (letter case does "
            "not count); give each column a different name.",
            row=row,
        )


def parse_cell(
    field_type: str,
    text: str,
    *,
    options: Sequence[Mapping[str, object]] | None = None,
) -> object:
    """Convert the text of one cell into the value of a field type.

    A cell that is empty or holds only spaces is ``None`` for every type. Text
    types keep the text as written apart from surrounding spaces (``textarea``
    keeps those too); numbers, dates and choices follow the strict formats below,
    so that a value never means something other than what its author intended.

    - ``boolean``: true/false, yes/no, on/off, 1/0, y/n, t/f in any letter case.
    - ``integer``: an optional sign and digits.
    - ``decimal``, ``currency``, ``percent``: an optional sign, digits and an
      optional ``.`` with decimals; no thousands separators, no exponent. The
      result is a :class:`~decimal.Decimal`.
    - ``date``: ``YYYY-MM-DD``.
    - ``datetime``: ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` with ``T`` or a space and
      an optional ``Z`` or ``+HH:MM`` offset (``+HHMM`` and ``+HH`` too); ``T``
      and ``Z`` are capitals, as the API and the rules read them. The result is
      aware and in UTC, and a value without an offset is taken as UTC.
    - ``picklist``: the value or the label of one of ``options``, in any letter
      case; the result is the option's value.
    - ``multi_picklist``: such choices separated by ``;``; the result is the list
      of their values, each once, in the order written.
    - ``lookup``: the text, for the importer to resolve to a record.

    :param field_type: the ``type`` of the field the cell belongs to.
    :param text: the cell as read from the file.
    :param options: the ``{"value": ..., "label": ...}`` choices of a picklist
        or multi-picklist field.
    :returns: the converted value, or ``None`` for an empty cell.
    :raises CellError: if the text is not a valid value of the type.
    :raises ValueError: if the field type is unknown, or a choice field has no
        ``options``.
    """
    parser = _PARSERS.get(field_type)
    if parser is None:
        raise ValueError(f"Unknown field type '{field_type}'.")

    if field_type in ("picklist", "multi_picklist") and options is None:
        raise ValueError(f"A {field_type} field needs its options to read a cell.")

    stripped = text.strip()
    if not stripped:
        return None

    if field_type == "textarea":
        return text

    return parser(stripped, options or ())


def _parse_text(text: str, options: Sequence[Mapping[str, object]]) -> object:
    return text


def _parse_boolean(text: str, options: Sequence[Mapping[str, object]]) -> object:
    word = text.casefold()
    if word in _TRUE_WORDS:
        return True

    if word in _FALSE_WORDS:
        return False

    raise CellError(
        "invalid_boolean",
        f"'{text}' is not a yes/no value; write true or false, yes or no, or 1 or 0.",
    )


def _parse_integer(text: str, options: Sequence[Mapping[str, object]]) -> object:
    if not _INTEGER.fullmatch(text):
        raise CellError(
            "invalid_integer",
            f"'{text}' is not a whole number; write only digits, without separators.",
        )

    # Refused before int reads it, in the record service's words.
    number = int_of_digits(text)
    if number is None:
        raise CellError(
            "out_of_range",
            f"Enter a whole number between -{INTEGER_LIMIT:,} and {INTEGER_LIMIT:,}.",
        )

    return number


def _parse_decimal(text: str, options: Sequence[Mapping[str, object]]) -> object:
    if not _DECIMAL.fullmatch(text):
        raise CellError(
            "invalid_decimal",
            f"'{text}' is not a number; write digits with an optional '.' before "
            "the decimals, without thousands separators.",
        )

    return Decimal(text)


def _parse_date(text: str, options: Sequence[Mapping[str, object]]) -> object:
    match = _DATE.fullmatch(text)
    if match is None:
        raise CellError(
            "invalid_date",
            f"'{text}' is not a date; write it as YYYY-MM-DD, for example 2017-02-28.",
        )

    year, month, day = (int(part) for part in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise CellError(
            "invalid_date", f"'{text}' is not a date that exists in the calendar."
        ) from None


def _parse_datetime(text: str, options: Sequence[Mapping[str, object]]) -> object:
    match = _DATETIME.fullmatch(text)
    if match is None and _DATETIME.fullmatch(text.upper()):
        # The API and the rules read 't' and 'z' as no date: a cell that holds
        # them is refused too, so a text means one thing on every path.
        raise CellError(
            "invalid_datetime",
            f"'{text}' is not a date and time; write T and Z in capitals, for "
            "example 2017-02-28T14:30:00Z.",
        )
    if match is None:
        raise CellError(
            "invalid_datetime",
            f"'{text}' is not a date and time; write it as YYYY-MM-DDTHH:MM:SS with "
            "an optional offset, for example 2017-02-28T14:30:00+01:00.",
        )

    parts = match.groupdict()
    fraction = (parts["fraction"] or "").ljust(6, "0")
    try:
        zone = _parse_zone(parts["zone"])
        moment = dt.datetime(
            int(parts["year"]),
            int(parts["month"]),
            int(parts["day"]),
            int(parts["hour"]),
            int(parts["minute"]),
            int(parts["second"] or 0),
            int(fraction),
            tzinfo=zone,
        )
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise CellError(
            "invalid_datetime",
            f"'{text}' is not a date and time that exists; check the day, the "
            "hour and the offset.",
        ) from None


def _parse_zone(zone: str | None) -> dt.tzinfo:
    if zone is None or zone == "Z":
        return dt.UTC

    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:] or 0)
    if minutes > 59:
        raise ValueError(f"offset minutes out of range: {zone}")

    # timezone() itself refuses an offset of 24 hours or more.
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def _parse_picklist(text: str, options: Sequence[Mapping[str, object]]) -> object:
    return match_choice(text, options)


def _parse_multi_picklist(text: str, options: Sequence[Mapping[str, object]]) -> object:
    values: list[object] = []
    unknown: list[str] = []
    for part in text.split(";"):
        choice = part.strip()
        if not choice:
            continue

        try:
            value = match_choice(choice, options)
        except CellError:
            unknown.append(choice)
            continue

        if value not in values:
            values.append(value)

    if unknown:
        names = ", ".join(f"'{choice}'" for choice in unknown)
        raise CellError(
            "invalid_choice",
            f"{names} {'is' if len(unknown) == 1 else 'are'} not among the allowed "
            f"values; choose from {_allowed(options)}.",
        )

    return values or None


def match_choice(text: str, options: Sequence[Mapping[str, object]]) -> object:
    """The value of the choice among ``options`` that ``text`` names, by its
    value or its label, in any letter case.

    :raises CellError: no choice goes by ``text``.
    """
    key = text.casefold()
    # A match on a value wins over a match on a label, so that a label that happens
    # to spell another option's value can never change which option is chosen.
    # Within each, the text as written wins over letter case: of the values 'red'
    # and 'Red', 'Red' (as an export writes it) picks 'Red'.
    for attribute in ("value", "label"):
        for fold in (False, True):
            for option in options:
                written = str(option.get(attribute, ""))
                if (written.casefold() == key) if fold else (written == text):
                    return option["value"]

    raise CellError(
        "invalid_choice",
        f"'{text}' is not among the allowed values; choose from {_allowed(options)}.",
    )


def _allowed(options: Sequence[Mapping[str, object]]) -> str:
    if not options:
        return "nothing, as the field has no values yet"

    return ", ".join(str(option["value"]) for option in options)


_PARSERS: dict[str, Callable[[str, Sequence[Mapping[str, object]]], object]] = {
    "text": _parse_text,
    "textarea": _parse_text,
    "email": _parse_text,
    "phone": _parse_text,
    "url": _parse_text,
    "autonumber": _parse_text,
    "lookup": _parse_text,
    "boolean": _parse_boolean,
    "integer": _parse_integer,
    "decimal": _parse_decimal,
    "currency": _parse_decimal,
    "percent": _parse_decimal,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "picklist": _parse_picklist,
    "multi_picklist": _parse_multi_picklist,
}
