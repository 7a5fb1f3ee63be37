"""What the Dagster catalog shows of every asset, in one place.

- Table metadata: `dagster/table_name`, `dagster/column_schema` (a `TableSchema` generated from the
  DuckDB catalog the migrations create, with each column's description) on the asset definitions,
  and `dagster/row_count` plus the live column schema on each materialization (`table_metadata`).
- Column descriptions, first match: a DuckDB column comment, the `-- comment` beside the column in
  its migration's DDL, the `COLUMNS` map (table -> column -> description) registered beside the
  tables' migrations (`declared_descriptions`), the standard lineage/delete columns, else its type and
  nullability (a fallback the tests keep unused).
- Column lineage of `mart` (`dagster/column_lineage`): the source columns each mart column is computed
  from, read from the SQL of every source mapping that feeds it by `evpipeline.model.lineage`, which the
  definitions hand to `annotate` (the model sits above this module); a column the walk cannot follow
  falls back to the same-named column.
- Owners (`EVPIPELINE_OWNERS`), freshness policies (Dagster's `FreshnessPolicy`) and source code
  references, applied to the whole `Definitions` by `annotate`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
import duckdb

from evpipeline import settings
from evpipeline.warehouse import migrations

TABLE_NAME = "dagster/table_name"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
COLUMN_LINEAGE = "dagster/column_lineage"
URI = "dagster/uri"

STANDARD_DESCRIPTIONS = {
    "is_deleted": "True once the source no longer has the row (kept, never deleted).",
    "deleted_at": "When the row was found deleted (UTC).",
    "last_updated": "The source's (or OCPI's) last_updated of the row (UTC).",
    "_observed_at": "As-of time of the fetch that wrote this version (UTC).",
    "_observed_seq": "Fetch sequence ordering versions with equal as-of times.",
    "_row_hash": "Hash of the row's content columns; unchanged hash = no write.",
    "_ingested_at": "When this version was written to DuckDB (UTC).",
    "_run_id": "Dagster run (or lane cycle) that wrote this version.",
    "_lineage": "Where the version came from (endpoint, page, file, push delivery).",
    "_change": "What the last write did: insert, update or delete.",
    "_prev_status": "Status before the last status change (status tables).",
    "source": "Source the row was mapped from (evroam, greenflux, zaptec, reference).",
    "source_id": "The row's id in its source.",
    "source_last_updated": "last_updated of the source row it was mapped from (UTC).",
}

# The one asset the real-time lane records in every report window (15 s), busy or quiet: NDW's copy
# of our dynamic data, in sync as of then (a heartbeat with zero pushes when nothing changed; none
# while pushes wait for a retry). Only it can honestly promise a minute.
DYNAMIC = frozenset({"ndw/live"})
# Status tables the lane writes only when rows change; in quiet periods their scheduled fallback syncs
# (every 5 to 15 minutes: EVROAM_DELTA_CRON, TOMTOM_CRON, GREENFLUX_CRON, ZAPTEC_STATE_CRON) record them.
POLLED = frozenset(
    {
        "evroam/availability",
        "greenflux/evses",
        "greenflux/connectors",
        "zaptec/charger_states",
        "tomtom/availability_latest",
        "tomtom/availability_snapshots",
        "tomtom/availability_polls",
    }
)
# Event-driven assets (materialized when their input changes, e.g. the reference file): no age limit.
NO_FRESHNESS = frozenset({"reference/operator_data"})
DYNAMIC_WINDOW = timedelta(minutes=1)
POLLED_WINDOW = timedelta(minutes=35)  # two missed 15-minute fallback syncs and a margin
STATIC_WINDOW = timedelta(hours=24)
DAILY_WINDOW = timedelta(hours=26)  # daily cron-driven jobs: a day plus their run time


def owners() -> list[str]:
    """The owners every asset carries: `EVPIPELINE_OWNERS`, a comma list of `team:...` or e-mail addresses."""
    return [o.strip() for o in settings.get("EVPIPELINE_OWNERS").split(",") if o.strip()]


# -- DDL comments and the DuckDB catalog ---------------------------------------------------------

_CREATE = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)", re.I)
_DROP = re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([\w.]+)", re.I)
_ALTER = re.compile(
    r"ALTER\s+TABLE\s+([\w.]+)\s+ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)[^-\n]*--\s*(.+)$", re.I
)
_COLUMN = re.compile(
    r"^\s*(\w+)\s+[A-Za-z][\w\[\](), ]*?(?:NOT\s+NULL|DEFAULT[^-]*|PRIMARY\s+KEY)?[^-\n]*--\s*(.+)$"
)


def ddl_comments(sqls: list[str]) -> dict[tuple[str, str], str]:
    """(table, column) -> the `-- comment` written beside the column in the migrations' DDL (a table a
    later migration drops and creates again is described by its new DDL)."""
    comments: dict[tuple[str, str], str] = {}
    for sql in sqls:
        table = None
        for line in sql.splitlines():
            if m := _DROP.search(line):
                dropped = m.group(1).lower()
                comments = {key: text for key, text in comments.items() if key[0] != dropped}
                table = None
                continue
            if m := _ALTER.search(line):
                comments[(m.group(1).lower(), m.group(2).lower())] = m.group(3).strip()
                continue
            if m := _CREATE.search(line):
                table = m.group(1).lower()
                continue
            if (
                table
                and (m := _COLUMN.match(line))
                and m.group(1).upper() not in {"PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}
            ):
                comments.setdefault((table, m.group(1).lower()), m.group(2).strip())
    return comments


def declared_descriptions() -> dict[tuple[str, str], str]:
    """(table, column) -> description, from the `COLUMNS` map every module that declares tables registers
    beside its migrations (`migrations.describe_columns`). A column described in two places is an error."""
    return _declared_descriptions(len(migrations.described_columns()))


@functools.cache
def _declared_descriptions(registered: int) -> dict[tuple[str, str], str]:
    del registered  # the cache key: recomputed when more modules register their descriptions
    found: dict[tuple[str, str], str] = {}
    where: dict[tuple[str, str], str] = {}
    for name, columns in migrations.described_columns():
        for table, described in columns.items():
            for column, text in described.items():
                key = (table.lower(), column.lower())
                if key in where:
                    raise ValueError(
                        f"column {table}.{column} is described twice: in {where[key]} and in {name}"
                    )
                found[key], where[key] = text, name
    return found


def fallback_description(data_type: str, nullable: bool) -> str:
    """What a column nobody described says: its type and nullability."""
    return f"{data_type}{'' if nullable else ', required'}."


def _description(
    table: str,
    name: str,
    data_type: str,
    nullable: bool,
    comment: str | None,
    comments: Mapping[tuple[str, str], str],
    declared: Mapping[tuple[str, str], str],
) -> str:
    if comment:
        return comment
    if (table, name) in comments:
        return comments[(table, name)]
    if (table, name) in declared:
        return declared[(table, name)]
    if name in STANDARD_DESCRIPTIONS:
        return STANDARD_DESCRIPTIONS[name]
    return fallback_description(data_type, bool(nullable))


def column_schemas(
    con: duckdb.DuckDBPyConnection, tables: list[str] | None = None
) -> dict[str, dg.TableSchema]:
    """`TableSchema` per `schema.table` from the connection's DuckDB catalog, with described columns."""
    comments = ddl_comments([m.sql for m in migrations.registered()])
    declared = declared_descriptions()
    rows = con.execute("""
        SELECT schema_name || '.' || table_name, column_name, data_type, is_nullable, comment
        FROM duckdb_columns() WHERE database_name = current_database() AND NOT internal
        ORDER BY schema_name, table_name, column_index
    """).fetchall()
    columns: dict[str, list[dg.TableColumn]] = {}
    for table, name, data_type, nullable, comment in rows:
        if tables is not None and table not in tables:
            continue
        columns.setdefault(table, []).append(
            dg.TableColumn(
                name,
                data_type,
                description=_description(table, name, data_type, nullable, comment, comments, declared),
                constraints=dg.TableColumnConstraints(nullable=bool(nullable)),
            )
        )
    return {table: dg.TableSchema(columns=cols) for table, cols in columns.items()}


