"""CSV import through ``import_csv`` and the ``tailorcrm import`` command.

Every test here runs on SQLite and on PostgreSQL through the ``database_url``
fixture behind ``platform``, ``crm`` and ``sales``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tailorcrm.errors import BadRequest
from tailorcrm.platform import Platform
from tailorcrm.platform.cli import main
from tailorcrm.platform.importer import (
    Importer,
    ImportFailed,
    ImportReport,
    RowError,
    _LookupResolver,
    import_csv,
)
from tailorcrm.platform.records import SYSTEM_ACTOR
from tests.conftest import ACCOUNT, SALES_PACK

# Invented names; the accents are the point, so they must survive byte for byte.
ACCENTED = "Zoë Ångström-Núñez"
# The same letters written with combining marks: an import must not normalize them.
DECOMPOSED = "Zoe\u0308 A\u030angstro\u0308m-Nu\u0301n\u0303ez"

Invoke = Callable[..., Result]


def csv_text(
    header: list[str],
    *rows: list[str],
    delimiter: str = ",",
    newline: str = "\n",
) -> str:
    """Write a header and rows as CSV, quoting only where the format needs it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerows([header, *rows])
    return buffer.getvalue()


def load(
    platform: Platform, entity: str, data: str | bytes, **options: Any
) -> ImportReport:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return import_csv(platform, entity, io.BytesIO(raw), actor=SYSTEM_ACTOR, **options)


def stored(platform: Platform, entity: str, *fields: str) -> list[tuple[Any, ...]]:
    """Return the stored values of ``fields`` in the order the records were made."""
    with platform.transaction() as (connection, catalog):
        table = catalog.entity(entity).table
        query = sa.select(*(table.c[name] for name in fields)).order_by(table.c.id)
        return [tuple(row) for row in connection.execute(query)]


def count(platform: Platform, entity: str) -> int:
    with platform.transaction() as (connection, catalog):
        table = catalog.entity(entity).table
        return int(connection.execute(sa.select(sa.func.count(table.c.id))).scalar())


def parents(platform: Platform, field: str) -> dict[str, str | None]:
    """Return each account's name with the name of the account it points at."""
    with platform.transaction() as (connection, catalog):
        child = catalog.entity("account").table
        parent = child.alias("parent_account_row")
        query = sa.select(child.c.name, parent.c.name).outerjoin(
            parent, child.c[field] == parent.c.id
        )
        return {name: parent_name for name, parent_name in connection.execute(query)}


def located(errors: Iterable[RowError]) -> list[tuple[int, str | None, str]]:
    return [(error.row, error.field, error.code) for error in errors]


@pytest.fixture
def cli(sales: Platform, database_url: str) -> Invoke:
    """Run ``tailorcrm`` commands on the test database, after ``tailorcrm init``."""
    runner = CliRunner(env={"TAILORCRM_DATABASE_URL": database_url})

    def invoke(*args: str | Path) -> Result:
        return runner.invoke(main, [str(arg) for arg in args])

    initialized = invoke("init")
    assert initialized.exit_code == 0, initialized.output
    return invoke


# -- matching columns to fields ------------------------------------------------------


@pytest.mark.usefixtures("crm")
def test_columns_match_field_names_and_labels_in_any_letter_case(
    platform: Platform,
) -> None:
    data = csv_text(
        ["TITLE", "Amount", "close date", "ERP CODE", "Stage", "Notes"],
        ["Harbour refit", "1200.50", "2017-03-31", "E-1", "won", "call back"],
    )

    report = load(platform, "opportunity", data)

    assert report.columns == {
        "title": "TITLE",
        "stage": "Stage",
        "amount": "Amount",
        "close_date": "close date",
        "erp_code": "ERP CODE",
    }
    assert report.ignored_columns == ["Notes"]
    assert stored(platform, "opportunity", "title", "amount", "stage", "erp_code") == [
        ("Harbour refit", Decimal("1200.50"), "won", "E-1")
    ]


@pytest.mark.usefixtures("crm")
def test_mapping_matches_a_field_to_any_column(platform: Platform) -> None:
    data = csv_text(
        ["Deal name", "Value", "amount"], ["Harbour refit", "75.25", "999.99"]
    )

    report = load(
        platform, "opportunity", data, mapping={"title": "deal NAME", "amount": "Value"}
    )

    assert report.columns == {"title": "Deal name", "amount": "Value"}
    assert report.ignored_columns == ["amount"]
    assert stored(platform, "opportunity", "title", "amount") == [
        ("Harbour refit", Decimal("75.25"))
    ]


@pytest.mark.usefixtures("crm")
def test_mapping_to_an_unknown_field_or_column_is_refused(platform: Platform) -> None:
    data = csv_text(["Deal name"], ["Harbour refit"])

    with pytest.raises(BadRequest) as excinfo:
        load(
            platform,
            "opportunity",
            data,
            mapping={"colour": "Deal name", "title": "Headline"},
        )

    assert [(p.field, p.code) for p in excinfo.value.problems] == [
        ("--map colour", "unknown_field"),
        ("--map title", "unknown_column"),
    ]
    assert count(platform, "opportunity") == 0


def test_mapping_to_a_computed_or_numbered_field_says_why_it_is_refused(
    sales: Platform,
) -> None:
    """Such fields exist: "has no writable field" sent the reader looking for a
    misspelt name."""
    rule = json.loads((SALES_PACK / "rules" / "weighted_amount.json").read_text())
    sales.store.apply([("weighted_amount.json", rule)], actor="test")
    data = csv_text(["Title", "Weighted"], ["Harbour refit", "5"])
    accounts = csv_text(["Name", "Number"], ["Pellham Freight", "X-1"])

    with pytest.raises(BadRequest) as computed:
        load(sales, "opportunity", data, mapping={"weighted_amount": "Weighted"})
    with pytest.raises(BadRequest) as numbered:
        load(sales, "account", accounts, mapping={"account_number": "Number"})

    assert [(p.field, p.code, p.message) for p in computed.value.problems] == [
        (
            "--map weighted_amount",
            "computed",
            "Weighted amount is computed by a rule and cannot be imported.",
        )
    ]
    assert [(p.field, p.code, p.message) for p in numbered.value.problems] == [
        (
            "--map account_number",
            "read_only",
            "Account number is numbered by the platform and cannot be imported.",
        )
    ]


def test_an_autonumber_column_is_ignored(sales: Platform) -> None:
    data = csv_text(["Account name", "Account number"], ["Pellham Freight", "X-1"])

    report = load(sales, "account", data)

    assert report.ignored_columns == ["Account number"]
    assert stored(sales, "account", "name", "account_number") == [
        ("Pellham Freight", "ACC-000001")
    ]


