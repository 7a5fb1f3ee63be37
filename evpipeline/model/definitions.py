"""What the canonical model contributes to the code location."""

import dagster as dg

from evpipeline.model.assets import (
    bi_publish_job,
    bi_snapshot,
    mart_model,
    mart_reconcile_job,
    mart_reconcile_schedule,
    mart_update_job,
    reference_data_job,
    reference_operator_data,
    reference_sensor,
    unmapped_values_check,
)

defs = dg.Definitions(
    assets=[mart_model, bi_snapshot, reference_operator_data],
    asset_checks=[unmapped_values_check],  # mart_integrity: with the NDW delivery it asks about
    jobs=[mart_update_job, mart_reconcile_job, reference_data_job, bi_publish_job],
    schedules=[mart_reconcile_schedule],
    sensors=[reference_sensor],
)
