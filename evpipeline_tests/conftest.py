"""Shared fixtures: a throwaway warehouse, frozen simulator clocks, simulators on free ports."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from evpipeline import settings

# Tests run against the simulators: their development settings fill whatever the environment lacks.
settings.apply_dev_defaults()

from evpipeline.simulators.evroam import EVRoamSimulator  # noqa: E402
from evpipeline.simulators.toolkit import SimClock  # noqa: E402
from evpipeline.sources.evroam.client import EVRoamResource  # noqa: E402
from evpipeline.warehouse import WarehouseResource  # noqa: E402
from evpipeline_tests.typed import present, running  # noqa: E402

START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Any) -> WarehouseResource:
    return WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=START)


@pytest.fixture
def evroam_sim(clock: SimClock) -> Iterator[EVRoamSimulator]:
    with running(EVRoamSimulator(scale=0.5, clock=clock, page_size=50, subscription_key="test-key")) as sim:
        yield sim


@pytest.fixture
def evroam(evroam_sim: EVRoamSimulator) -> EVRoamResource:
    return EVRoamResource(
        base_url=f"{evroam_sim.url}/consumer/api",
        subscription_key="test-key",
        allowed_push_hosts=evroam_sim.url,
        requests_per_second=500,
        backoff_base=0.01,
        read_timeout=1.0,
    )


def query(warehouse: WarehouseResource, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with warehouse.get_connection() as con:
        return con.execute(sql, params or []).fetchall()


def scalar(warehouse: WarehouseResource, sql: str, params: Sequence[Any] | None = None) -> Any:
    return query(warehouse, sql, params)[0][0]


def materialize(
    assets: Sequence[Any],
    resources: dict[str, Any],
    *,
    run_config: dict[str, Any] | None = None,
    selection: Any = None,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize through Dagster itself, in process, quietly."""
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **(run_config or {})}
    return dg.materialize(
        assets, resources=resources, run_config=config, selection=selection, partition_key=partition_key,
        instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    """The metadata values of one asset's materialization in a run."""
    for event in result.get_asset_materialization_events():
        if present(event.asset_key).to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise KeyError(key)


@pytest.fixture(autouse=True)
def _quiet_http_logs() -> None:
    logging.getLogger("evpipeline.http").setLevel(logging.ERROR)
