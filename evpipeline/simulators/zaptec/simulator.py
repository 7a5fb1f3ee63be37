"""Zaptec API simulator (api.zaptec.com) with the Service Bus topic Zaptec publishes state changes to.

Faithful to what production sends (see docs/sources.md, "Zaptec"):
- `POST /oauth/token`: OAuth2 password grant, form-encoded only; 400 `invalid_grant` for wrong
  credentials; bearer tokens expire (`expires_in`, simulated clock); about 1 request/s allowed.
- `GET /api/installation`, `GET /api/chargers`: `PagedData` `{"Pages", "Data", "Message"}`,
  `PageIndex` 0-based, `PageSize` capped at 100. PascalCase keys, zone-less .NET timestamps with
  trimmed fractions (`2024-03-01T08:12:44.92`).
- `GET /api/installation/{id}`, `GET /api/installation/{id}/hierarchy` (204 No Content when the
  account only has the User role there), `GET /api/chargers/{id}/state`: observations with
  `StateId`, `Timestamp` (no zone) and every value a string in `ValueAsString` (none for Pulse, -1).
- `GET /api/constants` (no token needed): enums, ObservationIds per device schema and the
  `Countries` list (`Id` GUID, ISO 3166 alpha-3 `Code`, `Name`). Installations carry only
  `CountryId`, one of those GUIDs; the pipeline resolves it through this list (a deployment whose
  account's constants differ can pin ids with `ZAPTEC_COUNTRY_IDS`).
- 401 once a token expired; 10 requests/s per account (token bucket, small burst) answered with
  429 + `Retry-After` when exceeded.
- Messaging: `GET /api/userGroups/{id}/messagingConnectionDetails` (and the deprecated
  installation-level path) return a ConnectionDescriptor for a topic subscription this server
  also hosts, speaking Azure Service Bus's REST receive protocol (peek-lock, complete, unlock,
  receive-and-delete) with SAS authentication. Message bodies are plain JSON observations; real
  ones are the same JSON wrapped in .NET binary XML (MC-NBFX). Subscriptions unused for
  `subscription_idle_seconds` (real: 14 days) disappear (404). Real Zaptec re-enables them by a
  support request; `POST /api/userGroups/{id}/messagingSubscription` is this simulator's stand-in
  for that (it is not a Zaptec endpoint).

The fleet mixes private home installations ("Hjemme", "Thuis": Zaptec Go, no authentication) and
public business sites (Zaptec Pro, authentication required) in Norway and the Netherlands.
`add_installation()` adds the awkward ones tests need: a time zone that disagrees with the country
(a Dutch site set to Brussels time) or a CountryId that /api/constants does not list.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from evpipeline.simulators.toolkit import SimClock, json_copy
from evpipeline.simulators.zaptec.bus import BusSubscription
from evpipeline.simulators.zaptec.control import ZaptecControl
from evpipeline.simulators.zaptec.fleet import (
    COUNTRIES,
    DEFAULT_USER_GROUP_ID,
    ENUMS,
    OBSERVATION_IDS,
    Charger,
    Installation,
)
from evpipeline.simulators.zaptec.handlers import Token, _Limits


class ZaptecSimulator(ZaptecControl):
    """The Zaptec cloud API for one portal account, its fleet and its message subscription.

    Built in layers, each a module: `bus` (the message subscription) < `fleet` (state and change,
    published on the bus) < `handlers` (HTTP routes) < `control` (what tests steer) < this class.
    """

    name = "zaptec"

    def __init__(
        self,
        *,
        scale: float = 1.0,
        chargers: int | None = None,
        username: str = "sim-user@example.com",
        password: str = "sim-password",
        user_group_id: str = DEFAULT_USER_GROUP_ID,
        token_lifetime: float = 86400.0,
        rate: float = 10.0,
        burst: float = 5.0,
        token_rate: float = 1.0,
        token_burst: float = 1.0,
        list_limits: tuple[tuple[int, float], ...] = ((30, 60.0), (150, 1800.0)),
        subscription_idle_seconds: float = 14 * 86400.0,
        lock_seconds: float = 30.0,
        messaging: bool = True,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.username, self.password = username, password
        self.user_group_id = user_group_id
        self.token_lifetime = token_lifetime
        # Zaptec documents a burst of 15; the default here is stricter so that a client averaging
        # even slightly over 10/s is answered 429 within a second or two.
        self.limits = self.server_limit = _Limits(rate, burst, token_rate, token_burst, list(list_limits))
        self.subscription_idle_seconds = subscription_idle_seconds
        self.lock_seconds = lock_seconds
        self.installations: dict[str, Installation] = {}
        self.chargers: dict[str, Charger] = {}
        self.tokens: dict[str, Token] = {}
        self.subscription: BusSubscription | None = None  # the live one; None once Service Bus removed it
        self._registered: BusSubscription | None = None  # what the connection-details endpoint hands out
        self.subscriptions_created = 0
        self.messages_published = 0
        self.messages_lost = 0  # published while no subscription existed, or deleted with one
        self._expire_countdown: int | None = None
        self.reject_tokens = False  # the account lost API access: logins work, every API call is 401
        self.forbidden: set[str] = set()  # installation/charger ids the account lost access to (403)
        self._sequence = 0
        self._bus_changed = threading.Condition()
        # What /api/constants answers; tests may edit it (e.g. drop a country).
        self.constants: dict[str, Any] = {
            **json_copy(ENUMS),
            "ObservationIds": dict(OBSERVATION_IDS),
            "Schema": {
                name: {"DeviceType": device_type, "ObservationIds": dict(OBSERVATION_IDS)}
                for name, device_type in (("Smart", 1), ("Apollo", 4))
            },
            "Countries": [
                {"Id": guid, "Code": code, "Name": name} for code, (guid, name) in COUNTRIES.items()
            ],
        }
        self._fleet_rng = random.Random(f"zaptec:{seed}:fleet")
        self._key_rng = random.Random(f"zaptec:{seed}:keys")
        self._build_fleet(int(chargers if chargers is not None else round(40 * scale)), self._fleet_rng)
        if messaging:
            self._create_subscription()

        self._add_routes()
