"""Everything the GreenFlux source contributes to the code location."""

import dagster as dg

from evpipeline.sources.greenflux import live
from evpipeline.sources.greenflux.assets import ASSETS, RUNS
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.sources.greenflux.tables import KEYS
from evpipeline.sources.kit import Source, source_definitions

defs = source_definitions(
    "greenflux",
    GreenFluxResource(base_url=dg.EnvVar("GREENFLUX_BASE_URL"), token=dg.EnvVar("GREENFLUX_TOKEN")),
    assets=ASSETS,
    runs=RUNS,
)

# What the rest of the pipeline reads of this source (evpipeline.sources.registry lists it).
SOURCE = Source(
    "greenflux", keys=KEYS, runs=RUNS, definitions=defs, feed=live.feed, feed_resources=live.RESOURCES
)
