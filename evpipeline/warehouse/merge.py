"""The one merge: upsert a validated frame into a warehouse table, set-based, inside the caller's transaction.

Rules, the same for every table:
- rows are matched on the natural `keys`; duplicates inside one frame collapse to the newest;
- versions are totally ordered by (as-of, sequence): the as-of time is the frame's `_observed_at`
  column if it has one (the fetch's server time), else `last_updated`; the sequence
  (`_observed_seq`, assigned when the data was fetched, e.g. `time.time_ns()`) breaks ties, so of
  two fetches in the same second the later one wins and a replay of the earlier one never does.
  A row older than what the table already observed for that key is ignored, so replayed or
  out-of-order data never overwrites newer data;
- identical content (same `_row_hash`, same delete flag) changes nothing; a newer as-of only moves
  `_observed_at` forward, so a later delivery of older data is still recognised as stale;
- `is_deleted` turning true is a *delete*: the row stays, flagged, with `deleted_at`;
- a change of the table's status column appends to `ops.status_history`.

On a DuckDB file the table is scanned once: one pass joins the delta to it and decides every row
(see `_merge_staged`); the writes, the counts and the status history all come from that pass. On a
DuckLake it is one `MERGE`. Either way each written row records what happened to it (`_change`,
`_prev_status`) and carries this merge's own `_ingested_at` stamp.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from evpipeline.warehouse.rows import one_row, over_frames, scalar

LINEAGE_COLUMNS = (
    "_observed_at",
    "_observed_seq",
    "_row_hash",
    "_ingested_at",
    "_run_id",
    "_lineage",
    "_change",
    "_prev_status",
)
# Not part of the content hash: they describe when/how we saw a row, or are derived by the merge.
_NOT_CONTENT = {"last_updated", "is_deleted", "deleted_at", *LINEAGE_COLUMNS}
# The merge's one pass over the delta, and the `_change`s it writes.
_STAGE = "_evp_stage"
# From this many rows a delta and its pass are read by name from memory (`over_frames`), not
# registered and staged in a temporary table: a long transaction keeps those until its end, and a
# bootstrap merges hundreds of 5,000-row batches in one. Below it (a lane cycle's 20 rows) the
# temporary table is cheaper (the named read costs ~15 ms more per merge) and what it keeps is small.
IN_MEMORY_FROM_ROWS = 1_000
_WRITTEN = "('insert', 'update', 'delete')"

_stamp_lock = threading.Lock()
_last_stamp = datetime.min.replace(tzinfo=UTC)


def _merge_stamp() -> datetime:
    """A timestamp unique to one merge call in this process (strictly increasing)."""
    global _last_stamp
    with _stamp_lock:
        now = datetime.now(UTC)
        if now <= _last_stamp:
            now = _last_stamp + timedelta(microseconds=1)
        _last_stamp = now
        return now


@dataclass
class MergeCounts:
    """What one merge did to one table. `unchanged` includes rows skipped as stale."""

    table: str
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    status_changes: int = 0

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        for name in ("fetched", "inserted", "updated", "deleted", "unchanged", "status_changes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> DuckDB type, in table order."""
    return _describe(con, table)[0]


def _describe(con: duckdb.DuckDBPyConnection, table: str) -> tuple[dict[str, str], bool]:
    """The table's columns (name -> DuckDB type, in table order) and whether it lives in a DuckLake.

    One statement: DESCRIBE binds the one table, where information_schema.columns builds every
    table's columns first (0.3 ms against 2-7 ms per call); the catalog's type comes along.
    """
    try:
        rows = con.execute(
            "SELECT column_name, column_type, (SELECT type FROM duckdb_databases() "
            f"WHERE database_name = current_database()) = 'ducklake' FROM (DESCRIBE {table})"
        ).fetchall()
    except duckdb.CatalogException:
        rows = []
    if not rows:
        raise ValueError(f"table {table} does not exist (missing migration?)")
    return {row[0]: row[1] for row in rows}, bool(rows[0][2])


