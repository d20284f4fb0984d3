"""What the benchmarks share: the entities, the hand-made tables, timing and results.

Every benchmark compares the platform with a baseline that does the same storage work
by hand. Both sides get a fresh SQLite file with the same settings (write-ahead log,
``synchronous=NORMAL``, foreign keys on) and tables with the same columns, types and
indexes, so the difference measured is the work the platform adds.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

from tailorcrm.platform import Platform, create_app

ACCOUNT: dict[str, Any] = {
    "name": "account",
    "label": "Account",
    "display_field": "name",
    "fields": [
        {"name": "name", "type": "text", "label": "Name", "required": True},
    ],
}

# Shaped like a sales opportunity: text, a lookup, a picklist with a default, money,
# a date and a unique external id, so that every kind of check runs on each record.
OPPORTUNITY: dict[str, Any] = {
    "name": "opportunity",
    "label": "Opportunity",
    "label_plural": "Opportunities",
    "display_field": "title",
    "fields": [
        {
            "name": "title",
            "type": "text",
            "label": "Title",
            "required": True,
            "max_length": 200,
        },
        {"name": "account", "type": "lookup", "target": "account", "label": "Account"},
        {
            "name": "stage",
            "type": "picklist",
            "label": "Stage",
            "default": "qualify",
            "options": [
                {"value": "qualify", "label": "Qualify"},
                {"value": "propose", "label": "Propose"},
                {"value": "won", "label": "Won"},
                {"value": "lost", "label": "Lost"},
            ],
        },
        {
            "name": "amount",
            "type": "currency",
            "label": "Amount",
            "precision": 14,
            "scale": 2,
            "min": 0,
        },
        {"name": "close_date", "type": "date", "label": "Close date"},
        {
            "name": "erp_code",
            "type": "text",
            "label": "ERP code",
            "unique": True,
            "external_id": True,
        },
    ],
}

FIELD_NAMES = tuple(spec["name"] for spec in OPPORTUNITY["fields"])
STAGES = tuple(option["value"] for option in OPPORTUNITY["fields"][2]["options"])


@dataclass(frozen=True)
class Result:
    """One row of the results table, plus the lines printed under it."""

    benchmark: str
    measured: str
    reference: str
    comparison: str
    target: str
    met: bool
    details: list[str] = field(default_factory=list)
    #: The benchmark could not run here (``reference`` or ``details`` say why).
    skipped: bool = False


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("A median needs at least one measurement.")
    return float(statistics.median(values))


def sides_in_turn(
    rounds: int, sides: tuple[str, str] = ("ours", "baseline")
) -> Iterator[tuple[str, str]]:
    """Yield the order of the two sides for each round, swapping every round.

    Alternating the order spreads the drift of a shared machine (another job
    starting, the page cache filling) evenly over both sides.
    """
    first, second = sides
    for number in range(rounds):
        yield (first, second) if number % 2 == 0 else (second, first)


@contextmanager
def temporary_database(name: str) -> Iterator[str]:
    """Give the URL of a SQLite file in a new temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"tailorcrm-bench-{name}-") as folder:
        yield f"sqlite:///{Path(folder) / f'{name}.db'}"


#: The PostgreSQL database that benchmarks (f) and (g) use, when it is set.
POSTGRES_URL_VARIABLE = "TAILORCRM_BENCH_POSTGRES_URL"


def postgres_url() -> str | None:
    """The URL of the benchmarks' PostgreSQL database, or None when it is not set."""
    return os.environ.get(POSTGRES_URL_VARIABLE) or None


