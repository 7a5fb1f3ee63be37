"""The DuckDB warehouse resource: short-lived connections, UTC sessions, migrations on first use."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource

from evpipeline.warehouse import migrations
from evpipeline.warehouse.writer import Writer, read_sync_state, transaction

_MIGRATED: set[tuple[str, int]] = set()
_MIGRATE_LOCK = threading.Lock()


CATALOG = "warehouse"


def attach(database: str, *, read_only: bool = False, config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """The warehouse attached under a fixed catalog name.

    DuckDB names a database's catalog after its file, so a file called `evroam.duckdb` or
    `mart.duckdb` would make `evroam.sites` ambiguous (catalog or schema?). Attaching under the
    alias `warehouse` keeps every path usable.
    """
    con = duckdb.connect(":memory:", config=config or {})
    try:
        path = database.replace("'", "''")
        con.execute(f"ATTACH '{path}' AS {CATALOG}{' (READ_ONLY)' if read_only else ''}")
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


def connect(database: str, config: dict[str, Any] | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting out another process's write lock, in UTC, migrated."""
    settings = {"custom_user_agent": "evpipeline", **(config or {})}
    fresh = False  # a file that did not exist is migrated whatever this process remembers of the path
    if database == ":memory:":
        con = duckdb.connect(":memory:", config=settings)
    else:
        if not database.startswith("md:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            fresh = not Path(database).exists()
        con = backoff(
            fn=attach, retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": database, "read_only": read_only, "config": settings}, max_retries=12,
        )
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        # Migrate once per process per database, again whenever new components register.
        key = (database, len(migrations.registered()))
        if database == ":memory:" or fresh or key not in _MIGRATED:
            with _MIGRATE_LOCK:
                migrations.apply(con)
                _MIGRATED.add(key)
    return con


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse. Every writer holds a connection only for its transaction."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.database, self.connection_config)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.database, self.connection_config, read_only=True)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def writer(self, source: str, run_id: str | None = None) -> Iterator[Writer]:
        """A transaction for one source's merges, quarantine and watermark: all or nothing."""
        with self.get_connection() as con, transaction(con, source, run_id) as w:
            yield w

    def sync_state(self, source: str, stream: str) -> tuple[Any, dict[str, Any]]:
        with self.get_connection() as con:
            return read_sync_state(con, source, stream)


def warehouse_from_env() -> WarehouseResource:
    from evpipeline import settings

    return WarehouseResource(database=settings.warehouse_path())

