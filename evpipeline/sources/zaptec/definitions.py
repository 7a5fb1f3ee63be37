"""Everything the Zaptec source contributes to the code location."""

import dagster as dg

from evpipeline import settings
from evpipeline.sources.kit import Source, source_definitions
from evpipeline.sources.zaptec import live
from evpipeline.sources.zaptec.assets import ASSETS, RUNS
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.sources.zaptec.tables import KEYS

defs = source_definitions(
    "zaptec",
    ZaptecResource(
        base_url=dg.EnvVar("ZAPTEC_BASE_URL"),
        username=dg.EnvVar("ZAPTEC_USERNAME"),
        password=dg.EnvVar("ZAPTEC_PASSWORD"),
        # Optional (empty: the first installation with messaging), so not an EnvVar that must be set.
        user_group_id=settings.get("ZAPTEC_USER_GROUP_ID"),
    ),
    assets=ASSETS,
    runs=RUNS,
)

# What the rest of the pipeline reads of this source (evpipeline.sources.registry lists it).
SOURCE = Source(
    "zaptec", keys=KEYS, runs=RUNS, definitions=defs, feed=live.feed, feed_resources=live.RESOURCES
)