def entity_key_sql(keys: Sequence[str], alias: str = "") -> str:
    """The natural key as one string (`a|b`), as ops.quarantine and ops.status_history store it."""
    prefix = f"{alias}." if alias else ""
    parts = [f"CAST({prefix}{_ident(k)} AS VARCHAR)" for k in keys]
    return parts[0] if len(parts) == 1 else "concat_ws('|', " + ", ".join(parts) + ")"


def merge(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame | Any,
    table: str,
    keys: Sequence[str],
    *,
    status_column: str | None = None,
    source: str | None = None,
    run_id: str | None = None,
    lineage: str | None = None,
) -> MergeCounts:
    """Upsert `frame` into `table` on `keys`; call inside a transaction (see `Writer`)."""
    counts = MergeCounts(table)
    if frame is None or len(frame) == 0:
        return counts
    target, lake = _describe(con, table)
    incoming = list(frame.columns)
    unknown = [c for c in incoming if c not in target]
    if unknown:
        raise ValueError(f"{table}: frame has columns the table lacks: {unknown} (add a migration)")
    missing = [c for c in (*keys, "last_updated") if c not in incoming]
    if missing:
        raise ValueError(f"{table}: frame lacks required columns {missing}")
    if status_column and status_column not in incoming:
        raise ValueError(f"{table}: status column {status_column!r} not in frame")

    def cast(col: str) -> str:
        return f"CAST(i.{_ident(col)} AS {target[col]})"

    # In the table's column order: the content hash must not depend on how a frame ordered its columns.
    content = [c for c in target if c in incoming and c not in _NOT_CONTENT]
    own = [c for c in content if c not in keys]
    as_of = cast("_observed_at") if "_observed_at" in incoming else cast("last_updated")
    versioned = "_observed_seq" in target  # tables older than the column merge as before, by as-of alone
    seq = cast("_observed_seq") if versioned and "_observed_seq" in incoming else "CAST(0 AS BIGINT)"
    row_hash = "hash(" + ", ".join(cast(c) for c in content) + ")"
    stamp = _merge_stamp()
    counts.fetched = len(frame)

    # (as-of, sequence) lexicographically: equal as-of times are decided by the fetch sequence; a
    # stored row without one (written before sequences existed) counts as sequence 0.
    stored_seq = "coalesce(t._observed_seq, 0)" if versioned else "0"
    not_older = f"(d._as_of > t._observed_at OR (d._as_of = t._observed_at AND d._seq >= {stored_seq}))"
    newer = f"(d._as_of > t._observed_at OR (d._as_of = t._observed_at AND d._seq > {stored_seq}))"
    same_content = "d._row_hash = t._row_hash AND d.is_deleted = t.is_deleted"
    change = "CASE WHEN d.is_deleted AND NOT t.is_deleted THEN 'delete' ELSE 'update' END"
    prev_status = f"CAST(t.{_ident(status_column)} AS VARCHAR)" if status_column else "NULL"
    assignments = [
        *(f"{_ident(c)} = d.{_ident(c)}" for c in own),
        "last_updated = d.last_updated",
        "is_deleted = d.is_deleted",
        "deleted_at = CASE WHEN d.is_deleted THEN coalesce(t.deleted_at, d._src_deleted_at, d._as_of) END",
        "_observed_at = d._as_of",
        *(["_observed_seq = d._seq"] if versioned else []),
        "_row_hash = d._row_hash",
        "_ingested_at = $stamp",
        "_run_id = $run_id",
        "_lineage = $lineage",
        f"_change = {change}",
        f"_prev_status = {prev_status}",
    ]
    insert_cols = [
        *content,
        "last_updated",
        "is_deleted",
        "deleted_at",
        "_observed_at",
        *(["_observed_seq"] if versioned else []),
        "_row_hash",
        "_ingested_at",
        "_run_id",
        "_lineage",
        "_change",
        "_prev_status",
    ]
    insert_vals = [
        *(f"d.{_ident(c)}" for c in content),
        "d.last_updated",
        "d.is_deleted",
        "CASE WHEN d.is_deleted THEN coalesce(d._src_deleted_at, d._as_of) END",
        "d._as_of",
        *(["d._seq"] if versioned else []),
        "d._row_hash",
        "$stamp",
        "$run_id",
        "$lineage",
        "'insert'",
        "NULL",
    ]
    source_rows = f"""
        SELECT {", ".join(f"{cast(c)} AS {_ident(c)}" for c in content)},
               {cast("last_updated")} AS last_updated,
               {as_of} AS _as_of,
               coalesce({seq}, 0) AS _seq,
               {cast("is_deleted") if "is_deleted" in incoming else "false"} AS is_deleted,
               {cast("deleted_at") if "deleted_at" in incoming else "CAST(NULL AS TIMESTAMPTZ)"}
                   AS _src_deleted_at,
               {row_hash} AS _row_hash
        FROM _evp_incoming i
    """
    key_values = [cast(k) for k in keys]
    newest_per_key = f"""
        QUALIFY row_number() OVER (PARTITION BY {", ".join(key_values)}
                                   ORDER BY {as_of} DESC, coalesce({seq}, 0) DESC,
                                            {cast("last_updated")} DESC, {row_hash} DESC) = 1
    """
    changed = f"{not_older} AND NOT ({same_content})"
    history = {
        "source": source or table.split(".")[0],
        "table": table,
        "column": status_column,
        "run_id": run_id,
    }
    in_memory = len(frame) >= IN_MEMORY_FROM_ROWS
    if not in_memory:
        con.register("_evp_incoming", frame)
    try:
        return _merge_in(
            con,
            frame,
            in_memory,
            table,
            keys,
            counts,
            source_rows=source_rows,
            newest_per_key=newest_per_key,
            lake=lake,
            changed=changed,
            newer=newer,
            change=change,
            prev_status=prev_status,
            assignments=assignments,
            content=content,
            insert_cols=insert_cols,
            insert_vals=insert_vals,
            target=target,
            versioned=versioned,
            status_column=status_column,
            stamp=stamp,
            run_id=run_id,
            lineage=lineage,
            history=history,
        )
    finally:
        if not in_memory:
            con.unregister("_evp_incoming")