# -- reading the file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("delimiter", "newline", "bom"),
    [
        (",", "\n", False),
        (",", "\r\n", True),
        (";", "\r\n", True),
        ("\t", "\n", False),
        ("\t", "\r\n", True),
        ("|", "\r\n", False),
    ],
)
@pytest.mark.usefixtures("crm")
def test_delimiters_line_endings_and_byte_order_mark_are_read(
    platform: Platform, delimiter: str, newline: str, bom: bool
) -> None:
    text = csv_text(
        ["title", "amount", "erp_code"],
        [ACCENTED, "1.5", "E-1"],
        [DECOMPOSED, "20", "E-2"],
        delimiter=delimiter,
        newline=newline,
    )
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")

    report = load(platform, "opportunity", data)

    assert list(report.columns) == ["title", "amount", "erp_code"]
    assert stored(platform, "opportunity", "title", "amount", "erp_code") == [
        (ACCENTED, Decimal("1.5"), "E-1"),
        (DECOMPOSED, Decimal("20"), "E-2"),
    ]


@pytest.mark.usefixtures("crm")
def test_rows_of_blank_cells_create_nothing(platform: Platform) -> None:
    """A spreadsheet's empty rows (",,") became records of defaults."""
    data = "Title,Stage,Amount\nHarbour refit,,10\n,,\n , ,\nDock cranes,,\n,,\n"

    report = load(platform, "opportunity", data)

    assert (report.rows, report.created, report.failed_rows) == (2, 2, 0)
    assert stored(platform, "opportunity", "title") == [
        ("Harbour refit",),
        ("Dock cranes",),
    ]


@pytest.mark.usefixtures("crm")
def test_accents_are_kept_exactly(platform: Platform) -> None:
    data = csv_text(["name"], [ACCENTED], [DECOMPOSED], [f"  {ACCENTED}  "])

    load(platform, "account", data)

    names = [name for (name,) in stored(platform, "account", "name")]
    assert names == [ACCENTED, DECOMPOSED, ACCENTED]
    assert [name.encode("utf-8") for name in names] == [
        ACCENTED.encode("utf-8"),
        DECOMPOSED.encode("utf-8"),
        ACCENTED.encode("utf-8"),
    ]


@pytest.mark.usefixtures("crm")
def test_row_numbers_after_a_value_with_line_breaks_are_right(
    platform: Platform,
) -> None:
    data = (
        "title,amount\n"
        '"Harbour refit\nphase two",10\n'
        "Quay lights,12\n"
        "Dock cranes,twelve\n"
    )

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data)
    report = load(platform, "opportunity", data, skip_bad_rows=True)

    assert located(excinfo.value.report.errors) == [(4, "amount", "invalid_decimal")]
    assert located(report.errors) == [(4, "amount", "invalid_decimal")]
    assert stored(platform, "opportunity", "title") == [
        ("Harbour refit\nphase two",),
        ("Quay lights",),
    ]


@pytest.mark.usefixtures("crm")
def test_an_unreadable_file_is_refused(platform: Platform) -> None:
    with pytest.raises(BadRequest) as excinfo:
        load(platform, "opportunity", b"")

    assert "empty" in excinfo.value.message
    assert count(platform, "opportunity") == 0


@pytest.mark.usefixtures("crm")
def test_a_row_that_is_not_utf8_fails_with_its_row_number(platform: Platform) -> None:
    data = b"title\nQuay lights\n" + "Zoë\n".encode("latin-1")

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data)

    assert located(excinfo.value.report.errors) == [(3, None, "unreadable_file")]
    # The row is named once, by the report ("row 3: This row ...").
    [error] = excinfo.value.report.errors
    assert str(error).startswith("row 3: This row is not valid UTF-8 text")
    assert count(platform, "opportunity") == 0


@pytest.mark.usefixtures("crm")
@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (b"title\n" + "Zo\u00eb\n".encode("latin-1"), 1),
        (b"title\nQuay lights\nDock cranes\n" + "Zo\u00eb\n".encode("latin-1"), 3),
        (b"title,amount\r\nQuay lights,1\rDock cranes,2\r\n", 1),
    ],
    ids=["first-row", "after-good-rows", "stray-line-break"],
)
def test_a_row_that_cannot_be_read_is_counted_among_the_rows(
    platform: Platform, data: bytes, rows: int
) -> None:
    # The summary said "1 of 0 rows are bad" when the first row could not be
    # read: the bad row was counted as failed but not as read.
    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data)

    report = excinfo.value.report
    assert (report.rows, report.failed_rows) == (rows, 1)
    noun = "row" if rows == 1 else "rows"
    assert excinfo.value.message.startswith(f"1 of {rows} {noun} is bad;")


@pytest.mark.usefixtures("crm")
def test_one_bad_row_is_told_in_the_singular(platform: Platform) -> None:
    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", b"title\n" + "Zo\u00eb\n".encode("latin-1"))

    assert excinfo.value.message == "1 of 1 row is bad; nothing was imported."


@pytest.mark.usefixtures("crm")
def test_skipping_bad_rows_imports_nothing_when_the_file_cannot_be_read_to_its_end(
    platform: Platform,
) -> None:
    # The reader stops at row 3: the rows after it are never read, so importing
    # the rows before it alone would lose them without a word.
    data = 'title,amount\nQuay lights,1\n"Dock"cranes,2\nHarbour refit,3\n'

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data, skip_bad_rows=True)

    assert located(excinfo.value.report.errors) == [(3, None, "unreadable_file")]
    assert count(platform, "opportunity") == 0


# -- strict parsing ------------------------------------------------------------------


def test_boolean_words_are_read_strictly(sales: Platform) -> None:
    words = {
        "no": False,
        "OFF": False,
        "false": False,
        "0": False,
        "n": False,
        "Yes": True,
        "on": True,
        "TRUE": True,
        "1": True,
    }
    data = csv_text(
        ["name", "product_code", "active"],
        *([f"Lamp {word}", f"P-{index}", word] for index, word in enumerate(words)),
    )

    load(sales, "product", data)

    assert stored(sales, "product", "active") == [(value,) for value in words.values()]


@pytest.mark.parametrize(
    ("column", "cell", "code"),
    [
        ("amount", "1,2,3", "invalid_decimal"),
        ("amount", "1.234,50", "invalid_decimal"),
        ("amount", "1e3", "invalid_decimal"),
        ("amount", "$12", "invalid_decimal"),
        ("amount", "12.345", "too_many_decimals"),
        ("amount", "-5", "too_small"),
        ("close_date", "2017-02-30", "invalid_date"),
        ("close_date", "28/02/2017", "invalid_date"),
        ("close_date", "2017-2-28", "invalid_date"),
        ("stage", "Lost", "invalid_choice"),
        ("title", "x" * 201, "too_long"),
        ("title", "  ", "required"),
        ("account", "Nobody Anywhere Ltd", "not_found"),
    ],
)
@pytest.mark.usefixtures("crm")
def test_a_cell_that_does_not_fit_its_field_is_a_row_error(
    platform: Platform, column: str, cell: str, code: str
) -> None:
    row = {"title": "Harbour refit", "amount": "10", "close_date": "", "stage": ""}
    row[column] = cell
    data = csv_text(list(row), list(row.values()))

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data)

    assert located(excinfo.value.report.errors) == [(2, column, code)]
    assert count(platform, "opportunity") == 0


