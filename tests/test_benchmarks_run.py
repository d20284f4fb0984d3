"""The benchmarks keep working: a quick run finishes and reports every comparison.

This checks that the benchmark code runs, not how fast anything is; the figures are
measured by `make bench` and reported in BENCHMARKS.md. Benchmark (g) runs on
PostgreSQL when TAILORCRM_BENCH_POSTGRES_URL names one and is reported as skipped
otherwise; either way it has its row. Benchmark (f) compares on PostgreSQL too when
it has that database; the tests give it the test database when there is one.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.conftest import POSTGRES_URL, ROOT, SHARED

# Benchmark (e) times the official JSON Logic suite, read from beside the project.
SUITE = SHARED / "conformance" / "jsonlogic" / "tests.json"


@pytest.mark.skipif(not SUITE.exists(), reason=f"benchmark (e) needs {SUITE}")
def test_quick_benchmark_run_reports_all_seven() -> None:
    result = _quick_run("all")

    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| (")]
    assert [row.split("|")[1].strip()[:3] for row in rows] == [
        "(a)",
        "(b)",
        "(c)",
        "(d)",
        "(e)",
        "(f)",
        "(g)",
    ]


@pytest.mark.skipif(not POSTGRES_URL, reason="TAILORCRM_TEST_POSTGRES_URL is not set")
def test_the_postgresql_benchmarks_run_and_drop_their_schemas() -> None:
    # (f) compares on PostgreSQL too, in a schema per side; (g) runs in a schema
    # of its own. Both drop their schemas when they end.
    result = _quick_run("f", TAILORCRM_BENCH_POSTGRES_URL=POSTGRES_URL)
    measured = _quick_run("g", TAILORCRM_BENCH_POSTGRES_URL=POSTGRES_URL)

    assert result.returncode == 0, result.stderr
    assert measured.returncode == 0, measured.stderr
    assert "| (g)" in measured.stdout and "skipped" not in measured.stdout
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("| (f)")]
    assert "PostgreSQL:" in row and "SQLite:" in row
    assert "PostgreSQL, create: per-round ratios" in result.stdout
    assert "PostgreSQL, update: per-round ratios" in result.stdout
    assert _schemas_left(POSTGRES_URL, "tailorcrm_bench_") == []


def _quick_run(chosen: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run the chosen benchmarks with ``--quick``, with ``environment`` added."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", chosen, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **environment},
    )


def _schemas_left(url: str, prefix: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        "SELECT nspname FROM pg_namespace WHERE nspname LIKE :prefix"
                    ),
                    {"prefix": prefix + "%"},
                ).scalars()
            )
    finally:
        engine.dispose()
