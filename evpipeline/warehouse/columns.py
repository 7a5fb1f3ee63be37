"""Column descriptions of the tables `evpipeline.warehouse` creates itself, for the Dagster catalog.

Every component declares its `COLUMNS` (table -> column -> description) beside its migrations;
these are the warehouse package's own (`migrations.py`: the bootstrap's `ops.schema_migrations` and
ops migration 1; `retention.py`: retention migration 1), registered when the warehouse package is
imported; `evpipeline.catalog` shows them.
"""

from evpipeline.warehouse.migrations import describe_columns

_WRITER = "Who wrote it: a source (evroam, greenflux, zaptec, tomtom) or a component (mart, reference, ndw)."
_STREAM = (
    "What of the source was synced: an endpoint, feed or cursor (e.g. Locations, installations, inbox, "
    "model)."
)

COLUMNS: dict[str, dict[str, str]] = {
    "ops.schema_migrations": {
        "component": "The component that owns the migration (ops, a source, mart, reference, quality, ...).",
        "version": "The migration's version within its component.",
        "name": "What the migration does.",
        "applied_at": "When this warehouse applied it (UTC).",
    },
    "ops.sync_state": {
        "source": _WRITER,
        "stream": _STREAM,
        "watermark": "Where the next delta starts (the stream's watermark rule, docs/sources.md); "
        "never moves backwards and commits with the data it covers.",
        "cursor": "Stream-specific position as JSON (e.g. the last inbox message id a feed merged).",
        "updated_at": "When the state last changed (UTC).",
        "run_id": "The run that last changed it.",
    },
    "ops.quarantine": {
        "source": "The source whose row was refused.",
        "table_name": "The table the row was meant for (schema.table).",
        "entity_key": "The row's natural key, its parts joined by | (empty for a missing part).",
        "payload_hash": "Hash of the raw payload: the same payload seen again bumps occurrences.",
        "failed_checks": "Why the row was refused: the failing validation checks, joined by ; .",
        "raw_json": "The payload exactly as the source sent it (JSON).",
        "first_run_id": "The run that first quarantined this payload.",
        "last_run_id": "The run that last saw it.",
        "first_seen": "When it was first quarantined (UTC).",
        "last_seen": "When it was last seen (UTC).",
        "occurrences": "How many times it arrived.",
    },
    "ops.status_history": {
        "source": "Who wrote the change: the source, or mart for the canonical model.",
        "table_name": "The table whose status column changed (schema.table, e.g. mart.evses, "
        "greenflux.evses).",
        "entity_key": "The row's natural key, its parts joined by | (e.g. NL|ALF|LOC-1|EVSE-1).",
        "status_column": "The status column that changed (e.g. status, operation_mode, connectivity_status).",
        "old_status": "Value before the change (NULL for the row's first).",
        "new_status": "Value after the change.",
        "status_at": "Source time of the change (the row's last_updated, UTC).",
        "recorded_at": "When the merge recorded it (UTC).",
        "run_id": "The run that recorded it.",
    },
    "ops.runs": {
        "run_id": "The Dagster run (or the real-time lane's run) that committed the write.",
        "source": _WRITER,
        "stream": _STREAM,
        "committed_at": "When the write committed (UTC).",
        "requests": "HTTP requests the sync made (NULL when not counted).",
        "fetched": "Rows fetched, over every table written.",
        "inserted": "Rows inserted.",
        "updated": "Rows updated.",
        "deleted": "Rows flagged deleted.",
        "unchanged": "Rows seen again unchanged (or stale).",
        "quarantined": "Rows sent to ops.quarantine.",
        "watermark": "The stream's watermark after this write.",
        "details": "Per-table counts (`tables`) and stream-specific details, as JSON.",
    },
    "ops.archive_parts": {
        "rows": "Rows in the part.",
        "bytes": "Size of the part's Parquet file.",
        "min_time": "Earliest value of the table's time column in the part (UTC).",
        "max_time": "Latest value of the table's time column in the part (UTC).",
        "archived_at": "When the part's delete committed (UTC).",
        "run_id": "The run that archived it.",
    },
}

describe_columns(__name__, COLUMNS)
