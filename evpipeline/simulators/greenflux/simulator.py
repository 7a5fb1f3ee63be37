"""GreenFlux Charge-Location Management (CLM) API simulator: Locations v2, Charge Stations, tariffs.

Faithful to docs/sources.md and the shared API notes: `Authorization: Token …` (401 without one,
403 for a wrong one), the OCPI envelope `{data, status_code, status_message, timestamp}` (or a
bare array, `bare_lists=True`, as one SDK documents), `offset`/`limit` paging in creation order
with OCPI's `X-Limit`/`X-Total-Count`/`Link` headers, `date_from` (inclusive) and `date_to`
(exclusive) on last-modified, Location v2 objects with GreenFlux's own fields, Charge Stations
with their EVSEs, and an OCPI 2.1.1 tariffs list the connectors' `tariff_id`s point at.

Behaviour the docs describe, reproduced:
- An EVSE change (status included) bumps the EVSE's and its Location's `last_updated`, so a
  Locations `date_from` query returns it; the Location's own `modified` only moves when the
  Location object itself is edited (`exclude_evses_modified=true` filters on it). A Charge
  Station's `modified` ignores EVSE status changes (the Charge Stations page).
- A charge station moved to another location leaves its EVSEs in the old location with
  `status: REMOVED` and unchanged timestamps; they reappear, live, in the new one.
- Errors and rate limiting come back as HTTP 200 with a 2xxx/3xxx `status_code` and a message,
  or as a real HTTP 429 with Retry-After (`rate_limit_style`).

Scale: every object is generated on demand from (seed, index), so a fleet of a million EVSEs
costs a few numpy arrays; only objects that changed are kept as dicts.
"""

from __future__ import annotations

import random
from typing import Any

from evpipeline.simulators.greenflux.control import GreenFluxControl
from evpipeline.simulators.toolkit import Script, ServerRateLimit, SimClock


class GreenFluxSimulator(GreenFluxControl):
    """The GreenFlux CLM API over a lazily generated, changing fleet of Dutch and Belgian CPOs.

    Built in layers, each a module: `records` (generated objects) < `fleet` (state and change) <
    `handlers` (HTTP routes) < `control` (what tests steer) < this class (configuration).
    """

    name = "greenflux"

    def __init__(
        self,
        *,
        scale: float = 1.0,
        token: str = "sim-greenflux-token",
        max_limit: int = 1000,
        default_limit: int = 100,
        bare_lists: bool = False,
        rate_limit_style: str = "alternate",
        requests_per_second: float | None = None,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.token = token
        self.max_limit, self.default_limit = max_limit, default_limit
        self.bare_lists = bare_lists  # CLM lists as a bare JSON array instead of the envelope
        self.rate_limit_style = (
            rate_limit_style  # "http" (429), "body" (HTTP 200 + status_code) or "alternate"
        )
        self.server_limit = (
            ServerRateLimit(requests_per_second, max(1.0, requests_per_second))
            if requests_per_second
            else None
        )
        self._throttled = 0
        self._ocpi_script: Script[tuple[int, str]] = Script()  # OCPI errors tests queued
        self._id_mask = random.Random(f"greenflux:{seed}:ids").getrandbits(32)
        # Mutated objects only; everything else is regenerated from (seed, index) on each request.
        self._loc_over: dict[int, dict[str, Any]] = {}
        self._cs_over: dict[int, dict[str, Any]] = {}
        self._evse_over: dict[int, dict[str, Any]] = {}
        self._moved_in: dict[int, list[int]] = {}
        self._removed: dict[int, dict[str, dict[str, Any]]] = {}
        self._loc_pinned: dict[int, dict[str, Any]] = {}
        self._build_fleet(max(1, int(round(300 * scale))))
        self._build_tariffs()
        self._add_routes()
