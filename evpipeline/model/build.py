"""Build the canonical model from whichever sources exist, with the one merge, in one transaction.

Two modes, one code path:
- **incremental** (the default, every few seconds on the real-time lane): each source mapping names
  the locations and tariffs touched by its rows ingested since the model's watermark
  (`ops.sync_state` mart/model, minus a small overlap), only those are mapped, merged and swept,
  and the watermark advances in the same transaction. Cost follows the changes, not the fleet.
- **full** (the scheduled reconciliation, the first build, or after the operator reference rules
  changed): every location and tariff is mapped; rows a source no longer produces are flagged. A
  full build first compares what it is about to write with what the incremental builds left
  (`MartBuild.mismatches`), which is how `incremental == full` is checked on a real warehouse.

The watermark is safe because a build runs inside one DuckDB transaction on a file only one
process can hold: no source write can commit between reading `max(_ingested_at)` and the commit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from evpipeline.model.identity import IdentityUpdate, update_identity
from evpipeline.model.mappings import LOCATION_SCOPE, TARIFF_SCOPE, Scope, SourceMapping, registry
from evpipeline.model.reference import OPERATORS, PARTIES, RULES, apply_operators, apply_rules
from evpipeline.model.rules import register_rules, rules_digest
from evpipeline.model.tables import CONNECTORS, EVSES, KEYS, LOCATIONS, TARIFFS, UNMAPPED
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import MergeCounts, Writer, read_sync_state, table_columns, transaction
from evpipeline.warehouse.rows import scalar

KINDS = ((LOCATIONS, "locations"), (EVSES, "evses"), (CONNECTORS, "connectors"), (TARIFFS, "tariffs"))
SOURCE, STREAM = "mart", "model"
# Re-read this much before the watermark: harmless (the merge is idempotent), and it absorbs a
# small clock step between two writers. No other write can commit during a build (DuckDB's file
# lock), so nothing else is needed; a longer overlap would only re-map recent changes every cycle.
OVERLAP = timedelta(seconds=1)
# Derived or bookkeeping columns: not compared when checking incremental against full.
_NOT_COMPARED = {
    "deleted_at",
    "_observed_at",
    "_observed_seq",
    "_row_hash",
    "_ingested_at",
    "_run_id",
    "_lineage",
    "_change",
    "_prev_status",
}


@dataclass
class MartBuild:
    mode: str = "incremental"  # incremental | full | idle (nothing changed)
    counts: dict[str, MergeCounts] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    unmapped: pd.DataFrame | None = None  # recomputed by full builds only
    removed: dict[str, int] = field(default_factory=dict)
    scope: dict[str, int] = field(default_factory=dict)  # locations / tariffs mapped
    watermark: datetime | None = None
    reason: str = ""  # why a full build
    mismatches: dict[str, int] | None = (
        None  # requested full builds: rows the mart held wrongly before this build
    )
    mismatch_sample: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # Incremental builds: the verdict of the latest full build (when, rows wrong per table).
    last_full: tuple[datetime, dict[str, int]] | None = None
    identity: IdentityUpdate | None = None  # the cross-source matching this build did

    @property
    def changed(self) -> int:
        return sum(c.changed for c in self.counts.values())


def available_mappings(con: duckdb.DuckDBPyConnection) -> list[SourceMapping]:
    """Mappings whose source tables exist in this warehouse."""
    tables = {
        f"{s}.{t}"
        for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
    }
    return [m for m in registry() if all(t in tables for t in m.requires)]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def strip_json_nulls(frame: pd.DataFrame, json_columns: list[str]) -> pd.DataFrame:
    """OCPI omits absent optional fields: drop null members inside every JSON value (any source)."""
    for column in json_columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        dirty = values.notna() & values.astype(str).str.contains("null", regex=False)
        if dirty.any():
            frame.loc[dirty, column] = [json.dumps(_without_nulls(json.loads(v))) for v in values[dirty]]
    return frame


def canonical_frame(
    con: duckdb.DuckDBPyConnection, mappings: list[SourceMapping], table: str, kind: str, incremental: bool
) -> pd.DataFrame | None:
    """The rows every mapping produces for one mart table, operator rules applied (rows without a CPO
    party are left out: reported in the unmapped values)."""
    selects = [sql for m in mappings if (sql := m.sql(kind, Scope(m.source, incremental)))]
    if not selects:
        return None
    union = " UNION ALL BY NAME ".join(f"({sql})" for sql in selects)
    if kind != "tariffs":
        union = apply_operators(kind, apply_rules(kind, union, list(table_columns(con, table))))
    frame = con.execute(
        f"SELECT * FROM ({union}) WHERE country_code IS NOT NULL AND party_id IS NOT NULL"
    ).df()
    return strip_json_nulls(frame, _json_columns(con, table))


def _json_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for name, kind in table_columns(con, table).items() if kind == "JSON"]


def _newest_ingest(con: duckdb.DuckDBPyConnection, mappings: list[SourceMapping]) -> datetime | None:
    tables = sorted({t for m in mappings for t in m.requires} | {RULES, PARTIES, OPERATORS})
    union = " UNION ALL ".join(f"SELECT max(_ingested_at) AS t FROM {t}" for t in tables)
    return scalar(con.execute(f"SELECT max(t) FROM ({union})"))


def _fill_scope(
    con: duckdb.DuckDBPyConnection, mappings: list[SourceMapping], since: datetime
) -> dict[str, int]:
    """What changed since `since`, per source, into the scope temp tables the mappings filter on."""
    parts = {
        LOCATION_SCOPE: [
            f"SELECT '{m.source}' AS source, location_id FROM ({m.changed_locations})"
            for m in mappings
            if m.changed_locations
        ],
        TARIFF_SCOPE: [
            f"SELECT '{m.source}' AS source, tariff_id FROM ({m.changed_tariffs})"
            for m in mappings
            if m.changed_tariffs
        ],
    }
    sizes = {}
    for name, selects in parts.items():
        column = "location_id" if name == LOCATION_SCOPE else "tariff_id"
        body = (
            " UNION ".join(selects)
            or f"SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS {column} WHERE false"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT * FROM ({body}) "
            f"WHERE {column} IS NOT NULL",
            {"since": since} if selects else None,
        )
        sizes[column] = scalar(con.execute(f"SELECT count(*) FROM {name}"))
    return {"locations": sizes["location_id"], "tariffs": sizes["tariff_id"]}


def _rules_changed(con: duckdb.DuckDBPyConnection, since: datetime) -> bool:
    """Operator rules, party assignments or operator entries changed: they may touch any location,
    so the build is full."""
    counts = " + ".join(
        f"(SELECT count(*) FROM {t} WHERE _ingested_at > $since)" for t in (RULES, PARTIES, OPERATORS)
    )
    return bool(scalar(con.execute(f"SELECT {counts}", {"since": since})))


def _mismatches(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, sources: list[str]
) -> tuple[int, list[dict[str, Any]]]:
    """Rows the mart holds differently from a full mapping: missing, different,
    or live when they should be gone."""
    columns = table_columns(con, table)
    compared = [c for c in columns if c not in _NOT_COMPARED and c in frame.columns]
    keys = list(KEYS[table])

    # JSON is compared as text: both sides went through the same null stripping and serialization.
    def cast(c: str) -> str:
        return f"CAST({c} AS VARCHAR)" if columns[c] == "JSON" else f"CAST({c} AS {columns[c]})"

    select = ", ".join(f"{cast(c)} AS {c}" for c in compared)
    in_sources = ", ".join(f"'{s}'" for s in sources)
    con.register("_mart_full", frame)
    try:
        rows = con.execute(f"""
            WITH full_rows AS (SELECT {select} FROM _mart_full),
            mart_rows AS (SELECT {select} FROM {table} WHERE source IN ({in_sources})),
            different AS (SELECT * FROM full_rows EXCEPT ALL SELECT * FROM mart_rows),
            extra AS (
                SELECT {", ".join(keys)} FROM mart_rows WHERE NOT is_deleted
                EXCEPT SELECT {", ".join(keys)} FROM full_rows
            )
            SELECT 'differs' AS problem, {", ".join(keys)} FROM different
            UNION ALL SELECT 'should be gone', {", ".join(keys)} FROM extra
        """).fetchall()
    finally:
        con.unregister("_mart_full")
    sample = [{"table": table, "problem": r[0], "key": "/".join(str(v) for v in r[1:])} for r in rows[:20]]
    return len(rows), sample


def build_mart(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str | None = None,
    as_of: datetime | None = None,
    full: bool = False,
) -> MartBuild:
    """Bring `mart` up to date with the sources: incrementally by default, fully on request or when needed."""
    started = time.perf_counter()
    as_of = as_of or utcnow()
    register_rules(con)
    mappings = available_mappings(con)
    result = MartBuild(sources=[m.source for m in mappings])
    with transaction(con, SOURCE, run_id) as writer:
        since, cursor = read_sync_state(con, SOURCE, STREAM)
        newest = _newest_ingest(con, mappings) if mappings else None
        digest = rules_digest()
        # A mart never built has nothing to judge: even a requested rebuild is its first build (counting
        # every new row as wrong would fail the matches_full_rebuild checks falsely).
        if since is None:
            result.mode, result.reason = "full", "first build"
        elif full:
            result.mode, result.reason = "full", "requested"
        elif cursor.get("rules") != digest:
            result.mode, result.reason = "full", "mapping rules changed"
        elif _rules_changed(con, since):
            result.mode, result.reason = "full", "operator reference rules changed"
        elif newest is None or newest <= since:
            result.mode = "idle"  # nothing ingested since the last build
        else:
            result.scope = _fill_scope(con, mappings, since - OVERLAP)
            if not any(result.scope.values()):
                result.mode = "idle"
        if result.mode != "idle":
            _build(con, writer, mappings, result, as_of)
        result.watermark = max(filter(None, [since, newest]), default=None)
        if result.mode == "full" or (result.watermark is not None and result.watermark != since):
            writer.set_sync_state(STREAM, result.watermark, {"rules": digest})
        if result.mode != "idle":
            writer.log_run(
                STREAM,
                watermark=result.watermark,
                details={
                    "mode": result.mode,
                    "reason": result.reason,
                    "sources": result.sources,
                    "scope": result.scope,
                    "mismatches": result.mismatches,
                },
            )
        result.counts = dict(writer.counts)
        if result.mismatches is None:
            result.last_full = last_reconciliation(con)
    result.seconds = time.perf_counter() - started
    return result


def last_reconciliation(con: duckdb.DuckDBPyConnection) -> tuple[datetime, dict[str, int]] | None:
    """When the latest full build ran and how many rows per table it found the incremental builds had
    wrong."""
    row = con.execute(f"""
        SELECT committed_at, details->'mismatches' FROM ops.runs
        WHERE source = '{SOURCE}' AND stream = '{STREAM}' AND (details->>'mode') = 'full'
            AND (details->>'reason') = 'requested'
        ORDER BY committed_at DESC LIMIT 1
    """).fetchone()
    if row is None or row[1] is None:
        return None
    return row[0], {k: int(v) for k, v in json.loads(row[1]).items()}


def _build(
    con: duckdb.DuckDBPyConnection,
    writer: Writer,
    mappings: list[SourceMapping],
    result: MartBuild,
    as_of: datetime,
) -> None:
    incremental = result.mode == "incremental"
    frames = {table: canonical_frame(con, mappings, table, kind, incremental) for table, kind in KINDS}
    if not incremental:
        # Only a requested rebuild judges the incremental builds: after a first build or a rules
        # change the mart was expected to differ, and counting that would fail the check falsely.
        if result.reason == "requested":
            result.mismatches = {}
            for table, frame in frames.items():
                if frame is not None:
                    sources = [m.source for m in mappings]
                    result.mismatches[table], sample = _mismatches(con, table, frame, sources)
                    result.mismatch_sample.extend(sample)
        locations, tariffs = frames[LOCATIONS], frames[TARIFFS]
        result.scope = {
            "locations": len(locations) if locations is not None else 0,
            "tariffs": len(tariffs) if tariffs is not None else 0,
        }
    for table, frame in frames.items():
        if frame is None:
            continue
        # The mapping is the truth as of this build: observed now, so it replaces whatever the mart
        # held even when a source's own timestamps did not move (or went back).
        frame["_observed_at"], frame["_observed_seq"] = as_of, time.time_ns()
        writer.merge(frame, table, KEYS[table], status_column="status" if table == EVSES else None)
        result.removed[table] = _sweep(con, writer, table, frame, mappings, incremental, as_of)
    # One physical location, published once: the pairs touching what this build changed (all, when full).
    result.identity = update_identity(con, as_of, scope=LOCATION_SCOPE if incremental else None)
    if not incremental:
        _record_unmapped(con, mappings, result, writer.run_id)


def _sweep(
    con: duckdb.DuckDBPyConnection,
    writer: Writer,
    table: str,
    frame: pd.DataFrame,
    mappings: list[SourceMapping],
    incremental: bool,
    as_of: datetime,
) -> int:
    """Flag rows the mappings no longer produce, within what this build covered: an EVSE reads REMOVED,
    never vanishes."""
    if incremental:
        scope_table, column = (
            (TARIFF_SCOPE, "tariff_id") if table == TARIFFS else (LOCATION_SCOPE, "location_id")
        )
        scope = con.execute(f"SELECT source, {column} FROM {scope_table}").df()
        if scope.empty:
            return 0
        return writer.flag_missing(table, KEYS[table], frame, as_of, scope_keys=scope)
    flagged = 0
    for mapping in mappings:
        present = frame[frame["source"] == mapping.source]
        flagged += writer.flag_missing(
            table, KEYS[table], present, as_of, scope_keys=pd.DataFrame({"source": [mapping.source]})
        )
    return flagged


def _record_unmapped(
    con: duckdb.DuckDBPyConnection, mappings: list[SourceMapping], result: MartBuild, run_id: str | None
) -> None:
    """The unmapped-values report covers whole source tables: refreshed by full builds."""
    selects = [f"({m.unmapped})" for m in mappings if m.unmapped]
    columns = ["source", "field", "value", "rows"]
    result.unmapped = (
        con.execute(" UNION ALL ".join(selects)).df() if selects else pd.DataFrame(columns=columns)
    )
    con.execute(f"DELETE FROM {UNMAPPED}")
    if len(result.unmapped):
        con.register("_evp_unmapped", result.unmapped)
        try:
            con.execute(
                f"INSERT INTO {UNMAPPED} SELECT source, field, CAST(value AS VARCHAR), rows, ?, now() "
                "FROM _evp_unmapped",
                [run_id],
            )
        finally:
            con.unregister("_evp_unmapped")
