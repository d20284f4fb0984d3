from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from tailorcrm.metadata import FieldValueError, convert_datetime
from tailorcrm.platform.csvio import CellError, CsvFormatError, parse_cell, read_csv
from tailorcrm.rules_engine import _dates

STAGES = [
    {"value": "lead", "label": "New lead"},
    {"value": "qualified", "label": "Qualified"},
    {"value": "won", "label": "Closed won"},
]

CHANNELS = [
    {"value": "email", "label": "E-mail"},
    {"value": "phone", "label": "Telephone"},
    {"value": "post", "label": "Letter"},
]


def rows_of(data: bytes) -> list[tuple[int, list[str]]]:
    return list(read_csv(io.BytesIO(data)))


# read_csv


def test_header_and_rows_are_read_in_order() -> None:
    data = b"Name,Email\nAda Quill,ada@example.test\nBo Reyes,bo@example.test\n"

    reader = read_csv(io.BytesIO(data))

    assert reader.header == ["Name", "Email"]
    assert reader.delimiter == ","
    assert list(reader) == [
        (2, ["Ada Quill", "ada@example.test"]),
        (3, ["Bo Reyes", "bo@example.test"]),
    ]


def test_byte_order_mark_is_not_part_of_the_first_column_name() -> None:
    data = b"\xef\xbb\xbfName,Email\r\nAda Quill,ada@example.test\r\n"

    reader = read_csv(io.BytesIO(data))

    assert reader.header == ["Name", "Email"]
    assert list(reader) == [(2, ["Ada Quill", "ada@example.test"])]


@pytest.mark.parametrize(
    ("data", "delimiter"),
    [
        (b"Name,City\nAda,Lyon\n", ","),
        (b"Name;City\nAda;Lyon\n", ";"),
        (b"Name\tCity\nAda\tLyon\n", "\t"),
        (b"Name|City\nAda|Lyon\n", "|"),
        (b"Name;City;Amount\nAda;Lyon;1,5\n", ";"),
    ],
)
def test_delimiter_is_detected_from_the_header(data: bytes, delimiter: str) -> None:
    reader = read_csv(io.BytesIO(data))

    assert reader.delimiter == delimiter
    assert list(reader)[0][1][:2] == ["Ada", "Lyon"]


def test_comma_wins_a_tie_between_delimiters() -> None:
    data = b"Name,City;Region\nAda,Lyon;Rhone\n"

    reader = read_csv(io.BytesIO(data))

    assert reader.delimiter == ","
    assert reader.header == ["Name", "City;Region"]


def test_delimiters_inside_quotes_do_not_count() -> None:
    data = b'"Last, First, Middle";City\n"Quill, Ada";Lyon\n'

    reader = read_csv(io.BytesIO(data))

    assert reader.delimiter == ";"
    assert reader.header == ["Last, First, Middle", "City"]
    assert list(reader) == [(2, ["Quill, Ada", "Lyon"])]


def test_single_column_file_reads_as_comma_separated() -> None:
    data = b"Name\nAda Quill\n"

    reader = read_csv(io.BytesIO(data))

    assert reader.delimiter == ","
    assert list(reader) == [(2, ["Ada Quill"])]


def test_crlf_line_endings_leave_no_carriage_return_in_values() -> None:
    data = b"Name,City\r\nAda,Lyon\r\nBo,Porto\r\n"

    rows = rows_of(data)

    assert rows == [(2, ["Ada", "Lyon"]), (3, ["Bo", "Porto"])]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_lines_that_end_in_a_carriage_return_alone_are_rows(bom: bytes) -> None:
    # As some spreadsheets save "CSV (Macintosh)".
    data = bom + b"Name,City\rAda,Lyon\r\rBo,Porto\r"

    assert rows_of(data) == [(2, ["Ada", "Lyon"]), (4, ["Bo", "Porto"])]


def test_lines_ending_in_a_carriage_return_may_quote_a_line_feed() -> None:
    # A spreadsheet that ends its lines in CR alone writes a cell's own line
    # break as a line feed, inside the quotes.
    data = b'Name,Notes\rAda,"first line\nsecond line"\rBo,short\rCy,"a\nb"\r'

    rows = rows_of(data)

    assert rows == [
        (2, ["Ada", "first line\nsecond line"]),
        (3, ["Bo", "short"]),
        (4, ["Cy", "a\nb"]),
    ]


