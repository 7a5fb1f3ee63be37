"""What warehouse maintenance contributes to the code location."""

import dagster as dg

from evpipeline.maintenance.assets import history_retention, lake_maintenance

defs = dg.Definitions(assets=[history_retention, lake_maintenance])
