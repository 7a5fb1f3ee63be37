"""Issue 25: what a delivery of refused EVRoam notifications costs the lane, and the good change behind it.

One Event Grid delivery of N notifications whose file URL the allow-list refuses is POSTed to the
webhook receiver (real HTTP), then the EVRoam simulator publishes one real connector change. The
clock starts, and the lane's EVRoam feed runs cycles (`collect`, as the lane does) until its
cursor passed every notification; reported: seconds, cycles, delta-pull requests to the API, and
whether the good change landed. Standalone (no harness import) so that the same file runs against
an older checkout for the "before" figure:

    PYTHONPATH=. python benchmarks/refusal_flood.py --refused 5000 [--database ducklake:postgres:...]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg
import requests

from evpipeline import settings

settings.apply_dev_defaults()

from evpipeline.resources import PushInboxResource  # noqa: E402
from evpipeline.serving import BackgroundServer  # noqa: E402
from evpipeline.simulators.evroam import EVRoamSimulator  # noqa: E402
from evpipeline.simulators.toolkit import SimClock  # noqa: E402
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations  # noqa: E402
from evpipeline.sources.evroam.client import EVRoamResource  # noqa: E402
from evpipeline.sources.evroam.live import EVRoamFeed  # noqa: E402
from evpipeline.sources.evroam.push import create_webhook_app  # noqa: E402
from evpipeline.warehouse import WarehouseResource  # noqa: E402

KEY = "flood-hook-key"


def run(refused: int, database: str | None, max_seconds: float) -> dict[str, Any]:
    """The measurement; the warehouse is a DuckDB file in a temporary directory unless `database` names
    one."""
    directory = Path(tempfile.mkdtemp(prefix="refusal-flood-"))
    warehouse = WarehouseResource(database=database or str(directory / "warehouse.duckdb"))
    inbox = PushInboxResource(directory=str(directory / "inbox"))
    sim = EVRoamSimulator(scale=0.3, clock=SimClock(), page_size=50, subscription_key="k")
    with sim:  # (not `as sim`: __enter__ is typed as the base SimServer)
        evroam = EVRoamResource(
            base_url=f"{sim.url}/consumer/api",
            subscription_key="k",
            allowed_push_hosts=sim.url,
            requests_per_second=500,
        )
        with BackgroundServer(create_webhook_app(inbox.open(), KEY)) as receiver:
            quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
            dg.materialize(
                [evroam_sites, evroam_stations],
                resources={"evroam": evroam, "warehouse": warehouse},
                run_config=quiet,
            )
            evroam.client().subscribe(f"{receiver.url}/api/evroam_listener?code={KEY}")
            assert sim.wait_validated()
            flood = [
                {
                    "id": f"r{n}",
                    "eventType": "E",
                    "subject": "chargingstations",
                    "data": {"url": "http://10.0.0.1/c"},
                }
                for n in range(refused)
            ]
            response = requests.post(f"{receiver.url}/api/evroam_listener?code={KEY}", json=flood, timeout=60)
            assert response.json() == {"stored": refused}, response.text
            sim.clock.advance(30)
            station = next(r for r in sim.stations.values() if r.body["connectors"])
            connector = station.body["connectors"][0]
            status = "Inoperative" if connector["operationStatus"] != "Inoperative" else "Operative"
            sim.set_connector_status(station.body["chargingStationId"], connector["connectorId"], status)
            assert sim.publish()

            store = inbox.open()
            newest = store.newest_id("evroam")
            pulled = len(sim.requests_to("/consumer/api/", "GET"))
            feed = EVRoamFeed(evroam, inbox, warehouse)
            log = logging.getLogger("refusal_flood")
            log.setLevel(logging.ERROR)
            started, cycles = time.perf_counter(), 0
            while feed.inbox.cursor() < newest and time.perf_counter() - started < max_seconds:
                try:
                    feed.collect("bench", log)
                except Exception as exc:  # the old code on DuckLake: every cycle fails
                    log.error("cycle failed: %s", exc)
                    feed = EVRoamFeed(evroam, inbox, warehouse)
                cycles += 1
            seconds = time.perf_counter() - started
            with warehouse.get_connection() as con:
                landed = con.execute(
                    "SELECT operation_status FROM evroam.connectors WHERE connector_id = ?",
                    [connector["connectorId"]],
                ).fetchone()
            return {
                "refused": refused,
                "backend": "ducklake" if warehouse.database.startswith("ducklake:") else "duckdb",
                "seconds": round(seconds, 2),
                "drained": feed.inbox.cursor() >= newest,
                "cycles": cycles,
                "delta_requests": len(sim.requests_to("/consumer/api/", "GET")) - pulled,
                "good_change_landed": bool(landed and landed[0] == status),
                "per_refusal_ms": round(1000 * seconds / refused, 3),
            }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--refused", type=int, default=5000, help="refused notifications in the delivery")
    parser.add_argument("--database", default=None, help="a DuckLake URL (default: a DuckDB file)")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="give up after this long")
    args = parser.parse_args()
    print(json.dumps(run(args.refused, args.database, args.max_seconds)))


if __name__ == "__main__":
    main()
