"""Retention for the append-only history tables: N whole UTC days stay in DuckDB, older days go to Parquet.

Archive layout (hive partitions, `read_parquet(..., hive_partitioning = true)` adds a `day` column):

    <archive>/<schema>/<table>/day=YYYY-MM-DD/part-<n>.parquet     immutable once in place
    <archive>/<schema>/<table>/_staging/*.tmp                        never matched by `*.parquet`

A day normally gets one part; rows that reach an already archived day later (a replayed TomTom
poll, an NDW push that stopped being its key's newest) become the next part of that day.

Exactly once, per day: (1) BEGIN; COPY the day's eligible rows to a new staging file and fsync it;
(2) DELETE the same rows (same predicate in the same transaction, so the same snapshot: the same
rows; the counts are compared) and record the part in `ops.archive_parts`; COMMIT; (3) rename the
staging file into place. The COMMIT is the only decision point. Before each run, recovery looks at
every leftover staging file: one recorded in `ops.archive_parts` committed, so it is renamed into
place (finishing step 3); one not recorded never committed, so its rows are still in the table and
it is deleted. A crash at any point therefore leaves every row in the table or in exactly one
committed part, never both and never neither, and readers globbing `*.parquet` never see a file
whose delete did not commit. No deduplication is needed, so genuinely identical rows survive.

Callers hold the warehouse's write connection for the whole call: DuckDB admits one writing
process, which is what makes it safe for recovery to delete unrecorded staging files.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import duckdb

from evpipeline import settings
from evpipeline.warehouse.migrations import Migration, register
from evpipeline.warehouse.rows import one_row, scalar

PARTS = "ops.archive_parts"
STAGING = "_staging"
_PART_FILE = re.compile(r"part-(\d+)\.parquet")

register(
    Migration(
        "retention",
        1,
        "archive parts log",
        f"""
        CREATE TABLE {PARTS} (
            table_name VARCHAR NOT NULL,        -- schema.table the rows came from
            day DATE NOT NULL,                  -- UTC day of the rows' time column
            part INTEGER NOT NULL,              -- part-<n>.parquet within the day
            file VARCHAR NOT NULL,              -- where the part lives, relative to the archive directory
            staging VARCHAR NOT NULL,           -- where it was written before its delete committed (relative)
            rows BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            min_time TIMESTAMPTZ,
            max_time TIMESTAMPTZ,
            archived_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            PRIMARY KEY (table_name, day, part)
        );
        """,
    )
)


@dataclass(frozen=True)
class RetentionRule:
    """How one append-only table is trimmed: by which time column, keeping how many whole UTC days."""

    time_column: str
    keep_days_setting: str  # the setting (evpipeline.settings) that says how many days
    # Rows that are the newest for these columns are never trimmed (a reader needs the latest per key).
    keep_latest_by: tuple[str, ...] = ()

    @property
    def default_keep_days(self) -> int:
        return int(settings.get(self.keep_days_setting))


RETAINED: dict[str, RetentionRule] = {
    "ops.status_history": RetentionRule("recorded_at", "EVPIPELINE_HISTORY_KEEP_DAYS"),
    "tomtom.availability_snapshots": RetentionRule("polled_at", "EVPIPELINE_SNAPSHOTS_KEEP_DAYS"),
    # push_sync reads each object's latest push to avoid resending content NDW rejected.
    "ops.ndw_pushes": RetentionRule(
        "pushed_at", "EVPIPELINE_HISTORY_KEEP_DAYS", keep_latest_by=("kind", "key")
    ),
    "ops.runs": RetentionRule("committed_at", "EVPIPELINE_HISTORY_KEEP_DAYS"),
    # the timeliness report reads the reading in force when a change was recorded: the newest stays
    "ops.source_clocks": RetentionRule(
        "measured_at", "EVPIPELINE_HISTORY_KEEP_DAYS", keep_latest_by=("source",)
    ),
}


def archive_root() -> Path:
    """Where the archive lives: $EVPIPELINE_ARCHIVE_DIR, else $EVPIPELINE_DATA_DIR/archive."""
    configured = settings.get("EVPIPELINE_ARCHIVE_DIR")
    return Path(configured) if configured else settings.data_dir() / "archive"


def retention_cron() -> str:
    return settings.get("EVPIPELINE_RETENTION_CRON")


@dataclass
class TrimResult:
    """What one table's retention did. `rows_archived == rows_deleted` always (checked per day)."""

    table: str
    keep_days: int
    cutoff: datetime
    skipped: bool = False  # the table (or its schema) does not exist yet
    days_archived: int = 0
    rows_archived: int = 0
    rows_deleted: int = 0
    archive_bytes: int = 0
    oldest_remaining: datetime | None = None
    parts_recovered: int = 0  # parts of an interrupted earlier run renamed into place


