"""This suite runs on both warehouse backends (DuckDB file and DuckLake on PostgreSQL)."""

import pytest

from evpipeline.warehouse import WarehouseResource


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    return any_warehouse


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_merge runs every rule on both staging paths of the DuckDB file's merge; a DuckLake's one
    MERGE reads the delta the same way on either (registered or by name), so its variants run once,
    on the path its large deltas take, instead of doubling the slowest half of the module."""
    items[:] = [item for item in items if not ("temp table" in item.nodeid and "ducklake" in item.nodeid)]
