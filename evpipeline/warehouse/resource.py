"""The warehouse resource: short-lived connections, UTC sessions, migrations on first use.

The same resource serves a DuckDB file and a DuckLake (see `backend`): both are attached under the
catalog `warehouse`, so callers never know which one they have.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from dagster._utils.backoff import backoff
from dagster_duckdb import DuckDBResource

from evpipeline import settings
from evpipeline.progress import duration
from evpipeline.warehouse import migrations
from evpipeline.warehouse.backend import CATALOG, Backend, is_write_conflict, load_extensions, redact
from evpipeline.warehouse.writer import Writer, read_sync_state, transaction

_MIGRATED: set[tuple[str, int]] = set()
_MIGRATE_LOCK = threading.Lock()
T = TypeVar("T")
log = logging.getLogger(__name__)

# A write that lost a commit race with another writer is redone this many times (DuckLake).
WRITE_ATTEMPTS = 8


class WarehouseUnavailable(RuntimeError):
    """The warehouse could not be opened; the message never carries a password."""


def attach(
    database: str,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    snapshot_version: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """The warehouse attached under a fixed catalog name.

    DuckDB names a database's catalog after its file, so a file called `evroam.duckdb` or
    `mart.duckdb` would make `evroam.sites` ambiguous (catalog or schema?). Attaching under the
    alias `warehouse` keeps every path usable, and makes a DuckLake read like a file.
    """
    backend = Backend(database)
    con = duckdb.connect(":memory:", config=config or {})
    try:
        load_extensions(con, backend)
        try:
            con.execute(backend.attach_sql(read_only=read_only, snapshot_version=snapshot_version))
        except duckdb.Error as exc:
            if not backend.is_lake:
                raise
            # libpq quotes its connection string in errors: say what failed without the password.
            raise WarehouseUnavailable(f"cannot attach {backend.describe()}: {redact(str(exc))}") from None
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


LOCK_WAIT_SECONDS = 410.0  # how long a step waits for another process's hold on the DuckDB file
LOCK_POLL_SECONDS = 1.0  # tried again at least this often (a lane holds the file only during its cycles)
LOCK_SAY_AFTER = 2.0  # a wait this long is logged, with what it waits for ...
LOCK_SAY_EVERY = 15.0  # ... and again this often while it lasts
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    """The real-time lane's heartbeat file (written by `evpipeline.lane.service`); None when unreadable.
    Here, below the lane, because the warehouse names the lane as the holder of its lock."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def lock_holder(error: str, data_dir: str | os.PathLike[str] | None = None) -> str:
    """Who holds the DuckDB file, from DuckDB's lock error: the real-time lane (its heartbeat names its
    process), else the process's command line."""
    found = _HOLDER.search(error)
    if found is None:
        return (error.strip().splitlines() or ["?"])[0][:200]
    pid = int(found["pid"])
    beat = read_heartbeat(Path(data_dir or settings.data_dir()) / "lane" / "heartbeat.json")
    if beat is not None and beat.get("pid") == pid and beat.get("state") == "running":
        return f"the real-time lane (run {str(beat.get('run_id'))[:8]}, PID {pid}), between two of its cycles"
    try:
        command = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    except OSError:
        command = found["program"]
    return f"PID {pid} ({command[:160]})"


def attach_waiting(
    database: str,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    snapshot_version: int | None = None,
    wait_seconds: float = LOCK_WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    logger: Any = None,
) -> duckdb.DuckDBPyConnection:
    """`attach`, waiting out another process's lock on the DuckDB file (DuckDB lets one process write a
    file and nobody else open it meanwhile) for up to `wait_seconds`. A wait of more than a moment is
    logged, naming the file and who holds it, and again every `LOCK_SAY_EVERY` seconds; inside a run the
    lines reach its event log (a Dagster-managed logger)."""
    import dagster as dg

    say = logger or dg.get_dagster_logger("evpipeline.warehouse")
    started = clock()
    pause, said = 0.05, None
    while True:
        try:
            con = attach(database, read_only=read_only, config=config, snapshot_version=snapshot_version)
        except (RuntimeError, duckdb.IOException) as exc:
            waited = clock() - started
            if waited >= wait_seconds:
                raise
            if (said is None and waited >= LOCK_SAY_AFTER) or (
                said is not None and clock() - said >= LOCK_SAY_EVERY
            ):
                say.info(
                    "waiting for the warehouse %s, held by %s: %s so far (giving up after %s)",
                    redact(database),
                    lock_holder(str(exc)),
                    duration(waited),
                    duration(wait_seconds),
                )
                said = clock()
            sleep(pause)
            pause = min(pause * 2, LOCK_POLL_SECONDS)
            continue
        if said is not None:
            say.info("got the warehouse %s after waiting %s", redact(database), duration(clock() - started))
        return con


