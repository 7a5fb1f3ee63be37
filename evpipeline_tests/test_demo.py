"""`evpipeline demo` end to end, as a user runs it: a subprocess, real simulators, real Dagster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import evpipeline
from benchmarks import end_to_end
from benchmarks.harness import fmt_seconds
from evpipeline.warehouse.rows import scalar


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    """Also the benchmark's end-to-end row (7): the suite runs the demo once, through the measurement
    (`benchmarks.end_to_end`), and the benchmark smoke test leaves this row to this test."""
    completed, seconds = end_to_end.demo(tmp_path, 0.5, dagster_home=tmp_path / "dagster_home", timeout=240)
    env = end_to_end.demo_env()
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = completed.stdout
    assert "evpipeline demo finished" in out and "FAILED" not in out
    assert "realtime_lane" in out  # the real-time lane carried the simulated changes
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        stations = scalar(con.execute("SELECT count(*) FROM evroam.charging_stations"))
        watermarks = scalar(con.execute("SELECT count(*) FROM ops.sync_state"))
        lane_patches = scalar(
            con.execute("SELECT count(*) FROM ops.ndw_pushes WHERE method = 'PATCH' AND ok")
        )
        merged_pushes = scalar(
            con.execute("SELECT count(*) FROM ops.runs WHERE stream LIKE 'push:%' OR stream = 'push'")
        )
        zaptec_exported = scalar(
            con.execute("SELECT count(*) FROM ops.ndw_pushed WHERE kind = 'location' AND party_id = 'ZPT'")
        )
    assert stations > 50 and watermarks >= 2
    assert lane_patches > 0 and merged_pushes > 0  # EVRoam files and Zaptec messages merged; statuses PATCHed
    assert zaptec_exported > 0  # the operator reference data makes public Zaptec sites deliverable
    assert "evroam.charging_stations" in out
    # data/README.md lists every output the demo left in its data directory.
    listed = (Path(__file__).resolve().parents[1] / "data" / "README.md").read_text()
    outputs = {p.name + ("/" if p.is_dir() else "") for p in tmp_path.iterdir() if p.name != "dagster_home"}
    assert {name for name in outputs if f"`{name}" not in listed} == set(), outputs
    # The runs are in the Dagster home `evpipeline dev` uses, so its UI shows them afterwards.
    home = tmp_path / "dagster_home"
    assert (home / "dagster.yaml").read_text() == (
        Path(evpipeline.__file__).parent / "dagster.yaml"
    ).read_text()
    runs = subprocess.run(
        [
            sys.executable,
            "-c",
            "import dagster as dg; i = dg.DagsterInstance.get(); "
            "print(sorted({(r.job_name, r.status.value) for r in i.get_runs()}))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "DAGSTER_HOME": str(home)},
        check=True,
    )
    for job in ("sync_all", "realtime_lane", "ndw_push_full", "ndw_daily_export"):
        assert f"('{job}', 'SUCCESS')" in runs.stdout, runs.stdout
    # The benchmark's row 7 is this run: its wall time, and the Dagster runs the demo reported.
    row = end_to_end.row(completed, seconds, 0.5)
    assert row.name == "7. end to end (`make demo` after install)" and row.ours == fmt_seconds(seconds)
    ran = end_to_end.steps(completed)
    assert len(ran) >= 5 and ran[0].startswith("ok  sync_all (bootstrap) ("), ran
    assert row.notes.startswith(f"scale 0.5; {len(ran)} Dagster runs ") and row.met == (seconds < 60)


def test_the_summary_reports_every_failed_asset_check_with_its_own_figures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from evpipeline.demo import DemoReport, failed_checks, print_report

    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("rejections", asset="export"),
            dg.AssetCheckSpec("counts", asset="export"),
        ]
    )
    def export() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name="rejections",
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "rejected_locations": 27,
                        "rejected_location_ratio": 0.1262,
                        "threshold": 0.1,
                        "rejections": dg.MetadataValue.md("| object | reasons |\n|---|---|"),
                    },
                ),
                dg.AssetCheckResult(check_name="counts", passed=True),
            ]
        )

    result = dg.materialize([export])
    assert (
        result.success
    )  # a failed (non-blocking) check leaves the run successful: the demo must read the checks
    evaluated, failed = failed_checks("ndw_daily_export 2026-12-07", result)
    assert evaluated == 2 and len(failed) == 1
    monkeypatch.setenv("EVPIPELINE_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    lines: list[str] = []
    print_report(DemoReport(tmp_path, checks_evaluated=evaluated, failed_checks=failed), say=lines.append)
    assert "asset checks: 1 of 2 failed:" in lines
    assert (
        "  export rejections (ERROR): rejected_locations 27, rejected_location_ratio 0.1262, threshold 0.1"
        "  [ndw_daily_export 2026-12-07]"
    ) in lines
    lines.clear()
    print_report(DemoReport(tmp_path, checks_evaluated=evaluated), say=lines.append)
    assert "asset checks: all 2 passed" in lines


def test_the_summary_names_the_data_dir_and_dagster_home_the_demo_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from evpipeline.demo import DemoReport, print_report

    monkeypatch.setenv("EVPIPELINE_WAREHOUSE", str(tmp_path / "demo" / "warehouse.duckdb"))
    lines: list[str] = []
    print_report(DemoReport(tmp_path / "demo", tmp_path / "home"), say=lines.append)
    assert lines[-1] == (
        f"explore: `evpipeline dev --data-dir {tmp_path / 'demo'} --dagster-home {tmp_path / 'home'}` opens "
        "the Dagster UI on these runs and this data; BI tools read "
        f"{tmp_path / 'demo' / 'snapshots' / 'warehouse.duckdb'} (docs/mart.md)."
    )
    monkeypatch.chdir(tmp_path)  # the defaults: ./data and ./.dagster_home, what `make dev` uses
    monkeypatch.setenv("EVPIPELINE_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    lines.clear()
    print_report(DemoReport(Path("data"), Path(".dagster_home")), say=lines.append)
    assert lines[-1].startswith(
        "explore: `make dev` opens the Dagster UI on these runs and this data; BI tools read "
        f"{tmp_path / 'data' / 'snapshots' / 'warehouse.duckdb'}"
    )