def cutoff_for(now: datetime, keep_days: int) -> datetime:
    """Start of the UTC day `keep_days` before `now`'s; rows before it are archived."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if keep_days < 0:
        raise ValueError(f"keep_days must be >= 0, not {keep_days}")
    return datetime.combine(now.astimezone(UTC).date() - timedelta(days=keep_days), time(0), tzinfo=UTC)


def archive_and_trim(
    con: duckdb.DuckDBPyConnection,
    table: str,
    time_column: str,
    keep_days: int,
    archive_dir: Path | str,
    now: datetime,
    *,
    keep_latest_by: Sequence[str] = (),
    run_id: str | None = None,
) -> TrimResult:
    """Move every whole UTC day before the cutoff from `table` to the Parquet archive, exactly once."""
    schema, _, name = table.rpartition(".")
    if not schema:
        raise ValueError(f"table must be schema-qualified, not {table!r}")
    result = TrimResult(table, keep_days, cutoff_for(now, keep_days))
    if not _table_exists(con, schema, name):
        result.skipped = True
        return result
    columns = _columns(con, schema, name)
    missing = [c for c in (time_column, *keep_latest_by) if c not in columns]
    if missing:
        raise ValueError(f"{table} has no column(s) {missing}")
    if not _table_exists(con, *PARTS.split(".")):
        raise RuntimeError(f"{PARTS} is missing: connect after importing {__name__} (it registers the table)")

    root = Path(archive_dir)
    result.parts_recovered = _recover(con, table, root, root / schema / name / STAGING)
    target = f"{_quote(schema)}.{_quote(name)}"
    ts = f"x.{_quote(time_column)}"
    latest = ""
    if keep_latest_by:
        same_key = " AND ".join(f"n.{_quote(c)} IS NOT DISTINCT FROM x.{_quote(c)}" for c in keep_latest_by)
        latest = f" AND {ts} < (SELECT max(n.{_quote(time_column)}) FROM {target} AS n WHERE {same_key})"
    days = [
        d
        for (d,) in con.execute(
            f"SELECT DISTINCT CAST(timezone('UTC', {ts}) AS DATE) FROM {target} AS x "
            f"WHERE {ts} < $cutoff{latest} ORDER BY 1",
            {"cutoff": result.cutoff},
        ).fetchall()
    ]
    eligible = f"{ts} >= $start AND {ts} < $end{latest}"
    for day in days:
        rows, size = _archive_day(con, table, target, time_column, eligible, day, root, run_id)
        if rows:
            result.days_archived += 1
            result.rows_archived += rows
            result.rows_deleted += rows
            result.archive_bytes += size
    result.oldest_remaining = scalar(con.execute(f"SELECT min({_quote(time_column)}) FROM {target}"))
    return result


def trim_all(
    con: duckdb.DuckDBPyConnection,
    archive_dir: Path | str,
    now: datetime,
    *,
    keep_days: Mapping[str, int] | None = None,
    run_id: str | None = None,
) -> list[TrimResult]:
    """Apply every rule in RETAINED; `keep_days` overrides a table's default."""
    overrides = dict(keep_days or {})
    unknown = sorted(set(overrides) - set(RETAINED))
    if unknown:
        raise ValueError(f"no retention rule for {unknown}")
    return [
        archive_and_trim(
            con,
            table,
            rule.time_column,
            overrides.get(table, rule.default_keep_days),
            archive_dir,
            now,
            keep_latest_by=rule.keep_latest_by,
            run_id=run_id,
        )
        for table, rule in RETAINED.items()
    ]


