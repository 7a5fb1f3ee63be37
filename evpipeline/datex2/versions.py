"""Versions of the published DATEX II objects: `versionG` changes exactly when an object's content does.

Every identifiable object of the static publication (table, site, opening hours, station, charging
point, operator and helpdesk organisations) has a content hash over the columns it is rendered from
(its own content only: a site's stations are objects of their own and count by id). The ledger
`ops.datex2_versions` keeps, per object, the hash and version last published and since when.

A publication at warehouse state S gives each object version = ledger version (0 for a new object)
plus one if its hash differs from the ledger's, and `lastUpdated` = the ledger's `changed_at` if
unchanged, else the newest source time of the object's rows. That is a pure function of S: the
daily files, the pull server's documents and a rebuild from S's snapshot all agree. A publication
that can write (the daily export, the pushes) records what it published, so the next one compares
against it; a reader (the pull server) computes the same numbers without writing.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from evpipeline.warehouse import Migration, Writer, describe_columns, register

LEDGER = "ops.datex2_versions"
KINDS = ("table", "site", "hours", "station", "point", "operator", "helpdesk")

register(
    Migration(
        "datex2",
        1,
        "DATEX II object versions",
        f"""
        CREATE TABLE {LEDGER} (
            kind VARCHAR NOT NULL,
            object_id VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            changed_at TIMESTAMPTZ NOT NULL,
            recorded_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (kind, object_id)
        );
        """,
    )
)

COLUMNS: dict[str, dict[str, str]] = {
    LEDGER: {
        "kind": "Object kind: table, site, hours (opening hours), station, point (charging point), "
        "operator, helpdesk.",
        "object_id": "The object's DATEX II idG (stable: built from the OCPI keys, docs/datex2.md).",
        "content_hash": "md5 of the columns the object is rendered from, without versions and timestamps.",
        "version": "The object's versionG: 1 when first published, +1 each time its content hash changes.",
        "changed_at": "The object's lastUpdated: when the content of this version was first seen (UTC).",
        "recorded_at": "When a publication recorded this version (UTC).",
    },
}
describe_columns(__name__, COLUMNS)


def hash_sql(columns: Iterable[str]) -> str:
    """SQL: the md5 of `columns` of the current row, as a JSON object (names and NULLs count)."""
    fields = ", ".join(f"'{c}': {c}" for c in columns)
    return f"md5(CAST(to_json({{{fields}}}) AS VARCHAR))"


def has_ledger(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse (or snapshot) read has the ledger (an old snapshot may not)."""
    schema, table = LEDGER.split(".")
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(found and found[0])


def versioned(
    con: duckdb.DuckDBPyConnection,
    table: str,
    kind: str,
    id_column: str,
    hash_column: str,
    updated_column: str,
    *,
    ledger: bool,
    prefix: str,
) -> None:
    """Add `<prefix>_version` (text), `<prefix>_changed`, `<prefix>_updated` (DATEX II text) and
    `<prefix>_bumped` to `table` by the rule above (rows whose `id_column` is NULL get none)."""
    con.execute(f"""
        ALTER TABLE {table} ADD COLUMN {prefix}_version VARCHAR;
        ALTER TABLE {table} ADD COLUMN {prefix}_changed TIMESTAMPTZ;
        ALTER TABLE {table} ADD COLUMN {prefix}_bumped BOOLEAN;""")
    if not ledger:  # nothing was ever recorded (an old snapshot): every object is new
        con.execute(
            f"UPDATE {table} SET {prefix}_version = '1', {prefix}_changed = {updated_column}, "
            f"{prefix}_bumped = true WHERE {id_column} IS NOT NULL"
        )
    else:
        con.execute(f"""
            UPDATE {table} t SET
                {prefix}_version = CAST(coalesce(l.version, 0) + CASE WHEN l.content_hash = t.{hash_column}
                THEN 0 ELSE 1 END AS VARCHAR),
                {prefix}_changed = CASE WHEN l.content_hash = t.{hash_column} THEN l.changed_at
                    ELSE t.{updated_column} END,
                {prefix}_bumped = l.content_hash IS DISTINCT FROM t.{hash_column}
            FROM (SELECT x.{id_column} AS object_id, v.version, v.content_hash, v.changed_at
                  FROM (SELECT DISTINCT {id_column} FROM {table} WHERE {id_column} IS NOT NULL) x
                  LEFT JOIN {LEDGER} v ON v.kind = '{kind}' AND v.object_id = x.{id_column}) l
            WHERE l.object_id = t.{id_column}""")
    con.execute(f"""ALTER TABLE {table} ADD COLUMN {prefix}_updated VARCHAR;
                    UPDATE {table} SET {prefix}_updated = strftime(timezone('UTC', {prefix}_changed),
                        '%Y-%m-%dT%H:%M:%SZ')""")


def record(writer: Writer, published: pa.Table) -> int:
    """Record the versions a publication gave (`Publisher.version_changes`: kind, object_id,
    content_hash, version, changed_at) in the writer's transaction; returns how many changed. Only
    forward: a publication that read an older state never takes a version back."""
    if not published.num_rows:
        return 0
    con = writer.con
    con.register("_dx_published", published)
    try:
        changed = con.execute(f"""
            SELECT count(*) FROM _dx_published p LEFT JOIN {LEDGER} l USING (kind, object_id)
            WHERE l.version IS NULL OR l.version < p.version""").fetchone()
        con.execute(f"""
            MERGE INTO {LEDGER} l USING (SELECT *, now() AS recorded_at FROM _dx_published) p
            ON l.kind = p.kind AND l.object_id = p.object_id
            WHEN MATCHED AND p.version > l.version THEN UPDATE
                 SET content_hash = p.content_hash, version = p.version,
                 changed_at = p.changed_at, recorded_at = p.recorded_at
            WHEN NOT MATCHED THEN INSERT (kind, object_id, content_hash, version, changed_at, recorded_at)
                 VALUES (p.kind, p.object_id, p.content_hash, p.version, p.changed_at, p.recorded_at)""")
    finally:
        con.unregister("_dx_published")
    return int(changed[0]) if changed else 0
