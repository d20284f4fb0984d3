"""The benchmarks keep working: a quick run finishes and reports every comparison.

This checks that the benchmark code runs, not how fast anything is; the figures are
measured by `make bench` and reported in BENCHMARKS.md. Benchmark (g) runs on
PostgreSQL when TAILORCRM_BENCH_POSTGRES_URL names one and is reported as skipped
otherwise; either way it has its row.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED

# Benchmark (e) times the official JSON Logic suite, read from beside the project.
SUITE = SHARED / "conformance" / "jsonlogic" / "tests.json"


@pytest.mark.skipif(not SUITE.exists(), reason=f"benchmark (e) needs {SUITE}")
def test_quick_benchmark_run_reports_all_seven() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "all", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

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
