"""GreenFlux fixtures: the simulator on a free port with a frozen clock, a resource pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from dagster._utils.error import SerializableErrorInfo

from evpipeline.run_config import op_config
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline.sources.greenflux.assets import (
    greenflux_charge_stations,
    greenflux_locations,
    greenflux_tariffs,
)
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests import typed
from evpipeline_tests.conftest import materialize
from evpipeline_tests.typed import running

TOKEN = "test-gfx-token-4711"
PAGE = 20  # the client's page size in these tests: several pages per stream
ASSETS = [greenflux_locations, greenflux_charge_stations, greenflux_tariffs]


@pytest.fixture
def greenflux_sim(clock: SimClock) -> Iterator[GreenFluxSimulator]:
    with running(GreenFluxSimulator(scale=0.25, clock=clock, token=TOKEN, seed=11)) as sim:
        sim.faults.retry_after = 0
        yield sim


@pytest.fixture
def greenflux(greenflux_sim: GreenFluxSimulator) -> GreenFluxResource:
    return resource(greenflux_sim)


def resource(sim: GreenFluxSimulator, **overrides: Any) -> GreenFluxResource:
    options: dict[str, Any] = {
        "page_limit": PAGE,
        "requests_per_second": 500,
        "backoff_base": 0.01,
        "read_timeout": 2.0,
    }
    return GreenFluxResource(
        base_url=sim.url, token=overrides.pop("token", TOKEN), **{**options, **overrides}
    )


def sync(
    greenflux: GreenFluxResource,
    warehouse: WarehouseResource,
    mode: str = "delta",
    overlap_seconds: int = 120,
    selection: Any = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """One run of the GreenFlux assets through Dagster."""
    chosen = ASSETS if selection is None else [a for a in ASSETS if set(selection) & set(a.keys)]
    config = op_config(chosen, mode=mode, overlap_seconds=overlap_seconds)
    return materialize(
        ASSETS,
        {"greenflux": greenflux, "warehouse": warehouse},
        run_config=config,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def step_error(result: dg.ExecuteInProcessResult, cls_name: str) -> SerializableErrorInfo:
    """The error of the failed step, unwrapped from Dagster's wrapper down to `cls_name`."""
    return typed.step_error(result, cls_name)
