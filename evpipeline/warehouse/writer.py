"""One write = one DuckDB transaction: merges, quarantine, watermark and the run log commit together.

A crash anywhere before `COMMIT` leaves the warehouse and the watermark exactly as they were, so a
rerun fetches the same changes again and converges on the same state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from evpipeline import clocks
from evpipeline.warehouse.merge import MergeCounts, flag_missing, merge
from evpipeline.warehouse.migrations import Migration, register

# The provider clocks' table, written by `flush` in every source's transaction (evpipeline/clocks.py).
register(Migration("clocks", 1, clocks.MIGRATION_NAME, clocks.DDL))


@dataclass(frozen=True)
class QuarantineRecord:
    """A row that failed validation: kept with its reasons and the raw payload, never merged."""

    table_name: str
    entity_key: str
    failed_checks: str
    raw: Any

    @property
    def raw_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True, default=str)

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.raw_json.encode()).hexdigest()[:32]


def read_sync_state(
    con: duckdb.DuckDBPyConnection, source: str, stream: str
) -> tuple[datetime | None, dict[str, Any]]:
    """(watermark, cursor) of a source stream; (None, {}) before its first sync."""
    row = con.execute(
        "SELECT watermark, cursor FROM ops.sync_state WHERE source = ? AND stream = ?", [source, stream]
    ).fetchone()
    if row is None:
        return None, {}
    return row[0], json.loads(row[1]) if row[1] else {}


@dataclass
class Writer:
    """Collects one source's writes inside an open transaction."""

    con: duckdb.DuckDBPyConnection
    source: str
    run_id: str | None = None
    counts: dict[str, MergeCounts] = field(default_factory=dict)
    quarantined: int = 0
    watermarks: dict[str, datetime | None] = field(default_factory=dict)

    def merge(
        self,
        frame: pd.DataFrame,
        table: str,
        keys: Sequence[str],
        *,
        status_column: str | None = None,
        lineage: str | None = None,
    ) -> MergeCounts:
        result = merge(
            self.con,
            frame,
            table,
            keys,
            status_column=status_column,
            source=self.source,
            run_id=self.run_id,
            lineage=lineage,
        )
        self.counts.setdefault(table, MergeCounts(table))
        self.counts[table] += result
        return result

    def flag_missing(
        self,
        table: str,
        keys: Sequence[str],
        present: pd.DataFrame,
        as_of: datetime,
        *,
        scope_keys: pd.DataFrame | None = None,
    ) -> int:
        flagged = flag_missing(
            self.con, table, keys, present, as_of, scope_keys=scope_keys, run_id=self.run_id
        )
        self.counts.setdefault(table, MergeCounts(table)).deleted += flagged
        return flagged

    def quarantine(self, records: Sequence[QuarantineRecord]) -> int:
        """Store failing rows; the same payload seen again bumps its counters instead of duplicating."""
        if not records:
            return 0
        frame = pd.DataFrame(
            {
                "table_name": [r.table_name for r in records],
                "entity_key": [r.entity_key for r in records],
                "payload_hash": [r.payload_hash for r in records],
                "failed_checks": [r.failed_checks for r in records],
                "raw_json": [r.raw_json for r in records],
            }
        ).drop_duplicates(["table_name", "entity_key", "payload_hash"])
        self.con.register("_evp_quarantine", frame)
        try:
            # MERGE, not INSERT ... ON CONFLICT: a DuckLake has no key constraints to conflict on.
            self.con.execute(
                """
                MERGE INTO ops.quarantine AS q
                USING (SELECT $source AS source, * FROM _evp_quarantine) AS n
                ON q.source = n.source AND q.table_name = n.table_name AND q.entity_key = n.entity_key
                   AND q.payload_hash = n.payload_hash
                WHEN MATCHED THEN UPDATE SET
                    last_run_id = $run_id, last_seen = now(), failed_checks = n.failed_checks,
                    occurrences = q.occurrences + 1
                WHEN NOT MATCHED THEN INSERT (source, table_name, entity_key, payload_hash, failed_checks,
                                              raw_json,
                                              first_run_id, last_run_id, first_seen, last_seen, occurrences)
                    VALUES (n.source, n.table_name, n.entity_key, n.payload_hash, n.failed_checks, n.raw_json,
                            $run_id, $run_id, now(), now(), 1)
                """,
                {"source": self.source, "run_id": self.run_id},
            )
        finally:
            self.con.unregister("_evp_quarantine")
        self.quarantined += len(frame)
        return len(frame)

    # -- plain row writes: ops tables that are not merged (logs, what a receiver holds) ----------
    def append(self, table: str, frame: pd.DataFrame) -> int:
        """INSERT the frame's rows by column name; columns it lacks take the table's defaults."""
        if frame.empty:
            return 0
        with self._registered(frame) as view:
            self.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
        return len(frame)

    def delete_matching(self, table: str, keys: pd.DataFrame) -> int:
        """DELETE every row whose columns named in `keys` equal one row of `keys`; returns the count."""
        if keys.empty:
            return 0
        match = " AND ".join(f"t.{_ident(c)} = k.{_ident(c)}" for c in keys.columns)
        with self._registered(keys.drop_duplicates()) as view:
            row = self.con.execute(f"DELETE FROM {table} t USING {view} k WHERE {match}").fetchone()
        return int(row[0]) if row else 0

    def update_matching(
        self,
        table: str,
        keys: Sequence[str],
        values: pd.DataFrame,
        *,
        constants: Mapping[str, Any] | None = None,
    ) -> int:
        """UPDATE rows matching `values` on the `keys` columns: SET its other columns, plus `constants`
        (the same value on every row, e.g. a run id); returns the count."""
        if values.empty:
            return 0
        constants = dict(constants or {})
        assigned = [c for c in values.columns if c not in keys]
        params = {f"c{i}": v for i, v in enumerate(constants.values())}
        sets = [f"{_ident(c)} = v.{_ident(c)}" for c in assigned]
        sets += [f"{_ident(c)} = ${name}" for c, name in zip(constants, params, strict=True)]
        match = " AND ".join(f"t.{_ident(c)} = v.{_ident(c)}" for c in keys)
        with self._registered(values) as view:
            row = self.con.execute(
                f"UPDATE {table} t SET {', '.join(sets)} FROM {view} v WHERE {match}", params
            ).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def _registered(self, frame: pd.DataFrame) -> Iterator[str]:
        """The frame as a view on this connection for one statement (always unregistered)."""
        name = "_evp_writer_rows"
        self.con.register(name, frame)
        try:
            yield name
        finally:
            self.con.unregister(name)

    def set_sync_state(
        self, stream: str, watermark: datetime | None, cursor: dict[str, Any] | None = None
    ) -> None:
        """Advance a stream's watermark (never backwards) in the same transaction as the data."""
        self.con.execute(
            """
            MERGE INTO ops.sync_state AS s
            USING (SELECT $source AS source, $stream AS stream, CAST($watermark AS TIMESTAMPTZ) AS watermark,
                          CAST($cursor AS VARCHAR) AS cursor) AS n
            ON s.source = n.source AND s.stream = n.stream
            WHEN MATCHED THEN UPDATE SET
                watermark = CASE WHEN s.watermark IS NULL OR n.watermark > s.watermark THEN n.watermark
                ELSE s.watermark END,
                cursor = coalesce(n.cursor, s.cursor), updated_at = now(), run_id = $run_id
            WHEN NOT MATCHED THEN INSERT (source, stream, watermark, cursor, updated_at, run_id)
                VALUES (n.source, n.stream, n.watermark, n.cursor, now(), $run_id)
            """,
            {
                "source": self.source,
                "stream": stream,
                "watermark": watermark,
                "cursor": json.dumps(cursor) if cursor is not None else None,
                "run_id": self.run_id,
            },
        )
        self.watermarks[stream] = watermark

    def log_run(
        self,
        stream: str,
        *,
        requests: int | None = None,
        watermark: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        total = MergeCounts("*")
        for c in self.counts.values():
            total += c
        self.con.execute(
            "INSERT INTO ops.runs VALUES (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.run_id,
                self.source,
                stream,
                requests,
                total.fetched,
                total.inserted,
                total.updated,
                total.deleted,
                total.unchanged,
                self.quarantined,
                watermark,
                json.dumps(
                    {"tables": {t: c.as_dict() for t, c in self.counts.items()}, **(details or {})},
                    default=str,
                ),
            ],
        )


def _ident(column: str) -> str:
    """A quoted column name (names come from code, but a keyword such as `key` must still parse)."""
    return '"' + column.replace('"', '""') + '"'


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, source: str, run_id: str | None = None) -> Iterator[Writer]:
    """BEGIN ... COMMIT around a Writer; any exception rolls everything back."""
    con.execute("BEGIN TRANSACTION")
    writer = Writer(con, source, run_id)
    try:
        yield writer
        clocks.flush(con, source)  # the source's clock readings since its last write (evpipeline/clocks.py)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
