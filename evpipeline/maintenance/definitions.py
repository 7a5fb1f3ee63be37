"""What warehouse maintenance contributes to the code location."""

import dagster as dg

from evpipeline.maintenance.assets import history_retention

defs = dg.Definitions(assets=[history_retention])
