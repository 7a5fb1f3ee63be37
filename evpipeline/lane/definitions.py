"""What the real-time lane contributes to the code location."""

import dagster as dg

from evpipeline.lane.assets import live_spec, realtime_lane_job, realtime_lane_sensor

defs = dg.Definitions(assets=[live_spec], jobs=[realtime_lane_job], sensors=[realtime_lane_sensor])
