"""A small deployment for the real-time lane: every simulator, the warehouse, NDW holding our fleet."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline.datex2.client import Datex2PushResource
from evpipeline.lane.assets import lane_loop, realtime_lane_job, realtime_lane_sensor
from evpipeline.model.assets import mart_model, reference_operator_data
from evpipeline.ndw.push import NdwPushResource
from evpipeline.ndw.push_assets import ndw_push
from evpipeline.resources import PushInboxResource
from evpipeline.run_config import op_config
from evpipeline.serving import BackgroundServer
from evpipeline.simulators.datex2 import Datex2Simulator
from evpipeline.simulators.evroam import EVRoamSimulator
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.ndw import TOKEN_PATH, NdwSimulator, PushRecord
from evpipeline.simulators.toolkit import SimClock
from evpipeline.simulators.zaptec import ZaptecSimulator
from evpipeline.sources.evroam.assets import evroam_sites, evroam_stations
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.push import create_webhook_app
from evpipeline.sources.greenflux.assets import (
    greenflux_charge_stations,
    greenflux_locations,
    greenflux_tariffs,
)
from evpipeline.sources.greenflux.client import GreenFluxResource
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

NDW_CLIENT, NDW_SECRET = "lane-client", "lane-secret-7d1c"
ZAPTEC_USER, ZAPTEC_PASSWORD = "fleet@example.com", "lane-password"
GREENFLUX_TOKEN = "lane-greenflux-token"
EVROAM_KEY, WEBHOOK_KEY = "lane-evroam-key", "lane-hook-key"
DATEX2_TOKEN = "lane-datex2-token"
SOURCE_ASSETS = [
    zaptec_installations,
    zaptec_circuits,
    zaptec_chargers,
    zaptec_charger_states,
    greenflux_locations,
    greenflux_charge_stations,
    greenflux_tariffs,
    evroam_sites,
    evroam_stations,
]


@dataclass
class Deployment:
    """Simulators on free ports and the resources the code location would build from them."""

    clock: SimClock
    zaptec_sim: ZaptecSimulator
    greenflux_sim: GreenFluxSimulator
    evroam_sim: EVRoamSimulator
    ndw_sim: NdwSimulator
    datex2_sim: Datex2Simulator
    receiver: BackgroundServer
    resources: dict[str, Any]
    data_dir: Path

    @property
    def warehouse(self) -> WarehouseResource:
        return self.resources["warehouse"]

    def definitions(self) -> dg.Definitions:
        return dg.Definitions(
            assets=[*SOURCE_ASSETS, mart_model, reference_operator_data, ndw_push],
            jobs=[realtime_lane_job],
            sensors=[realtime_lane_sensor],
            resources=self.resources,
        )

    def bootstrap(self) -> None:
        """What a deployment has before the lane matters: sources synced, reference loaded,
        NDW holding the fleet."""
        materialize([*SOURCE_ASSETS], self.resources)
        materialize([reference_operator_data], self.resources)
        materialize([mart_model], self.resources)
        materialize([ndw_push], self.resources)

    def run_lane(
        self,
        instance: dg.DagsterInstance,
        request: dg.RunRequest | None = None,
        seconds: float = 4.0,
        **config: Any,
    ) -> dg.ExecuteInProcessResult:
        """Execute what the supervisor requested, as the daemon would, for `seconds`."""
        job = self.definitions().get_job_def("realtime_lane")
        settings = {
            "max_seconds": seconds,
            "interval_seconds": 0.1,
            "report_every_seconds": 0.5,
            "lock_wait_seconds": 5.0,
            **config,
        }
        return job.execute_in_process(
            run_config={
                **op_config([lane_loop], **settings),
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
            instance=instance,
            tags=(request.tags if request else None),
        )

    def patches(self, uid: str) -> list[PushRecord]:
        return [
            p
            for p in self.ndw_sim.accepted_pushes()
            if p.method == "PATCH" and p.path.rstrip("/").endswith(f"/{uid}")
        ]


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path))
    clock = SimClock()
    with (
        running(
            ZaptecSimulator(
                chargers=24,
                clock=clock,
                username=ZAPTEC_USER,
                password=ZAPTEC_PASSWORD,
                rate=1000.0,
                burst=1000.0,
            )
        ) as zaptec_sim,
        running(GreenFluxSimulator(scale=0.1, clock=clock, token=GREENFLUX_TOKEN, seed=5)) as greenflux_sim,
        running(
            EVRoamSimulator(scale=0.3, clock=clock, page_size=50, subscription_key=EVROAM_KEY)
        ) as evroam_sim,
        running(NdwSimulator(clock=clock, client_id=NDW_CLIENT, client_secret=NDW_SECRET)) as ndw_sim,
        running(Datex2Simulator(clock=clock, token=DATEX2_TOKEN)) as datex2_sim,
    ):
        inbox = PushInboxResource(directory=str(tmp_path / "inbox"))
        with BackgroundServer(create_webhook_app(inbox.open(), WEBHOOK_KEY)) as receiver:
            resources = {
                "warehouse": WarehouseResource(database=str(tmp_path / "warehouse.duckdb")),
                "inbox": inbox,
                "zaptec": ZaptecResource(
                    base_url=zaptec_sim.url,
                    username=ZAPTEC_USER,
                    password=ZAPTEC_PASSWORD,
                    user_group_id=zaptec_sim.user_group_id,
                    requests_per_second=500.0,
                    burst=50.0,
                    backoff_base=0.01,
                    read_timeout=2.0,
                ),
                "greenflux": GreenFluxResource(
                    base_url=greenflux_sim.url,
                    token=GREENFLUX_TOKEN,
                    requests_per_second=500.0,
                    backoff_base=0.01,
                ),
                "evroam": EVRoamResource(
                    base_url=f"{evroam_sim.url}/consumer/api",
                    subscription_key=EVROAM_KEY,
                    allowed_push_hosts=evroam_sim.url,
                    requests_per_second=500,
                    backoff_base=0.01,
                    read_timeout=2.0,
                ),
                "ndw": NdwPushResource(
                    push_base_url=f"{ndw_sim.url}/ocpi/2.2.1",
                    token_url=f"{ndw_sim.url}{TOKEN_PATH}",
                    client_id=NDW_CLIENT,
                    client_secret=NDW_SECRET,
                    backoff_base=0.01,
                    backoff_max=0.05,
                    read_timeout=5.0,
                ),
                "datex2": Datex2PushResource(
                    push_url=datex2_sim.base_url,
                    token=DATEX2_TOKEN,
                    publication_creator="NL:lane-test",
                    backoff_base=0.01,
                    backoff_max=0.05,
                    read_timeout=5.0,
                ),
            }
            yield Deployment(
                clock,
                zaptec_sim,
                greenflux_sim,
                evroam_sim,
                ndw_sim,
                datex2_sim,
                receiver,
                resources,
                tmp_path,
            )