def test_last_row_without_line_ending_is_read() -> None:
    assert rows_of(b"Name,City\nAda,Lyon") == [(2, ["Ada", "Lyon"])]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_quoted_line_break_stays_in_one_row_and_later_rows_keep_numbering(
    newline: str,
) -> None:
    text = newline.join(
        [
            "Name,Notes",
            'Ada,"first line',
            'second line"',
            "Bo,short",
            "",
        ]
    )

    rows = rows_of(text.encode())

    assert rows == [
        (2, ["Ada", f"first line{newline}second line"]),
        (3, ["Bo", "short"]),
    ]


def test_doubled_quotes_are_one_quote() -> None:
    data = b'Name,Nickname\nAda,"the ""quiet"" one"\n'

    assert rows_of(data) == [(2, ["Ada", 'the "quiet" one'])]


def test_blank_lines_are_skipped_but_keep_their_row_number() -> None:
    data = b"\nName,City\n\nAda,Lyon\r\n\r\nBo,Porto\n\n"

    reader = read_csv(io.BytesIO(data))

    assert reader.header == ["Name", "City"]
    assert list(reader) == [(4, ["Ada", "Lyon"]), (6, ["Bo", "Porto"])]


def test_rows_of_blank_cells_are_skipped_but_keep_their_row_number() -> None:
    """A spreadsheet saves its empty rows as delimiters only; each became a
    record of defaults, or failed for a required field nobody left out."""
    data = b'Name,City\nAda,Lyon\n,\n  ,""\n,,\nBo,Porto\n,\n'

    assert rows_of(data) == [(2, ["Ada", "Lyon"]), (6, ["Bo", "Porto"])]
    assert rows_of(b"Name;City\r\n;\r\nAda;\r\n") == [(3, ["Ada", ""])]


def test_accented_names_are_decoded_as_utf8() -> None:
    data = "Name,City\nZoë Müller-Ångström,Düsseldorf\n".encode()

    assert rows_of(data) == [(2, ["Zoë Müller-Ångström", "Düsseldorf"])]


def test_rows_with_a_different_number_of_values_are_yielded_as_they_are() -> None:
    data = b"Name,City,Phone\nAda,Lyon\nBo,Porto,123,extra\n"

    assert rows_of(data) == [
        (2, ["Ada", "Lyon"]),
        (3, ["Bo", "Porto", "123", "extra"]),
    ]


def test_column_names_are_stripped_of_surrounding_spaces() -> None:
    reader = read_csv(io.BytesIO(b"Name , Email\nAda,a@example.test\n"))

    assert reader.header == ["Name", "Email"]


def test_rows_are_read_only_as_they_are_taken() -> None:
    body = b"".join(b"%d,Person %d\n" % (n, n) for n in range(100_000))
    stream = io.BytesIO(b"Number,Name\n" + body)

    reader = read_csv(stream)
    first = next(iter(reader))

    assert first == (2, ["0", "Person 0"])
    assert stream.tell() < 1_000


def test_a_large_file_is_read_to_the_end() -> None:
    body = b"".join(b"%d,Person %d\n" % (n, n) for n in range(100_000))

    rows = rows_of(b"Number,Name\n" + body)

    assert len(rows) == 100_000
    assert rows[-1] == (100_001, ["99999", "Person 99999"])


@pytest.mark.parametrize(
    ("data", "row"),
    [
        (b"Name,City\nAda,Lyon\nZo\xeb,Bonn\n", 3),
        (b'Name,City\nAda,"Lyon\n\xff"\nBo,Porto\n', 2),
        (b"Nam\xe9,City\nAda,Lyon\n", 1),
        (b"\n\nNam\xe9,City\nAda,Lyon\n", 3),
        (b"\xef\xbb\xbfName,City\nAda,\xc3\n", 2),
    ],
)
def test_invalid_utf8_names_the_row(data: bytes, row: int) -> None:
    with pytest.raises(CsvFormatError) as excinfo:
        rows_of(data)

    assert excinfo.value.row == row
    assert excinfo.value.message.startswith(f"Row {row} is not valid UTF-8 text")


def test_rows_before_invalid_utf8_are_still_yielded() -> None:
    reader = read_csv(io.BytesIO(b"Name\nAda\nZo\xeb\n"))
    rows = iter(reader)

    first = next(rows)

    assert first == (2, ["Ada"])
    with pytest.raises(CsvFormatError):
        next(rows)


@pytest.mark.parametrize("data", [b"", b"\n", b"\r\n\r\n\n"])
def test_empty_file_is_refused(data: bytes) -> None:
    with pytest.raises(CsvFormatError) as excinfo:
        read_csv(io.BytesIO(data))

    assert "empty" in excinfo.value.message


