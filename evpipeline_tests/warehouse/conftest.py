"""This suite runs on both warehouse backends (DuckDB file and DuckLake on PostgreSQL)."""

import pytest

from evpipeline.warehouse import WarehouseResource


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    return any_warehouse