@pytest.mark.parametrize("cell", ["1,2,3", "1 000", "12.0", "+-3", "٣"])
def test_an_integer_cell_must_hold_only_digits(sales: Platform, cell: str) -> None:
    data = csv_text(["name", "employees"], ["Pellham Freight", cell])

    with pytest.raises(ImportFailed) as excinfo:
        load(sales, "account", data)

    assert located(excinfo.value.report.errors) == [(2, "employees", "invalid_integer")]


def test_a_whole_number_of_thousands_of_digits_is_a_row_error(
    sales: Platform,
) -> None:
    # Python reads at most 4,300 digits into an int; longer numerals raised an
    # error that stopped the import instead of refusing the row.
    numeral = "7" * 5000
    accounts = csv_text(["name", "employees"], ["Pellham Freight", numeral])
    opportunities = csv_text(["title", "account"], ["Dock cranes", numeral])

    with pytest.raises(ImportFailed) as numbers:
        load(sales, "account", accounts)
    with pytest.raises(ImportFailed) as lookups:
        load(sales, "opportunity", opportunities)

    assert located(numbers.value.report.errors) == [(2, "employees", "out_of_range")]
    assert located(lookups.value.report.errors) == [(2, "account", "not_found")]
    assert count(sales, "account") == 0


@pytest.mark.usefixtures("crm")
def test_text_longer_than_its_maximum_is_an_error_and_never_cut(
    platform: Platform,
) -> None:
    fits, too_long = "a" * 199 + "é", "b" * 200 + "é"
    data = csv_text(["title"], [fits], [too_long])

    report = load(platform, "opportunity", data, skip_bad_rows=True)

    assert located(report.errors) == [(3, "title", "too_long")]
    assert stored(platform, "opportunity", "title") == [(fits,)]


# -- all or nothing ------------------------------------------------------------------

BAD_ROWS = csv_text(
    ["title", "amount", "close_date", "erp_code"],
    ["Harbour refit", "10", "2017-01-31", "E-1"],
    ["Quay lights", "1,5", "2017-02-28", "E-2"],
    ["Dock cranes", "30", "2017-03-31", "E-3"],
    ["Pier paint", "abc", "2017-02-30", "E-4"],
    ["Buoy chains", "50", "2017-05-31", "E-1"],
)


@pytest.mark.usefixtures("crm")
def test_one_bad_row_imports_nothing_and_every_bad_row_is_reported(
    platform: Platform,
) -> None:
    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", BAD_ROWS)

    report = excinfo.value.report
    assert (report.rows, report.failed_rows, report.committed) == (5, 3, False)
    assert located(report.errors) == [
        (3, "amount", "invalid_decimal"),
        (5, "amount", "invalid_decimal"),
        (5, "close_date", "invalid_date"),
        (6, "erp_code", "unique"),
    ]
    assert "'1,5'" in report.errors[0].message
    assert excinfo.value.message == "3 of 5 rows are bad; nothing was imported."
    assert [problem.field for problem in excinfo.value.problems] == [
        "row 3.amount",
        "row 5.amount",
        "row 5.close_date",
        "row 6.erp_code",
    ]
    assert count(platform, "opportunity") == 0


@pytest.mark.usefixtures("crm")
def test_skip_bad_rows_imports_the_good_rows(platform: Platform) -> None:
    report = load(platform, "opportunity", BAD_ROWS, skip_bad_rows=True)

    assert (report.rows, report.created, report.failed_rows) == (5, 2, 3)
    assert report.committed
    assert [error.row for error in report.errors] == [3, 5, 5, 6]
    assert stored(platform, "opportunity", "title", "erp_code") == [
        ("Harbour refit", "E-1"),
        ("Dock cranes", "E-3"),
    ]


@pytest.mark.usefixtures("crm")
def test_dry_run_changes_nothing_and_reports(platform: Platform) -> None:
    good = csv_text(
        ["name", "parent"], ["Willowmere Retail", "Willowmere"], ["Willowmere", ""]
    )

    report = load(platform, "account", good, dry_run=True)
    skipped = load(platform, "opportunity", BAD_ROWS, dry_run=True, skip_bad_rows=True)
    with pytest.raises(ImportFailed):
        load(platform, "opportunity", BAD_ROWS, dry_run=True)

    assert (report.dry_run, report.committed, report.created) == (True, False, 2)
    assert (skipped.created, skipped.failed_rows, skipped.committed) == (2, 3, False)
    assert count(platform, "account") == 0
    assert count(platform, "opportunity") == 0


# -- upserts and lookups -------------------------------------------------------------


@pytest.mark.usefixtures("crm")
def test_key_updates_the_records_it_finds_and_creates_the_rest(
    platform: Platform,
) -> None:
    header = ["erp_code", "title", "amount"]
    load(platform, "opportunity", csv_text(header, ["E-1", "Harbour refit", "10"]))
    load(platform, "opportunity", csv_text(header, ["E-2", "Quay lights", "20"]))
    again = csv_text(
        header,
        ["E-2", "Quay lights, phase two", "25.50"],
        ["E-3", "Dock cranes", "30"],
        ["E-1", "Harbour refit", "10"],
    )

    report = load(platform, "opportunity", again, key="erp_code")

    assert (report.created, report.updated, report.failed_rows) == (1, 2, 0)
    assert stored(platform, "opportunity", "erp_code", "title", "amount") == [
        ("E-1", "Harbour refit", Decimal("10")),
        ("E-2", "Quay lights, phase two", Decimal("25.50")),
        ("E-3", "Dock cranes", Decimal("30")),
    ]


@pytest.mark.usefixtures("crm")
def test_a_bad_cell_of_an_updated_row_is_told_as_an_update(
    platform: Platform,
) -> None:
    """An updated record keeps the fields its row leaves out: a required title
    not in the file, or a unique code it keeps, is no problem of the row."""
    header = ["erp_code", "title", "amount"]
    load(platform, "opportunity", csv_text(header, ["E-1", "Harbour refit", "10"]))
    again = csv_text(["erp_code", "amount"], ["E-1", "ten"])

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", again, key="erp_code")
    new = csv_text(["erp_code", "amount"], ["E-9", "ten"])
    with pytest.raises(ImportFailed) as new_excinfo:
        load(platform, "opportunity", new, key="erp_code")

    assert located(excinfo.value.report.errors) == [(2, "amount", "invalid_decimal")]
    # A new record still hears of every field it lacks.
    assert located(new_excinfo.value.report.errors) == [
        (2, "amount", "invalid_decimal"),
        (2, "title", "required"),
    ]
    assert stored(platform, "opportunity", "erp_code", "amount") == [
        ("E-1", Decimal("10"))
    ]