@functools.cache
def _declared(registered: int) -> dict[str, dg.TableSchema]:
    del registered  # the cache key: recomputed when more migrations register
    con = duckdb.connect()
    try:
        migrations.apply(con)
        return column_schemas(con)
    finally:
        con.close()


def declared_schemas() -> dict[str, dg.TableSchema]:
    """Every table the registered migrations create (an in-memory DuckDB, migrated once per process)."""
    return _declared(len(migrations.registered()))


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    """Materialization metadata of a DuckDB table: its name, live rows now and its column schema."""
    schema = column_schemas(con, [table]).get(table)
    if schema is None:
        return {TABLE_NAME: table}
    live = "WHERE NOT is_deleted" if any(c.name == "is_deleted" for c in schema.columns) else ""
    count = con.execute(f"SELECT count(*) FROM {table} {live}").fetchone()
    return {TABLE_NAME: table, ROW_COUNT: int(count[0]) if count else 0, COLUMN_SCHEMA: schema}


# -- the whole Definitions ------------------------------------------------------------------------


def freshness(spec: dg.AssetSpec) -> dg.FreshnessPolicy | None:
    """1 minute for what the lane records every window (`ndw/live`), 35 minutes for status tables kept by
    scheduled polls, the day's partition for daily exports, 24 h for everything else (docs/realtime.md)."""
    name = spec.key.to_user_string()
    if name in NO_FRESHNESS:
        return None
    if name in DYNAMIC:
        return dg.FreshnessPolicy.time_window(fail_window=DYNAMIC_WINDOW)
    if name in POLLED:
        return dg.FreshnessPolicy.time_window(fail_window=POLLED_WINDOW)
    if isinstance(spec.partitions_def, dg.DailyPartitionsDefinition):
        # The schedule materializes yesterday's partition at 02:00 UTC: it must be there by 03:00.
        return dg.FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=1))
    if spec.automation_condition is not None and "on_cron" in str(
        spec.automation_condition.get_label() or ""
    ):
        return dg.FreshnessPolicy.time_window(fail_window=DAILY_WINDOW)
    return dg.FreshnessPolicy.time_window(fail_window=STATIC_WINDOW)


