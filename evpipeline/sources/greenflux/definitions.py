"""Everything the GreenFlux source contributes to the code location."""

import dagster as dg

from evpipeline.sources.greenflux.assets import (
    greenflux_charge_stations,
    greenflux_checks,
    greenflux_delta_schedule,
    greenflux_full_job,
    greenflux_full_schedule,
    greenflux_locations,
    greenflux_sync_job,
    greenflux_tariffs,
)

defs = dg.Definitions(
    assets=[greenflux_locations, greenflux_charge_stations, greenflux_tariffs],
    asset_checks=greenflux_checks,
    jobs=[greenflux_sync_job, greenflux_full_job],
    schedules=[greenflux_delta_schedule, greenflux_full_schedule],
)