def schema_url(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on the search path: the platform's tables are
    made and read there."""
    parsed = sa.engine.make_url(url)
    options = {**parsed.query, "options": f"-csearch_path={schema}"}
    return parsed.set(query=options).render_as_string(hide_password=False)


def fresh_schema(url: str, schema: str) -> None:
    """Drop ``schema`` with what it holds, if it exists, and create it empty."""
    _in_database(
        url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', f'CREATE SCHEMA "{schema}"'
    )


@contextmanager
def temporary_schema(url: str, schema: str) -> Iterator[str]:
    """Give the URL of a new, empty ``schema`` of the PostgreSQL database ``url``,
    dropped afterwards."""
    fresh_schema(url, schema)
    try:
        yield schema_url(url, schema)
    finally:
        drop_schema(url, schema)


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` with what it holds, if it exists."""
    _in_database(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _in_database(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def open_platform(url: str) -> tuple[Flask, Platform]:
    """Create the app on ``url`` and define the Account and Opportunity entities."""
    app = create_app({"database_url": url, "secret_key": "bench"})
    app.config["TESTING"] = True
    platform: Platform = app.extensions["tailorcrm"]
    platform.store.apply([("", ACCOUNT), ("", OPPORTUNITY)], actor="bench")
    return app, platform


def plain_engine(url: str) -> sa.Engine:
    """Return an engine for the baseline with the SQLite settings the platform uses."""
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    return engine


@dataclass(frozen=True)
class BaselineTables:
    users: sa.Table
    accounts: sa.Table
    opportunities: sa.Table


def baseline_tables(metadata: sa.MetaData) -> BaselineTables:
    """Define by hand the tables the platform makes for Account and Opportunity."""
    users = sa.Table(
        "app_user",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False),
    )
    accounts = sa.Table(
        "account",
        metadata,
        *_system_columns(),
        sa.Column("name", sa.Text()),
    )
    opportunities = sa.Table(
        "opportunity",
        metadata,
        *_system_columns(),
        sa.Column("title", sa.Text()),
        sa.Column("account", sa.Integer(), sa.ForeignKey("account.id")),
        sa.Column("stage", sa.Text()),
        sa.Column("amount", sa.Numeric(14, 2)),
        sa.Column("close_date", sa.Date()),
        sa.Column("erp_code", sa.Text()),
        sa.Index("ix_opportunity_account", "account"),
        sa.Index("uq_opportunity_erp_code", "erp_code", unique=True),
    )
    for table in (accounts, opportunities):
        sa.Index(f"ix_{table.name}_owner_id", table.c.owner_id)
        sa.Index(f"ix_{table.name}_updated_at", table.c.updated_at)
    # The type-ahead index the platform keeps on each display field.
    sa.Index("sx_account", accounts.c.name.collate("NOCASE"))
    sa.Index("sx_opportunity", opportunities.c.title.collate("NOCASE"))
    return BaselineTables(users, accounts, opportunities)


def _system_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("app_user.id")),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("app_user.id")),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
    ]


def create_baseline(url: str) -> tuple[sa.Engine, BaselineTables]:
    """Create the hand-made tables in a new file and check they match the platform's.

    :raises RuntimeError: the hand-made table differs from the platform's, so the
        comparison would not be fair.
    """
    engine = plain_engine(url)
    metadata = sa.MetaData()
    tables = baseline_tables(metadata)
    metadata.create_all(engine)
    with tempfile.TemporaryDirectory(prefix="tailorcrm-bench-schema-") as folder:
        _, platform = open_platform(f"sqlite:///{Path(folder) / 'schema.db'}")
        try:
            _require_same_table(platform.engine, engine, "opportunity")
        finally:
            platform.engine.dispose()
    return engine, tables


def _require_same_table(ours: sa.Engine, baseline: sa.Engine, name: str) -> None:
    found = {"ours": _describe(ours, name), "baseline": _describe(baseline, name)}
    if found["ours"] != found["baseline"]:
        raise RuntimeError(
            f"The hand-made table {name!r} differs from the platform's: "
            f"{found['baseline']} != {found['ours']}."
        )


def _describe(engine: sa.Engine, name: str) -> dict[str, Any]:
    """Return what decides the cost of writing a row: columns, indexes, references."""
    with engine.connect() as connection:
        columns = connection.exec_driver_sql(f'PRAGMA table_info("{name}")').all()
        indexes = connection.exec_driver_sql(f'PRAGMA index_list("{name}")').all()
        keys = connection.exec_driver_sql(f'PRAGMA foreign_key_list("{name}")').all()
        indexed = {
            index.name: (
                bool(index.unique),
                [
                    row.name
                    for row in connection.exec_driver_sql(
                        f'PRAGMA index_info("{index.name}")'
                    )
                ],
            )
            for index in indexes
        }
    return {
        "columns": [(c.name, c.type, c.notnull, c.pk) for c in columns],
        "indexes": sorted(indexed.values()),
        "references": sorted((key[3], key[4]) for key in keys),
    }
