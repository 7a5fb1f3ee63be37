"""The BI snapshot: immutable Parquet files plus a small read-only catalog, published incrementally.

DuckDB lets one process write a database file and nobody else open it meanwhile, so BI tools (and
the OCPI pull server) read `snapshots/warehouse.duckdb` instead of the live file. That file is a
catalog: the warehouse's schemas with a view per table over its Parquet files under
`snapshots/parquet/<schema>/<table>/`, plus the warehouse's own views. A publication costs what
changed since the last one, per table:

- `merge` (merge targets: `_ingested_at` and `_row_hash`, never physically deleted): a base file
  plus delta files of the rows written after the published watermarks; the view keeps the newest
  row per natural key. Deltas are folded into a fresh base once they outgrow a quarter of it.
- `append` (`APPEND`: logs with a time column, trimmed by retention): one file per day; days the
  warehouse no longer holds are dropped, a partly trimmed day is rewritten.
- `replace` (anything else, small): rewritten whenever a fingerprint of its contents changes.
- not published (`SKIP`): the push clients' mirrors of NDW and the DATEX II receiver.

`manifest.json` records what is published. Order of a publication: new Parquet files (fresh names,
never reused), the manifest, then the catalog, each swapped in with `os.replace`. A crash at any
point leaves the previous catalog readable; the next publication converges. A reader holding an
older catalog keeps working: files it references are deleted only `GRACE` after they left the
manifest.

The views name their files relative to the snapshot directory (`parquet/mart/evses/base.p000001.parquet`),
so the directory can be moved, copied or mounted elsewhere. DuckDB resolves a relative path against
`file_search_path` (else the working directory), so a reader sets it to the snapshot directory:
`open_snapshot` does, with a DuckDB instance of its own, so it reads the newest publication even in a
process that still holds an older one open (DuckDB hands a second `duckdb.connect(path)` in one
process the instance already open for that path). docs/mart.md says how a BI tool reads it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from evpipeline import settings
from evpipeline.model import reference
from evpipeline.model import tables as model_tables
from evpipeline.sources import registry
from evpipeline.warehouse.backend import Backend
from evpipeline.warehouse.resource import attach
from evpipeline.warehouse.rows import one_row, scalar

SNAPSHOT_NAME = "warehouse.duckdb"
MANIFEST_NAME = "manifest.json"
PARQUET_DIR = "parquet"
FORMAT = 1
# Append-only tables and their time column: one file per day of it.
APPEND = {
    "ops.status_history": "recorded_at",
    "ops.runs": "committed_at",
    "ops.ndw_pushes": "pushed_at",
    "ops.datex2_pushes": "pushed_at",
    "ops.source_clocks": "measured_at",
    "tomtom.availability_snapshots": "_ingested_at",
}
# Not published: the push clients' mirrors of what NDW and the DATEX II receiver hold (a row per
# published EVSE, rewritten by every status push, so republishing them would cost the fleet each
# time); BI reads the logs, ops.ndw_pushes and ops.datex2_pushes.
SKIP = {"ops.ndw_pushed", "ops.datex2_held"}
MERGE_COLUMNS = ("_ingested_at", "_observed_at", "_row_hash")
# The merge stamps `_ingested_at` on every change but one: the same content seen again later only
# moves `_observed_at` forward. Both make a row part of the next delta.
CHANGED = "(_ingested_at > $ingested OR _observed_at > $observed)"
GRACE = timedelta(hours=1)  # how long a reader of an older catalog can rely on its files
COMPACT_RATIO = 0.25
MAX_DELTAS = 20
INFO_VIEW = "main.snapshot_publication"

Entry = dict[str, Any]  # one table's manifest entry (JSON)
_SEQ = re.compile(r"\.p(\d{6,})\.parquet$")


@dataclass
class Snapshot:
    database: Path
    parquet: Path
    tables: int  # mart tables
    publication: int = 0
    tables_written: int = 0
    rows_written: int = 0
    written: dict[str, int] = field(default_factory=dict)  # rows written per table
    bytes_written: int = 0  # Parquet, catalog and manifest
    files_deleted: int = 0
    compacted: list[str] = field(default_factory=list)
    unkeyed: list[str] = field(default_factory=list)  # merge targets published whole: natural key unknown
    seconds: float = 0.0


@dataclass(frozen=True)
class _Table:
    schema: str
    name: str
    columns: list[list[str]]  # [name, type], published ones, in table order
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        return f"{_ident(self.schema)}.{_ident(self.name)}"

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


def snapshot_dir(warehouse_path: str) -> Path:
    """Beside a DuckDB file; under the data directory for a DuckLake (its catalog may be PostgreSQL)."""
    if Backend(warehouse_path).is_lake:
        return settings.data_dir().resolve() / "snapshots"
    return Path(warehouse_path).resolve().parent / "snapshots"


def open_snapshot(
    path: str | os.PathLike[str], config: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """A reader of the BI snapshot at `path` (its directory or its `warehouse.duckdb`): a DuckDB instance
    of its own with the catalog attached read-only and in use, and the snapshot directory as
    `file_search_path`, so the views' relative Parquet paths resolve wherever the directory lives. Each
    call opens the catalog file anew: the newest publication, whatever older readers this process holds."""
    catalog = Path(path).expanduser().resolve()
    if catalog.is_dir():
        catalog = catalog / SNAPSHOT_NAME
    if not catalog.is_file():
        raise FileNotFoundError(f"no BI snapshot at {catalog}")
    return attach(
        str(catalog), read_only=True, config={**(config or {}), "file_search_path": str(catalog.parent)}
    )


def known_keys() -> dict[str, tuple[str, ...]]:
    """Natural keys of the merge targets the code base declares: the `KEYS` maps of the model's
    modules and of every source (`evpipeline.sources.registry`)."""
    keys: dict[str, tuple[str, ...]] = {}
    for declared in (model_tables.KEYS, reference.KEYS, *(source.keys for source in registry.SOURCES)):
        keys.update({table: tuple(columns) for table, columns in declared.items()})
    return keys


def publish_snapshot(
    con: duckdb.DuckDBPyConnection,
    directory: Path,
    token: str,
    keys: Mapping[str, Sequence[str]] | None = None,
) -> Snapshot:
    """Publish what changed in the warehouse since the last publication into `directory`, atomically.

    `keys` names the natural key of merge targets without a PRIMARY KEY (default: `known_keys()`);
    a merge target without one is published whole whenever it changes (`Snapshot.unkeyed`).
    """
    started = time.monotonic()
    directory = directory.resolve()
    root = directory / PARQUET_DIR
    root.mkdir(parents=True, exist_ok=True)
    key_map = {table: tuple(columns) for table, columns in (known_keys() if keys is None else keys).items()}
    con.execute("BEGIN TRANSACTION")  # one consistent state of every table (and its watermark)
    try:
        tables = _tables(con)
        warehouse = _warehouse_id(con, tables)
        previous = _read_manifest(directory, warehouse)
        run = _Run(con, root, _next_publication(previous, root))
        entries = {
            t.qualified: _publish_table(run, t, previous["tables"].get(t.qualified), key_map) for t in tables
        }
        views = _views(con)
    finally:
        con.execute("ROLLBACK")

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "warehouse": warehouse,
        "root": PARQUET_DIR,  # relative to the snapshot directory, as every path the views read
        "schemas": sorted({t.schema for t in tables} | {name.split(".")[0] for name, _ in views}),
        "tables": entries,
        "views": views,
    }
    database = directory / SNAPSHOT_NAME
    published = {k: previous.get(k) for k in manifest} == manifest
    if not (published and _catalog_publication(database) == previous["publication"]):
        manifest.update(publication=run.publication, token=token, retired=_retired(previous, entries, root))
        run.bytes += _publish(directory, manifest, token)
    else:
        manifest = previous
    return Snapshot(
        database=database,
        parquet=root,
        tables=sum(t.schema == "mart" for t in tables),
        publication=manifest["publication"],
        tables_written=len(run.written),
        rows_written=run.rows,
        written=run.written,
        bytes_written=run.bytes,
        files_deleted=_clean(directory, manifest),
        compacted=run.compacted,
        unkeyed=run.unkeyed,
        seconds=round(time.monotonic() - started, 3),
    )


# --------------------------------------------------------------------------------------------
# Reading the warehouse


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _tables(con: duckdb.DuckDBPyConnection) -> list[_Table]:
    primary = {
        (schema, name): tuple(columns)
        for schema, name, columns in con.execute(
            "SELECT schema_name, table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    rows = con.execute(
        """
        SELECT t.schema_name, t.table_name, list([c.column_name, c.data_type] ORDER BY c.column_index)
        FROM duckdb_tables() t JOIN duckdb_columns() c USING (database_name, schema_name, table_name)
        WHERE t.database_name = current_database() AND NOT t.temporary AND NOT t.internal
        GROUP BY ALL ORDER BY 1, 2
        """
    ).fetchall()
    tables = []
    for schema, name, columns in rows:
        if f"{schema}.{name}" not in SKIP:
            tables.append(_Table(schema, name, [list(c) for c in columns], primary.get((schema, name), ())))
    return tables


_VIEW_HEAD = re.compile(
    r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(?:\"[^\"]*\"|[^\s(])+(?:\s*\([^)]*\))?\s+AS\s+", re.IGNORECASE
)


def _views(con: duckdb.DuckDBPyConnection) -> list[list[str]]:
    """The warehouse's own views: [qualified name, CREATE VIEW statement]."""
    return [
        # Named here in full: a DuckLake gives its views' SQL without the schema (`CREATE VIEW v AS ...`).
        [f"{schema}.{name}", _VIEW_HEAD.sub(f"CREATE VIEW {_ident(schema)}.{_ident(name)} AS ", sql, count=1)]
        for schema, name, sql in con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal AND NOT temporary ORDER BY 1, 2"
        ).fetchall()
    ]


