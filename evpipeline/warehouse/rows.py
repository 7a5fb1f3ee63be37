"""Single-row reads with the row's presence checked, and queries over in-memory frames.

DuckDB types `fetchone()` as `tuple | None`; an aggregate (`count`, `min`, `max`, ...), a `COPY`
or a `DELETE` always returns exactly one row, so these helpers narrow it once, with a clear error
if a query that must return a row did not.
"""

from __future__ import annotations

from typing import Any

import duckdb


def one_row(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The next row of an executed query that always returns one (an aggregate, COPY, DELETE...)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("query returned no row where one was expected")
    return row


def scalar(cursor: duckdb.DuckDBPyConnection) -> Any:
    """The first column of `one_row(cursor)`."""
    return one_row(cursor)[0]


def over_frames(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    _evp_incoming: Any = None,
    _evp_stage: Any = None,
    _evp_present: Any = None,
    _evp_scope: Any = None,
) -> duckdb.DuckDBPyConnection:
    """`con.execute(sql, params)`, the frames (pandas or Arrow) passed here readable by their names.

    DuckDB finds them by its replacement scan: a name the catalog lacks is looked up among the
    locals of the function that calls `execute` (this one's parameters; DuckDB's default scans only
    that frame). Unlike `con.register` or a temporary table, that leaves nothing in the catalog:
    a view registered or a temporary table created inside a transaction lives until the
    transaction ends, even when dropped (MVCC keeps it for a rollback), and a registered view
    keeps its frame alive with it. A bootstrap merges hundreds of batches in one transaction; on
    DuckDB 1.5.5 those leftovers held ~1.5 GiB at 300k EVSEs (docs/benchmarks.md, row 2).
    """
    return con.execute(sql, params)
