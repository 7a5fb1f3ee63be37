"""A GreenFlux materialization carries Dagster's table metadata (`evpipeline.catalog`)."""

from __future__ import annotations

from evpipeline import catalog
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import metadata, scalar
from evpipeline_tests.sources.greenflux.conftest import sync


def test_source_materialization_carries_table_name_row_count_and_schema(
    greenflux: GreenFluxResource, warehouse: WarehouseResource
) -> None:
    result = sync(greenflux, warehouse)
    meta = metadata(result, "greenflux/locations")
    assert meta[catalog.TABLE_NAME] == "greenflux.locations"
    assert (
        meta[catalog.ROW_COUNT]
        == scalar(warehouse, "SELECT count(*) FROM greenflux.locations WHERE NOT is_deleted")
        > 0
    )
    schema = meta[catalog.COLUMN_SCHEMA]
    assert "location_id" in {c.name for c in schema.columns} and all(c.description for c in schema.columns)
    assert metadata(result, "greenflux/evses")[catalog.TABLE_NAME] == "greenflux.evses"
