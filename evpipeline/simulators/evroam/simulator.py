"""EVRoam Consumer API simulator (NZ Transport Agency, behind Azure API Management).

Faithful to what production sends (see docs/sources.md): camelCase records, `resultPage` paging
(1-based) with `hasMoreResults`, `Ocp-Apim-Subscription-Key` (401 otherwise), `If-Modified-Since`
returning only records changed since, `providerDeleted` soft deletes at site, station and
connector level, hard deletes that make a soft-deleted record vanish later, and push: one webhook
subscription per key, an Azure Event Grid validation handshake, then every 5 minutes events whose
`data.url` points at a JSON file of the changed records that expires (403) after ~1 hour.

The fleet starts from the real EVRoam rows bundled in `evpipeline/seed_data/evroam/` (noise
included: orphan stations, a 3 kW "DC" station, null models) and grows synthetically with `scale`.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime
from typing import Any

from evpipeline.simulators.evroam.control import EVRoamControl
from evpipeline.simulators.evroam.fleet import Record
from evpipeline.simulators.evroam.push import Subscription
from evpipeline.simulators.toolkit import SimClock


class EVRoamSimulator(EVRoamControl):
    """The EVRoam Consumer API with a changing fleet and push notifications.

    Built in layers, each a module: `fleet` (state and change) < `push` (webhook delivery) <
    `handlers` (HTTP routes) < `control` (what tests steer) < this class (configuration).
    """

    name = "evroam"

    def __init__(
        self,
        *,
        scale: float = 1.0,
        subscription_key: str = "sim-evroam-key",
        page_size: int = 100,
        file_lifetime: float = 3600.0,
        push_interval: float = 300.0,
        hard_delete_after: float = 6 * 3600.0,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.subscription_key = subscription_key
        self.page_size = page_size
        self.file_lifetime = file_lifetime
        self.push_interval = push_interval
        self.hard_delete_after = hard_delete_after
        self._signing_key = hashlib.sha256(f"evroam-blob:{seed}".encode()).digest()
        self.sites: dict[str, Record] = {}
        self.stations: dict[str, Record] = {}
        self.availabilities: dict[str, Record] = {}
        self.files: dict[str, tuple[bytes, datetime]] = {}
        self.subscription: Subscription | None = None
        self._since_push = 0.0
        self._last_push_at: datetime | None = None
        self._build_fleet(scale, random.Random(f"evroam:{seed}:fleet"))
        self._add_routes()
        self._add_control_routes()
