"""The one `dg.Definitions` of evpipeline: every source, the canonical model and NDW delivery.

Resources read endpoints and secrets from the environment (`dg.EnvVar`); unset variables point
at the bundled simulators (see `evpipeline.settings`). Runs execute in process: every asset
writes the single-writer DuckDB file, and the `duckdb_writer` pool (limit 1, see
`dagster.yaml`) keeps two runs from writing at once.
"""

import dagster as dg

from evpipeline import settings

settings.apply_defaults()

from evpipeline.lane import definitions as lane_definitions  # noqa: E402
from evpipeline.maintenance import definitions as maintenance_definitions  # noqa: E402
from evpipeline.model import definitions as model_definitions  # noqa: E402
from evpipeline.ndw import definitions as ndw_definitions  # noqa: E402
from evpipeline.ndw.push import NdwPushResource  # noqa: E402
from evpipeline.resources import PushInboxResource  # noqa: E402
from evpipeline.sources.evroam import definitions as evroam_definitions  # noqa: E402
from evpipeline.sources.evroam.client import EVRoamResource  # noqa: E402
from evpipeline.sources.greenflux import definitions as greenflux_definitions  # noqa: E402
from evpipeline.sources.greenflux.client import GreenFluxResource  # noqa: E402
from evpipeline.sources.tomtom import definitions as tomtom_definitions  # noqa: E402
from evpipeline.sources.tomtom.client import TomTomResource  # noqa: E402
from evpipeline.sources.zaptec import definitions as zaptec_definitions  # noqa: E402
from evpipeline.sources.zaptec.client import ZaptecResource  # noqa: E402
from evpipeline.warehouse import WarehouseResource  # noqa: E402

SOURCE_GROUPS = ["evroam", "tomtom", "greenflux", "zaptec"]


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": WarehouseResource(database=dg.EnvVar("EVPIPELINE_WAREHOUSE")),
        "inbox": PushInboxResource(directory=str(settings.data_dir() / "inbox")),
        "evroam": EVRoamResource(
            base_url=dg.EnvVar("EVROAM_BASE_URL"),
            subscription_key=dg.EnvVar("EVROAM_SUBSCRIPTION_KEY"),
            allowed_push_hosts=dg.EnvVar("EVROAM_PUSH_ALLOWED_HOSTS"),
        ),
        "ndw": NdwPushResource(
            push_base_url=dg.EnvVar("NDW_PUSH_BASE_URL"),
            token_url=dg.EnvVar("NDW_TOKEN_URL"),
            client_id=dg.EnvVar("NDW_CLIENT_ID"),
            client_secret=dg.EnvVar("NDW_CLIENT_SECRET"),
        ),
        "greenflux": GreenFluxResource(base_url=dg.EnvVar("GREENFLUX_BASE_URL"), token=dg.EnvVar("GREENFLUX_TOKEN")),
        "tomtom": TomTomResource(
            base_url=dg.EnvVar("TOMTOM_BASE_URL"),
            api_key=dg.EnvVar("TOMTOM_API_KEY"),
            qps=float(settings.get("TOMTOM_QPS")),
        ),
        "zaptec": ZaptecResource(
            base_url=dg.EnvVar("ZAPTEC_BASE_URL"),
            username=dg.EnvVar("ZAPTEC_USERNAME"),
            password=dg.EnvVar("ZAPTEC_PASSWORD"),
            user_group_id=dg.EnvVar("ZAPTEC_USER_GROUP_ID"),
        ),
    }


sync_all_job = dg.define_asset_job(
    "sync_all",
    selection=dg.AssetSelection.groups(*SOURCE_GROUPS),
    description="Every source's delta sync (bootstraps on the first run); the real-time lane carries the changes on.",
)

# Dagster's default automation sensor starts stopped; the assets with automation conditions (BI
# publication, retention) are part of the pipeline, so this one runs from the start.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "evpipeline_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the assets' automation conditions (BI publication, history retention).",
)

# Only `defs` may be a Definitions object at module scope (Dagster's code server refuses several),
# so each part is reached through its module.
defs = dg.Definitions.merge(
    evroam_definitions.defs,
    tomtom_definitions.defs,
    greenflux_definitions.defs,
    zaptec_definitions.defs,
    model_definitions.defs,
    ndw_definitions.defs,
    lane_definitions.defs,
    maintenance_definitions.defs,
    dg.Definitions(resources=build_resources(), jobs=[sync_all_job], sensors=[automation_sensor],
                   executor=dg.in_process_executor),
)