def _merge_in(
    con: duckdb.DuckDBPyConnection,
    frame: pd.DataFrame | Any,
    in_memory: bool,
    table: str,
    keys: Sequence[str],
    counts: MergeCounts,
    *,
    source_rows: str,
    newest_per_key: str,
    lake: bool,
    changed: str,
    newer: str,
    change: str,
    prev_status: str,
    assignments: list[str],
    content: list[str],
    insert_cols: list[str],
    insert_vals: list[str],
    target: dict[str, str],
    versioned: bool,
    status_column: str | None,
    stamp: datetime,
    run_id: str | None,
    lineage: str | None,
    history: dict[str, Any],
) -> MergeCounts:
    """The writes, the frame read as `_evp_incoming` (registered, or by name when `in_memory`): staged
    on a file, one MERGE on a DuckLake."""
    incoming = frame if in_memory else None
    if not lake:
        return _merge_staged(
            con,
            incoming,
            table,
            keys,
            counts,
            source_rows=source_rows,
            newest_per_key=newest_per_key,
            on=" AND ".join(f"t.{_ident(k)} = d.{_ident(k)}" for k in keys),
            change=f"CASE WHEN t.rowid IS NULL THEN 'insert' WHEN {changed} THEN {change} WHEN {newer} "
            "THEN 'bump' END",
            prev_status=prev_status,
            content=content,
            insert_cols=insert_cols,
            carried=[c for c in target if c not in insert_cols],
            versioned=versioned,
            history_sql=_history_sql(keys, status_column, _STAGE) if status_column else None,
            params={"stamp": stamp, "run_id": run_id, "lineage": lineage},
            history=history,
        )
    # DuckLake: one MERGE. Its MERGE takes one UPDATE action; its updates rewrite whole rows anyway,
    # so the as-of bump of unchanged rows is folded into the content update column by column.
    folded = ", ".join(
        _keep_unless(assignment, changed)
        for assignment in assignments
        if not assignment.startswith(("_observed_at", "_observed_seq"))
    )
    versions = f"({changed}) OR {newer}"
    over_frames(
        con,
        f"""
        MERGE INTO {table} AS t
        USING ({source_rows} {newest_per_key}) AS d
        ON {" AND ".join(f"t.{_ident(k)} = d.{_ident(k)}" for k in keys)}
        WHEN MATCHED AND ({versions}) THEN UPDATE SET {folded},
            _observed_at = CASE WHEN {versions} THEN d._as_of ELSE t._observed_at END
            {
            f", _observed_seq = CASE WHEN {versions} THEN d._seq ELSE t._observed_seq END"
            if versioned
            else ""
        }
        WHEN NOT MATCHED THEN INSERT ({", ".join(_ident(c) for c in insert_cols)})
            VALUES ({", ".join(insert_vals)})
        """,
        {"stamp": stamp, "run_id": run_id, "lineage": lineage},
        _evp_incoming=incoming,
    )

    written = dict(
        con.execute(
            f"SELECT _change, count(*) FROM {table} WHERE _ingested_at = $stamp GROUP BY 1", {"stamp": stamp}
        ).fetchall()
    )
    counts.inserted = written.get("insert", 0)
    counts.updated = written.get("update", 0)
    counts.deleted = written.get("delete", 0)
    considered = counts.fetched if counts.changed == counts.fetched else _distinct_keys(frame, keys)
    counts.unchanged = considered - counts.changed

    if status_column and counts.changed:
        counts.status_changes = scalar(
            con.execute(
                f"""
            INSERT INTO ops.status_history
            SELECT $source, $table, {entity_key_sql(keys)}, $column, _prev_status,
                   CAST({_ident(status_column)} AS VARCHAR), last_updated, now(), $run_id
            FROM {table}
            WHERE _ingested_at = $stamp AND CAST({_ident(status_column)} AS VARCHAR) IS DISTINCT
                FROM _prev_status
            """,
                {**history, "stamp": stamp},
            )
        )
    return counts