def test_header_without_column_names_is_refused() -> None:
    with pytest.raises(CsvFormatError) as excinfo:
        read_csv(io.BytesIO(b" , ,\nAda,Lyon,1\n"))

    assert excinfo.value.row == 1
    assert "no column names" in excinfo.value.message


def test_duplicate_column_names_are_refused_ignoring_case() -> None:
    data = b"Name,Email,City,email,NAME\nAda,a@example.test,Lyon,b@example.test,A\n"

    with pytest.raises(CsvFormatError) as excinfo:
        read_csv(io.BytesIO(data))

    assert excinfo.value.row == 1
    assert excinfo.value.message == (
        "Row 1 names the columns 'Name', 'Email' more than once (letter case does "
        "not count); give each column a different name."
    )


def test_unclosed_quote_names_the_row_where_it_opens() -> None:
    data = b'Name,Notes\nAda,fine\nBo,"never closed\nCy,more\n'
    reader = read_csv(io.BytesIO(data))

    with pytest.raises(CsvFormatError) as excinfo:
        list(reader)

    assert excinfo.value.row == 3
    assert "never closed" in excinfo.value.message


def test_text_after_a_closing_quote_is_refused() -> None:
    reader = read_csv(io.BytesIO(b'Name,Notes\nAda,"quoted"tail\n'))

    with pytest.raises(CsvFormatError) as excinfo:
        list(reader)

    assert excinfo.value.row == 2


# parse_cell

ALL_TYPES = [
    "text",
    "textarea",
    "email",
    "phone",
    "url",
    "autonumber",
    "boolean",
    "integer",
    "decimal",
    "currency",
    "percent",
    "date",
    "datetime",
    "picklist",
    "multi_picklist",
    "lookup",
]


@pytest.mark.parametrize("field_type", ALL_TYPES)
@pytest.mark.parametrize("text", ["", " ", "\t \r\n"])
def test_empty_cell_is_none_for_every_type(field_type: str, text: str) -> None:
    assert parse_cell(field_type, text, options=STAGES) is None


@pytest.mark.parametrize(
    ("field_type", "text", "expected"),
    [
        ("text", "Zoë Müller-Ångström", "Zoë Müller-Ångström"),
        ("text", "  Acme   Holding  ", "Acme   Holding"),
        ("text", "x" * 5000, "x" * 5000),
        ("email", " zoe@example.test ", "zoe@example.test"),
        ("phone", "+49 (0)30 1234-567", "+49 (0)30 1234-567"),
        ("url", "https://example.test/a?b=c", "https://example.test/a?b=c"),
        ("autonumber", "INV-0042", "INV-0042"),
        ("lookup", "  Acme Holding ", "Acme Holding"),
        ("textarea", "  line one\n  line two\n", "  line one\n  line two\n"),
    ],
)
def test_text_types_keep_the_text(field_type: str, text: str, expected: str) -> None:
    assert parse_cell(field_type, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("Yes", True),
        ("on", True),
        ("1", True),
        ("y", True),
        ("T", True),
        (" yes ", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("NO", False),
        ("off", False),
        ("Off", False),
        ("0", False),
        ("n", False),
        ("f", False),
    ],
)
def test_boolean_words(text: str, expected: bool) -> None:
    assert parse_cell("boolean", text) is expected


@pytest.mark.parametrize("text", ["maybe", "2", "-1", "ja", "yes!", "nope", "00"])
def test_boolean_refuses_other_words(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("boolean", text)

    assert excinfo.value.code == "invalid_boolean"
    assert excinfo.value.message.startswith(f"'{text}' is not a yes/no value")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("-7", -7),
        ("+3", 3),
        ("007", 7),
        (" 12 ", 12),
        ("9223372036854775807", 9223372036854775807),
    ],
)
def test_integer_accepts_sign_and_digits(text: str, expected: int) -> None:
    assert parse_cell("integer", text) == expected


