"""What the AFIR quality report contributes to the code location."""

import dagster as dg

from evpipeline.quality.assets import ASSETS, quality_report_job, quality_report_schedule
from evpipeline.quality.identity import identity

defs = dg.Definitions(
    assets=[*ASSETS, identity], jobs=[quality_report_job], schedules=[quality_report_schedule]
)
