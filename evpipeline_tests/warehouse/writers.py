"""A small source the concurrency and crash tests write through the real sync path (`write_sync`).

Its own migration adds one table per test source, so a test can run several "sources" at once
without the simulators; a child process imports this module to write the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pandera.pandas as pa

from evpipeline.sync import TableRows, write_sync
from evpipeline.warehouse import Migration, WarehouseResource, register, source_table

SOURCES = ("alpha", "beta")
START = datetime(2026, 11, 1, tzinfo=UTC)

register(
    *(
        Migration(
            f"writers_{source}",
            1,
            f"{source} test table",
            f"CREATE SCHEMA IF NOT EXISTS {source};\n"
            + source_table(
                f"{source}.items", "item_id VARCHAR NOT NULL,\n    value BIGINT NOT NULL,\n    status VARCHAR"
            ),
        )
        for source in SOURCES
    )
)

SCHEMA = pa.DataFrameSchema(
    {
        "item_id": pa.Column(str),
        "value": pa.Column("Int64"),
        "status": pa.Column(str, nullable=True),
        "last_updated": pa.Column(pd.DatetimeTZDtype("ns", "UTC")),
    },
    coerce=True,
)


def items(round_no: int, count: int) -> pd.DataFrame:
    """Round `round_no` of `count` items: every item's value and status change each round."""
    stamp = START + timedelta(minutes=round_no)
    return pd.DataFrame(
        {
            "item_id": [f"item-{i:06d}" for i in range(count)],
            "value": pd.array([round_no * 1_000_000 + i for i in range(count)], dtype="Int64"),
            "status": ["AVAILABLE" if (i + round_no) % 2 else "CHARGING" for i in range(count)],
            "last_updated": pd.Series([stamp] * count, dtype="datetime64[ns, UTC]"),
        }
    )


def write_round(
    warehouse: WarehouseResource,
    source: str,
    round_no: int,
    count: int,
    *,
    run_id: str | None = None,
    before_commit: Callable[[Any, dict[str, pd.DataFrame]], None] | None = None,
) -> None:
    """One sync of `source`: a round of items merged, its watermark advanced, the run logged;
    one transaction."""
    frame = items(round_no, count)
    write_sync(
        warehouse,
        source=source,
        stream="items",
        run_id=run_id or f"{source}-{round_no}",
        tables=[TableRows(f"{source}.items", frame, SCHEMA, ["item_id"], status_column="status")],
        watermark=START + timedelta(minutes=round_no),
        lineage=f"round {round_no}",
        before_commit=before_commit,
    )


if __name__ == "__main__":  # the crash test's child: write one round, then the parent kills it
    database, source, round_no, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print("writing", flush=True)
    write_round(WarehouseResource(database=database), source, round_no, count)
    print("committed", flush=True)
