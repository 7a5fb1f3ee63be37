"""TomTom simulator: Search (category search) and EV Charging Stations Availability v2.

Faithful to what the real API documents (see docs/sources.md and the reference notes):
- `GET /search/2/chargingAvailability.{json|xml}?key&chargingAvailability[&connectorSet][&minPowerKW][&maxPowerKW]`:
  availability per connector type, then per power level; 403 for a wrong key, 400 with the
  documented error body (`ErrorEvResponse` in XML) for a missing or malformed parameter, 200 with
  an empty `connectors` list for an unknown id, `Tracking-ID` validated and echoed (generated when
  absent), 405 for other methods, 429 once the key exceeds its QPS.
- `GET /search/2/categorySearch/{query}.json?key&lat&lon&radius&categorySet=7309`: POIs near a
  point, nearest first, with `chargingPark` beside `poi` and, for POIs with live data,
  `dataSources.chargingAvailability.id`.

TomTom's database lists the same places the other providers describe: one POI per charging park
(coordinates a few metres off, TomTom's own name), most with a live-availability id. Around them
sit decoys: other charging parks 100-400 m away with different connectors, the odd second
operator's park in the same car park with the same connectors, and non-charging POIs. With no
parks given, a synthetic fleet (`scale`) stands in. Counts change in `evolve`.
"""  # noqa: E501 (a URL template cannot wrap)

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evpipeline.simulators.tomtom.control import TomTomControl
from evpipeline.simulators.tomtom.fleet import Poi, PowerLevel
from evpipeline.simulators.toolkit import ChargingPark, ServerRateLimit, SimClock


class TomTomSimulator(TomTomControl):
    """TomTom Search + EV Charging Stations Availability v2 with a changing fleet and a QPS limit.

    Built in layers, each a module: `fleet` (POIs and change) < `handlers` (HTTP routes) <
    `control` (what tests inspect) < this class (configuration).
    """

    name = "tomtom"

    def __init__(
        self,
        *,
        parks: Sequence[ChargingPark] | None = None,
        scale: float = 1.0,
        api_key: str = "sim-tomtom-key",
        qps: float = 20.0,
        burst: float | None = None,
        live_share: float = 0.85,
        change_rate: float = 0.03,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.api_key = api_key
        self.qps = qps
        # One second's worth of queries: a client that keeps above its QPS runs dry within a second.
        self.server_limit = ServerRateLimit(qps, burst if burst is not None else max(1.0, qps))
        self.live_share = live_share
        self.change_rate = change_rate
        self.pois: list[Poi] = []
        self.by_availability: dict[str, Poi] = {}
        self.by_ref: dict[str, Poi] = {}
        self._grid: dict[tuple[int, int], list[Poi]] = {}
        self._points: list[tuple[PowerLevel, int]] = []
        self._build_fleet(list(parks) if parks is not None else self._synthetic_parks(scale))
        self._add_routes()
