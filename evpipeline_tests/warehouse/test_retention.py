"""Retention: old days move to the Parquet archive exactly once, across reruns, failures and hard crashes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import evpipeline.ndw.push_sync as push_sync
import evpipeline.sources.tomtom.tables  # noqa: F401  (registers the tomtom tables)
from evpipeline.maintenance.assets import RETENTION_KEY, history_retention
from evpipeline.run_config import op_config
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import WarehouseResource, retention
from evpipeline.warehouse.retention import RETAINED, TrimResult, archive_and_trim, cutoff_for, trim_all
from evpipeline_tests.conftest import materialize, metadata, query, scalar

NOW = datetime(2026, 11, 20, 4, 15, tzinfo=UTC)
CUTOFF = datetime(2026, 8, 22, tzinfo=UTC)  # 90 whole days before NOW's UTC day
HISTORY = "ops.status_history"
Rows = list[tuple[Any, ...]]


def insert_history(warehouse: WarehouseResource, times: list[datetime], tag: str = "h") -> None:
    with warehouse.get_connection() as con:
        con.executemany(
            "INSERT INTO ops.status_history VALUES "
            "('evroam', 'evroam.availability', ?, 'status', 'AVAILABLE', 'CHARGING', ?, ?, ?)",
            [[f"{tag}{i % 7}", t - timedelta(minutes=3), t, f"run-{tag}{i}"] for i, t in enumerate(times)],
        )


@pytest.fixture
def history(warehouse: WarehouseResource) -> Rows:
    """Rows every 5 hours around the cutoff, both sides of its exact instant, and a genuine duplicate pair."""
    times = [CUTOFF - timedelta(days=6) + timedelta(hours=5 * i) for i in range(45)]
    times += [CUTOFF - timedelta(microseconds=1), CUTOFF, CUTOFF - timedelta(days=40)]
    insert_history(warehouse, times)
    dup = CUTOFF - timedelta(days=3, hours=-1)
    with warehouse.get_connection() as con:
        twin = "('zaptec', 'zaptec.chargers', 'twin', 'mode', NULL, 'x', ?, ?, NULL)"
        con.execute(f"INSERT INTO ops.status_history VALUES {twin}, {twin}", [dup, dup, dup, dup])
    return rows(warehouse)


def rows(warehouse: WarehouseResource, table: str = HISTORY) -> Rows:
    return query(warehouse, f"SELECT * FROM {table} ORDER BY ALL")


def archive_glob(root: Path, table: str) -> str:
    return str(root / Path(*table.split(".")) / "*" / "*.parquet")


def archived(warehouse: WarehouseResource, root: Path, table: str = HISTORY) -> Rows:
    return query(
        warehouse,
        f"SELECT * EXCLUDE (day) FROM read_parquet('{archive_glob(root, table)}', "
        "hive_partitioning = true, union_by_name = true) ORDER BY ALL",
    )


def archive_and_hot(warehouse: WarehouseResource, root: Path, table: str = HISTORY) -> Rows:
    """The BI query: archive and hot rows together."""
    return query(
        warehouse,
        f"""
        SELECT * EXCLUDE (day)
        FROM read_parquet('{archive_glob(root, table)}', hive_partitioning = true, union_by_name = true)
        UNION ALL BY NAME
        SELECT * FROM {table}
        ORDER BY ALL""",
    )


def trim(warehouse: WarehouseResource, root: Path, table: str = HISTORY, keep_days: int = 90) -> TrimResult:
    rule = RETAINED[table]
    with warehouse.get_connection() as con:
        return archive_and_trim(
            con, table, rule.time_column, keep_days, root, NOW, keep_latest_by=rule.keep_latest_by
        )


def staged(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/_staging/*"))


def test_cutoff_is_a_whole_utc_day() -> None:
    assert cutoff_for(NOW, 90) == CUTOFF
    # 01:00 on the 20th at +02:00 is still the 19th in UTC.
    local = datetime(2026, 11, 20, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert cutoff_for(local, 0) == datetime(2026, 11, 19, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoff_for(datetime(2026, 11, 20), 1)
    with pytest.raises(ValueError, match=">= 0"):
        cutoff_for(NOW, -1)


def test_old_days_move_to_the_archive_and_recent_rows_stay(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    old = [r for r in history if r[7] < CUTOFF]
    result = trim(warehouse, root)

    assert rows(warehouse) == [r for r in history if r[7] >= CUTOFF]
    assert archived(warehouse, root) == old
    assert archive_and_hot(warehouse, root) == history
    assert (result.rows_archived, result.rows_deleted) == (len(old), len(old))
    assert result.oldest_remaining == CUTOFF  # the row exactly at the cutoff stays
    days = sorted({r[7].date() for r in old})
    assert result.days_archived == len(days) == 7
    files = sorted(root.glob("ops/status_history/day=*/*.parquet"))
    assert [f.relative_to(root / "ops" / "status_history").as_posix() for f in files] == [
        f"day={d.isoformat()}/part-1.parquet" for d in days
    ]
    assert result.archive_bytes == sum(f.stat().st_size for f in files)
    # Every file holds exactly its own UTC day, and the hive `day` column says which.
    misfiled = (
        f"SELECT count(*) FROM read_parquet('{archive_glob(root, HISTORY)}', hive_partitioning = true) "
        "WHERE CAST(timezone('UTC', recorded_at) AS DATE) <> day"
    )
    assert scalar(warehouse, misfiled) == 0
    logged = scalar(warehouse, "SELECT sum(rows) FROM ops.archive_parts WHERE table_name = ?", [HISTORY])
    assert logged == len(old)
    assert staged(root) == []


def test_a_second_run_changes_nothing(warehouse: WarehouseResource, history: Rows, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    trim(warehouse, root)
    before = {f: f.read_bytes() for f in root.rglob("*.parquet")}
    hot = rows(warehouse)

    again = trim(warehouse, root)
    assert (again.days_archived, again.rows_archived, again.rows_deleted, again.archive_bytes) == (0, 0, 0, 0)
    assert {f: f.read_bytes() for f in root.rglob("*.parquet")} == before
    assert rows(warehouse) == hot
    assert archive_and_hot(warehouse, root) == history


def test_late_rows_for_an_archived_day_become_its_next_part(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    trim(warehouse, root)
    late = CUTOFF - timedelta(days=2, hours=-3)
    insert_history(warehouse, [late], tag="late")

    result = trim(warehouse, root)
    assert (result.days_archived, result.rows_archived) == (1, 1)
    day_dir = root / "ops" / "status_history" / f"day={late.date().isoformat()}"
    assert sorted(p.name for p in day_dir.iterdir()) == ["part-1.parquet", "part-2.parquet"]
    assert len(archive_and_hot(warehouse, root)) == len(history) + 1


def test_a_failed_delete_rolls_back_and_the_rerun_archives_once(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "archive"
    real_delete = retention._delete_rows
    calls = 0

    def delete_then_fail(*args: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:  # two days archived and committed, the third fails after its file was written
            raise RuntimeError("disk full")
        return real_delete(*args)

    monkeypatch.setattr(retention, "_delete_rows", delete_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        trim(warehouse, root)
    assert len(list(root.rglob("*.parquet"))) == 2
    assert staged(root) == []  # the failed day's staged file went with its transaction
    assert archive_and_hot(warehouse, root) == history

    monkeypatch.setattr(retention, "_delete_rows", real_delete)
    result = trim(warehouse, root)
    assert result.days_archived == 5
    assert archived(warehouse, root) == [r for r in history if r[7] < CUTOFF]
    assert archive_and_hot(warehouse, root) == history


def crash(warehouse: WarehouseResource, root: Path, at: str) -> None:
    """Run retention in another process that dies (os._exit: no cleanup, no rollback) when it calls `at`."""
    script = textwrap.dedent(f"""
        import os
        from datetime import datetime
        from evpipeline.warehouse import connect, retention
        setattr(retention, {at!r}, lambda *args: os._exit(17))
        con = connect({warehouse.database!r})
        retention.archive_and_trim(con, "ops.status_history", "recorded_at", 90, {str(root)!r},
                                   datetime.fromisoformat({NOW.isoformat()!r}))
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 17, completed.stderr[-2000:]


