"""(b) CSV import: ``import_csv`` against a raw executemany of the same rows.

A deterministic generator invents the opportunities, writes them to a CSV file and
keeps them as Python values. Ours reads the file and does everything an import does:
decoding, matching columns, parsing every cell, resolving account names, validating
each record and inserting in batches. The baseline inserts the already-parsed rows
with one ``connection.execute(table.insert(), rows)`` into an identical plain table,
so it measures only what the database itself needs.
"""

from __future__ import annotations

import cProfile
import csv
import datetime as dt
import gc
import pstats
import random
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tailorcrm.platform import Platform
from tailorcrm.platform.importer import import_csv
from tailorcrm.platform.records import SYSTEM_ACTOR

from ._support import (
    STAGES,
    Result,
    create_baseline,
    median,
    open_platform,
    sides_in_turn,
    temporary_database,
)

TARGET_FRACTION = 0.25
ACCOUNTS = 40
SEED = 20261204
HEADER = ["Title", "Account", "Stage", "Amount", "Close date", "ERP code"]

_FIRST = ("North", "Silver", "Harbor", "Maple", "Granite", "Copper", "Lumen", "Oak")
_SECOND = ("field", "gate", "works", "line", "stone", "brook", "point", "ridge")
_KIND = ("Logistics", "Foods", "Clinics", "Robotics", "Textiles")
_DEALS = ("renewal", "expansion", "pilot", "upgrade", "service plan", "rollout")


@dataclass(frozen=True)
class Sizes:
    rows: int
    repetitions: int


FULL = Sizes(rows=100_000, repetitions=5)
QUICK = Sizes(rows=2_000, repetitions=2)


@dataclass(frozen=True)
class Dataset:
    """The invented rows, once as CSV text fields and once as parsed values."""

    accounts: list[str]
    rows: list[tuple[str, int, str, Decimal, dt.date, str]]

    def write_csv(self, path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(HEADER)
            for title, account, stage, amount, close_date, code in self.rows:
                writer.writerow(
                    [
                        title,
                        self.accounts[account],
                        stage,
                        str(amount),
                        close_date.isoformat(),
                        code,
                    ]
                )


def generate(count: int, *, seed: int = SEED) -> Dataset:
    """Invent ``count`` opportunities; the same seed gives the same rows."""
    chooser = random.Random(seed)
    accounts = [
        f"{_FIRST[n % 8]}{_SECOND[n // 8 % 8]} {_KIND[n % 5]}" for n in range(ACCOUNTS)
    ]
    if len(set(accounts)) != ACCOUNTS:
        raise RuntimeError("The invented account names must be distinct.")
    start = dt.date(2026, 1, 1)
    rows = []
    for number in range(count):
        account = chooser.randrange(ACCOUNTS)
        cents = chooser.randrange(50_000, 250_000_000)
        rows.append(
            (
                f"{accounts[account].split()[0]} {chooser.choice(_DEALS)} {number}",
                account,
                chooser.choice(STAGES),
                Decimal(cents).scaleb(-2),
                start + dt.timedelta(days=chooser.randrange(365)),
                f"OPP-{number:08d}",
            )
        )
    return Dataset(accounts, rows)


def _our_side(url: str, data: Dataset) -> Platform:
    _, platform = open_platform(url)
    with platform.records(SYSTEM_ACTOR) as service:
        ids, _ = service.create_many("account", [{"name": n} for n in data.accounts])
    if ids != list(range(1, ACCOUNTS + 1)):
        raise RuntimeError("The accounts should have ids 1, 2, 3 and so on.")
    return platform


def _run_ours(platform: Platform, path: Path, count: int) -> float:
    gc.collect()
    with path.open("rb") as stream:
        start = time.perf_counter()
        report = import_csv(platform, "opportunity", stream, actor=SYSTEM_ACTOR)
        elapsed = time.perf_counter() - start
    if report.created != count or report.errors:
        raise RuntimeError(f"The import went wrong: {report.as_dict()['errors'][:3]}")
    return elapsed


def _baseline_rows(data: Dataset) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    return [
        {
            "title": title,
            "account": account + 1,
            "stage": stage,
            "amount": amount,
            "close_date": close_date,
            "erp_code": code,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for title, account, stage, amount, close_date, code in data.rows
    ]


def _run_baseline(url: str, data: Dataset, rows: list[dict[str, Any]]) -> float:
    engine, tables = create_baseline(url)
    try:
        with engine.begin() as connection:
            now = rows[0]["created_at"]
            connection.execute(
                tables.accounts.insert(),
                [
                    {"name": name, "created_at": now, "updated_at": now}
                    for name in data.accounts
                ],
            )
        gc.collect()
        start = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(tables.opportunities.insert(), rows)
        elapsed = time.perf_counter() - start
        with engine.connect() as connection:
            stored = connection.execute(
                sa.select(sa.func.count()).select_from(tables.opportunities)
            ).scalar()
    finally:
        engine.dispose()
    if stored != len(rows):
        raise RuntimeError(f"The baseline stored {stored} rows of {len(rows)}.")
    return elapsed


def measure(*, quick: bool = False) -> Result:
    """Import the same file several times, each time into fresh files, and compare."""
    sizes = QUICK if quick else FULL
    data = generate(sizes.rows)
    rows = _baseline_rows(data)
    seconds: dict[str, list[float]] = {"ours": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="tailorcrm-bench-csv-") as folder:
        path = Path(folder) / "opportunities.csv"
        data.write_csv(path)
        for order in sides_in_turn(sizes.repetitions):
            for side in order:
                with temporary_database(side) as url:
                    if side == "baseline":
                        seconds[side].append(_run_baseline(url, data, rows))
                        continue
                    platform = _our_side(url, data)
                    try:
                        seconds[side].append(_run_ours(platform, path, sizes.rows))
                    finally:
                        platform.engine.dispose()
    ours = sizes.rows / median(seconds["ours"])
    baseline = sizes.rows / median(seconds["baseline"])
    paired = [b / o for o, b in zip(seconds["ours"], seconds["baseline"], strict=True)]
    fraction = ours / baseline
    return Result(
        benchmark=f"(b) import {sizes.rows:,} CSV rows",
        measured=f"{ours:,.0f} rows/s",
        reference=f"{baseline:,.0f} rows/s",
        comparison=f"{fraction:.1%} of the baseline's speed",
        target=f"≥ {TARGET_FRACTION:.0%}",
        met=fraction >= TARGET_FRACTION,
        details=[
            f"{sizes.repetitions} repetitions per side, each into a new file; "
            "median seconds "
            f"ours {median(seconds['ours']):.2f} s, "
            f"baseline {median(seconds['baseline']):.2f} s",
            "per-repetition fractions: "
            + ", ".join(f"{value:.1%}" for value in paired),
        ],
    )


def profile(*, quick: bool = False) -> pstats.Stats:
    """Profile one import of ours."""
    sizes = QUICK if quick else FULL
    data = generate(sizes.rows)
    with tempfile.TemporaryDirectory(prefix="tailorcrm-bench-csv-") as folder:
        path = Path(folder) / "opportunities.csv"
        data.write_csv(path)
        with temporary_database("ours") as url:
            platform = _our_side(url, data)
            profiler = cProfile.Profile()
            try:
                profiler.enable()
                _run_ours(platform, path, sizes.rows)
                profiler.disable()
            finally:
                platform.engine.dispose()
    return pstats.Stats(profiler)