def _merge_staged(
    con: duckdb.DuckDBPyConnection,
    incoming: pd.DataFrame | Any | None,
    table: str,
    keys: Sequence[str],
    counts: MergeCounts,
    *,
    source_rows: str,
    newest_per_key: str,
    on: str,
    change: str,
    prev_status: str,
    content: list[str],
    insert_cols: list[str],
    carried: list[str],
    versioned: bool,
    history_sql: str | None,
    params: dict[str, Any],
    history: dict[str, Any],
) -> MergeCounts:
    """The merge on a DuckDB file: one pass over the delta joined to the table, then plain writes.

    The pass (`_evp_stage`: a temporary table of the delta's rows, or with `incoming` given an Arrow
    table read by name, see `IN_MEMORY_FROM_ROWS`) decides each row's fate, the
    `_change` it will record (`insert`, `update`, `delete`, `bump`: newer as-of, same content;
    NULL: stale or a replay), and carries what the write needs from the stored row: its rowid,
    previous status and `deleted_at`, and any column the frame does not set. From it: a changed
    row is deleted by rowid and written again whole, beside the new rows, in one append (DuckDB
    updates column by column: a 17-column UPDATE costs twice a 7-column one and its checkpoint
    rewrites every touched column; an append of whole rows is cheaper than either); a bump updates
    the two version columns in place; counts and status history are read from the pass, not from
    a second scan of the table.
    """
    old = {c: _ident("_evp_old_" + c) for c in carried}

    def stage(collapse: str) -> Any:
        """The pass: an Arrow table when the frame is read by name, else the temporary table (None)."""
        pass_sql = f"""
            SELECT d.*, t.rowid AS _evp_rid, {prev_status} AS _evp_prev_status,
                   t.deleted_at AS _evp_deleted_at,
                   {"".join(f"t.{_ident(c)} AS {old[c]}, " for c in carried)}{change} AS _evp_change
            FROM ({source_rows} {collapse}) AS d LEFT JOIN {table} AS t ON {on}
            """
        if incoming is not None:
            return over_frames(con, pass_sql, _evp_incoming=incoming).to_arrow_table()
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_STAGE} AS {pass_sql}")
        return None

    # Collapsing duplicate keys is a window over the whole delta (40% of the pass at 55k rows, half
    # of it at 20), and a frame's keys are almost always unique: staged as they come, then checked
    # on the stage, exactly as the window sees them (cast to the table's types; a NULL key counts as
    # a duplicate); staged again, collapsed, only if two rows share a key.
    key = _ident(keys[0]) if len(keys) == 1 else f"row({', '.join(_ident(k) for k in keys)})"

    def tally(staged: Any) -> tuple[Any, ...]:
        """(keys unique?, then how many rows of each `_change`, then all rows) of the stage."""
        return one_row(
            over_frames(
                con,
                f"SELECT count(*) = count(DISTINCT {key}), "
                + "".join(
                    f"count(*) FILTER (_evp_change = '{c}'), " for c in ("insert", "update", "delete", "bump")
                )
                + f"count(*) FROM {_STAGE}",
                _evp_stage=staged,
            )
        )

    staged = stage("")
    unique, counts.inserted, counts.updated, counts.deleted, bumps, considered = tally(staged)
    if not unique:
        staged = stage(newest_per_key)
        _, counts.inserted, counts.updated, counts.deleted, bumps, considered = tally(staged)
    counts.unchanged = considered - counts.changed
    replaced = counts.updated + counts.deleted

    if bumps:
        over_frames(
            con,
            f"UPDATE {table} AS t SET _observed_at = "
            f"s._as_of{', _observed_seq = s._seq' if versioned else ''} FROM {_STAGE} AS s "
            "WHERE t.rowid = s._evp_rid AND s._evp_change = 'bump'",
            _evp_stage=staged,
        )
    if replaced:
        over_frames(
            con,
            f"DELETE FROM {table} WHERE rowid IN "
            f"(SELECT _evp_rid FROM {_STAGE} WHERE _evp_change IN ('update', 'delete'))",
            _evp_stage=staged,
        )
    values = [
        *(_ident(c) for c in content),
        "last_updated",
        "is_deleted",
        "CASE WHEN is_deleted THEN coalesce(_evp_deleted_at, _src_deleted_at, _as_of) END",
        "_as_of",
        *(["_seq"] if versioned else []),
        "_row_hash",
        "$stamp",
        "$run_id",
        "$lineage",
        "_evp_change",
        "_evp_prev_status",
    ]
    columns = ", ".join(_ident(c) for c in insert_cols)
    if carried and replaced:
        # A replaced row keeps the columns the frame does not set; a new row takes their defaults.
        over_frames(
            con,
            f"INSERT INTO {table} ({columns}, {', '.join(_ident(c) for c in carried)}) "
            f"SELECT {', '.join(values)}, {', '.join(old.values())} FROM {_STAGE} "
            "WHERE _evp_change IN ('update', 'delete')",
            params,
            _evp_stage=staged,
        )
        if counts.inserted:
            over_frames(
                con,
                f"INSERT INTO {table} ({columns}) SELECT {', '.join(values)} FROM {_STAGE} "
                "WHERE _evp_change = 'insert'",
                params,
                _evp_stage=staged,
            )
    elif counts.changed:
        over_frames(
            con,
            f"INSERT INTO {table} ({columns}) SELECT {', '.join(values)} FROM {_STAGE} "
            f"WHERE _evp_change IN {_WRITTEN}",
            params,
            _evp_stage=staged,
        )
    if history_sql and counts.changed:
        counts.status_changes = scalar(over_frames(con, history_sql, history, _evp_stage=staged))
    if staged is None:
        con.execute(f"DROP TABLE {_STAGE}")
    return counts