def connect(
    database: str,
    config: dict[str, Any] | None = None,
    *,
    read_only: bool = False,
    snapshot_version: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse, waiting out another process's write lock, in UTC, migrated.

    `snapshot_version` opens a DuckLake read-only as it was at that snapshot (time travel).
    """
    settings = {"custom_user_agent": "evpipeline", **(config or {})}
    backend = Backend(database)
    fresh = False  # a file that did not exist is migrated whatever this process remembers of the path
    if database == ":memory:":
        con = duckdb.connect(":memory:", config=settings)
    elif backend.is_lake and snapshot_version is None:
        con = _lake_connection(database, settings)
    else:
        local = backend.local_path
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            fresh = not local.exists()
        if backend.is_lake:
            con = backoff(
                fn=attach,
                retry_on=(RuntimeError, duckdb.IOException),
                max_retries=2,
                kwargs={
                    "database": database,
                    "read_only": read_only,
                    "config": settings,
                    "snapshot_version": snapshot_version,
                },
            )
        else:
            con = attach_waiting(
                database, read_only=read_only, config=settings, snapshot_version=snapshot_version
            )
    con.execute("SET TimeZone = 'UTC'")
    read_only = read_only or snapshot_version is not None
    if not read_only:
        # Migrate once per process per database, again whenever new components register.
        key = (database, len(migrations.registered()))
        if database == ":memory:" or fresh or key not in _MIGRATED:
            with _MIGRATE_LOCK:
                migrations.apply(con)
                _MIGRATED.add(key)
    return con


def redo_on_conflict(work: Callable[[], T], *, what: str) -> T:
    """Run `work` (one transaction), again from the start if its commit lost a race with another
    writer: DuckLake lets writers run at once and refuses the second of two that changed rows of the
    same table (DuckLake itself retries commits that do not overlap)."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if not is_write_conflict(exc) or attempt == WRITE_ATTEMPTS:
                raise
            log.info(
                "%s: commit lost a race with another writer; redoing it (attempt %d of %d)",
                what,
                attempt + 1,
                WRITE_ATTEMPTS,
            )
            time.sleep(min(0.05 * 2**attempt, 2.0))
    raise AssertionError("unreachable")


# A DuckLake stays attached for the life of the process: attaching reads its catalog (~0.4 s against
# PostgreSQL), and unlike a DuckDB file it holds no lock another process waits for. Each caller gets
# its own connection to it (a cursor: its own transactions). A few lakes at most (tests make many).
_LAKES: OrderedDict[tuple[str, str, str], duckdb.DuckDBPyConnection] = OrderedDict()
_LAKES_LOCK = threading.Lock()
_LAKES_KEPT = 4


def _lake_connection(database: str, settings: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    key = (database, Backend(database).data_path(), json.dumps(settings, sort_keys=True, default=str))
    with _LAKES_LOCK:
        base = _LAKES.get(key)
        if base is None:
            base = backoff(
                fn=attach,
                retry_on=(duckdb.IOException,),
                kwargs={"database": database, "config": settings},
                max_retries=2,
            )
            _LAKES[key] = base
            while len(_LAKES) > _LAKES_KEPT:
                _LAKES.popitem(last=False)[1].close()
        _LAKES.move_to_end(key)
        con = base.cursor()
    con.execute(f"USE {CATALOG}")
    return con


def detach_lake(database: str) -> None:
    """Close this process's attachment of a DuckLake (before its catalog database is copied or dropped)."""
    with _LAKES_LOCK:
        for key in [k for k in _LAKES if k[0] == database]:
            _LAKES.pop(key).close()


class WarehouseResource(DuckDBResource):
    """The warehouse (DuckDB file or DuckLake). Every writer holds a connection only for its transaction."""

    @property
    def backend(self) -> Backend:
        return Backend(self.database)

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
    def at_snapshot(self, version: int) -> Iterator[duckdb.DuckDBPyConnection]:
        """The DuckLake read-only as it was at snapshot `version` (time travel)."""
        con = connect(self.database, self.connection_config, snapshot_version=version)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def writer(self, source: str, run_id: str | None = None) -> Iterator[Writer]:
        """A transaction for one source's merges, quarantine and watermark: all or nothing."""
        with self.get_connection() as con, transaction(con, source, run_id) as w:
            yield w

    def write(self, source: str, run_id: str | None, work: Callable[[Writer], T]) -> T:
        """`work` in one transaction, redone whole if its commit lost a race with another writer;
        `work` must be repeatable: it gets a fresh Writer each time."""

        def attempt() -> T:
            with self.writer(source, run_id) as w:
                return work(w)

        return redo_on_conflict(attempt, what=source)

    def sync_state(self, source: str, stream: str) -> tuple[Any, dict[str, Any]]:
        with self.get_connection() as con:
            return read_sync_state(con, source, stream)


def warehouse_from_env() -> WarehouseResource:
    return WarehouseResource(database=settings.warehouse_path())