def test_a_keyed_import_keeps_values_from_before_narrower_limits(
    crm: Any, platform: Platform
) -> None:
    """A keyed import of a record as exported keeps what its fields' new limits
    would refuse, as the edit form and a PATCH of the record as read do."""
    header = ["erp_code", "title", "amount", "close_date", "stage"]
    row = ["E-1", "Harbour refit", "50", "2027-03-01", "won"]
    load(platform, "opportunity", csv_text(header, row))
    changed = crm.get("/meta/entities/opportunity").json
    for spec in changed["fields"]:
        if spec["name"] == "title":
            spec["max_length"] = 5
        if spec["name"] == "amount":
            spec["max"] = 10
        if spec["name"] == "stage":
            spec["options"] = [{"value": "prospecting", "label": "Prospecting"}]
    assert crm.put("/meta/entities/opportunity", json=changed).status_code == 200

    report = load(platform, "opportunity", csv_text(header, row), key="erp_code")
    with pytest.raises(ImportFailed) as excinfo:
        load(
            platform,
            "opportunity",
            csv_text(header, ["E-1", "Harbour refit", "49", "2027-03-01", "won"]),
            key="erp_code",
        )
    with pytest.raises(ImportFailed) as new_excinfo:
        load(
            platform,
            "opportunity",
            csv_text(["erp_code", "title", "stage"], ["E-2", "Dock", "won"]),
            key="erp_code",
        )

    assert (report.updated, report.failed_rows) == (1, 0)
    assert located(excinfo.value.report.errors) == [(2, "amount", "too_large")]
    assert located(new_excinfo.value.report.errors) == [(2, "stage", "invalid_choice")]
    assert stored(platform, "opportunity", "title", "amount", "stage") == [
        ("Harbour refit", Decimal("50"), "won")
    ]


@pytest.mark.usefixtures("crm")
def test_key_must_be_an_external_id_with_a_column(platform: Platform) -> None:
    data = csv_text(["title"], ["Harbour refit"])

    with pytest.raises(BadRequest) as not_external:
        load(platform, "opportunity", data, key="title")
    with pytest.raises(BadRequest) as no_column:
        load(platform, "opportunity", data, key="erp_code")

    assert "external-id" in not_external.value.message
    assert "no column for 'erp_code'" in no_column.value.message


@pytest.mark.usefixtures("crm")
def test_a_key_a_formula_computes_is_told_so_not_missing(platform: Platform) -> None:
    coded = {
        "kind": "rule",
        "name": "erp_code_from_title",
        "entity": "opportunity",
        "type": "formula",
        "label": "ERP code from the title",
        "field": "erp_code",
        "expression": {"cat": ["E-", {"var": "title"}]},
    }
    platform.store.apply([("", coded)], actor="test")
    data = csv_text(["title", "erp_code"], ["Harbour refit", "E-Harbour refit"])

    with pytest.raises(BadRequest) as computed:
        load(platform, "opportunity", data, key="erp_code")

    assert computed.value.message == (
        "--key erp_code: a rule computes 'erp_code', so the file cannot give it; "
        "choose an external-id field that the file fills."
    )
    assert stored(platform, "opportunity", "title") == []


def test_lookups_are_resolved_by_external_id_and_display_field(
    sales: Platform,
) -> None:
    accounts = csv_text(
        ["name", "erp_code"],
        ["Nordvik Traders", "ERP-100"],
        ["Kestrel Works", "ERP-200"],
        ["Kestrel Works", "ERP-201"],
    )
    load(sales, "account", accounts)
    opportunities = csv_text(
        ["title", "account"],
        ["By name", "Nordvik Traders"],
        ["By external id", "ERP-201"],
        ["Unknown name", "Quillfeather Ltd"],
        ["Ambiguous name", "Kestrel Works"],
        ["No account", ""],
    )

    report = load(sales, "opportunity", opportunities, skip_bad_rows=True)

    assert located(report.errors) == [
        (4, "account", "not_found"),
        (5, "account", "not_found"),
    ]
    assert "Quillfeather Ltd" in report.errors[0].message
    assert "external id" in report.errors[1].message
    with sales.transaction() as (connection, catalog):
        opportunity = catalog.entity("opportunity").table
        account = catalog.entity("account").table
        query = (
            sa.select(opportunity.c.title, account.c.erp_code)
            .outerjoin(account, opportunity.c.account == account.c.id)
            .order_by(opportunity.c.id)
        )
        assert [tuple(row) for row in connection.execute(query)] == [
            ("By name", "ERP-100"),
            ("By external id", "ERP-201"),
            ("No account", None),
        ]


@pytest.mark.usefixtures("crm")
def test_a_lookup_to_a_later_row_of_the_same_file_is_resolved(
    platform: Platform,
) -> None:
    data = csv_text(
        ["name", "parent"],
        ["Willowmere Retail", "Willowmere Europe"],
        ["Willowmere Europe", "Willowmere Holdings"],
        ["Willowmere Holdings", ""],
        ["Ashgrove Mills", "Willowmere Holdings"],
    )

    report = load(platform, "account", data)

    assert (report.created, report.failed_rows) == (4, 0)
    assert parents(platform, "parent") == {
        "Willowmere Retail": "Willowmere Europe",
        "Willowmere Europe": "Willowmere Holdings",
        "Willowmere Holdings": None,
        "Ashgrove Mills": "Willowmere Holdings",
    }


@pytest.mark.usefixtures("crm")
def test_a_name_shared_by_a_stored_record_and_a_later_row_names_that_row(
    platform: Platform,
) -> None:
    """A refused import keeps no record of its rows, so a row is named by its
    number, not by an id that exists only while the import runs."""
    load(platform, "account", csv_text(["name"], ["Willowmere Holdings"]))
    data = csv_text(
        ["name", "parent"],
        ["Willowmere Retail", "Willowmere Holdings"],
        ["Willowmere Holdings", ""],
    )

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "account", data)

    assert located(excinfo.value.report.errors) == [(2, "parent", "not_found")]
    message = excinfo.value.report.errors[0].message
    assert "(id 1 and row 3 of this file)" in message, message
    assert count(platform, "account") == 1


