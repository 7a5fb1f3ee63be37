"""Everything the EVRoam source contributes to the code location."""

import dagster as dg

from evpipeline.sources.evroam.assets import (
    evroam_checks,
    evroam_delta_schedule,
    evroam_repair_job,
    evroam_repair_schedule,
    evroam_sites,
    evroam_stations,
    evroam_sync_job,
)

defs = dg.Definitions(
    assets=[evroam_sites, evroam_stations],
    asset_checks=evroam_checks,
    jobs=[evroam_sync_job, evroam_repair_job],
    schedules=[evroam_delta_schedule, evroam_repair_schedule],
)