def _warehouse_id(con: duckdb.DuckDBPyConnection, tables: list[_Table]) -> str:
    """When the warehouse was created: a manifest of another warehouse (same directory) is not ours."""
    if not any(t.qualified == "ops.schema_migrations" for t in tables):
        return ""
    return str(scalar(con.execute("SELECT min(applied_at) FROM ops.schema_migrations")))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


# --------------------------------------------------------------------------------------------
# Writing table files


class _Run:
    """The files of one publication: fresh names under `root`, and what was written."""

    def __init__(self, con: duckdb.DuckDBPyConnection, root: Path, publication: int) -> None:
        self.con, self.root, self.publication = con, root, publication
        self.written: dict[str, int] = {}  # table -> rows written
        self.rows = self.bytes = 0
        self.compacted: list[str] = []
        self.unkeyed: list[str] = []

    def copy(
        self, table: _Table, kind: str, query: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """COPY the rows of `query` into a new Parquet file of `table`; its manifest record."""
        relative = f"{table.schema}/{table.name}/{kind}.p{self.publication:06d}.parquet"
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = scalar(
            self.con.execute(f"COPY ({query}) TO {_literal(str(path))} (FORMAT parquet)", params or {})
        )
        _fsync(path)
        self.written[table.qualified] = self.written.get(table.qualified, 0) + rows
        self.rows += rows
        self.bytes += path.stat().st_size
        return {"path": relative, "rows": rows}

    def select(self, table: _Table, where: str = "", order: Iterable[str] = ()) -> str:
        order_by = ", ".join(_ident(c) for c in order) or "ALL"
        return f"SELECT {', '.join(map(_ident, table.names))} FROM {table.sql} {where} ORDER BY {order_by}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish_table(
    run: _Run, table: _Table, previous: Entry | None, keys: Mapping[str, tuple[str, ...]]
) -> Entry:
    names = set(table.names)
    time_column = APPEND.get(table.qualified)
    if time_column is not None and time_column in names:
        return _append(run, table, time_column, previous)
    if set(MERGE_COLUMNS) <= names:
        key = table.primary_key or keys.get(table.qualified, ())
        if key:
            return _merge(run, table, key, previous)
        run.unkeyed.append(table.qualified)
    return _replace(run, table, previous)


