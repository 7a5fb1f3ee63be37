"""Zaptec fixtures: the simulator on a free port (frozen clock), a resource pointing at it, helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from evpipeline.resources import PushInboxResource
from evpipeline.simulators.toolkit import SimClock
from evpipeline.simulators.zaptec import ZaptecSimulator
from evpipeline.sources.zaptec.assets import (
    zaptec_charger_states,
    zaptec_chargers,
    zaptec_circuits,
    zaptec_installations,
)
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize
from evpipeline_tests.typed import running

USER, PASSWORD = "fleet-manager@example.com", "correct-horse-battery"
ASSETS = [zaptec_installations, zaptec_circuits, zaptec_chargers, zaptec_charger_states]
STATIC = [dg.AssetKey(["zaptec", n]) for n in ("installations", "circuits", "chargers")]
STATES = [dg.AssetKey(["zaptec", "charger_states"])]


def simulator(
    clock: SimClock, chargers: int = 24, *, limited: bool = False, **kwargs: Any
) -> ZaptecSimulator:
    """A simulator; unless `limited`, its API limit is lifted (tests about data, not about limits)."""
    limits: dict[str, Any] = {} if limited else {"rate": 1000.0, "burst": 1000.0}
    return ZaptecSimulator(
        chargers=chargers, clock=clock, username=USER, password=PASSWORD, **limits, **kwargs
    )


def resource_for(sim: ZaptecSimulator, *, limited: bool = False, **overrides: Any) -> ZaptecResource:
    """The resource as deployed (limited) or with the client-side limit lifted too."""
    fast = {} if limited else {"requests_per_second": 500.0, "burst": 50.0}
    settings: dict[str, Any] = {
        "base_url": sim.url,
        "username": USER,
        "password": PASSWORD,
        "user_group_id": sim.user_group_id,
        "backoff_base": 0.01,
        "read_timeout": 2.0,
        **fast,
        **overrides,
    }
    return ZaptecResource(**settings)


@pytest.fixture
def zaptec_sim(clock: SimClock) -> Iterator[ZaptecSimulator]:
    with running(simulator(clock)) as sim:
        yield sim


@pytest.fixture
def zaptec(zaptec_sim: ZaptecSimulator) -> ZaptecResource:
    return resource_for(zaptec_sim)


@pytest.fixture
def inbox(tmp_path: Any) -> PushInboxResource:
    return PushInboxResource(directory=str(tmp_path / "inbox"))


def resources(
    zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> dict[str, Any]:
    return {"zaptec": zaptec, "warehouse": warehouse, "inbox": inbox}


def sync_static(
    zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return materialize(ASSETS, resources(zaptec, warehouse, inbox), selection=STATIC, **kwargs)


def sync_states(
    zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource, **kwargs: Any
) -> dg.ExecuteInProcessResult:
    return materialize(ASSETS, resources(zaptec, warehouse, inbox), selection=STATES, **kwargs)


def sync_everything(
    zaptec: ZaptecResource, warehouse: WarehouseResource, inbox: PushInboxResource
) -> dg.ExecuteInProcessResult:
    """Static refresh then a state poll, in one run (the states asset depends on the chargers)."""
    return materialize(ASSETS, resources(zaptec, warehouse, inbox))
