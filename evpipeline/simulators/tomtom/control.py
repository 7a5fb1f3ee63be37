"""TomTom's test-control API: which ids have live data, and which POI stands for another
simulator's park (add decoys or fixtures with `add_charging_poi`)."""

from __future__ import annotations

from evpipeline.simulators.tomtom.fleet import Poi
from evpipeline.simulators.tomtom.handlers import TomTomHandlers


class TomTomControl(TomTomHandlers):
    """What tests, the CLI and benchmarks call to inspect the simulator (never the pipeline)."""

    def availability_ids(self) -> list[str]:
        """Every id that has live data (parks and decoys), in a stable order."""
        return list(self.by_availability)

    def poi_for(self, ref: str) -> Poi | None:
        """The POI standing for a park of another simulator (None when it had no connectors)."""
        return self.by_ref.get(ref)
