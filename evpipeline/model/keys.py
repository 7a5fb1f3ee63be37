"""Asset keys of the canonical model, for the jobs and sensors of other packages to select."""

import dagster as dg

from evpipeline.model.tables import CONNECTORS, EVSES, LOCATIONS, TARIFFS

MART_KEYS = {
    LOCATIONS: dg.AssetKey(["mart", "locations"]),
    EVSES: dg.AssetKey(["mart", "evses"]),
    CONNECTORS: dg.AssetKey(["mart", "connectors"]),
    TARIFFS: dg.AssetKey(["mart", "tariffs"]),
}
MART = list(MART_KEYS.values())
