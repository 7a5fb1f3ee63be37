"""Build the canonical model from whichever sources exist, with the one merge, in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from evpipeline.model.mappings import SourceMapping, registry
from evpipeline.model.rules import register_rules
from evpipeline.model.tables import CONNECTORS, EVSES, KEYS, LOCATIONS, TARIFFS, UNMAPPED
from evpipeline.timeutil import utcnow
from evpipeline.warehouse import MergeCounts, table_columns, transaction

KINDS = ((LOCATIONS, "locations"), (EVSES, "evses"), (CONNECTORS, "connectors"), (TARIFFS, "tariffs"))


@dataclass
class MartBuild:
    counts: dict[str, MergeCounts] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    unmapped: pd.DataFrame = field(default_factory=pd.DataFrame)
    removed: dict[str, int] = field(default_factory=dict)


def available_mappings(con: duckdb.DuckDBPyConnection) -> list[SourceMapping]:
    """Mappings whose source tables exist in this warehouse."""
    tables = {f"{s}.{t}" for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    return [m for m in registry() if all(t in tables for t in m.requires)]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def strip_json_nulls(frame: pd.DataFrame, json_columns: list[str]) -> pd.DataFrame:
    """OCPI omits absent optional fields: drop null members inside every JSON value (any source)."""
    for column in json_columns:
        if column not in frame.columns:
            continue
        values = frame[column]
        dirty = values.notna() & values.astype(str).str.contains("null", regex=False)
        if dirty.any():
            frame.loc[dirty, column] = [json.dumps(_without_nulls(json.loads(v))) for v in values[dirty]]
    return frame


def canonical_frame(con: duckdb.DuckDBPyConnection, mappings: list[SourceMapping], kind: str) -> pd.DataFrame | None:
    """The rows every mapping produces for one mart table (rows without a CPO party are left out: reported)."""
    selects = [getattr(m, kind) for m in mappings if getattr(m, kind)]
    if not selects:
        return None
    union = " UNION ALL BY NAME ".join(f"({sql})" for sql in selects)
    return con.execute(f"SELECT * FROM ({union}) WHERE country_code IS NOT NULL AND party_id IS NOT NULL").df()


def _json_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for name, kind in table_columns(con, table).items() if kind == "JSON"]


def build_mart(con: duckdb.DuckDBPyConnection, *, run_id: str | None = None, as_of: datetime | None = None) -> MartBuild:
    """Map every available source into `mart` (merge: unchanged rows stay untouched, ids never change)."""
    as_of = as_of or utcnow()
    register_rules(con)
    mappings = available_mappings(con)
    result = MartBuild(sources=[m.source for m in mappings])
    frames = {table: canonical_frame(con, mappings, kind) for table, kind in KINDS}
    for table, frame in frames.items():
        if frame is not None:
            strip_json_nulls(frame, _json_columns(con, table))
    unmapped_sql = " UNION ALL ".join(f"({m.unmapped})" for m in mappings)
    result.unmapped = con.execute(unmapped_sql).df() if mappings else pd.DataFrame(columns=["source", "field", "value", "rows"])

    with transaction(con, "mart", run_id) as writer:
        for table, frame in frames.items():
            if frame is None:
                continue
            writer.merge(frame, table, KEYS[table], status_column="status" if table == EVSES else None)
            # A row its source's mapping no longer produces (party changed, site reassigned) is kept,
            # flagged deleted: an EVSE thereby reads as REMOVED, never vanishes.
            for mapping in mappings:
                present = frame[frame["source"] == mapping.source]
                flagged = writer.flag_missing(
                    table, KEYS[table], present, as_of, scope_keys=pd.DataFrame({"source": [mapping.source]})
                )
                result.removed[table] = result.removed.get(table, 0) + flagged
        con.execute(f"DELETE FROM {UNMAPPED}")
        if len(result.unmapped):
            con.register("_evp_unmapped", result.unmapped)
            con.execute(
                f"INSERT INTO {UNMAPPED} SELECT source, field, CAST(value AS VARCHAR), rows, ?, now() FROM _evp_unmapped",
                [run_id],
            )
            con.unregister("_evp_unmapped")
        writer.log_run("model", details={"sources": result.sources, "unmapped": int(result.unmapped["rows"].sum()) if len(result.unmapped) else 0})
        result.counts = dict(writer.counts)
    return result