@pytest.mark.parametrize(
    "text",
    ["1,2,3", "1.0", "1e3", "12abc", "1 000", "1_000", "--1", "+", "\u0661\u0662"],
)
def test_integer_refuses_anything_but_digits(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("integer", text)

    assert excinfo.value.code == "invalid_integer"
    assert excinfo.value.message.startswith(f"'{text}' is not a whole number")


def test_integer_message_names_the_value() -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("integer", "1,2,3")

    assert str(excinfo.value) == (
        "'1,2,3' is not a whole number; write only digits, without separators."
    )


@pytest.mark.parametrize("field_type", ["decimal", "currency", "percent"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", Decimal("12.50")),
        ("-0.5", Decimal("-0.5")),
        ("+3", Decimal("3")),
        ("42", Decimal("42")),
        (".25", Decimal("0.25")),
        (" 99.99 ", Decimal("99.99")),
    ],
)
def test_decimal_types_accept_a_point_fraction(
    field_type: str, text: str, expected: Decimal
) -> None:
    value = parse_cell(field_type, text)

    assert isinstance(value, Decimal)
    assert value == expected


@pytest.mark.parametrize("field_type", ["decimal", "currency", "percent"])
@pytest.mark.parametrize(
    "text",
    ["1,2,3", "12,5", "1 000.00", "1e3", "1.2.3", "NaN", "Infinity", "12%", "$5"],
)
def test_decimal_types_refuse_separators_and_exponents(
    field_type: str, text: str
) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell(field_type, text)

    assert excinfo.value.code == "invalid_decimal"
    assert excinfo.value.message.startswith(f"'{text}' is not a number")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-02-28", dt.date(2017, 2, 28)),
        ("2016-02-29", dt.date(2016, 2, 29)),
        (" 1999-12-31 ", dt.date(1999, 12, 31)),
    ],
)
def test_date_accepts_iso_dates(text: str, expected: dt.date) -> None:
    assert parse_cell("date", text) == expected


@pytest.mark.parametrize(
    "text", ["28/02/2017", "02/28/2017", "2017-2-28", "20170228", "2017-02-28T10:00"]
)
def test_date_refuses_other_formats(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("date", text)

    assert excinfo.value.code == "invalid_date"
    assert "YYYY-MM-DD" in excinfo.value.message


@pytest.mark.parametrize(
    "text", ["2017-02-30", "2017-02-29", "2017-13-01", "0000-01-01"]
)
def test_date_that_does_not_exist_is_refused(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("date", text)

    assert excinfo.value.code == "invalid_date"
    assert excinfo.value.message == (
        f"'{text}' is not a date that exists in the calendar."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-02-28T14:30", dt.datetime(2017, 2, 28, 14, 30, tzinfo=dt.UTC)),
        ("2017-02-28 14:30:15", dt.datetime(2017, 2, 28, 14, 30, 15, tzinfo=dt.UTC)),
        (
            "2017-02-28T14:30:15.5Z",
            dt.datetime(2017, 2, 28, 14, 30, 15, 500000, tzinfo=dt.UTC),
        ),
        (
            "2017-02-28T14:30:15.123456Z",
            dt.datetime(2017, 2, 28, 14, 30, 15, 123456, tzinfo=dt.UTC),
        ),
        ("2017-02-28T14:30+01:00", dt.datetime(2017, 2, 28, 13, 30, tzinfo=dt.UTC)),
        ("2017-02-28T14:30:00-0530", dt.datetime(2017, 2, 28, 20, 0, tzinfo=dt.UTC)),
        ("2017-03-01T01:00+02", dt.datetime(2017, 2, 28, 23, 0, tzinfo=dt.UTC)),
    ],
)
def test_datetime_is_converted_to_utc(text: str, expected: dt.datetime) -> None:
    value = parse_cell("datetime", text)

    assert isinstance(value, dt.datetime)
    assert value == expected
    assert value.tzinfo is dt.UTC


@pytest.mark.parametrize(
    "text",
    [
        "2017-02-28",
        "28/02/2017 14:30",
        "2017-02-28T14",
        "2017-02-28T14:30:15,5",
        "2017-02-28T14:30:15.1234567",
        "2017-02-28T14:30 CET",
        "yesterday",
    ],
)
def test_datetime_refuses_other_formats(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("datetime", text)

    assert excinfo.value.code == "invalid_datetime"
    assert excinfo.value.message.startswith(f"'{text}' is not a date and time;")


@pytest.mark.parametrize(
    "text",
    ["2017-02-28t14:30:00z", "2017-02-28T14:30:00z", "2017-02-28t14:30+01:00"],
)
def test_t_and_z_are_capitals_in_a_cell_as_through_the_api_and_in_rules(
    text: str,
) -> None:
    """An import read them where the API and the rules saw no date and time."""
    with pytest.raises(CellError) as excinfo:
        parse_cell("datetime", text)
    with pytest.raises(FieldValueError) as through_the_api:
        convert_datetime(text)

    assert excinfo.value.code == "invalid_datetime"
    assert excinfo.value.message == (
        f"'{text}' is not a date and time; write T and Z in capitals, for example "
        "2017-02-28T14:30:00Z."
    )
    assert through_the_api.value.message == (
        "Write T and Z in capitals, as in YYYY-MM-DDTHH:MM:SSZ."
    )
    assert _dates.parse(text) is None
    assert _dates.parse(text.upper()) is not None


@pytest.mark.parametrize(
    "text",
    [
        "2017-02-28T14:30",
        "2017-02-28 14:30:15.5",
        "2017-02-28T14:30:00-05:30",
        "2017-02-28T14:30:00-0530",
        "2017-03-01T01:00+02",
        "2017-02-28T14:30:15,5",
        "2017-02-28T14:30:15.Z",
        "2017-02-28T14:30:15 Z",
        "2017-02-28T14:30:15+02:00:30",
        "2017-02-28T14:30:15.1234567Z",
        "2017-02-28T1430",
        "2017-02-28T14:30+00:60",
        "2017-02-28t14:30",
    ],
)
def test_a_date_and_time_reads_alike_in_a_cell_and_through_the_api(text: str) -> None:
    """Python's reader, which the API used, took '14:30:15,5', '+02:00:30' and
    '14:30:15.Z', which an import refused and the rules read as no date."""
    try:
        in_a_cell = parse_cell("datetime", text)
    except CellError:
        in_a_cell = None
    try:
        through_the_api = convert_datetime(text).replace(tzinfo=dt.UTC)
    except FieldValueError:
        through_the_api = None

    assert through_the_api == in_a_cell


@pytest.mark.parametrize(
    "text",
    [
        "2017-02-30T10:00",
        "2017-02-28T24:00",
        "2017-02-28T10:60",
        "2017-02-28T10:00+24:00",
        "2017-02-28T10:00+01:75",
        "0001-01-01T00:00+01:00",
    ],
)
def test_datetime_that_does_not_exist_is_refused(text: str) -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("datetime", text)

    assert excinfo.value.code == "invalid_datetime"
    assert excinfo.value.message == (
        f"'{text}' is not a date and time that exists; check the day, the hour and "
        "the offset."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("qualified", "qualified"),
        ("QUALIFIED", "qualified"),
        ("Closed won", "won"),
        ("closed WON", "won"),
        (" New lead ", "lead"),
    ],
)
def test_picklist_matches_a_value_or_a_label(text: str, expected: str) -> None:
    assert parse_cell("picklist", text, options=STAGES) == expected


def test_picklist_prefers_a_value_over_another_options_label() -> None:
    options = [
        {"value": "a", "label": "b"},
        {"value": "b", "label": "Second"},
    ]

    assert parse_cell("picklist", "b", options=options) == "b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Red", "Red"), ("red", "red"), ("RED", "red"), ("Other", "Red")],
)
def test_picklist_values_that_differ_only_in_case_are_told_apart(
    text: str, expected: str
) -> None:
    options = [
        {"value": "red", "label": "Bright red"},
        {"value": "Red", "label": "Other"},
    ]

    assert parse_cell("picklist", text, options=options) == expected
    assert parse_cell("multi_picklist", f"{text};red", options=options) == list(
        dict.fromkeys([expected, "red"])
    )


