"""Everything the EVRoam source contributes to the code location."""

import dagster as dg

from evpipeline.sources.evroam import live
from evpipeline.sources.evroam.assets import ASSETS, RUNS
from evpipeline.sources.evroam.client import EVRoamResource
from evpipeline.sources.evroam.tables import KEYS
from evpipeline.sources.kit import Source, source_definitions

defs = source_definitions(
    "evroam",
    EVRoamResource(
        base_url=dg.EnvVar("EVROAM_BASE_URL"),
        subscription_key=dg.EnvVar("EVROAM_SUBSCRIPTION_KEY"),
        allowed_push_hosts=dg.EnvVar("EVROAM_PUSH_ALLOWED_HOSTS"),
    ),
    assets=ASSETS,
    runs=RUNS,
)

# What the rest of the pipeline reads of this source (evpipeline.sources.registry lists it).
SOURCE = Source(
    "evroam", keys=KEYS, runs=RUNS, definitions=defs, feed=live.feed, feed_resources=live.RESOURCES
)
