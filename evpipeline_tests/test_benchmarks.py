"""The benchmark harness works end to end (`--quick`): every measurement runs and lands in the table.

No timing is asserted here: figures on a shared machine are findings for docs/benchmarks.md, not
pass/fail criteria of the test suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import MEASUREMENTS, Result, error_note, kept_notes, kept_rows, render

# Each measurement in its own process, so pytest-xdist spreads them over the cores (the whole quick harness
# in one test took 5 minutes on a loaded 2-core machine and set the suite's floor). The numbers are the
# table's row numbers, written here rather than read from the harness (lane_latency also writes row 12).
ROWS = {
    "merge_bench": "1",
    "bootstrap_bench": "2",
    "sync_efficiency": "3",
    "rate_limits": "4",
    "export_bench": "5",
    "pull_server_bench": "6",
    "end_to_end": "7",
    "cycle_cost": "8",
    "lane_latency": "9",
    "datex2_bench": "10",
    "lake_bench": "11",
    "identity_bench": "13",
}


def _quick(module: str, output: Path) -> list[str]:
    """Rows of the table `evpipeline bench --quick --only <module>` writes;
    fails with the crashed rows shown."""
    # Output to a file, not a pipe: a server process a measurement leaves behind would hold a pipe open
    # and the test would wait for it instead of for the command.
    log = output.with_suffix(".log")
    with log.open("w") as sink:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "evpipeline.cli",
                "bench",
                "--quick",
                "--repeats",
                "1",
                "--only",
                module,
                "--output",
                str(output),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=540,
        )
    # A crashed measurement is a table row whose note carries the exception.
    crashed = (
        [line for line in output.read_text().splitlines() if "| error |" in line] if output.exists() else []
    )
    assert completed.returncode == 0, "\n".join(crashed) or log.read_text()[-4000:]
    return [line for line in output.read_text().splitlines() if line.startswith("| ")]


def test_every_measurement_is_in_the_quick_run() -> None:
    assert sorted(f"benchmarks.{m}" for m in ROWS) == sorted(MEASUREMENTS)


# The end-to-end row's measurement is one `make demo`: test_demo.py runs it once, through
# `benchmarks.end_to_end`, and checks both the demo and the row (running it here too doubled the demo's cost).
RUN_BY_OTHER_TESTS = {"end_to_end"}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("module", sorted(set(ROWS) - RUN_BY_OTHER_TESTS))
def test_quick_benchmark_writes_its_measurement(module: str, tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n| old | table |\n\n## Reading the misses\n\nwritten by people\n")
    rows = _quick(module, output)
    number = ROWS[module]
    assert any(line.startswith(f"| {number}. ") for line in rows), f"measurement {number} missing:\n{rows}"
    assert not any("| error |" in line for line in rows), rows
    table = output.read_text()
    assert "date:" in table and "machine:" in table and "duckdb" in table
    # The table is replaced, the hand-written reading of it kept.
    assert "| old | table |" not in table and table.endswith("\n## Reading the misses\n\nwritten by people\n")
    if module == "lane_latency":
        # Through the real daemon (`dagster dev`): every status change reached NDW (how fast is a finding).
        latency = [line for line in rows if line.startswith("| 9. ")]
        assert len(latency) == 3 and all(" 0 lost)" in line for line in latency), latency
        # A source none of whose EVSEs NDW takes measures nothing: that is a broken benchmark, not a figure.
        assert not any("(0 samples" in line for line in latency), latency
        # The same changes reached the DATEX II receiver as deltaPush publications (row 12): every Zaptec and
        # GreenFlux one (EVRoam's New Zealand fleet has no NUTS-1 region:
        # the DATEX II publication withholds it).
        datex2 = [line for line in rows if line.startswith("| 12. DATEX II delta latency, ")]
        measured = [line for line in datex2 if "| not measured: " not in line]
        assert len(datex2) == 3 and all(
            any(f"latency, {s}, " in line for line in measured) for s in ("zaptec", "greenflux")
        ), datex2
        assert all(" 0 lost)" in line for line in measured) and not any(
            "(0 samples" in line for line in measured
        ), datex2
    if module == "cycle_cost":
        # The incremental model equals a full rebuild on the benchmark fleets.
        assert all("mismatches vs full 0" in line for line in rows if line.startswith("| 8. cycle cost, "))
    if module == "lake_bench":
        # DuckLake vs the file ("not measured" without PostgreSQL): run at once,
        # both sources' rows and watermarks arrived.
        lake = [line for line in rows if line.startswith("| 11. lake")]
        assert lake and not any("| **no** |" in line for line in lake), lake


def test_a_report_without_notes_keeps_nothing(tmp_path: Path) -> None:
    assert kept_notes(tmp_path / "absent.md") == ""
    (tmp_path / "plain.md").write_text("# Benchmarks\n\n| a | b |\n")
    assert kept_notes(tmp_path / "plain.md") == ""


def test_a_crashed_measurement_is_one_table_cell() -> None:
    stderr = (
        "Traceback (most recent call last):\n  File | x\n"
        + "  frame\n" * 200
        + "duckdb.OutOfMemoryException: Out of Memory Error: failed to allocate\n"
    )
    note = error_note(RuntimeError(stderr))
    assert "\n" not in note and "\\| x" in note
    assert all(note[i - 1] == "\\" for i, ch in enumerate(note) if ch == "|")  # no bare cell separator
    assert note.startswith("RuntimeError: Traceback") and note.endswith(
        "Out of Memory Error: failed to allocate"
    )
    assert len(note) <= 405


FULL_REPORT = """# Benchmarks

