"""(d) The list page of Opportunities, 50 rows with their Account shown by name.

The same page is served over 100,000 and over 1,000 opportunities, side by side in
one process, through the whole web stack (sign-in cookie, catalog, query builder,
display names of the lookups, rendering). The server time of a page should stay
under 100 ms on the big table, and the number of SQL statements per page must be
the same for both sizes: a statement per row (N+1) would show at once.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import itertools
import pstats
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_user

from ._support import (
    STAGES,
    Result,
    median,
    open_platform,
    sides_in_turn,
    temporary_database,
)

TARGET_MS = 100.0
CHUNK = 50_000
PASSWORD = "bench-password-1"
LAYOUT: dict[str, Any] = {
    "kind": "layout",
    "entity": "opportunity",
    "list": {
        "columns": ["title", "account", "stage", "amount", "close_date"],
        "sort": ["-close_date"],
        "page_size": 50,
    },
}


@dataclass(frozen=True)
class Sizes:
    big: int
    small: int
    accounts: int
    requests: int


FULL = Sizes(big=100_000, small=1_000, accounts=2_000, requests=31)
QUICK = Sizes(big=5_000, small=500, accounts=100, requests=5)


def _accounts(count: int) -> Iterator[tuple[Any, ...]]:
    stamp = "2026-01-02 03:04:05.000000"
    for number in range(count):
        yield (stamp, stamp, 1, f"Account {number:05d}")


def _opportunities(count: int, accounts: int) -> Iterator[tuple[Any, ...]]:
    stamp = "2026-01-02 03:04:05.000000"
    first = dt.date(2026, 1, 1)
    for number in range(count):
        close_date = (first + dt.timedelta(days=number % 730)).isoformat()
        yield (
            stamp,
            stamp,
            1,
            f"Deal {number}",
            (number % accounts) + 1,
            STAGES[number % len(STAGES)],
            (number % 100_000) + 0.5,
            close_date,
            f"OPP-{number:08d}",
        )


def fill(platform: Platform, count: int, accounts: int) -> None:
    """Insert accounts and opportunities with the driver's executemany."""
    with platform.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO account (created_at, updated_at, version, name) "
            "VALUES (?, ?, ?, ?)",
            list(_accounts(accounts)),
        )
        rows = _opportunities(count, accounts)
        statement = (
            "INSERT INTO opportunity (created_at, updated_at, version, title, "
            "account, stage, amount, close_date, erp_code) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        while chunk := list(itertools.islice(rows, CHUNK)):
            connection.exec_driver_sql(statement, chunk)
        connection.exec_driver_sql("ANALYZE")


def _prepare(url: str, count: int, accounts: int) -> tuple[Flask, FlaskClient]:
    app, platform = open_platform(url)
    platform.store.apply([("", LAYOUT)], actor="bench")
    with platform.engine.begin() as connection:
        create_user(connection, "bench", PASSWORD, is_admin=True)
    fill(platform, count, accounts)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = _csrf(page)
    response = client.post(
        "/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token}
    )
    if response.status_code != 302:
        raise RuntimeError(f"Signing in failed with {response.status_code}.")
    return app, client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if found is None:
        raise RuntimeError("The page has no CSRF token.")
    return found.group(1)


class StatementCounter:
    """Counts the SQL statements an engine runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


def _get(client: FlaskClient, counter: StatementCounter) -> tuple[float, int]:
    """Fetch the list page; return its server time and the statements it ran."""
    before = counter.count
    start = time.perf_counter()
    response = client.get("/app/opportunity")
    elapsed = time.perf_counter() - start
    page = response.get_data(as_text=True)
    if response.status_code != 200 or page.count('class="row-link"') != 50:
        raise RuntimeError(f"The list page failed ({response.status_code}).")
    if "Account 0" not in page:
        raise RuntimeError("The list page does not show accounts by name.")
    return elapsed, counter.count - before


def measure(*, quick: bool = False) -> Result:
    """Serve the page in turn over the big and the small table; compare medians."""
    sizes = QUICK if quick else FULL
    seconds: dict[str, list[float]] = {"big": [], "small": []}
    statements: dict[str, set[int]] = {"big": set(), "small": set()}
    with (
        temporary_database("big") as big_url,
        temporary_database("small") as small_url,
    ):
        apps = {
            "big": _prepare(big_url, sizes.big, sizes.accounts),
            "small": _prepare(small_url, sizes.small, sizes.accounts),
        }
        counters = {
            side: StatementCounter(app.extensions["tailorcrm"].engine)
            for side, (app, _) in apps.items()
        }
        try:
            for side in apps:
                _get(apps[side][1], counters[side])  # warm the catalog and caches
            for order in sides_in_turn(sizes.requests, ("big", "small")):
                for side in order:
                    gc.collect()
                    elapsed, count = _get(apps[side][1], counters[side])
                    seconds[side].append(elapsed)
                    statements[side].add(count)
        finally:
            for app, _ in apps.values():
                app.extensions["tailorcrm"].engine.dispose()
    big, small = median(seconds["big"]), median(seconds["small"])
    same_statements = statements["big"] == statements["small"] and (
        len(statements["big"]) == 1
    )
    return Result(
        benchmark=f"(d) list page, 50 rows, {sizes.big:,} vs {sizes.small:,} records",
        measured=f"{big * 1000:,.1f} ms",
        reference=f"{small * 1000:,.1f} ms ({sizes.small:,} records)",
        comparison=(
            f"{big / small:.2f}× the small table's time; statements per page "
            f"{sorted(statements['big'])} vs {sorted(statements['small'])}"
        ),
        target=f"< {TARGET_MS:g} ms, same statements",
        met=big * 1000 < TARGET_MS and same_statements,
        details=[
            f"{sizes.requests} requests per side, alternating which goes first; "
            "server time is the whole request in the app (routing, session, "
            "queries, rendering), without a network",
            "page sorted by close date (newest first) with the total count; "
            f"{sizes.accounts:,} accounts shown by name",
        ],
    )


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile requests of the list page over the big table."""
    sizes = QUICK if quick else FULL
    profiler = cProfile.Profile()
    with temporary_database("big") as url:
        app, client = _prepare(url, sizes.big, sizes.accounts)
        counter = StatementCounter(app.extensions["tailorcrm"].engine)
        try:
            _get(client, counter)
            for _ in range(sizes.requests):
                profiler.enable()
                _get(client, counter)
                profiler.disable()
        finally:
            app.extensions["tailorcrm"].engine.dispose()
    return pstats.Stats(profiler)
