"""Single-row reads with the row's presence checked.

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
