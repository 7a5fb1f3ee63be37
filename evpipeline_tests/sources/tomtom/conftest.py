"""TomTom fixtures: parks from the EVRoam simulator (as `start_all` wires them), a TomTom simulator
listing them on a free port, and the mart rows another engineer's model would hold for them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd
import pytest

from evpipeline.model.tables import CONNECTORS, KEYS, LOCATIONS
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.simulators.tomtom import TomTomSimulator
from evpipeline.simulators.toolkit import ChargingPark, SimClock
from evpipeline.sources.tomtom.client import TomTomResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.typed import running

KEY = "tt-test-key-123"
# TomTom type -> (OCPI standard, format), the inverse of the mapping-hints table.
OCPI = {
    "IEC62196Type2Outlet": ("IEC_62196_T2", "SOCKET"),
    "IEC62196Type2CableAttached": ("IEC_62196_T2", "CABLE"),
    "IEC62196Type1": ("IEC_62196_T1", "CABLE"),
    "IEC62196Type2CCS": ("IEC_62196_T2_COMBO", "CABLE"),
    "Chademo": ("CHADEMO", "CABLE"),
}
NOW = pd.Timestamp("2026-11-01T12:00:00Z")


@pytest.fixture(scope="session")
def parks() -> list[ChargingPark]:
    """The places the EVRoam simulator describes (about 60), as TomTom's simulator receives them."""
    return EVRoamSimulator(scale=0.5).charging_parks()


@pytest.fixture
def tomtom_sim(parks: list[ChargingPark], clock: SimClock) -> Iterator[TomTomSimulator]:
    with running(TomTomSimulator(parks=parks, clock=clock, qps=2000, api_key=KEY)) as sim:
        yield sim


def resource(sim: TomTomSimulator, **overrides: Any) -> TomTomResource:
    options: dict[str, Any] = {
        "base_url": sim.url,
        "api_key": KEY,
        "qps": 1000,
        "concurrency": 4,
        "backoff_base": 0.01,
        "read_timeout": 2.0,
        **overrides,
    }
    return TomTomResource(**options)


@pytest.fixture
def tomtom(tomtom_sim: TomTomSimulator) -> TomTomResource:
    return resource(tomtom_sim)


def location_rows(
    parks: Sequence[ChargingPark], *, when: pd.Timestamp = NOW, **overrides: Any
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "country_code": "NZ",
                "party_id": "EVR",
                "location_id": p.ref,
                "publish": True,
                "name": p.name,
                "latitude": p.latitude,
                "longitude": p.longitude,
                "source": "evroam",
                "source_id": p.ref,
                "last_updated": when,
                "is_deleted": False,
                **overrides,
            }
            for p in parks
        ]
    )


def connector_rows(parks: Sequence[ChargingPark], *, when: pd.Timestamp = NOW) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "country_code": "NZ",
                "party_id": "EVR",
                "location_id": p.ref,
                "evse_uid": f"{p.ref}-{i}",
                "connector_id": "1",
                "standard": OCPI[kind][0],
                "format": OCPI[kind][1],
                "power_type": "DC" if kw > 22 else "AC_3_PHASE",
                "max_electric_power": int(kw * 1000),
                "source": "evroam",
                "source_id": p.ref,
                "last_updated": when,
            }
            for p in parks
            for i, (kind, kw, _count) in enumerate(p.connectors)
        ],
        columns=[
            "country_code",
            "party_id",
            "location_id",
            "evse_uid",
            "connector_id",
            "standard",
            "format",
            "power_type",
            "max_electric_power",
            "source",
            "source_id",
            "last_updated",
        ],
    )


def fill_mart(
    warehouse: WarehouseResource, parks: Sequence[ChargingPark], *, when: pd.Timestamp = NOW, **overrides: Any
) -> None:
    """Write mart.locations/connectors for `parks` through the shared merge (what the model asset will do)."""
    with warehouse.writer("test") as writer:
        writer.merge(location_rows(parks, when=when, **overrides), LOCATIONS, KEYS[LOCATIONS])
        writer.merge(connector_rows(parks, when=when), CONNECTORS, KEYS[CONNECTORS])
