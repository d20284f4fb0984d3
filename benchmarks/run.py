"""Run the benchmarks and print their results as a Markdown table.

Usage::

    python -m benchmarks.run [a|b|c|d|e|f|g|all] [--quick] [--profile]

``--quick`` shrinks every size so that a run takes seconds; its figures only show
that the benchmarks work. ``--profile`` runs our side of each chosen benchmark under
cProfile instead and prints where the time goes. Benchmark (g) needs PostgreSQL,
named by ``TAILORCRM_BENCH_POSTGRES_URL``; without it, (g) is reported as skipped
and (f) runs on SQLite only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import platform as host
import sqlite3
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from types import ModuleType

import sqlalchemy

from . import (
    add_field,
    create_record,
    csv_import,
    list_page,
    permissions_list,
    rules_eval,
    rules_save,
)
from ._support import Result

BENCHMARKS: dict[str, ModuleType] = {
    "a": create_record,
    "b": csv_import,
    "c": add_field,
    "d": list_page,
    "e": rules_eval,
    "f": rules_save,
    "g": permissions_list,
}
PROFILE_LINES = 30


def results_table(results: Sequence[Result]) -> str:
    """Return the results as a Markdown table followed by the details of each."""
    lines = [
        "| benchmark | ours | compared with | ratio | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    for result in results:
        cells = [
            result.benchmark,
            result.measured,
            result.reference,
            result.comparison,
            result.target,
            "skipped" if result.skipped else "yes" if result.met else "**no**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for result in results:
        lines.append(f"- {result.benchmark}:")
        lines += [f"  - {detail}" for detail in result.details]
    return "\n".join(lines)


def environment() -> str:
    return (
        f"{dt.date.today().isoformat()}, Python {host.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"Flask {version('flask')}, {host.machine()}"
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Compare Tailor CRM with hand-written SQLAlchemy code.",
    )
    parser.add_argument(
        "which",
        nargs="?",
        default="all",
        choices=[*BENCHMARKS, "all"],
        help=(
            "a: create via the API, b: CSV import, c: add a field, d: list page, "
            "e: rule evaluation, f: a save with 20 rules, g: a seller's list page "
            "on PostgreSQL (default: all)"
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, for a smoke run"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile our side with cProfile instead of comparing",
    )
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None, *, write: Callable[[str], object] = print
) -> int:
    """Run the chosen benchmarks and write their table; return the exit status."""
    options = _parse(argv)
    # The app factory sets up INFO logging when nothing is configured; the lines of
    # each migration would be mixed into the table.
    logging.basicConfig(level=logging.WARNING)
    chosen = list(BENCHMARKS) if options.which == "all" else [options.which]
    if options.profile:
        for key in chosen:
            write(f"## profile of benchmark ({key}), our side\n")
            stats = BENCHMARKS[key].profile(quick=options.quick)
            if stats is None:
                write(f"Skipped: benchmark ({key}) cannot run here.\n")
                continue
            stats.sort_stats("cumulative").print_stats(PROFILE_LINES)
            stats.sort_stats("tottime").print_stats(PROFILE_LINES)
        return 0
    results = [BENCHMARKS[key].measure(quick=options.quick) for key in chosen]
    if options.quick:
        write("Quick run: small sizes, the figures only show that it works.\n")
    write(environment() + "\n")
    write(results_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
