"""Everything the TomTom source contributes to the code location."""

import dagster as dg

from evpipeline import settings
from evpipeline.sources.kit import Source, source_definitions
from evpipeline.sources.tomtom.assets import ASSETS, RUNS
from evpipeline.sources.tomtom.client import TomTomResource
from evpipeline.sources.tomtom.tables import KEYS

defs = source_definitions(
    "tomtom",
    TomTomResource(
        base_url=dg.EnvVar("TOMTOM_BASE_URL"),
        api_key=dg.EnvVar("TOMTOM_API_KEY"),
        qps=float(settings.get("TOMTOM_QPS")),
    ),
    assets=ASSETS,
    runs=RUNS,
)

# What the rest of the pipeline reads of this source (evpipeline.sources.registry lists it).
SOURCE = Source("tomtom", keys=KEYS, runs=RUNS, definitions=defs)