def _matching(previous: Entry | None, shape: Entry) -> Entry | None:
    """The previous entry, if it describes the same table layout (else the table is published afresh)."""
    if previous is not None and all(previous.get(k) == v for k, v in shape.items()):
        return previous
    return None


def _replace(run: _Run, table: _Table, previous: Entry | None) -> Entry:
    """Small tables: the whole table again, only when a fingerprint of its rows changed."""
    columns = ", ".join(_ident(c) for c in table.names)
    rows, digest = one_row(run.con.execute(f"SELECT count(*), sum(hash({columns})) FROM {table.sql}"))
    entry: Entry = {"mode": "replace", "columns": table.columns, "fingerprint": f"{rows}:{digest}"}
    if (same := _matching(previous, entry)) is not None:
        return same
    files = [run.copy(table, "full", run.select(table))] if rows else []
    return {**entry, "rows": rows, "files": files}


def _merge(run: _Run, table: _Table, keys: tuple[str, ...], previous: Entry | None) -> Entry:
    """Merge targets: a delta of the rows written after the watermarks, or a fresh base."""
    shape: Entry = {"mode": "merge", "columns": table.columns, "keys": list(keys)}
    last = _matching(previous, shape)
    if last is not None and last["watermark"] is None:  # published while empty: nothing to add to
        last = None
    marks = {"ingested": _time(last["watermark"]), "observed": _time(last["observed"])} if last else {}
    rows, changed, newest, observed = one_row(
        run.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {CHANGED}), max(_ingested_at), max(_observed_at) "
            f"FROM {table.sql}",
            marks or {"ingested": None, "observed": None},
        )
    )
    entry = {**shape, "watermark": _iso(newest), "observed": _iso(observed), "rows": rows}
    # Every row the published view lacks is in the delta, unless the warehouse went back (a restore),
    # lost rows, or got rows behind the watermark: then the table is published afresh.
    if last is not None and newest is not None and newest >= marks["ingested"] and _grew(last, rows, changed):
        if not changed:
            return last
        files = last["files"]
        base = sum(f["rows"] for f in files if f["kind"] == "base")
        deltas = [f for f in files if f["kind"] == "delta"]
        if sum(f["rows"] for f in deltas) + changed <= COMPACT_RATIO * base and len(deltas) < MAX_DELTAS:
            delta = run.copy(table, "delta", run.select(table, f"WHERE {CHANGED}", keys), marks)
            return {**entry, "files": [*files, {**delta, "kind": "delta"}]}
        run.compacted.append(table.qualified)
    files = [{**run.copy(table, "base", run.select(table, order=keys)), "kind": "base"}] if rows else []
    return {**entry, "files": files}


