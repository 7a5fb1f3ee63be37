"""What the AFIR quality report contributes to the code location."""

import dagster as dg

from evpipeline.quality.assets import ASSETS, quality_report_job, quality_report_schedule

defs = dg.Definitions(assets=ASSETS, jobs=[quality_report_job], schedules=[quality_report_schedule])
