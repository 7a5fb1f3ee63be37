"""What each source treats as transient: a 500 is retried with the same backoff as 429/502/503/504
(the real APIs answer 500 when their backend fails for a moment), a 501 or a 4xx is not."""

from __future__ import annotations

from typing import Any

import pytest

from evpipeline.http import ClientError, RetryPolicy, ServerError
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.sources.evroam.test_evroam_sync import sync as evroam_sync
from evpipeline_tests.sources.greenflux.conftest import TOKEN
from evpipeline_tests.sources.greenflux.conftest import resource as greenflux_resource
from evpipeline_tests.sources.greenflux.conftest import sync as greenflux_sync
from evpipeline_tests.sources.zaptec.conftest import resource_for, simulator, sync_static
from evpipeline_tests.typed import present, running


def test_greenflux_retries_a_500(clock: SimClock, warehouse: WarehouseResource) -> None:
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN)) as sim:
        sim.faults.inject("500", count=2, path="/api/2.0/Locations")
        assert greenflux_sync(greenflux_resource(sim), warehouse).success
        assert [r.status for r in sim.requests_to("/api/2.0/Locations")][:3] == [500, 500, 200]


def test_zaptec_retries_a_500(clock: SimClock, warehouse: WarehouseResource, tmp_path: Any) -> None:
    with running(simulator(clock, chargers=8)) as sim:
        sim.faults.inject("500", count=1, path="/api/chargers")
        assert sync_static(
            resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / "inbox"))
        ).success
        assert [r.status for r in sim.requests_to("/api/chargers")][:2] == [500, 200]


def test_evroam_retries_a_500(
    evroam: EVRoamResource, evroam_sim: EVRoamSimulator, warehouse: WarehouseResource
) -> None:
    evroam_sim.faults.inject("500", count=1, path="/ChargingStation")
    assert evroam_sync(evroam, warehouse).success
    assert [r.status for r in evroam_sim.requests_to("/ChargingStation")][:2] == [500, 200]


@pytest.mark.parametrize("resource", ["greenflux", "zaptec", "evroam", "tomtom", "ndw"])
def test_every_source_declares_500_transient(resource: str) -> None:
    from evpipeline.definitions import defs

    built = present(defs.resources)[resource]
    import dagster as dg

    with dg.build_resources({resource: built}) as initialized:
        client = getattr(initialized, resource).client()
    http = present(getattr(client, "api", None) or getattr(client, "http", None))
    policy: RetryPolicy = http.retry
    assert 500 in policy.statuses and {429, 502, 503, 504} <= policy.statuses and 501 not in policy.statuses


def test_a_persistent_500_gives_up_with_a_server_error_and_a_4xx_never_retries(clock: SimClock) -> None:
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN)) as sim:
        client = greenflux_resource(sim, max_attempts=3).client()
        sim.faults.inject("500", count=3, path="/api/2.0/Locations")
        with pytest.raises(ServerError, match="gave up after retries"):
            next(iter(client.locations(None)))
        assert [r.status for r in sim.requests_to("/api/2.0/Locations")] == [500, 500, 500]
        sim.reset_log()
        with pytest.raises(ClientError):
            client.api.get_json("api/2.0/Locations/not-a-location-id")
        assert len(sim.requests) == 1