def _grew(last: Entry, rows: int, changed: int) -> bool:
    """Merge targets never lose rows, and every new row is a changed one."""
    return bool(last["rows"] <= rows <= last["rows"] + changed)


def _append(run: _Run, table: _Table, column: str, previous: Entry | None) -> Entry:
    """Append-only logs: per day, a file of the rows after the watermark; a day is rewritten whole
    from the warehouse when retention trimmed it, when it holds several files (compaction), or when
    its published row count disagrees with the warehouse (rows behind the watermark, deletes)."""
    shape: Entry = {"mode": "append", "columns": table.columns, "time_column": column}
    t = _ident(column)
    rows, oldest, newest = one_row(run.con.execute(f"SELECT count(*), min({t}), max({t}) FROM {table.sql}"))
    last = _matching(previous, shape)
    watermark = _time(last["watermark"]) if last is not None else None
    if last is None or watermark is None or newest is None or newest < watermark:
        watermark, files = None, []  # first publication, emptied, or rows newer than published vanished
    else:  # retention: a day the warehouse no longer holds goes
        files = [f for f in last["files"] if _time(f["max"]) >= oldest]
    new = _day_counts(run.con, table, column, watermark)
    per_day = {
        day: sum(f["day"] == day for f in files) + (day in new)
        for day in {f["day"] for f in files} | set(new)
    }
    last_day = max(per_day, default="")
    rewrite = {f["day"] for f in files if _time(f["min"]) < oldest}  # partly trimmed
    rewrite |= {day for day, n in per_day.items() if n > 1 and (day < last_day or n > MAX_DELTAS)}
    written = {day: _day_file(run, table, column, day, None) for day in sorted(rewrite)}
    kept = [f for f in files if f["day"] not in rewrite]
    new = {day: n for day, n in new.items() if day not in rewrite}
    if (
        sum(f["rows"] for f in kept) + sum(new.values()) + sum(f["rows"] for f in written.values() if f)
        != rows
    ):
        for day in sorted(_unequal_days(run.con, table, column, kept, new) - rewrite):
            written[day] = _day_file(run, table, column, day, None)
        kept = [f for f in kept if f["day"] not in written]
    if {f["day"] for f in files} & written.keys():
        run.compacted.append(table.qualified)
    for day in sorted(new.keys() - written.keys()):
        written[day] = _day_file(run, table, column, day, watermark)
    files = sorted([*kept, *(f for f in written.values() if f)], key=lambda f: f["path"])
    return {**shape, "watermark": _iso(newest), "rows": rows, "files": files}


