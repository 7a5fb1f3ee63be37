"""What NDW delivery contributes to the code location."""

import dagster as dg

from evpipeline.ndw.assets import (
    mart_integrity,
    ndw_datex2_export,
    ndw_export_job,
    ndw_export_schedule,
    ndw_ocpi_export,
)
from evpipeline.ndw.push_assets import ndw_push, ndw_push_full_job, ndw_push_schedule

defs = dg.Definitions(
    assets=[ndw_ocpi_export, ndw_datex2_export, ndw_push],
    # The model's integrity check, built here with the NDW selection's question (model/checks.py).
    asset_checks=[mart_integrity],
    jobs=[ndw_export_job, ndw_push_full_job],
    schedules=[ndw_export_schedule, ndw_push_schedule],
)