# A mart table's column lineage (`evpipeline.model.lineage.mart_column_lineage`), passed in by the
# definitions: the model that knows it sits above this module.
ColumnLineage = Callable[[str], dg.TableColumnLineage | None]


def _no_lineage(table: str) -> dg.TableColumnLineage | None:
    del table
    return None


def describe(spec: dg.AssetSpec, column_lineage: ColumnLineage = _no_lineage) -> dg.AssetSpec:
    """Owners, table name + column schema (+ mart column lineage) and a freshness policy for one asset."""
    table = ".".join(spec.key.path)
    schemas = declared_schemas()
    metadata: dict[str, Any] = {}
    if len(spec.key.path) == 2 and table in schemas:
        metadata[TABLE_NAME] = table
        metadata[COLUMN_SCHEMA] = schemas[table]
        if table.startswith("mart.") and (lineage := column_lineage(table)) is not None:
            metadata[COLUMN_LINEAGE] = lineage
    policy = spec.freshness_policy or freshness(spec)
    merged = spec.merge_attributes(
        metadata={k: v for k, v in metadata.items() if k not in spec.metadata},
        owners=[o for o in owners() if o not in spec.owners],
    )
    return merged.replace_attributes(freshness_policy=policy) if policy is not None else merged


def annotate(defs: dg.Definitions, column_lineage: ColumnLineage = _no_lineage) -> dg.Definitions:
    """The Definitions with every asset described (`describe`, mart tables with `column_lineage`) and
    pointing at its source code."""
    described = defs.map_asset_specs(func=functools.partial(describe, column_lineage=column_lineage))
    return dg.Definitions(
        assets=list(dg.with_source_code_references(list(described.assets or []))),
        asset_checks=described.asset_checks,
        jobs=described.jobs,
        schedules=described.schedules,
        sensors=described.sensors,
        resources=described.resources,
        executor=described.executor,
        loggers=described.loggers,
        metadata=described.metadata,
    )
