"""Everything the GreenFlux source contributes to the code location."""

import dagster as dg

from evpipeline.sources.greenflux.assets import ASSETS, RUNS
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.sources.kit import source_definitions

defs = source_definitions(
    "greenflux",
    GreenFluxResource(base_url=dg.EnvVar("GREENFLUX_BASE_URL"), token=dg.EnvVar("GREENFLUX_TOKEN")),
    assets=ASSETS,
    runs=RUNS,
)
