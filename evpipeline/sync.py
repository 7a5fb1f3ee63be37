"""Steps 4-5 of every source's run: validate each table lazily, then write them all in one transaction.

Sources fetch and normalize in their own way; from here on they are identical: failing rows go to
`ops.quarantine`, valid rows are merged, optional extra work (hard-delete sweeps) joins the same
transaction, and the watermark only advances when all of it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from evpipeline.validation import validate
from evpipeline.warehouse import MergeCounts, WarehouseResource, Writer


@dataclass
class TableRows:
    """Normalized rows for one warehouse table, with the raw payload of each row."""

    table: str
    frame: pd.DataFrame
    schema: pa.DataFrameSchema
    keys: Sequence[str]
    raw: Sequence[Any] | None = None
    status_column: str | None = None


@dataclass
class TableOutcome:
    table: str
    counts: MergeCounts
    quarantined: int
    valid: pd.DataFrame


@dataclass
class SyncOutcome:
    tables: dict[str, TableOutcome] = field(default_factory=dict)
    watermark: datetime | None = None

    def __getitem__(self, table: str) -> TableOutcome:
        return self.tables[table]


def write_sync(
    warehouse: WarehouseResource,
    *,
    source: str,
    stream: str,
    run_id: str | None,
    tables: Sequence[TableRows],
    watermark: datetime | None,
    requests: int | None = None,
    lineage: str | None = None,
    before_commit: Callable[[Writer, dict[str, pd.DataFrame]], None] | None = None,
) -> SyncOutcome:
    """Validate every table, then merge all, quarantine, sweep and advance the watermark atomically."""
    validated = {t.table: validate(t.frame, t.schema, table=t.table, keys=t.keys, raw=t.raw) for t in tables}
    outcome = SyncOutcome(watermark=watermark)
    with warehouse.writer(source, run_id) as writer:
        for t in tables:
            result = validated[t.table]
            counts = writer.merge(result.valid, t.table, t.keys, status_column=t.status_column, lineage=lineage)
            outcome.tables[t.table] = TableOutcome(t.table, counts, len(result.quarantined), result.valid)
        writer.quarantine([q for v in validated.values() for q in v.quarantined])
        if before_commit is not None:
            before_commit(writer, {name: v.valid for name, v in validated.items()})
            for name, counts in writer.counts.items():
                if name in outcome.tables:
                    outcome.tables[name].counts = counts
        if watermark is not None:
            writer.set_sync_state(stream, watermark)
        writer.log_run(stream, requests=requests, watermark=watermark)
    return outcome


def markdown_preview(frame: pd.DataFrame, columns: Sequence[str], rows: int = 5) -> str:
    """A few rows as a markdown table for the Dagster UI (no extra dependency)."""
    cols = [c for c in columns if c in frame.columns]
    if frame.empty or not cols:
        return "_no rows_"
    head = frame[cols].head(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for record in head.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "\\|")[:60] for v in record) + " |")
    return "\n".join(lines)


def table_metadata(
    outcome: TableOutcome,
    *,
    requests: int | None,
    watermark: datetime | None,
    preview_columns: Sequence[str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata every sync materialization carries."""
    c = outcome.counts
    meta: dict[str, Any] = {
        "table": outcome.table,
        "fetched": c.fetched + outcome.quarantined,
        "inserted": c.inserted,
        "updated": c.updated,
        "deleted": c.deleted,
        "unchanged": c.unchanged,
        "quarantined": outcome.quarantined,
        "status_changes": c.status_changes,
        "preview": dg.MetadataValue.md(markdown_preview(outcome.valid, preview_columns)),
    }
    if requests is not None:
        meta["requests"] = requests
    if watermark is not None:
        meta["watermark"] = watermark.isoformat()
    meta.update(extra or {})
    return meta