@pytest.mark.usefixtures("crm")
def test_an_unknown_self_reference_fails_the_whole_import(platform: Platform) -> None:
    data = csv_text(
        ["name", "parent"],
        ["Willowmere Retail", "Willowmere Holdings"],
        ["Willowmere Holdings", ""],
        ["Ashgrove Mills", "Ashgrove Group"],
    )

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "account", data)

    assert located(excinfo.value.report.errors) == [(4, "parent", "not_found")]
    assert "Ashgrove Group" in excinfo.value.report.errors[0].message
    assert count(platform, "account") == 0


@pytest.mark.usefixtures("crm")
def test_skip_bad_rows_leaves_out_a_row_with_an_unknown_self_reference(
    platform: Platform,
) -> None:
    data = csv_text(
        ["name", "parent"],
        ["Willowmere Retail", "Willowmere Holdings"],
        ["Willowmere Holdings", ""],
        ["Ashgrove Mills", "Ashgrove Group"],
    )

    report = load(platform, "account", data, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (2, 1)
    assert parents(platform, "parent") == {
        "Willowmere Retail": "Willowmere Holdings",
        "Willowmere Holdings": None,
    }


@pytest.mark.usefixtures("crm")
@pytest.mark.parametrize(
    ("employees", "parent"),
    [("many", ""), ("-5", ""), ("5", "Nowhere")],
    ids=["unreadable", "refused", "unknown-parent"],
)
def test_a_row_that_refers_to_a_failed_row_names_that_row(
    platform: Platform, employees: str, parent: str
) -> None:
    # Row 2 is not imported: a cell cannot be read, the record service refuses
    # it, or its own reference names no account. Row 3 refers to it and is told
    # so, rather than that no such account exists.
    document = {
        **ACCOUNT,
        "fields": [
            *ACCOUNT["fields"],
            {"name": "employees", "type": "integer", "label": "Employees", "min": 0},
        ],
    }
    platform.store.apply([("", document)], actor="test")
    data = csv_text(
        ["name", "parent", "employees"],
        ["Willowmere Holdings", parent, employees],
        ["Willowmere Retail", "Willowmere Holdings", "3"],
        ["Ashgrove Mills", "Ashgrove Group", "3"],
        ["Ashgrove Group", "", "3"],
    )

    report = load(platform, "account", data, skip_bad_rows=True)

    assert (report.created, report.failed_rows) == (2, 2)
    messages = {(e.row, e.field, e.code): e.message for e in report.errors}
    assert messages[(3, "parent", "not_imported")] == (
        "It refers to row 2 of this file, which was not imported."
    )
    assert parents(platform, "parent") == {
        "Ashgrove Mills": "Ashgrove Group",
        "Ashgrove Group": None,
    }


@pytest.mark.usefixtures("crm")
def test_every_problem_of_a_bad_row_is_reported(platform: Platform) -> None:
    data = csv_text(["title", "close_date"], ["x" * 201, "2017-02-30"])

    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", data)

    assert sorted(located(excinfo.value.report.errors)) == [
        (2, "close_date", "invalid_date"),
        (2, "title", "too_long"),
    ]


def test_picklist_cells_match_values_and_labels(sales: Platform) -> None:
    data = csv_text(
        ["title", "stage"],
        ["Harbour refit", "Closed won"],
        ["Quay lights", "closed LOST"],
        ["Dock cranes", "NEGOTIATION"],
        ["Pier paint", "proposal"],
        ["Buoy chains", "Closed"],
    )

    report = load(sales, "opportunity", data, skip_bad_rows=True)

    assert located(report.errors) == [(6, "stage", "invalid_choice")]
    assert stored(sales, "opportunity", "stage") == [
        ("won",),
        ("lost",),
        ("negotiation",),
        ("proposal",),
    ]


# -- batches -------------------------------------------------------------------------


@pytest.mark.usefixtures("crm")
def test_a_file_of_many_batches_imports_every_row(platform: Platform) -> None:
    # Each account points at the next one, so most parents sit in a later batch.
    names = [f"Ridgeway Branch {number:02}" for number in range(1, 26)]
    rows = [
        [name, following]
        for name, following in zip(names, [*names[1:], ""], strict=True)
    ]
    stream = io.BytesIO(csv_text(["name", "parent"], *rows).encode("utf-8"))
    batches: list[int] = []

    with platform.transaction() as (connection, catalog):
        importer = Importer(connection, catalog, SYSTEM_ACTOR, "account")
        report = importer.run(stream, batch_size=10, progress=batches.append)

    assert batches == [10, 10, 5]
    assert (report.rows, report.created, report.failed_rows) == (25, 25, 0)
    assert [name for (name,) in stored(platform, "account", "name")] == names
    assert parents(platform, "parent") == dict(
        zip(names, [*names[1:], None], strict=True)
    )


@pytest.mark.usefixtures("crm")
def test_rows_naming_the_row_above_resolve_each_name_once(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each row is stored before the next, which names it: looking up the names
    # of the whole rest of the batch at every row made a batch take n² lookups.
    names = [f"Ridgeway Branch {number:02}" for number in range(1, 41)]
    rows = [[name, above] for name, above in zip(names, ["", *names], strict=False)]
    looked_up: list[int] = []
    resolve = _LookupResolver.resolve

    def counted(self: _LookupResolver, texts: set[str]) -> dict[str, int | str]:
        looked_up.append(len(texts))
        return resolve(self, texts)

    monkeypatch.setattr(_LookupResolver, "resolve", counted)

    report = load(platform, "account", csv_text(["name", "parent"], *rows))

    assert (report.created, report.failed_rows) == (40, 0)
    assert parents(platform, "parent") == dict(zip(names, [None, *names], strict=False))
    assert sum(looked_up) <= 3 * len(names)


@pytest.mark.usefixtures("crm")
def test_row_errors_keep_their_numbers_across_batches(platform: Platform) -> None:
    load(platform, "account", csv_text(["name"], ["Ridgeway Haulage"]))
    rows = [
        [f"Deal {number}", f"E-{number}", "Ridgeway Haulage"] for number in range(12)
    ]
    rows[7][1] = "E-0"
    rows[11][2] = "Nobody Anywhere Ltd"
    stream = io.BytesIO(csv_text(["title", "erp_code", "account"], *rows).encode())

    with platform.transaction() as (connection, catalog):
        importer = Importer(connection, catalog, SYSTEM_ACTOR, "opportunity")
        report = importer.run(stream, batch_size=5, skip_bad_rows=True)

    assert located(report.errors) == [
        (9, "erp_code", "unique"),
        (13, "account", "not_found"),
    ]
    assert (report.created, report.failed_rows) == (10, 2)
    assert count(platform, "opportunity") == 10


@pytest.mark.usefixtures("crm")
def test_a_unique_value_given_twice_names_the_earlier_row(platform: Platform) -> None:
    """The second row of a value was told it "appears twice in this batch", or,
    in a later batch, that it "is already used by record 1": a record that a
    check or a refused import never keeps."""
    load(platform, "opportunity", csv_text(["title", "erp_code"], ["Kept", "E-99"]))
    rows = [[f"Deal {number}", f"E-{number}"] for number in range(12)]
    rows[3][1] = "E-1"
    rows[10][1] = "E-0"
    rows[11][1] = "E-99"
    stream = io.BytesIO(csv_text(["title", "erp_code"], *rows).encode())

    with platform.transaction() as (connection, catalog):
        importer = Importer(connection, catalog, SYSTEM_ACTOR, "opportunity")
        report = importer.run(stream, batch_size=5, skip_bad_rows=True)

    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (
            5,
            "erp_code",
            "ERP code 'E-1' already appears in row 3 of this file.",
        ),
        (
            12,
            "erp_code",
            "ERP code 'E-0' already appears in row 2 of this file.",
        ),
        (13, "erp_code", "ERP code 'E-99' is already used by record 1."),
    ]


@pytest.mark.usefixtures("crm")
def test_a_key_repeated_in_the_file_is_an_error_in_any_batch(
    platform: Platform,
) -> None:
    data = csv_text(
        ["erp_code", "title", "amount"],
        ["E-1", "Harbour refit", "10"],
        ["E-2", "Quay lights", "20"],
        ["E-1", "Harbour refit", "11"],
        ["E-3", "Dock cranes", "30"],
        ["E-3", "Dock cranes", "33"],
    )
    stream = io.BytesIO(data.encode("utf-8"))

    with platform.transaction() as (connection, catalog):
        importer = Importer(connection, catalog, SYSTEM_ACTOR, "opportunity")
        report = importer.run(stream, key="erp_code", batch_size=2, skip_bad_rows=True)

    assert (report.created, report.updated) == (3, 0)
    assert located(report.errors) == [
        (4, "erp_code", "duplicate_key"),
        (6, "erp_code", "duplicate_key"),
    ]
    assert "row 2" in report.errors[0].message
    assert stored(platform, "opportunity", "erp_code", "amount") == [
        ("E-1", Decimal("10")),
        ("E-2", Decimal("20")),
        ("E-3", Decimal("30")),
    ]


@pytest.mark.usefixtures("crm")
def test_a_key_repeated_in_the_file_is_told_also_on_a_row_with_other_problems(
    platform: Platform,
) -> None:
    load(platform, "opportunity", "erp_code,title,amount\nE-1,Harbour refit,10\n")
    bad_first = csv_text(
        ["erp_code", "title", "amount"],
        ["E-1", "Harbour refit", "lots"],
        ["E-1", "Harbour refit", "11"],
    )
    bad_last = csv_text(
        ["erp_code", "title", "amount"],
        ["E-1", "Harbour refit", "12"],
        ["E-1", "Harbour refit", "lots"],
    )

    with pytest.raises(ImportFailed) as refused:
        load(platform, "opportunity", bad_last, key="erp_code")
    skipped = load(
        platform, "opportunity", bad_first, key="erp_code", skip_bad_rows=True
    )

    assert located(refused.value.report.errors) == [
        (3, "amount", "invalid_decimal"),
        (3, "erp_code", "duplicate_key"),
    ]
    assert refused.value.report.errors[1].message == (
        "ERP code 'E-1' already appears in row 2 of this file."
    )
    assert (skipped.updated, skipped.failed_rows) == (0, 2)
    assert located(skipped.errors) == [
        (2, "amount", "invalid_decimal"),
        (3, "erp_code", "duplicate_key"),
    ]
    assert stored(platform, "opportunity", "erp_code", "amount") == [
        ("E-1", Decimal("10"))
    ]


# -- the command line ----------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_cli_import_maps_columns_and_reports(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "accounts.csv",
        csv_text(
            ["Company", "Staff", "Holding"],
            [ACCENTED, "12", "Ridgeway Holdings"],
            ["Ridgeway Holdings", "340", ""],
        ),
    )

    result = cli(
        "import",
        "account",
        file,
        "--map",
        "name=company",
        "--map",
        "employees=STAFF",
        "--map",
        "parent_account=Holding",
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "2 rows read, 2 created, 0 updated, 0 failed.",
        "  column 'Company' -> name",
        "  column 'Staff' -> employees",
        "  column 'Holding' -> parent_account",
    ]
    assert stored(sales, "account", "name", "employees") == [
        (ACCENTED, 12),
        ("Ridgeway Holdings", 340),
    ]
    assert parents(sales, "parent_account")[ACCENTED] == "Ridgeway Holdings"


