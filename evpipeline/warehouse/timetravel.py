"""Time travel: read the warehouse as it was at a moment, so a past delivery can be rebuilt byte for byte.

A DuckLake keeps every committed snapshot (until maintenance expires it); a daily delivery reads the
snapshot that was current at its partition's cut-off and records its id in the manifest, so reading
that id again later gives the same rows and the same files. A DuckDB file keeps no history: it is
read as it is now, and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import duckdb

from evpipeline.warehouse.backend import CATALOG


class SnapshotUnavailable(LookupError):
    """The warehouse holds no snapshot for the moment asked (before its first, or expired by maintenance)."""


@dataclass(frozen=True)
class Reading:
    """A consistent read of the warehouse: the connection and, on a DuckLake, the snapshot it reads."""

    con: duckdb.DuckDBPyConnection
    snapshot: int | None


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"FROM ducklake_current_snapshot('{CATALOG}')").fetchone()
    return int(row[0]) if row else 0


def snapshot_at(con: duckdb.DuckDBPyConnection, when: datetime) -> int:
    """The id of the snapshot that was current at `when` (the newest committed at or before it)."""
    row = con.execute(
        f"SELECT max(snapshot_id) FROM ducklake_snapshots('{CATALOG}') WHERE snapshot_time <= ?", [when]
    ).fetchone()
    if row is None or row[0] is None:
        raise SnapshotUnavailable(f"the warehouse holds no snapshot at or before {when.isoformat()}")
    return int(row[0])


def snapshot_exists(con: duckdb.DuckDBPyConnection, snapshot: int) -> bool:
    row = con.execute(
        f"SELECT count(*) FROM ducklake_snapshots('{CATALOG}') WHERE snapshot_id = ?", [snapshot]
    ).fetchone()
    return bool(row and row[0])


@contextmanager
def reading(
    warehouse: object, *, cutoff: datetime | None = None, snapshot: int | None = None
) -> Iterator[Reading]:
    """The warehouse as of `cutoff` (or exactly at `snapshot`): pinned on a DuckLake, as it is now on a file.

    `warehouse` is a `WarehouseResource` (not imported: it imports this module's package)."""
    from evpipeline.warehouse.resource import WarehouseResource

    assert isinstance(warehouse, WarehouseResource)
    if not warehouse.backend.is_lake:
        if snapshot is not None:
            raise SnapshotUnavailable(
                "a DuckDB file keeps no snapshots: time travel needs the DuckLake backend"
            )
        with warehouse.get_connection() as con:
            yield Reading(con, None)
        return
    if snapshot is None:
        with warehouse.get_connection() as con:
            snapshot = snapshot_at(con, cutoff) if cutoff is not None else current_snapshot(con)
    else:
        with warehouse.get_connection() as con:
            if not snapshot_exists(con, snapshot):
                raise SnapshotUnavailable(
                    f"snapshot {snapshot} is not in the warehouse (expired by maintenance?)"
                )
    with warehouse.at_snapshot(snapshot) as con:
        yield Reading(con, snapshot)