def test_picklist_refuses_an_unknown_choice_listing_the_values() -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("picklist", "Lost", options=STAGES)

    assert excinfo.value.code == "invalid_choice"
    assert excinfo.value.message == (
        "'Lost' is not among the allowed values; choose from lead, qualified, won."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email", ["email"]),
        ("Email; phone", ["email", "phone"]),
        ("Letter;E-mail;post; email", ["post", "email"]),
        ("telephone;;", ["phone"]),
        (";", None),
    ],
)
def test_multi_picklist_splits_on_semicolons(
    text: str, expected: list[str] | None
) -> None:
    assert parse_cell("multi_picklist", text, options=CHANNELS) == expected


def test_multi_picklist_names_every_unknown_choice() -> None:
    with pytest.raises(CellError) as excinfo:
        parse_cell("multi_picklist", "email;fax;pigeon", options=CHANNELS)

    assert excinfo.value.code == "invalid_choice"
    assert excinfo.value.message == (
        "'fax', 'pigeon' are not among the allowed values; "
        "choose from email, phone, post."
    )


@pytest.mark.parametrize("field_type", ["picklist", "multi_picklist"])
def test_choice_field_without_options_is_a_programming_error(
    field_type: str,
) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_cell(field_type, "email")

    assert not isinstance(excinfo.value, CellError)


def test_unknown_field_type_is_refused() -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_cell("colour", "red")

    assert not isinstance(excinfo.value, CellError)
    assert "colour" in str(excinfo.value)