def _history_sql(keys: Sequence[str], status_column: str, rows: str) -> str:
    """ops.status_history rows for the written rows of `rows` whose status differs from the stored one."""
    status = f"CAST({_ident(status_column)} AS VARCHAR)"
    return f"""
        INSERT INTO ops.status_history
        SELECT $source, $table, {entity_key_sql(keys)}, $column, _evp_prev_status, {status}, last_updated,
            now(), $run_id
        FROM {rows}
        WHERE _evp_change IN {_WRITTEN} AND {status} IS DISTINCT FROM _evp_prev_status
    """


def _keep_unless(assignment: str, condition: str) -> str:
    """`col = expr` as `col = CASE WHEN condition THEN expr ELSE t.col END`."""
    column, _, value = assignment.partition(" = ")
    return f"{column} = CASE WHEN {condition} THEN {value} ELSE t.{column} END"


def _distinct_keys(frame: pd.DataFrame, keys: Sequence[str]) -> int:
    """Rows left after collapsing duplicate keys (what the merge actually considered)."""
    if len(keys) == 1:
        return int(frame[keys[0]].nunique(dropna=False))
    return int(len(frame.drop_duplicates(list(keys))))


def flag_missing(
    con: duckdb.DuckDBPyConnection,
    table: str,
    keys: Sequence[str],
    present: pd.DataFrame,
    as_of: datetime,
    *,
    scope_keys: pd.DataFrame | None = None,
    run_id: str | None = None,
) -> int:
    """After a complete snapshot, flag rows the source no longer returns (hard deletes) as deleted.

    `present` holds the key columns of every row in the snapshot. `scope_keys` (a frame of some
    key columns) limits the sweep to the rows the snapshot covers, e.g. the connectors of the
    stations just fetched. Rows observed after the snapshot began (e.g. by a push) are left alone.
    """
    key_frame = present[list(keys)].drop_duplicates()
    scope = ""
    if scope_keys is not None:
        scope = (
            "AND EXISTS (SELECT 1 FROM _evp_scope s WHERE "
            + " AND ".join(f"s.{_ident(k)} = {table}.{_ident(k)}" for k in scope_keys.columns)
            + ")"
        )
    match = " AND ".join(f"p.{_ident(k)} = {table}.{_ident(k)}" for k in keys)
    row = over_frames(
        con,
        f"""
            UPDATE {table}
            SET is_deleted = true, deleted_at = coalesce(deleted_at, CAST($as_of AS TIMESTAMPTZ)),
                last_updated = greatest(last_updated, CAST($as_of AS TIMESTAMPTZ)),
                _observed_at = greatest(_observed_at, CAST($as_of AS TIMESTAMPTZ)),
                _ingested_at = now(), _run_id = $run_id, _change = 'delete',
                _lineage = 'hard delete: absent from full snapshot'
            WHERE NOT is_deleted AND _observed_at <= CAST($as_of AS TIMESTAMPTZ)
              AND NOT EXISTS (SELECT 1 FROM _evp_present p WHERE {match})
              {scope}
            """,
        {"as_of": as_of, "run_id": run_id},
        _evp_present=key_frame,
        _evp_scope=None if scope_keys is None else scope_keys.drop_duplicates(),
    ).fetchone()
    return int(row[0]) if row else 0
