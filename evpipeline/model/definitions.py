"""What the canonical model contributes to the code location."""

import dagster as dg

from evpipeline.model.assets import bi_snapshot, mart_model, unmapped_values_check

defs = dg.Definitions(assets=[mart_model, bi_snapshot], asset_checks=[unmapped_values_check])
