"""Everything the Zaptec source contributes to the code location."""

import dagster as dg

from evpipeline.sources.zaptec.assets import (
    zaptec_charger_states,
    zaptec_chargers,
    zaptec_checks,
    zaptec_circuits,
    zaptec_installations,
    zaptec_states_job,
    zaptec_states_schedule,
    zaptec_static_job,
    zaptec_static_schedule,
)

defs = dg.Definitions(
    assets=[zaptec_installations, zaptec_circuits, zaptec_chargers, zaptec_charger_states],
    asset_checks=zaptec_checks,
    jobs=[zaptec_static_job, zaptec_states_job],
    schedules=[zaptec_static_schedule, zaptec_states_schedule],
)
