"""3. Sync efficiency: requests made per delta sync vs the minimum possible, per source.

Minimum = ceil(changed records / page size) per stream the source has to ask (at least one
request each) + token requests. Each probe bootstraps against its simulator, lets simulated time
pass (records change), runs the delta through Dagster and compares the request count.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from benchmarks.harness import Result, Scale, running
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.rows import scalar

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def evroam(scale: Scale, work: Path) -> Result:
    from evpipeline.simulators.evroam import EVRoamSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
    from evpipeline.sources.evroam.client import EVRoamResource

    with running(EVRoamSimulator(scale=scale.pick(20, 1), clock=SimClock(), page_size=100)) as sim:
        warehouse = WarehouseResource(database=str(work / "evroam.duckdb"))
        resources = {
            "evroam": EVRoamResource(
                base_url=f"{sim.url}/consumer/api",
                subscription_key=sim.subscription_key,
                requests_per_second=200,
            ),
            "warehouse": warehouse,
        }
        dg.materialize([evroam_sites, evroam_stations], resources=resources, run_config=QUIET)
        watermark_site, _ = warehouse.sync_state("evroam", "Site")
        watermark_station, _ = warehouse.sync_state("evroam", "ChargingStation")
        sim.advance(900)
        sim.reset_log()
        dg.materialize([evroam_sites, evroam_stations], resources=resources, run_config=QUIET)
        changed_sites = sum(1 for r in sim.sites.values() if r.modified >= watermark_site)
        changed_stations = sum(1 for r in sim.stations.values() if r.modified >= watermark_station)
        minimum = pages(changed_sites, sim.page_size) + pages(changed_stations, sim.page_size)
        made = len(sim.requests)
        return Result(
            "3. sync efficiency: EVRoam delta",
            f"{made} requests",
            f"{minimum} minimum",
            f"{made / minimum:.2f}",
            "1.00",
            made == minimum,
            f"{len(sim.stations):,} stations; {changed_stations} stations + {changed_sites} sites changed; "
            f"page size {sim.page_size}",
        )


def greenflux(scale: Scale, work: Path) -> Result:
    """Locations, ChargeStations and tariffs each page by offset/limit from date_from until a short page."""
    import pandas as pd

    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.sources.greenflux.assets import (
        greenflux_charge_stations,
        greenflux_locations,
        greenflux_tariffs,
    )
    from evpipeline.sources.greenflux.client import GreenFluxResource

    with running(
        GreenFluxSimulator(scale=scale.pick(30, 1), clock=SimClock(), rate_limit_style="http")
    ) as sim:
        warehouse = WarehouseResource(database=str(work / "greenflux.duckdb"))
        greenflux_resource = GreenFluxResource(base_url=sim.url, token=sim.token, requests_per_second=500)
        resources = {"greenflux": greenflux_resource, "warehouse": warehouse}
        assets = [greenflux_locations, greenflux_charge_stations, greenflux_tariffs]
        dg.materialize(assets, resources=resources, run_config=QUIET)
        marks = {
            stream: warehouse.sync_state("greenflux", stream)[0]
            for stream in ("Locations", "ChargeStations", "tariffs")
        }
        limit = greenflux_resource.page_limit
        sim.advance(900)
        sim.reset_log()
        dg.materialize(assets, resources=resources, run_config=QUIET)
        changed = {
            "Locations": sum(
                1 for _, updated in sim.location_updated() if updated >= marks["Locations"].timestamp()
            ),
            "ChargeStations": sum(
                1 for cs in sim.charge_stations() if pd.Timestamp(cs["modified"]) >= marks["ChargeStations"]
            ),
            "tariffs": sum(
                1 for t in sim.tariffs.values() if pd.Timestamp(t["last_updated"]) >= marks["tariffs"]
            ),
        }
        # Paging stops at a short page: n changed objects need n // limit + 1 requests.
        minimum = sum(n // limit + 1 for n in changed.values())
        made = len(sim.requests)
        return Result(
            "3. sync efficiency: GreenFlux delta",
            f"{made} requests",
            f"{minimum} minimum",
            f"{made / minimum:.2f}",
            "1.00",
            made == minimum,
            f"{sim.n_evses:,} EVSEs; changed since the watermarks: {changed}; page limit {limit}",
        )


def zaptec(scale: Scale, work: Path) -> Result:
    """Zaptec has no delta API: a state poll needs one /state per cached charger,
    plus a token if none is cached."""
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

    user, password = "bench@example.com", "bench-password"
    chargers = scale.pick(500, 20)
    with running(
        ZaptecSimulator(
            chargers=chargers, clock=SimClock(), username=user, password=password, rate=1000.0, burst=1000.0
        )
    ) as sim:
        resources = {
            "zaptec": ZaptecResource(
                base_url=sim.url,
                username=user,
                password=password,
                user_group_id=sim.user_group_id,
                requests_per_second=500.0,
                burst=50.0,
            ),
            "warehouse": WarehouseResource(database=str(work / "zaptec.duckdb")),
            "inbox": PushInboxResource(directory=str(work / "inbox")),
        }
        assets = [zaptec_installations, zaptec_circuits, zaptec_chargers, zaptec_charger_states]
        dg.materialize(assets, resources=resources, run_config=QUIET)
        sim.advance(900)
        sim.reset_log()
        dg.materialize(
            assets,
            resources=resources,
            run_config=QUIET,
            selection=[dg.AssetKey(["zaptec", "charger_states"])],
        )
        states = len(sim.requests_to("/state"))
        tokens = len(sim.requests_to("/oauth/token"))
        made = len([r for r in sim.requests if r.path.startswith(("/api/", "/oauth/"))])
        minimum = chargers + tokens
        return Result(
            "3. sync efficiency: Zaptec state poll",
            f"{made} requests",
            f"{minimum} minimum",
            f"{made / minimum:.2f}",
            "1.00",
            made == minimum,
            f"{chargers} cached chargers: {states} /state + {tokens} token (no delta API; "
            "push messages make polls rare)",
        )


def tomtom(scale: Scale, work: Path) -> Result:
    """TomTom has no batch call: a poll needs one request per mapped id;
    unchanged locations are not searched again."""
    from evpipeline.model.assets import mart_model
    from evpipeline.simulators.evroam import EVRoamSimulator
    from evpipeline.simulators.tomtom import TomTomSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
    from evpipeline.sources.evroam.client import EVRoamResource
    from evpipeline.sources.tomtom.assets import tomtom_availability, tomtom_location_mapping
    from evpipeline.sources.tomtom.client import TomTomResource

    with (
        running(EVRoamSimulator(scale=scale.pick(4, 0.3), clock=SimClock())) as evroam,
        running(
            TomTomSimulator(parks=evroam.charging_parks(), qps=2000, api_key="bench-key", clock=SimClock())
        ) as sim,
    ):
        warehouse = WarehouseResource(database=str(work / "tomtom.duckdb"))
        resources = {
            "evroam": EVRoamResource(
                base_url=f"{evroam.url}/consumer/api",
                subscription_key=evroam.subscription_key,
                requests_per_second=200,
            ),
            "tomtom": TomTomResource(base_url=sim.url, api_key="bench-key", qps=1000, concurrency=4),
            "warehouse": warehouse,
        }
        assets = [evroam_sites, evroam_stations, mart_model, tomtom_location_mapping, tomtom_availability]
        dg.materialize(assets, resources=resources, run_config=QUIET)
        sim.advance(300)
        sim.reset_log()
        dg.materialize(
            assets, resources=resources, run_config=QUIET, selection=dg.AssetSelection.groups("tomtom")
        )
        with warehouse.get_connection() as con:
            mapped = scalar(
                con.execute(
                    "SELECT count(*) FROM tomtom.location_mapping WHERE match_status = 'matched' "
                    "AND NOT is_deleted"
                )
            )
        searches = len(sim.requests_to("/categorySearch"))
        polls = len(sim.requests_to("/chargingAvailability"))
        made, minimum = searches + polls, max(1, mapped)
        return Result(
            "3. sync efficiency: TomTom availability",
            f"{made} requests",
            f"{minimum} minimum",
            f"{made / minimum:.2f}",
            "1.00",
            made == minimum,
            f"{mapped} mapped locations: {polls} polls + {searches} searches (locations unchanged: "
            "none re-searched)",
        )


PROBES: list[Callable[[Scale, Path], Result]] = [evroam, greenflux, zaptec, tomtom]


def run(scale: Scale) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="evp-sync-"))
    saved = dict(os.environ)
    try:
        return [probe(scale, work) for probe in PROBES]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)
