"""Statements run straight on the driver give what SQLAlchemy gives for them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tailorcrm.platform import direct
from tailorcrm.platform.db import create_engine

METADATA = sa.MetaData()
LEDGER = sa.Table(
    "ledger",
    METADATA,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("total", sa.Numeric(8, 2)),
    sa.Column("closed_on", sa.Date),
    sa.Column("touched_at", sa.DateTime),
    sa.Column("note", sa.Text),
)
ADD = (
    LEDGER.update()
    .where(LEDGER.c.id == sa.bindparam("key"))
    .values(
        version=LEDGER.c.version + 1,
        total=sa.func.coalesce(LEDGER.c.total, 0)
        + sa.bindparam("delta", type_=sa.Numeric(8, 2)),
        touched_at=sa.bindparam("at", type_=sa.DateTime),
    )
    .returning(
        LEDGER.c.id,
        LEDGER.c.version,
        LEDGER.c.total,
        LEDGER.c.closed_on,
        LEDGER.c.touched_at,
        LEDGER.c.note,
    )
)
AT = dt.datetime(2026, 3, 14, 9, 26, 53)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    made = create_engine(database_url)
    METADATA.create_all(made)
    with made.begin() as connection:
        connection.execute(
            LEDGER.insert(),
            [
                {
                    "id": 1,
                    "version": 1,
                    "total": Decimal("10.50"),
                    "closed_on": None,
                    "note": "Quay",
                },
                {
                    "id": 2,
                    "version": 4,
                    "total": None,
                    "closed_on": dt.date(2026, 1, 2),
                    "note": None,
                },
            ],
        )
    yield made
    made.dispose()


def test_returned_rows_match_what_sqlalchemy_returns(engine: sa.Engine) -> None:
    given = {"key": 1, "delta": Decimal("2.25"), "at": AT}
    with engine.begin() as connection:
        ours = direct.run(connection, ADD, given)
        # The same change made the usual way, from the row ours left.
        theirs = connection.execute(ADD, given).mappings().one()

    assert ours == [
        {
            "id": 1,
            "version": 2,
            "total": Decimal("12.75"),
            "closed_on": None,
            "touched_at": AT,
            "note": "Quay",
        }
    ]
    assert dict(theirs) == {**ours[0], "version": 3, "total": Decimal("15.00")}
    assert {type(value) for value in ours[0].values()} == {
        int,
        Decimal,
        type(None),
        dt.datetime,
        str,
    }


def test_blank_totals_and_dates_come_back_typed(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        (row,) = direct.run(connection, ADD, {"key": 2, "delta": 3, "at": AT})
    assert row["total"] == Decimal("3.00") and isinstance(row["total"], Decimal)
    assert row["closed_on"] == dt.date(2026, 1, 2)
    assert row["version"] == 5


def test_no_row_matched_gives_no_rows(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        assert direct.run(connection, ADD, {"key": 99, "delta": 1, "at": AT}) == []


def test_the_change_belongs_to_the_transaction(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        with connection.begin() as transaction:
            direct.run(connection, ADD, {"key": 1, "delta": 5, "at": AT})
            transaction.rollback()
        total = connection.execute(sa.select(LEDGER.c.total).where(LEDGER.c.id == 1))
        assert total.scalar_one() == Decimal("10.50")


def test_statement_listeners_are_told(engine: sa.Engine) -> None:
    seen: list[str] = []

    def told(*arguments: Any) -> None:
        seen.append(arguments[2])

    sa.event.listen(engine, "before_cursor_execute", told)
    try:
        with engine.begin() as connection:
            direct.run(connection, ADD, {"key": 1, "delta": 1, "at": AT})
    finally:
        sa.event.remove(engine, "before_cursor_execute", told)
    assert [s for s in seen if s.startswith("UPDATE ledger")] == [
        direct.prepare(ADD, engine.dialect).sql
    ]


def test_driver_errors_arrive_as_sqlalchemy_errors(engine: sa.Engine) -> None:
    blank = (
        LEDGER.update()
        .where(LEDGER.c.id == sa.bindparam("key"))
        .values(version=sa.bindparam("to", type_=sa.Integer))
        .returning(LEDGER.c.id)
    )
    with engine.begin() as connection, pytest.raises(sa.exc.IntegrityError):
        direct.run(connection, blank, {"key": 1, "to": None})
    if engine.dialect.name == "postgresql":
        # SQLite keeps any number; PostgreSQL refuses one its column cannot hold.
        with engine.begin() as connection, pytest.raises(sa.exc.DataError):
            direct.run(connection, ADD, {"key": 1, "delta": Decimal("1e9"), "at": AT})
