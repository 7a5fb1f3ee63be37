"""What NDW delivery contributes to the code location."""

import dagster as dg

from evpipeline.ndw.assets import ndw_export_job, ndw_export_schedule, ndw_ocpi_export

defs = dg.Definitions(assets=[ndw_ocpi_export], jobs=[ndw_export_job], schedules=[ndw_export_schedule])
