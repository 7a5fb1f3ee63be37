"""The one `dg.Definitions` of evpipeline: every source, the canonical model,
NDW delivery and the AFIR quality report.

Every source is listed once, in `evpipeline.sources.registry`: its `definitions.py` declares its
resource (secrets as `dg.EnvVar`), assets, checks, jobs and
schedules. Runs execute in process: every asset writes the single-writer DuckDB file, and the
`duckdb_writer` pool (limit 1, see `dagster.yaml`) keeps two runs from writing at once. Loading
stops with one message naming every missing setting (see `evpipeline.settings`).
"""

from collections.abc import Mapping

import dagster as dg

from evpipeline import catalog, settings
from evpipeline.datex2 import definitions as datex2_definitions
from evpipeline.datex2.client import Datex2PushResource
from evpipeline.lane import definitions as lane_definitions
from evpipeline.maintenance import definitions as maintenance_definitions
from evpipeline.model import definitions as model_definitions
from evpipeline.model.lineage import mart_column_lineage
from evpipeline.ndw import definitions as ndw_definitions
from evpipeline.ndw.push import NdwPushResource
from evpipeline.quality import definitions as quality_definitions
from evpipeline.resources import PushInboxResource
from evpipeline.sources import registry
from evpipeline.warehouse import WarehouseResource

settings.apply_defaults()

SOURCE_GROUPS = registry.names()


def source_definitions() -> list[dg.Definitions]:
    return [source.definitions for source in registry.SOURCES]


def shared_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources every part uses: the warehouse, the push inbox, the NDW and DATEX II push clients."""
    return {
        "warehouse": WarehouseResource(database=dg.EnvVar("EVPIPELINE_WAREHOUSE")),
        "inbox": PushInboxResource(directory=str(settings.data_dir() / "inbox")),
        "ndw": NdwPushResource(
            push_base_url=dg.EnvVar("NDW_PUSH_BASE_URL"),
            token_url=dg.EnvVar("NDW_TOKEN_URL"),
            client_id=dg.EnvVar("NDW_CLIENT_ID"),
            client_secret=dg.EnvVar("NDW_CLIENT_SECRET"),
        ),
        "datex2": Datex2PushResource(
            push_url=dg.EnvVar("DATEX2_PUSH_URL"),
            token=dg.EnvVar("DATEX2_PUSH_TOKEN"),
            publication_creator=dg.EnvVar("DATEX2_PUBLICATION_CREATOR"),
        ),
    }


sync_all_job = dg.define_asset_job(
    "sync_all",
    selection=dg.AssetSelection.groups(*SOURCE_GROUPS),
    description="Every source's delta sync (bootstraps on the first run); "
    "the real-time lane carries the changes on.",
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
# `catalog.annotate` gives every asset its owners, table metadata (mart column lineage from the model),
# freshness policy and code references.
defs = catalog.annotate(
    dg.Definitions.merge(
        *source_definitions(),
        model_definitions.defs,
        ndw_definitions.defs,
        datex2_definitions.defs,
        lane_definitions.defs,
        maintenance_definitions.defs,
        quality_definitions.defs,
        dg.Definitions(
            resources=shared_resources(),
            jobs=[sync_all_job],
            sensors=[automation_sensor],
            executor=dg.in_process_executor,
        ),
    ),
    column_lineage=mart_column_lineage,
)


def env_vars(resources: Mapping[str, object]) -> list[str]:
    """Names of the environment variables the resources read (`dg.EnvVar` fields)."""
    return [
        value.env_var_name
        for resource in resources.values()
        for value in vars(resource).values()
        if isinstance(value, dg.EnvVar)
    ]


# A real deployment without a secret stops here, naming every missing variable, instead of failing
# in the first run that happens to need it.
settings.require(env_vars(defs.resources or {}))