def test_cli_import_rules_read_the_roles_of_the_user_it_imports_as(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    cap = {
        "kind": "rule",
        "name": "reps_enter_small_accounts",
        "entity": "account",
        "type": "validation",
        "label": "Representatives enter small accounts",
        "condition": {
            "and": [
                {"in": ["sales_rep", {"var": "$user.roles"}]},
                {">": [{"var": "employees"}, 1000]},
            ]
        },
        "message": "A representative enters accounts of up to 1,000 staff.",
        "field": "employees",
    }
    rep = {"kind": "role", "name": "sales_rep", "label": "Representative"}
    sales.store.apply([("rep.json", rep), ("cap.json", cap)], actor="test")
    made = cli(
        "user", "create", "kit.rowe", "--role", "sales_rep", "--password", "x" * 16
    )
    assert made.exit_code == 0, made.output
    file = write(
        tmp_path / "accounts.csv", csv_text(["name", "employees"], ["Ridgeway", "5000"])
    )

    as_rep = cli("import", "account", file, "--user", "kit.rowe")
    as_admin = cli("import", "account", file)

    assert as_rep.exit_code == 1
    assert "  row 2, employees: A representative enters accounts of up to 1,000 " in (
        as_rep.stderr
    )
    assert as_admin.exit_code == 0, as_admin.output
    assert stored(sales, "account", "name") == [("Ridgeway",)]


def test_cli_map_option_needs_field_and_column(cli: Invoke, tmp_path: Path) -> None:
    file = write(tmp_path / "accounts.csv", csv_text(["name"], ["Ridgeway Holdings"]))

    result = cli("import", "account", file, "--map", "name")

    assert result.exit_code == 2
    assert "FIELD=COLUMN" in result.stderr


def test_cli_map_option_refuses_one_field_mapped_to_two_columns(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "accounts.csv",
        csv_text(["Company", "Trading name"], ["Ridgeway Holdings", "Ridgeway"]),
    )

    result = cli(
        "import", "account", file, "--map", "name=Company", "--map", "name=Trading name"
    )

    assert result.exit_code == 2
    assert (
        "Invalid value for --map: 'name' is given two columns, 'Company' and "
        "'Trading name'; map each field once."
    ) in " ".join(result.stderr.split())
    assert count(sales, "account") == 0


def test_cli_import_lists_every_bad_row_and_imports_nothing(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "accounts.csv",
        csv_text(
            ["name", "employees", "annual_revenue"],
            ["Ridgeway Holdings", "340", "1200000"],
            ["Ashgrove Mills", "1,200", "5"],
            ["Pellham Freight", "40", "12.345"],
        ),
    )

    result = cli("import", "account", file)

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "3 rows read, 2 bad."
    assert lines[-1] == "Nothing was imported."
    assert [line for line in lines if line.startswith("  row ")] == [
        "  row 3, employees: '1,200' is not a whole number; write only digits, "
        "without separators.",
        "  row 4, annual_revenue: Enter at most 2 digits after the point.",
    ]
    assert count(sales, "account") == 0


def test_cli_skip_bad_rows_imports_the_good_rows(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "accounts.csv",
        csv_text(
            ["name", "employees"],
            ["Ridgeway Holdings", "340"],
            ["Ashgrove Mills", "1,200"],
            ["Pellham Freight", "40"],
        ),
    )

    result = cli("import", "account", file, "--skip-bad-rows")

    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[0] == "3 rows read, 2 created, 0 updated, 1 failed."
    )
    assert stored(sales, "account", "name") == [
        ("Ridgeway Holdings",),
        ("Pellham Freight",),
    ]


