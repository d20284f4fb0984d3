"""(c) Adding a field to an entity whose table holds many rows, and to an empty one.

Adding a plain field should cost the same whatever the table holds: the platform
plans one ``add_column`` and SQLite records a new column without touching the rows.
Both entities are created through the metadata store; the big one is then filled
with a raw executemany, which the catalog sees as ordinary records.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import itertools
import pstats
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tailorcrm.platform import Platform

from ._support import (
    OPPORTUNITY,
    STAGES,
    Result,
    median,
    open_platform,
    sides_in_turn,
    temporary_database,
)

TARGET_SECONDS = 0.5
# The same-time target allows for the noise of a shared machine.
SAME_TIME_RATIO = 1.5
CHUNK = 50_000

# Plain fields only: a lookup or a unique field also builds an index, whose cost
# grows with the rows by nature.
NEW_FIELDS: list[dict[str, Any]] = [
    {"name": "region", "type": "text", "label": "Region"},
    {"name": "probability", "type": "percent", "label": "Probability"},
    {"name": "next_step_on", "type": "date", "label": "Next step on"},
    {"name": "strategic", "type": "boolean", "label": "Strategic"},
    {
        "name": "source",
        "type": "picklist",
        "label": "Source",
        "options": [
            {"value": "web", "label": "Web"},
            {"value": "event", "label": "Event"},
        ],
    },
    {"name": "seats", "type": "integer", "label": "Seats"},
    {"name": "notes", "type": "textarea", "label": "Notes"},
]


@dataclass(frozen=True)
class Sizes:
    rows: int
    fields: int


FULL = Sizes(rows=1_000_000, fields=5)
QUICK = Sizes(rows=10_000, fields=2)


def _rows(count: int) -> Iterator[tuple[Any, ...]]:
    """Yield rows as SQLite stores them through SQLAlchemy (ISO text for times)."""
    stamp = "2026-01-02 03:04:05.000000"
    first = dt.date(2026, 1, 1)
    for number in range(count):
        close_date = (first + dt.timedelta(days=number % 365)).isoformat()
        yield (
            stamp,
            stamp,
            1,
            f"Deal {number}",
            STAGES[number % len(STAGES)],
            (number % 100_000) + 0.5,
            close_date,
            f"OPP-{number:08d}",
        )


def fill(platform: Platform, count: int) -> None:
    """Insert ``count`` opportunities with the driver's executemany, in chunks."""
    statement = (
        "INSERT INTO opportunity (created_at, updated_at, version, title, stage, "
        "amount, close_date, erp_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    rows = _rows(count)
    with platform.engine.begin() as connection:
        while chunk := list(itertools.islice(rows, CHUNK)):
            connection.exec_driver_sql(statement, chunk)


def _count(platform: Platform) -> int:
    with platform.transaction() as (connection, catalog):
        table = catalog.entity("opportunity").table
        found = connection.execute(sa.select(sa.func.count()).select_from(table))
        return int(found.scalar_one())


def _add(platform: Platform, fields: list[dict[str, Any]]) -> float:
    """Send the document with ``fields`` appended; return the seconds it took."""
    document = {**OPPORTUNITY, "fields": [*OPPORTUNITY["fields"], *fields]}
    start = time.perf_counter()
    result = platform.store.apply([("", document)], actor="bench")
    elapsed = time.perf_counter() - start
    kinds = [operation.kind for operation in result.plan.operations]
    if not result.applied or kinds != ["add_column"]:
        raise RuntimeError(f"Expected one add_column, got {kinds}.")
    return elapsed


def measure(*, quick: bool = False) -> Result:
    """Add the same fields in turn to the empty and the full entity; compare medians."""
    sizes = QUICK if quick else FULL
    seconds: dict[str, list[float]] = {"full": [], "empty": []}
    with (
        temporary_database("full") as full_url,
        temporary_database("empty") as empty_url,
    ):
        platforms = {
            "full": open_platform(full_url)[1],
            "empty": open_platform(empty_url)[1],
        }
        try:
            start = time.perf_counter()
            fill(platforms["full"], sizes.rows)
            filled_in = time.perf_counter() - start
            if _count(platforms["full"]) != sizes.rows:
                raise RuntimeError("The big table does not hold every row.")
            orders = sides_in_turn(sizes.fields, ("full", "empty"))
            for number, order in enumerate(orders, start=1):
                for side in order:
                    gc.collect()
                    added = NEW_FIELDS[:number]
                    seconds[side].append(_add(platforms[side], added))
        finally:
            for platform in platforms.values():
                platform.engine.dispose()
    full, empty = median(seconds["full"]), median(seconds["empty"])
    ratio = full / empty
    return Result(
        benchmark=f"(c) add a field, {sizes.rows:,} rows vs empty",
        measured=f"{full * 1000:,.1f} ms",
        reference=f"{empty * 1000:,.1f} ms (empty table)",
        comparison=f"{ratio:.2f}× the empty table's time",
        target=f"same time, < {TARGET_SECONDS:g} s",
        met=ratio <= SAME_TIME_RATIO and full < TARGET_SECONDS,
        details=[
            f"{sizes.fields} fields added to each entity, alternating which goes "
            f"first; the big table was filled in {filled_in:.1f} s",
            "each addition, full table: "
            + ", ".join(f"{value * 1000:.1f}" for value in seconds["full"])
            + " ms; empty table: "
            + ", ".join(f"{value * 1000:.1f}" for value in seconds["empty"])
            + " ms",
        ],
    )


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile the additions of fields to the big table."""
    sizes = QUICK if quick else FULL
    profiler = cProfile.Profile()
    with temporary_database("full") as url:
        _, platform = open_platform(url)
        try:
            fill(platform, sizes.rows)
            for number in range(1, sizes.fields + 1):
                gc.collect()
                profiler.enable()
                _add(platform, NEW_FIELDS[:number])
                profiler.disable()
        finally:
            platform.engine.dispose()
    return pstats.Stats(profiler)
