"""The canonical model assets (schema `mart`) and the BI snapshot published after them."""

from collections.abc import Iterator

import dagster as dg

from evpipeline.model.build import build_mart
from evpipeline.model.keys import MART_KEYS
from evpipeline.model.mappings import registry
from evpipeline.model.snapshot import publish_snapshot, snapshot_dir
from evpipeline.model.tables import CONNECTORS, EVSES, LOCATIONS, TARIFFS, UNMAPPED
from evpipeline.sync import markdown_preview
from evpipeline.warehouse import WarehouseResource

POOL = "duckdb_writer"
DESCRIPTIONS = {
    LOCATIONS: "OCPI Locations from every source, with the owning CPO's country_code/party_id and lineage.",
    EVSES: "OCPI EVSEs; removed ones stay with status REMOVED; status transitions in mart.evse_status_history.",
    CONNECTORS: "OCPI Connectors (standard, format, power) mapped by rule; unmappable values are reported.",
    TARIFFS: "OCPI Tariffs referenced by connectors.",
}
SOURCE_INPUTS = sorted({dg.AssetKey(key.split("/")) for mapping in registry() for key in mapping.inputs}, key=str)


@dg.multi_asset(
    name="mart_model",
    group_name="mart",
    pool=POOL,
    specs=[
        dg.AssetSpec(key, description=DESCRIPTIONS[table], deps=SOURCE_INPUTS, kinds={"duckdb"})
        for table, key in MART_KEYS.items()
    ],
)
def mart_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Map every available source into the canonical OCPI-shaped tables, in one transaction."""
    with warehouse.get_connection() as con:
        build = build_mart(con, run_id=context.run.run_id)
    unmapped_rows = int(build.unmapped["rows"].sum()) if len(build.unmapped) else 0
    for table, key in MART_KEYS.items():
        counts = build.counts.get(table)
        metadata: dict[str, object] = {"sources": ", ".join(build.sources) or "none"}
        if counts is not None:
            metadata.update(
                rows_mapped=counts.fetched, inserted=counts.inserted, updated=counts.updated,
                removed=counts.deleted, unchanged=counts.unchanged, status_changes=counts.status_changes,
            )
        if table == CONNECTORS:
            metadata["unmapped_values"] = dg.MetadataValue.md(
                markdown_preview(build.unmapped, ["source", "field", "value", "rows"], rows=20)
            )
            metadata["unmapped_rows"] = unmapped_rows
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)


@dg.asset_check(
    asset=MART_KEYS[CONNECTORS],
    name="unmapped_values",
    description="Source values the mapping rules could not translate into OCPI (reported, never guessed).",
    blocking=False,
)
def unmapped_values_check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.get_connection() as con:
        frame = con.execute(f"SELECT source, field, value, rows FROM {UNMAPPED} ORDER BY rows DESC").df()
    return dg.AssetCheckResult(
        passed=frame.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"unmapped_rows": int(frame["rows"].sum()) if len(frame) else 0,
                  "values": dg.MetadataValue.md(markdown_preview(frame, list(frame.columns), rows=20))},
    )


@dg.asset(
    key=dg.AssetKey(["mart", "bi_snapshot"]),
    group_name="mart",
    pool=POOL,
    deps=list(MART_KEYS.values()),
    kinds={"duckdb", "parquet"},
)
def bi_snapshot(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Read-only copy of the warehouse (and Parquet of mart) for BI tools, swapped in atomically."""
    directory = snapshot_dir(warehouse.database)
    with warehouse.get_connection() as con:
        snapshot = publish_snapshot(con, directory, context.run.run_id[:8])
    return dg.MaterializeResult(
        metadata={
            "snapshot": dg.MetadataValue.path(str(snapshot.database)),
            "parquet": dg.MetadataValue.path(str(snapshot.parquet)),
            "mart_tables": snapshot.tables,
        }
    )