def test_cli_dry_run_changes_nothing(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    file = write(
        tmp_path / "accounts.csv",
        csv_text(["name"], ["Ridgeway Holdings"], ["Ashgrove Mills"]),
    )

    result = cli("import", "account", file, "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "Dry run: 2 rows read, 2 would be created, 0 would be updated, 0 failed."
    )
    assert count(sales, "account") == 0


def test_cli_key_upserts_without_new_records(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    header = ["erp_code", "name", "employees"]
    first = write(
        tmp_path / "first.csv",
        csv_text(
            header, ["ERP-1", "Ridgeway Holdings", "340"], ["ERP-2", ACCENTED, ""]
        ),
    )
    second = write(
        tmp_path / "second.csv",
        csv_text(header, ["ERP-2", ACCENTED, "12"], ["ERP-1", "Ridgeway Group", "350"]),
    )
    cli("import", "account", first, "--key", "erp_code")

    result = cli("import", "account", second, "--key", "erp_code")

    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[0] == "2 rows read, 0 created, 2 updated, 0 failed."
    )
    assert stored(sales, "account", "erp_code", "name", "employees") == [
        ("ERP-1", "Ridgeway Group", 350),
        ("ERP-2", ACCENTED, 12),
    ]


def test_cli_key_must_be_an_external_id(cli: Invoke, tmp_path: Path) -> None:
    file = write(tmp_path / "accounts.csv", csv_text(["name"], ["Ridgeway Holdings"]))

    result = cli("import", "account", file, "--key", "name")

    assert result.exit_code == 1
    assert "external-id" in result.stderr


# -- export --------------------------------------------------------------------------

EXPORT_ACCOUNTS = csv_text(
    ["name", "erp_code", "industry", "annual_revenue", "parent_account"],
    [ACCENTED, "ERP-1", "Retail", "1250.50", "Ridgeway Holdings"],
    ["Ridgeway Holdings", "ERP-2", "", "", ""],
)


def account_columns(sales: Platform) -> list[str]:
    with sales.transaction() as (_, catalog):
        fields = list(catalog.entity("account").fields)
    return ["id", *fields, "created_at", "updated_at", "owner_id"]


def test_cli_export_csv_has_a_header_of_field_names(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    cli("import", "account", write(tmp_path / "in.csv", EXPORT_ACCOUNTS))

    result = cli("export", "account", "--format", "csv")

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == account_columns(sales)
    assert [
        (row["name"], row["erp_code"], row["industry"], row["annual_revenue"])
        for row in rows
    ] == [
        (ACCENTED, "ERP-1", "retail", "1250.5"),
        ("Ridgeway Holdings", "ERP-2", "", ""),
    ]
    assert rows[0]["parent_account"] == rows[1]["id"]
    assert rows[0]["account_number"] == "ACC-000001"


def test_cli_export_writes_csv_and_json_to_a_file(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    cli("import", "account", write(tmp_path / "in.csv", EXPORT_ACCOUNTS))

    as_csv = cli("export", "account", "-o", tmp_path / "out.csv")
    as_json = cli("export", "account", "--format", "json", "-o", tmp_path / "out.json")

    assert (as_csv.exit_code, as_csv.stdout) == (0, "")
    assert (as_json.exit_code, as_json.stdout) == (0, "")
    exported_csv = (tmp_path / "out.csv").read_text(encoding="utf-8")
    assert exported_csv.splitlines()[0] == ",".join(account_columns(sales))
    records = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert [list(record) for record in records] == [account_columns(sales)] * 2
    assert [(r["name"], r["annual_revenue"], r["industry"]) for r in records] == [
        (ACCENTED, 1250.5, "retail"),
        ("Ridgeway Holdings", None, None),
    ]
    assert records[0]["parent_account"] == records[1]["id"]


def test_an_exported_file_imports_back_as_updates(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    cli("import", "account", write(tmp_path / "in.csv", EXPORT_ACCOUNTS))
    cli("export", "account", "-o", tmp_path / "out.csv")
    before = stored(
        sales, "account", "name", "industry", "annual_revenue", "parent_account"
    )

    result = cli("import", "account", tmp_path / "out.csv", "--key", "erp_code")

    assert result.exit_code == 0, result.output
    assert (
        result.stdout.splitlines()[0] == "2 rows read, 0 created, 2 updated, 0 failed."
    )
    assert (
        "  ignored columns: id, account_number, created_at, updated_at, owner_id"
        in (result.stdout.splitlines())
    )
    after = stored(
        sales, "account", "name", "industry", "annual_revenue", "parent_account"
    )
    assert after == before


def test_an_exported_carriage_return_alone_imports_back_unchanged(
    cli: Invoke, sales: Platform, tmp_path: Path
) -> None:
    notes = ["Gate code 4711\rAsk for Bo", "Dock 3\r\nRing twice"]
    data = 'name,erp_code,notes\nQuayside Ltd,ERP-1,"{}"\nHarbour Co,ERP-2,"{}"\n'
    cli("import", "account", write(tmp_path / "in.csv", data.format(*notes)))
    cli("export", "account", "-o", tmp_path / "out.csv")

    result = cli("import", "account", tmp_path / "out.csv", "--key", "erp_code")

    assert result.exit_code == 0, result.output
    assert stored(sales, "account", "notes") == [(text,) for text in notes]


@pytest.mark.usefixtures("crm")
def test_a_short_row_is_told_its_count_of_values(platform: Platform) -> None:
    data = "title,erp_code\nHarbour refit\n"

    report = load(platform, "opportunity", data, skip_bad_rows=True)

    [error] = report.errors
    assert (error.row, error.code) == (2, "short_row")
    assert error.message == "This row has 1 value but the header has 2 columns."


@pytest.mark.usefixtures("crm")
def test_a_row_with_more_values_than_the_header_is_an_error(platform: Platform) -> None:
    data = "title,erp_code\nHarbour refit, phase two,E-1\nQuay lights,E-2,\n"

    report = load(platform, "opportunity", data, skip_bad_rows=True)

    assert located(report.errors) == [(2, None, "long_row")]
    assert stored(platform, "opportunity", "title", "erp_code") == [
        ("Quay lights", "E-2")
    ]


@pytest.mark.usefixtures("crm")
def test_a_blank_cell_takes_the_default_and_keeps_stored_values(
    platform: Platform,
) -> None:
    load(platform, "opportunity", "title,stage,erp_code\nHarbour refit,won,E-1\n")

    created = load(platform, "opportunity", "title,stage,erp_code\nQuay lights,,E-2\n")
    updated = load(
        platform, "opportunity", "title,stage,erp_code\n,,E-1\n", key="erp_code"
    )

    assert (created.created, updated.updated) == (1, 1)
    assert stored(platform, "opportunity", "title", "stage") == [
        ("Harbour refit", "won"),
        ("Quay lights", "prospecting"),
    ]


@pytest.mark.usefixtures("crm")
def test_a_failed_dry_run_says_it_was_a_dry_run(platform: Platform) -> None:
    with pytest.raises(ImportFailed) as excinfo:
        load(platform, "opportunity", "title,amount\n,-1\n", dry_run=True)

    assert excinfo.value.report.dry_run is True
    assert sorted(located(excinfo.value.report.errors)) == [
        (2, "amount", "too_small"),
        (2, "title", "required"),
    ]


@pytest.mark.usefixtures("crm")
def test_with_a_key_every_row_needs_one(platform: Platform) -> None:
    data = csv_text(
        ["erp_code", "title"], ["E-1", "Harbour refit"], ["", "Quay lights"]
    )

    report = load(platform, "opportunity", data, key="erp_code", skip_bad_rows=True)

    assert located(report.errors) == [(3, "erp_code", "missing_key")]
    assert count(platform, "opportunity") == 1


@pytest.mark.usefixtures("crm")
def test_a_bad_row_is_told_of_the_unique_value_a_good_row_above_it_gives(
    platform: Platform,
) -> None:
    # The bad rows of a batch are checked before its good rows are saved, so a
    # bad row was told only of its bad cell, and of the clash once that was
    # mended.
    data = csv_text(
        ["title", "erp_code", "amount"],
        ["Harbour refit", "E-1", "10"],
        ["Quay lights", "E-1", "lots"],
        ["Dock cranes", "E-2", "lots"],
        ["Pier paint", "E-2", "30"],
    )

    report = load(platform, "opportunity", data, skip_bad_rows=True)

    assert [(e.row, e.field) for e in report.errors] == [
        (3, "amount"),
        (3, "erp_code"),
        (4, "amount"),
    ]
    assert report.errors[1].message == (
        "ERP code 'E-1' already appears in row 2 of this file."
    )
    assert count(platform, "opportunity") == 2


@pytest.mark.usefixtures("crm")
def test_a_bad_row_is_not_told_of_a_unique_value_of_a_row_not_imported(
    platform: Platform,
) -> None:
    # The row above was told of before it was saved, and it was not: the value
    # it gives clashes with nothing, and the bad row, mended, imports with it.
    data = csv_text(
        ["title", "erp_code", "amount"],
        ["", "E-1", "10"],
        ["Quay lights", "E-1", "lots"],
    )

    report = load(platform, "opportunity", data, skip_bad_rows=True)

    assert [(e.row, e.field) for e in report.errors] == [(2, "title"), (3, "amount")]


@pytest.mark.usefixtures("crm")
def test_key_problems_name_the_key_field_by_its_label(platform: Platform) -> None:
    # The import page offers the key by its label: a message that spoke of
    # "erp_code" and "--key" named neither what the page shows nor anything
    # the user chose there.
    data = csv_text(
        ["ERP code", "Title"],
        ["E-1", "Harbour refit"],
        ["", "Quay lights"],
        ["E-1", "Dock cranes"],
    )

    report = load(platform, "opportunity", data, key="erp_code", skip_bad_rows=True)

    assert [(e.row, e.field, e.message) for e in report.errors] == [
        (3, "erp_code", "The row has no ERP code, which finds the record it updates."),
        (4, "erp_code", "ERP code 'E-1' already appears in row 2 of this file."),
    ]


@pytest.mark.usefixtures("crm")
def test_a_lookup_cell_naming_two_records_is_an_error(platform: Platform) -> None:
    load(platform, "account", csv_text(["name"], ["Orbit Ltd"], ["1"], ["Vega"]))

    report = load(
        platform,
        "opportunity",
        csv_text(["title", "account"], ["Deal", "1"], ["Other", "3"]),
        skip_bad_rows=True,
    )

    assert located(report.errors) == [(2, "account", "not_found")]
    assert "ids 1, 2" in report.errors[0].message
    assert stored(platform, "opportunity", "title", "account") == [("Other", 3)]


def test_a_file_whose_columns_match_no_field_is_refused(platform: Platform) -> None:
    # Nothing is required of a note, so each row would be saved blank.
    document = {
        "name": "note",
        "label": "Note",
        "fields": [{"name": "body", "type": "textarea", "label": "Body"}],
    }
    platform.store.apply([("note", document)], actor="test")
    data = csv_text(["Company", "City"], ["Ridgeway", "Lyon"], ["Ashgrove", "Porto"])

    with pytest.raises(BadRequest) as excinfo:
        load(platform, "note", data)

    assert excinfo.value.message == (
        "No column of the file matches a field of Note; name the columns after "
        "its fields or their labels, or map them with --map FIELD=COLUMN. "
        "Nothing was imported."
    )
    assert count(platform, "note") == 0


@pytest.mark.usefixtures("crm")
def test_a_column_named_like_a_field_beats_a_label(platform: Platform) -> None:
    document = {
        "name": "gadget",
        "label": "Gadget",
        "fields": [
            {"name": "code", "type": "text", "label": "Name"},
            {"name": "name", "type": "text", "label": "Title"},
        ],
    }
    platform.store.apply([("gadget", document)], actor="test")

    report = load(platform, "gadget", csv_text(["name", "code"], ["Widget", "W-1"]))

    assert report.columns == {"name": "name", "code": "code"}
    assert stored(platform, "gadget", "name", "code") == [("Widget", "W-1")]
