"""The model suite runs on the DuckDB file; its publication and incremental suites on DuckLake too.

The model is SQL that DuckDB runs the same over a file and over an attached DuckLake: what differs per
backend is storage, transactions and the catalog, which the warehouse and source-sync suites test on
both backends, and which the model meets in its snapshot publication (`test_snapshot*.py`) and in the
incremental-equals-full suite (`test_incremental.py`). Those run on both; the rest on DuckDB, so the
whole suite stays within its ten minutes.
"""

import pytest

from evpipeline.warehouse import WarehouseResource

ON_BOTH_BACKENDS = {"test_snapshot.py", "test_snapshot_readers.py", "test_incremental.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest expands the fixture's own params (it yields to a marker)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "any_warehouse" not in metafunc.fixturenames or metafunc.definition.path.name in ON_BOTH_BACKENDS:
        return
    if any("any_warehouse" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return  # the test chose its backends itself
    metafunc.definition.add_marker(pytest.mark.parametrize("any_warehouse", ["duckdb"], indirect=True))


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    return any_warehouse
