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
from datetime import timedelta
from pathlib import Path

import dagster as dg

from benchmarks.harness import Result, Scale
from evpipeline.warehouse import WarehouseResource

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def evroam(scale: Scale, work: Path) -> Result:
    from evpipeline.simulators.evroam import EVRoamSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
    from evpipeline.sources.evroam.client import EVRoamResource

    with EVRoamSimulator(scale=scale.pick(20, 2), clock=SimClock(), page_size=100) as sim:
        resources = {
            "evroam": EVRoamResource(base_url=f"{sim.url}/consumer/api", subscription_key=sim.subscription_key, requests_per_second=200),
            "warehouse": WarehouseResource(database=str(work / "evroam.duckdb")),
        }
        dg.materialize([evroam_sites, evroam_stations], resources=resources, run_config=QUIET)
        watermark_site, _ = resources["warehouse"].sync_state("evroam", "Site")
        watermark_station, _ = resources["warehouse"].sync_state("evroam", "ChargingStation")
        sim.advance(900)
        sim.reset_log()
        dg.materialize([evroam_sites, evroam_stations], resources=resources, run_config=QUIET)
        overlap = timedelta(seconds=120)
        changed_sites = sum(1 for r in sim.sites.values() if r.modified >= watermark_site - overlap)
        changed_stations = sum(1 for r in sim.stations.values() if r.modified >= watermark_station - overlap)
        minimum = pages(changed_sites, sim.page_size) + pages(changed_stations, sim.page_size)
        made = len(sim.requests)
        return Result(
            "3. sync efficiency: EVRoam delta", f"{made} requests", f"{minimum} minimum", f"{made / minimum:.2f}", "1.00",
            made == minimum, f"{len(sim.stations):,} stations; {changed_stations} stations + {changed_sites} sites changed; page size {sim.page_size}",
        )


PROBES: list[Callable[[Scale, Path], Result]] = [evroam]


def run(scale: Scale) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="evp-sync-"))
    saved = dict(os.environ)
    try:
        return [probe(scale, work) for probe in PROBES]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)