def _archive_day(
    con: duckdb.DuckDBPyConnection,
    table: str,
    target: str,
    time_column: str,
    eligible: str,
    day: date,
    root: Path,
    run_id: str | None,
) -> tuple[int, int]:
    """One day: stage, delete + record in one transaction, then rename into place. (rows, bytes)."""
    schema, _, name = table.rpartition(".")
    table_dir = root / schema / name
    staging_dir, day_dir = table_dir / STAGING, table_dir / f"day={day.isoformat()}"
    staging_dir.mkdir(parents=True, exist_ok=True)
    start = datetime.combine(day, time(0), tzinfo=UTC)
    window = {"start": start, "end": start + timedelta(days=1)}

    con.execute("BEGIN TRANSACTION")
    staged: Path | None = None
    committing = False
    try:
        part = _next_part(con, table, day, day_dir)
        staged = staging_dir / f"day={day.isoformat()}.part-{part}.{uuid.uuid4().hex[:12]}.tmp"
        copied = scalar(
            con.execute(
                f"COPY (SELECT * FROM {target} AS x WHERE {eligible} ORDER BY x.{_quote(time_column)}) "
                f"TO '{_sql_path(staged)}' (FORMAT parquet, COMPRESSION zstd)",
                window,
            )
        )
        if not copied:
            con.execute("ROLLBACK")
            staged.unlink(missing_ok=True)
            return 0, 0
        # Durable before the delete can commit: after COMMIT this file is the only copy of the rows.
        _fsync(staged)
        _fsync_dir(staging_dir)
        size = staged.stat().st_size
        column = f"x.{_quote(time_column)}"
        low, high = one_row(
            con.execute(f"SELECT min({column}), max({column}) FROM {target} AS x WHERE {eligible}", window)
        )
        deleted = _delete_rows(con, target, eligible, window)
        if deleted != copied:
            raise RuntimeError(f"{table} {day}: archived {copied} rows but the delete matched {deleted}")
        final = day_dir / f"part-{part}.parquet"
        con.execute(
            f"INSERT INTO {PARTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?)",
            [
                table,
                day,
                part,
                final.relative_to(root).as_posix(),
                staged.relative_to(root).as_posix(),
                copied,
                size,
                low,
                high,
                run_id,
            ],
        )
        committing = True
        con.execute("COMMIT")
    except BaseException:
        if not committing:
            with contextlib.suppress(duckdb.Error):  # already rolled back if the empty-day branch raised
                con.execute("ROLLBACK")
            if staged is not None:
                staged.unlink(missing_ok=True)
        # A failed COMMIT leaves the staging file to recovery, which asks ops.archive_parts what happened.
        raise
    _promote(staged, final)
    return copied, size


def _delete_rows(
    con: duckdb.DuckDBPyConnection, target: str, eligible: str, window: Mapping[str, datetime]
) -> int:
    return scalar(con.execute(f"DELETE FROM {target} AS x WHERE {eligible}", window))


def _promote(staged: Path, final: Path) -> None:
    """Rename a committed part into its day directory (atomic; readers see all of it or none)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, final)
    _fsync_dir(final.parent)
    _fsync_dir(staged.parent)


def _recover(con: duckdb.DuckDBPyConnection, table: str, root: Path, staging_dir: Path) -> int:
    """Finish what an interrupted run left in staging: committed parts into place, the rest deleted."""
    if not staging_dir.is_dir():
        return 0
    leftovers = {p.relative_to(root).as_posix(): p for p in staging_dir.iterdir() if p.is_file()}
    if not leftovers:
        return 0
    committed = dict(
        con.execute(
            f"SELECT staging, file FROM {PARTS} WHERE table_name = ? AND list_contains(?, staging)",
            [table, list(leftovers)],
        ).fetchall()
    )
    promoted = 0
    for name, path in sorted(leftovers.items()):
        if name in committed:
            _promote(path, root / committed[name])
            promoted += 1
        else:
            path.unlink()  # its transaction never committed: the rows are still in the table
    _fsync_dir(staging_dir)
    return promoted


def _next_part(con: duckdb.DuckDBPyConnection, table: str, day: date, day_dir: Path) -> int:
    """One more than any part recorded or on disk, so a part in place is never overwritten."""
    logged = scalar(
        con.execute(
            f"SELECT coalesce(max(part), 0) FROM {PARTS} WHERE table_name = ? AND day = ?", [table, day]
        )
    )
    on_disk = [int(m.group(1)) for p in day_dir.glob("part-*.parquet") if (m := _PART_FILE.fullmatch(p.name))]
    return max([logged, *on_disk]) + 1


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    return (
        scalar(
            con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                "AND table_schema = ? AND table_name = ? AND table_type = 'BASE TABLE'",
                [schema, name],
            )
        )
        > 0
    )


def _columns(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {c for (c,) in rows}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename or new file in `path` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
