"""Versioned DDL, per component (`ops`, each source, `mart`), applied once per database.

Each component numbers its own migrations, so a source can add a table without coordinating
version numbers with the others. A migration, once released, is never edited: change a table
with a new migration. Components register their migrations when their package is imported;
the warehouse applies whatever is registered and not yet recorded in `ops.schema_migrations`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str
    order: int = field(default=0, compare=False)


_REGISTRY: dict[tuple[str, int], Migration] = {}
_SEQ = itertools.count()
_LOCK = threading.Lock()


def register(*migrations: Migration) -> None:
    """Add migrations to the registry; re-registering the same one is harmless, a changed one is an error."""
    with _LOCK:
        for migration in migrations:
            key = (migration.component, migration.version)
            existing = _REGISTRY.get(key)
            if existing is not None:
                if existing.sql != migration.sql:
                    raise ValueError(
                        f"migration {key} registered twice with different SQL; add a new version instead"
                    )
                continue
            _REGISTRY[key] = Migration(
                migration.component, migration.version, migration.name, migration.sql, next(_SEQ)
            )


# Column descriptions (table -> column -> description), registered like the migrations by the module that
# declares the tables (its `COLUMNS`), in registration order; `evpipeline.catalog` shows them.
_DESCRIBED: dict[str, Mapping[str, Mapping[str, str]]] = {}


def describe_columns(owner: str, columns: Mapping[str, Mapping[str, str]]) -> None:
    """Register `owner`'s (a module name's) column descriptions; the map is kept, not copied."""
    with _LOCK:
        _DESCRIBED[owner] = columns


def described_columns() -> list[tuple[str, Mapping[str, Mapping[str, str]]]]:
    """(owner, COLUMNS) of every module that registered column descriptions, in registration order."""
    with _LOCK:
        return list(_DESCRIBED.items())


def registered() -> list[Migration]:
    with _LOCK:
        migrations = list(_REGISTRY.values())
    first_seen: dict[str, int] = {}
    for m in sorted(migrations, key=lambda m: m.order):
        first_seen.setdefault(m.component, m.order)
    # Components in registration order (ops first), versions ascending within each.
    return sorted(migrations, key=lambda m: (first_seen[m.component], m.version))


_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS ops;
CREATE TABLE IF NOT EXISTS ops.schema_migrations (
    component VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
);
"""


def _standard_columns_in_step(con: duckdb.DuckDBPyConnection) -> None:
    """Every merge target (a table with `_row_hash`) has the standard columns added after release:
    `_observed_seq`, the fetch sequence that orders versions with equal as-of times (see merge)."""
    missing = con.execute("""
        SELECT c.table_schema, c.table_name FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
        WHERE t.table_type = 'BASE TABLE' AND c.table_catalog = current_database()
        GROUP BY ALL HAVING bool_or(c.column_name = '_row_hash')
            AND NOT bool_or(c.column_name = '_observed_seq')
    """).fetchall()
    for schema, table in missing:
        con.execute(f'ALTER TABLE "{schema}"."{table}" ADD COLUMN _observed_seq BIGINT')


def apply(con: duckdb.DuckDBPyConnection) -> list[Migration]:
    """Apply every registered migration not yet applied, each in its own transaction."""
    from evpipeline.warehouse.backend import is_lake, lake_ddl

    ddl = lake_ddl if is_lake(con) else (lambda sql: sql)
    con.execute(ddl(_BOOTSTRAP))
    done = set(con.execute("SELECT component, version FROM ops.schema_migrations").fetchall())
    applied: list[Migration] = []
    for migration in registered():
        if (migration.component, migration.version) in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(ddl(migration.sql))
            con.execute(
                "INSERT INTO ops.schema_migrations (component, version, name) VALUES (?, ?, ?)",
                [migration.component, migration.version, migration.name],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(migration)
    _standard_columns_in_step(con)
    return applied


# Columns every source table carries after its own, so merge() can treat all tables alike.
# `_observed_seq` came later: databases migrated before it get it from `_standard_columns_in_step`
# (appended last there too), new ones have it from the start (no ALTER per table on every new database).
STANDARD_COLUMNS = """
    is_deleted BOOLEAN NOT NULL DEFAULT false,
    deleted_at TIMESTAMPTZ,
    last_updated TIMESTAMPTZ NOT NULL,
    _observed_at TIMESTAMPTZ NOT NULL,
    _row_hash UBIGINT NOT NULL,
    _ingested_at TIMESTAMPTZ NOT NULL,
    _run_id VARCHAR,
    _lineage VARCHAR,
    _change VARCHAR,
    _prev_status VARCHAR,
    _observed_seq BIGINT"""


def source_table(name: str, columns: str) -> str:
    """DDL for a merge target: the table's own columns plus the standard lineage/delete columns."""
    return f"CREATE TABLE {name} (\n{columns.rstrip().rstrip(',')},{STANDARD_COLUMNS}\n);"


register(
    Migration(
        "ops",
        1,
        "sync state, quarantine, status history, run log",
        """
        CREATE TABLE ops.sync_state (
            source VARCHAR NOT NULL,
            stream VARCHAR NOT NULL,
            watermark TIMESTAMPTZ,
            cursor VARCHAR,
            updated_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR,
            PRIMARY KEY (source, stream)
        );
        CREATE TABLE ops.quarantine (
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            entity_key VARCHAR NOT NULL,
            payload_hash VARCHAR NOT NULL,
            failed_checks VARCHAR NOT NULL,
            raw_json VARCHAR NOT NULL,
            first_run_id VARCHAR,
            last_run_id VARCHAR,
            first_seen TIMESTAMPTZ NOT NULL,
            last_seen TIMESTAMPTZ NOT NULL,
            occurrences INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (source, table_name, entity_key, payload_hash)
        );
        CREATE TABLE ops.status_history (
            source VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            entity_key VARCHAR NOT NULL,
            status_column VARCHAR NOT NULL,
            old_status VARCHAR,
            new_status VARCHAR,
            status_at TIMESTAMPTZ NOT NULL,
            recorded_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR
        );
        CREATE TABLE ops.runs (
            run_id VARCHAR,
            source VARCHAR NOT NULL,
            stream VARCHAR NOT NULL,
            committed_at TIMESTAMPTZ NOT NULL,
            requests INTEGER,
            fetched BIGINT,
            inserted BIGINT,
            updated BIGINT,
            deleted BIGINT,
            unchanged BIGINT,
            quarantined BIGINT,
            watermark TIMESTAMPTZ,
            details JSON
        );
        """,
    )
)
