"""What the Dagster catalog shows of every asset, in one place.

- Table metadata: `dagster/table_name`, `dagster/column_schema` (a `TableSchema` generated from the
  DuckDB catalog the migrations create, with each column's description) on the asset definitions,
  and `dagster/row_count` plus the live column schema on each materialization (`table_metadata`).
- Column descriptions, first match: a DuckDB column comment, the `-- comment` beside the column in
  its migration's DDL, the `COLUMNS` map (table -> column -> description) declared beside the
  tables (`declared_descriptions`), the standard lineage/delete columns, else its type and
  nullability (a fallback the tests keep unused).
- Column lineage of `mart` (`dagster/column_lineage`): the source columns each mart column is computed
  from, read from the SQL of every source mapping that feeds it (`evpipeline.model.mappings`, walked by
  `evpipeline.model.lineage`); a column the walk cannot follow falls back to the same-named column.
- Owners (`EVPIPELINE_OWNERS`), freshness policies (Dagster's `FreshnessPolicy`) and source code
  references, applied to the whole `Definitions` by `annotate`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb

from evpipeline import settings
from evpipeline.warehouse import migrations

if TYPE_CHECKING:
    from evpipeline.model.lineage import Dep
    from evpipeline.model.mappings import SourceMapping

TABLE_NAME = "dagster/table_name"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
COLUMN_LINEAGE = "dagster/column_lineage"
URI = "dagster/uri"

# Modules that declare `COLUMNS` (table -> column -> description) beside the tables they create;
# every source package's `tables` module is one too (found like `snapshot.known_keys` finds KEYS).
COLUMN_MODULES = (
    "evpipeline.warehouse.columns",  # the tables evpipeline.warehouse creates itself (ops, retention)
    "evpipeline.model.tables",
    "evpipeline.model.reference",
    "evpipeline.model.identity",
    "evpipeline.quality.tables",
    "evpipeline.lane.feeds",
    "evpipeline.ndw.push_sync",
    "evpipeline.datex2.versions",
    "evpipeline.datex2.delivery",
)

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


@functools.cache
def declared_descriptions() -> dict[tuple[str, str], str]:
    """(table, column) -> description, from the `COLUMNS` map of every module that declares tables
    (`COLUMN_MODULES` and each source's `tables`). A column described in two places is an error."""
    import evpipeline.sources as sources

    names = [*COLUMN_MODULES, *(f"{sources.__name__}.{name}.tables" for name in sources.source_names())]
    found: dict[tuple[str, str], str] = {}
    where: dict[tuple[str, str], str] = {}
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        columns: Mapping[str, Mapping[str, str]] = getattr(importlib.import_module(name), "COLUMNS", {})
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


# -- column lineage of mart -------------------------------------------------------------------------


def _lowered(schema: dg.TableSchema) -> dict[str, str]:
    """lower-case column name -> the column's name (DuckDB names are case-insensitive)."""
    return {c.name.lower(): c.name for c in schema.columns}


def same_named(mapping: SourceMapping, table: str, column: str) -> frozenset[Dep]:
    """The same-named column of the mapping's table named like the mart table (greenflux.evses.status
    for mart.evses.status): the lineage for a column whose SQL the walk cannot follow."""
    if column in STANDARD_DESCRIPTIONS or column == "last_updated":
        return frozenset()  # bookkeeping columns every table has: a same name says nothing
    schemas = declared_schemas()
    short = table.split(".")[1]
    found: set[Dep] = set()
    for key in mapping.inputs:
        source = key.replace("/", ".")
        if key.split("/")[-1] == short and source in schemas and column.lower() in _lowered(schemas[source]):
            found.add((source, column.lower()))
    return frozenset(found)


def _mapping_lineage(mapping: SourceMapping, table: str, kind: str) -> dict[str, frozenset[Dep]]:
    """Mart column -> the warehouse columns the mapping's full-build SQL computes it from."""
    from evpipeline.model import lineage
    from evpipeline.model.mappings import Scope

    sql = mapping.sql(kind, Scope(mapping.source))
    if sql is None:
        return {}
    schemas = declared_schemas()
    known = {name: frozenset(_lowered(schema)) for name, schema in schemas.items()}
    # The rule relations and the scope temp tables are no warehouse tables: `known` leaves them out,
    # so a rule lookup stands for the source columns it is joined on.
    try:
        walked = lineage.column_lineage(sql, known.get)
    except ValueError:  # not one plain SELECT (e.g. a UNION): every column falls back to its same name
        walked = dict.fromkeys(_lowered(schemas[table]), None)
    out: dict[str, frozenset[Dep]] = {}
    for lower, column in _lowered(schemas[table]).items():
        deps = walked.get(lower, frozenset())  # a mart column the mapping does not select (bookkeeping): none
        out[column] = same_named(mapping, table, column) if deps is None else deps
    return out


@functools.cache
def _mart_lineage(registered: int) -> dict[str, dict[str, dict[str, frozenset[Dep]]]]:
    del registered  # the cache key, as for `_declared`: the SQL is parsed once per process
    from evpipeline.model.build import KINDS
    from evpipeline.model.mappings import registry

    return {
        table: {m.source: found for m in registry() if (found := _mapping_lineage(m, table, kind))}
        for table, kind in KINDS
        if table in declared_schemas()
    }


def mart_lineage(table: str) -> dict[str, dict[str, frozenset[Dep]]]:
    """source -> mart column -> the (table, column)s of the warehouse its mapping computes it from,
    read from the mapping's SQL (`evpipeline.model.lineage`); {} for a table no mapping writes."""
    return _mart_lineage(len(migrations.registered())).get(table, {})


def _asset_column(table: str, column: str) -> dg.TableColumnDep | None:
    """The dependency on a warehouse column as Dagster names it: `greenflux/evses` column `status`; a table
    of a source whose one asset loads several (reference/operator_data) as `parties.country_code`."""
    from evpipeline.model.mappings import registry

    name = _lowered(declared_schemas()[table]).get(column, column)
    keys = {key for m in registry() for key in m.inputs}
    if table.replace(".", "/") in keys:
        return dg.TableColumnDep(dg.AssetKey(table.split(".")), name)
    schema, short = table.split(".")
    owners = [key for m in registry() if m.source == schema for key in m.inputs]
    if len(owners) == 1:
        return dg.TableColumnDep(dg.AssetKey(owners[0].split("/")), f"{short}.{name}")
    return None  # no asset to name (a table the mart's declared inputs do not load)


def mart_column_lineage(table: str) -> dg.TableColumnLineage | None:
    """Each mart column's upstream columns, from every source mapping that writes the table
    (`mart_lineage`)."""
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for by_column in mart_lineage(table).values():
        for column, found in by_column.items():
            for source_table, source_column in sorted(found):
                dep = _asset_column(source_table, source_column)
                if dep is not None and dep not in deps.get(column, []):
                    deps.setdefault(column, []).append(dep)
    return dg.TableColumnLineage(deps_by_column=deps) if deps else None


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


def describe(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Owners, table name + column schema (+ mart column lineage) and a freshness policy for one asset."""
    table = ".".join(spec.key.path)
    schemas = declared_schemas()
    metadata: dict[str, Any] = {}
    if len(spec.key.path) == 2 and table in schemas:
        metadata[TABLE_NAME] = table
        metadata[COLUMN_SCHEMA] = schemas[table]
        if table.startswith("mart.") and (lineage := mart_column_lineage(table)) is not None:
            metadata[COLUMN_LINEAGE] = lineage
    policy = spec.freshness_policy or freshness(spec)
    merged = spec.merge_attributes(
        metadata={k: v for k, v in metadata.items() if k not in spec.metadata},
        owners=[o for o in owners() if o not in spec.owners],
    )
    return merged.replace_attributes(freshness_policy=policy) if policy is not None else merged


def annotate(defs: dg.Definitions) -> dg.Definitions:
    """The Definitions with every asset described (`describe`) and pointing at its source code."""
    described = defs.map_asset_specs(func=describe)
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
