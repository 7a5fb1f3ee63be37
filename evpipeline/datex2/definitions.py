"""What the DATEX II pushes contribute to the code location."""

import dagster as dg

from evpipeline.datex2.assets import (
    datex2_snapshot_job,
    datex2_snapshot_schedule,
    datex2_static_job,
    datex2_static_push,
    datex2_static_schedule,
    datex2_status_snapshot,
    live_spec,
)

defs = dg.Definitions(
    assets=[datex2_static_push, datex2_status_snapshot, live_spec],
    jobs=[datex2_static_job, datex2_snapshot_job],
    schedules=[datex2_static_schedule, datex2_snapshot_schedule],
)