Generated by `evpipeline bench` (full scale).

- date: 2026-11-22 05:24 UTC
- machine: AMD EPYC, 2 cores, Linux
- python 3.11.7; dagster 1.13.27, duckdb 2.0.0, pandas 2.3.3

| measurement | ours | reference | ratio | target | met | notes |
|---|---|---|---|---|---|---|
| 1. merge vs MERGE INTO | 672 ms | 349 ms | 1.93x | <= 1.5x | **no** | 55,000 rows \\| into 1M |
| 2. bootstrap | 366 s | 137 s | 2.67x | <= 2 GiB | yes | one transaction |
| 10. DATEX II static, 25,000 locations | 9 s | 3 s | 3.0x | <= 1.5x | **no** | old |
| 10. DATEX II static, 100,000 locations | 60 s | 20 s | 3.0x | <= 1.5x | **no** | old |

## Reading the misses

written by people
"""


def test_a_partial_full_run_replaces_its_rows_and_keeps_the_others_with_their_dates(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(FULL_REPORT)
    kept = kept_rows(report, {"10"})
    assert kept == [
        "| 1. merge vs MERGE INTO | 672 ms | 349 ms | 1.93x | <= 1.5x | **no** | 55,000 rows \\| into 1M "
        "| 2026-11-22, duckdb 2.0.0 |",
        "| 2. bootstrap | 366 s | 137 s | 2.67x | <= 2 GiB | yes | one transaction "
        "| 2026-11-22, duckdb 2.0.0 |",
    ]
    info = {
        "date": "2026-12-08 00:30 UTC",
        "machine": "m",
        "python": "3.11",
        "versions": "duckdb 1.5.5, dlt 1",
    }
    new = [Result("10. DATEX II static, 25,000 locations", "5 s", "3 s", "1.6x", "<= 1.5x", False, "new")]
    rows = [
        line
        for line in render(new, info, False, kept).splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    assert [r.split(" | ")[0] for r in rows] == [
        "| measurement",
        "| 1. merge vs MERGE INTO",
        "| 2. bootstrap",
        "| 10. DATEX II static, 25,000 locations",
    ]
    assert rows[-1].endswith("| new | 2026-12-08, duckdb 1.5.5 |")
    # a row already carrying its date keeps it when kept again
    report.write_text(render(new, info, False, kept))
    assert kept_rows(report, {"1"})[0].endswith("| 2026-11-22, duckdb 2.0.0 |")
    assert kept_rows(report, {"1"})[-1].endswith("| 2026-12-08, duckdb 1.5.5 |")
    # a quick report is never merged into
    report.write_text(
        FULL_REPORT.replace("(full scale)", "(quick, small scale: proves the harness, not the targets)")
    )
    assert kept_rows(report, {"10"}) == []