def _day_sql(column: str) -> str:
    return f"strftime(timezone('UTC', {_ident(column)}), '%Y-%m-%d')"


def _day_counts(
    con: duckdb.DuckDBPyConnection, table: _Table, column: str, since: datetime | None
) -> dict[str, int]:
    where = f"WHERE {_ident(column)} > $since" if since is not None else ""
    query = f"SELECT {_day_sql(column)} AS day, count(*) FROM {table.sql} {where} GROUP BY day"
    return dict(con.execute(query, {"since": since} if since is not None else {}).fetchall())


def _unequal_days(
    con: duckdb.DuckDBPyConnection, table: _Table, column: str, files: list[Entry], new: dict[str, int]
) -> set[str]:
    """Days whose published row count (plus new rows) differs from the warehouse's."""
    published = dict(new)
    for f in files:
        published[f["day"]] = published.get(f["day"], 0) + f["rows"]
    live = _day_counts(con, table, column, None)
    return {day for day in published.keys() | live.keys() if published.get(day, 0) != live.get(day, 0)}


def _day_file(run: _Run, table: _Table, column: str, day: str, since: datetime | None) -> Entry | None:
    """A file of one day's rows (after `since`, if given); None when there are none."""
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    t = _ident(column)
    where = f"WHERE {t} >= $start AND {t} < $end" + (f" AND {t} > $since" if since is not None else "")
    params = {
        "start": start,
        "end": start + timedelta(days=1),
        **({"since": since} if since is not None else {}),
    }
    low, high = one_row(run.con.execute(f"SELECT min({t}), max({t}) FROM {table.sql} {where}", params))
    if low is None:
        return None
    record = run.copy(table, day, run.select(table, where, [column, *table.names]), params)
    return {**record, "day": day, "min": _iso(low), "max": _iso(high)}


# --------------------------------------------------------------------------------------------
# Manifest and catalog


def _read_manifest(directory: Path, warehouse: str) -> dict[str, Any]:
    """The last publication, if it belongs to this warehouse and its files are all there. Otherwise
    nothing to build on, but the catalog may still read its files: they are retired, not orphaned."""
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("format") != FORMAT:
        return {"tables": {}, "publication": 0, "retired": {}}
    if manifest["warehouse"] == warehouse and all(
        (directory / PARQUET_DIR / f["path"]).is_file() for f in _files(manifest)
    ):
        return manifest
    now = _iso(datetime.now(UTC))
    retired = {**manifest["retired"], **dict.fromkeys(_live_files(manifest), now)}
    return {"tables": {}, "publication": manifest["publication"], "retired": retired}


def _next_publication(previous: dict[str, Any], root: Path) -> int:
    """Higher than any earlier one, so a new file never takes the name of one a catalog may read."""
    seen = [int(m.group(1)) for path in root.rglob("*.parquet") if (m := _SEQ.search(path.name))]
    return max([previous["publication"], *seen]) + 1


def _files(manifest: Mapping[str, Any]) -> list[Entry]:
    return [f for entry in manifest["tables"].values() for f in entry["files"]]


def _live_files(manifest: Mapping[str, Any]) -> set[str]:
    return {f["path"] for f in _files(manifest)}


def _retired(previous: dict[str, Any], entries: dict[str, Entry], root: Path) -> dict[str, str]:
    """Files older catalogs may still read, with when they left the manifest."""
    now = _iso(datetime.now(UTC))
    live = _live_files({"tables": entries})
    retired = {path: since for path, since in previous["retired"].items() if (root / path).exists()}
    retired.update({path: now for path in _live_files(previous) - live if path not in retired})
    return {path: since for path, since in sorted(retired.items()) if path not in live}


def _table_view(entry: Entry, root: str) -> str:
    """SELECT of a published table: its files (relative to the snapshot directory), and for merge deltas
    the newest row per key."""
    columns = ", ".join(_ident(name) for name, _ in entry["columns"])
    if not entry["files"]:
        typed = ", ".join(f"CAST(NULL AS {kind}) AS {_ident(name)}" for name, kind in entry["columns"])
        return f"SELECT {typed} WHERE false"

    def read(files: list[Entry]) -> str:
        return "read_parquet([" + ", ".join(_literal(f"{root}/{f['path']}") for f in files) + "])"

    deltas = [f for f in entry["files"] if f.get("kind") == "delta"]
    if not deltas:
        return f"SELECT {columns} FROM {read(entry['files'])}"
    keys = [_ident(k) for k in entry["keys"]]
    match = " AND ".join(f"d.{k} IS NOT DISTINCT FROM b.{k}" for k in keys)
    return f"""
        WITH delta AS (
            SELECT {columns} FROM {read(deltas)}
            QUALIFY row_number() OVER (PARTITION BY {", ".join(keys)} ORDER BY file_index DESC) = 1
        )
        SELECT {columns} FROM {read([f for f in entry["files"] if f not in deltas])} b
        WHERE NOT EXISTS (SELECT 1 FROM delta d WHERE {match})
        UNION ALL
        SELECT {columns} FROM delta"""