@pytest.mark.slow
def test_a_crash_before_the_delete_commits_leaves_the_rows_hot(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    crash(warehouse, root, "_delete_rows")
    assert len(staged(root)) == 1  # written and fsynced, but its delete never committed
    assert list(root.rglob("*.parquet")) == []
    assert rows(warehouse) == history

    result = trim(warehouse, root)
    assert result.parts_recovered == 0
    assert staged(root) == []
    assert archived(warehouse, root) == [r for r in history if r[7] < CUTOFF]
    assert archive_and_hot(warehouse, root) == history


@pytest.mark.slow
def test_a_crash_after_the_delete_committed_is_finished_by_the_rerun(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    crash(warehouse, root, "_promote")
    # The first day's rows are deleted and live only in the staged file, which readers do not see.
    first_day = min(r[7] for r in history).date()
    assert len(staged(root)) == 1
    assert list(root.rglob("*.parquet")) == []
    assert rows(warehouse) == [r for r in history if r[7].date() != first_day]

    result = trim(warehouse, root)
    assert result.parts_recovered == 1
    assert staged(root) == []
    assert archived(warehouse, root) == [r for r in history if r[7] < CUTOFF]
    assert archive_and_hot(warehouse, root) == history


def test_missing_tables_and_schemas_are_skipped(warehouse: WarehouseResource, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with warehouse.get_connection() as con:
        con.execute("DROP SCHEMA tomtom CASCADE")
        for table in ("nosuch.table", "ops.nosuch", "tomtom.availability_snapshots"):
            result = archive_and_trim(con, table, "t", 1, root, NOW)
            assert result.skipped and result.rows_archived == 0
        results = {r.table: r for r in trim_all(con, root, NOW)}
    assert results["tomtom.availability_snapshots"].skipped
    assert not results[HISTORY].skipped
    assert not root.exists()


def test_ndw_pushes_keep_each_objects_latest_push(warehouse: WarehouseResource, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    old = CUTOFF - timedelta(days=10)

    def push(when: datetime, key: str, outcome: str) -> None:
        with warehouse.get_connection() as con:
            con.execute(
                "INSERT INTO ops.ndw_pushes (pushed_at, kind, method, path, key, outcome, ok, attempts, "
                "content_hash) VALUES (?, 'evse', 'PATCH', '/x', ?, ?, ?, 1, ?)",
                [when, key, outcome, outcome == "accepted", f"h-{key}"],
            )

    push(old, "A", "rejected")
    push(old + timedelta(days=2), "A", "accepted")
    push(old, "B", "rejected")  # B's newest push, NDW rejected it: push_sync must keep seeing that

    result = trim(warehouse, root, "ops.ndw_pushes")
    assert result.rows_archived == 1
    assert query(warehouse, "SELECT key, outcome FROM ops.ndw_pushes ORDER BY ALL") == [
        ("A", "accepted"),
        ("B", "rejected"),
    ]
    with warehouse.get_connection() as con:
        assert push_sync._last_rejected(con) == {("evse", "B"): "h-B"}

    push(NOW, "B", "accepted")  # now B's old push is history like any other
    assert trim(warehouse, root, "ops.ndw_pushes").rows_archived == 1
    assert query(warehouse, "SELECT key, outcome FROM ops.ndw_pushes ORDER BY ALL") == [
        ("A", "accepted"),
        ("B", "accepted"),
    ]
    assert len(archive_and_hot(warehouse, root, "ops.ndw_pushes")) == 4


def test_defaults_come_from_the_environment(
    warehouse: WarehouseResource, history: Rows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {t: r.default_keep_days for t, r in RETAINED.items()} == {
        HISTORY: 90,
        "tomtom.availability_snapshots": 14,
        "ops.ndw_pushes": 90,
        "ops.runs": 90,
        "ops.source_clocks": 90,
    }
    monkeypatch.setenv("EVPIPELINE_HISTORY_KEEP_DAYS", "120")
    with warehouse.get_connection() as con:
        results = {r.table: r for r in trim_all(con, tmp_path / "archive", NOW, keep_days={"ops.runs": 7})}
    assert results[HISTORY].keep_days == 120
    assert results[HISTORY].rows_archived == 1  # only the row 40 days before the 90-day cutoff
    assert results["ops.runs"].keep_days == 7
    with pytest.raises(ValueError, match="no retention rule"):
        trim_all(None, tmp_path, NOW, keep_days={"ops.quarantine": 1})  # type: ignore[arg-type]  # refused before any query: no connection needed


def test_the_asset_materializes_and_reports_what_it_moved(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("EVPIPELINE_ARCHIVE_DIR", raising=False)
    now = utcnow()
    insert_history(warehouse, [now - timedelta(days=200), now - timedelta(days=100), now - timedelta(days=1)])
    with warehouse.get_connection() as con:
        con.execute(
            "INSERT INTO ops.runs (run_id, source, stream, committed_at, details) VALUES "
            "('r1', 'evroam', 'delta', ?, '{\"a\": 1}'), ('r2', 'evroam', 'delta', ?, NULL)",
            [now - timedelta(days=95), now],
        )
        con.execute(
            """
            INSERT INTO tomtom.availability_snapshots
                (availability_id, connector_type, power_kw, polled_at, total,
                 last_updated, _observed_at, _row_hash, _ingested_at)
            SELECT 'av-' || i, 'IEC62196Type2CCS', 150.0, ts, 4, ts, ts, hash(i), ts
            FROM (SELECT i, CAST(? AS TIMESTAMPTZ) - to_days(CAST(i AS INTEGER)) AS ts FROM range(30) t(i))
        """,
            [now],
        )

    result = materialize(
        [history_retention],
        {"warehouse": warehouse},
        run_config=op_config([history_retention], runs_keep_days=30),
    )
    meta = metadata(result, RETENTION_KEY.to_user_string())
    root = tmp_path / "data" / "archive"
    assert meta["dagster/uri"] == root.resolve().as_uri()
    assert meta["archive_dir"] == str(root)
    assert meta["ops.status_history.rows_archived"] == meta["ops.status_history.rows_deleted"] == 2
    assert meta["ops.runs.rows_archived"] == 1
    assert meta["tomtom.availability_snapshots.rows_archived"] == 15  # 14 whole days + today stay
    assert meta["ops.ndw_pushes.rows_archived"] == 0
    assert meta["rows_archived"] == meta["rows_deleted"] == 18
    assert meta["archive_bytes"] == sum(f.stat().st_size for f in root.rglob("*.parquet")) > 0
    assert "| ops.runs | 30 |" in meta["tables"]
    assert archive_and_hot(warehouse, root, "ops.runs")[0][-1] == '{"a": 1}'  # JSON survives the round trip
    assert "on_cron(15 4 * * *, UTC)" in str(history_retention.automation_conditions_by_key[RETENTION_KEY])
