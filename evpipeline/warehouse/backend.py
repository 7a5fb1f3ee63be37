"""Where the warehouse lives: one DuckDB file (the default) or a DuckLake.

`EVPIPELINE_WAREHOUSE` is either a DuckDB path (`data/warehouse.duckdb`, `:memory:`, `md:...`) or
DuckLake's own attach string: `ducklake:postgres:dbname=NAME host=HOST`, `ducklake:sqlite:PATH`
or `ducklake:PATH` (a DuckDB file as catalog). A DuckLake keeps its catalog there and its data as
Parquet under `EVPIPELINE_LAKE_DATA` (default `$EVPIPELINE_DATA_DIR/lake/`). Either way the
warehouse is attached under one catalog name, so every query reads the same on both.

DuckLake and the catalog scanners are DuckDB extensions; they come from their PyPI wheels
(`duckdb-extension-*`, pinned with DuckDB) and are loaded from the wheel's file, never downloaded.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb

from evpipeline import settings

CATALOG = "warehouse"
LAKE_PREFIX = "ducklake:"
# DuckLake's catalog database (named by DuckLake after our catalog) holds its own tables; queries over
# information_schema must not mistake them for ours.
LAKE_METADATA_CATALOG = f"__ducklake_metadata_{CATALOG}"

# How long a committing writer keeps retrying when another writer committed first (DuckLake
# settles non-conflicting races itself; these are its knobs, per connection).
LAKE_RETRY = {"ducklake_max_retry_count": 20, "ducklake_retry_wait_ms": 50, "ducklake_retry_backoff": 1.5}

_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


class ExtensionMissing(RuntimeError):
    """A DuckDB extension's wheel is not installed (it cannot be downloaded at run time)."""


@dataclass(frozen=True)
class Backend:
    """The parsed `EVPIPELINE_WAREHOUSE` value."""

    database: str

    @property
    def is_lake(self) -> bool:
        return self.database.startswith(LAKE_PREFIX)

    @property
    def catalog_kind(self) -> str | None:
        """`postgres`, `sqlite` or `duckdb` for a DuckLake (what holds its catalog); None for a file."""
        if not self.is_lake:
            return None
        rest = self.database[len(LAKE_PREFIX) :]
        for kind in ("postgres", "sqlite"):
            if rest.startswith(kind + ":"):
                return kind
        return "duckdb"

    @property
    def extensions(self) -> tuple[str, ...]:
        kind = self.catalog_kind
        if kind is None:
            return ()
        return (
            "ducklake",
            *({"postgres": ("postgres_scanner",), "sqlite": ("sqlite_scanner",)}.get(kind, ())),
        )

    @property
    def local_path(self) -> Path | None:
        """The file a file-based warehouse or catalog lives in (None for PostgreSQL, memory, MotherDuck)."""
        if self.database == ":memory:" or self.database.startswith("md:"):
            return None
        if not self.is_lake:
            return Path(self.database)
        kind = self.catalog_kind
        if kind == "postgres":
            return None
        rest = self.database[len(LAKE_PREFIX) :]
        return Path(rest[len("sqlite:") :] if kind == "sqlite" else rest)

    def data_path(self) -> str:
        """Where a DuckLake writes its Parquet files (a directory; always ends with `/`)."""
        path = settings.get("EVPIPELINE_LAKE_DATA") or str(settings.data_dir() / "lake")
        return path if path.endswith("/") else path + "/"

    def attach_sql(self, *, read_only: bool = False, snapshot_version: int | None = None) -> str:
        """`ATTACH` for this warehouse under `CATALOG`; a DuckLake may be pinned to a past snapshot."""
        options = []
        if self.is_lake:
            options.append(f"DATA_PATH {_literal(self.data_path())}")
            if snapshot_version is not None:
                options.append(f"SNAPSHOT_VERSION {int(snapshot_version)}")
        elif snapshot_version is not None:
            raise ValueError(
                "time travel needs the DuckLake warehouse backend (EVPIPELINE_WAREHOUSE=ducklake:...)"
            )
        if read_only or snapshot_version is not None:
            options.append("READ_ONLY")
        suffix = f" ({', '.join(options)})" if options else ""
        return f"ATTACH {_literal(self.database)} AS {CATALOG}{suffix}"

    def describe(self) -> str:
        """The warehouse for logs and errors: never a password from the connection string."""
        return redact(self.database)


def redact(text: str) -> str:
    """`password=...` in a libpq connection string (or an error quoting one) replaced by `***`."""
    return _PASSWORD.sub(r"\1***", text)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@cache
def extension_path(name: str) -> str:
    """The extension file inside its installed wheel, for this DuckDB version."""
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ExtensionMissing(
            f"the DuckDB extension {name!r} is not installed: pip install "
            f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__}"
        )
    root = Path(spec.origin).parent / "extensions"
    exact = root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if exact.exists():
        return str(exact)
    found = sorted(root.glob(f"*/{name}.duckdb_extension"))
    raise ExtensionMissing(
        f"the DuckDB extension {name!r} wheel does not match DuckDB {duckdb.__version__} "
        f"(has {[p.parent.name for p in found]}); pin both to the same version"
    )


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's current catalog is a DuckLake."""
    row = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return row is not None and row[0] == "ducklake"


def load_extensions(con: duckdb.DuckDBPyConnection, backend: Backend) -> None:
    """LOAD the extensions a backend needs from their wheels (no network)."""
    for name in backend.extensions:
        con.execute(f"LOAD {_literal(extension_path(name))}")
    if backend.is_lake:
        for setting, value in LAKE_RETRY.items():
            con.execute(f"SET {setting} = {value}")


# -- DDL: DuckLake has no PRIMARY KEY/UNIQUE constraints, indexes or sequences ------------------------

_TABLE_CONSTRAINT = re.compile(r",\s*(?:PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.IGNORECASE)
_COLUMN_CONSTRAINT = re.compile(r"\s+(?:PRIMARY\s+KEY|UNIQUE)\b(?=\s*[,)\n])", re.IGNORECASE)
_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\b[^;]*;?", re.IGNORECASE)


def lake_ddl(sql: str) -> str:
    """A migration as DuckLake accepts it: key constraints and indexes dropped.

    Keys are still kept, by the one merge (it matches on them and collapses duplicates) and by the
    upserts written as `MERGE`; on a DuckLake they are not also enforced by the engine.
    """
    return _INDEX.sub("", _COLUMN_CONSTRAINT.sub("", _TABLE_CONSTRAINT.sub("", sql)))


def is_write_conflict(exc: BaseException) -> bool:
    """A commit that lost a race with another writer, worth redoing from the start: DuckLake's
    "Transaction conflict" (both changed rows of one table) or DuckDB's write-write conflict."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()