def _write_catalog(path: Path, manifest: dict[str, Any]) -> None:
    root = manifest["root"]
    path.unlink(missing_ok=True)
    # A view is bound when created: its relative paths resolve against the snapshot directory.
    with duckdb.connect(str(path), config={"file_search_path": str(path.parent)}) as catalog:
        catalog.execute("BEGIN TRANSACTION")  # one commit, not one per view
        for schema in manifest["schemas"]:
            catalog.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        for name, entry in manifest["tables"].items():
            schema, _, table = name.partition(".")
            catalog.execute(f"CREATE VIEW {_ident(schema)}.{_ident(table)} AS {_table_view(entry, root)}")
        catalog.execute("COMMIT")
        _create_views(catalog, manifest["views"])
        catalog.execute(
            f"CREATE VIEW {INFO_VIEW} AS SELECT {int(manifest['publication'])} AS publication, "
            f"{_literal(manifest['token'])} AS token"
        )


def _create_views(catalog: duckdb.DuckDBPyConnection, views: list[list[str]]) -> None:
    """The warehouse's views; one may read another, so retry those whose inputs are not there yet."""
    pending = views
    while pending:
        failed, error = [], None
        for name, sql in pending:
            try:
                catalog.execute(sql)
            except duckdb.CatalogException as e:
                failed.append([name, sql])
                error = e
        if len(failed) == len(pending):
            raise RuntimeError(f"cannot recreate views {[n for n, _ in failed]} in the snapshot") from error
        pending = failed


def _catalog_publication(path: Path) -> int | None:
    """The publication the catalog file holds (None: missing, foreign or unreadable)."""
    try:
        with duckdb.connect(":memory:") as con:
            con.execute(f"ATTACH {_literal(str(path))} AS catalog (READ_ONLY)")
            return scalar(con.execute(f"SELECT publication FROM catalog.{INFO_VIEW}"))
    except duckdb.Error:
        return None


def _write_manifest(path: Path, manifest: dict[str, Any]) -> int:
    data = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return len(data)


def _publish(directory: Path, manifest: dict[str, Any], token: str) -> int:
    """Swap in the manifest, then the catalog; bytes written. The catalog is replaced last: whatever
    catalog a reader opens, its files are live or retired in the manifest, so none is deleted early."""
    catalog = directory / f".{SNAPSHOT_NAME}.{token}"
    staged = directory / f".{MANIFEST_NAME}.{token}"
    try:
        _write_catalog(catalog, manifest)
        written = _write_manifest(staged, manifest) + catalog.stat().st_size
        os.replace(staged, directory / MANIFEST_NAME)
        os.replace(catalog, directory / SNAPSHOT_NAME)
    finally:
        catalog.unlink(missing_ok=True)
        staged.unlink(missing_ok=True)
    _fsync(directory)
    return written


def _clean(directory: Path, manifest: dict[str, Any]) -> int:
    """Delete files no catalog can need any more: not in the manifest and retired (or, orphans of a
    crashed publication, written) more than `GRACE` ago; and staging files of crashed publications."""
    root = directory / PARQUET_DIR
    live = _live_files(manifest)
    retired = manifest.get("retired", {})
    horizon = datetime.now(UTC) - GRACE
    deleted = 0
    for path in sorted(root.rglob("*"), reverse=True):  # files before their directories
        relative = path.relative_to(root).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
            continue
        if relative in live:
            continue
        since = _time(retired.get(relative)) or datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if since <= horizon:
            path.unlink()
            deleted += 1
    for path in directory.glob(".*"):
        if path.name.startswith((f".{SNAPSHOT_NAME}.", f".{MANIFEST_NAME}.")):
            path.unlink()
    return deleted
