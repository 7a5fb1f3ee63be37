"""Everything the TomTom source contributes to the code location."""

import dagster as dg

from evpipeline.sources.tomtom.assets import (
    tomtom_availability,
    tomtom_checks,
    tomtom_location_mapping,
    tomtom_schedule,
    tomtom_sync_job,
)

defs = dg.Definitions(
    assets=[tomtom_location_mapping, tomtom_availability],
    asset_checks=tomtom_checks,
    jobs=[tomtom_sync_job],
    schedules=[tomtom_schedule],
)
