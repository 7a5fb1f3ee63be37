"""DATEX II receiver simulator: a national access point taking our AFIR DATEX II pushes (the
profile "AFIR Energy Infrastructure" 01-00-00, JSON) and judging them as a receiver reads them.

It never imports our publication code (`evpipeline.datex2`, `evpipeline.ndw`): a receiver sharing it
would accept whatever we got wrong. It judges with the profile's own schema sets (vendored under
`profile/`, see SOURCE.txt) and rules written out from the profile's annotated examples (`rules`).

HTTP API (JSON, UTF-8), base `{url}/datex2` (what `DATEX2_PUSH_URL` names):
- `POST {base}/static`: `{"payload": {"modelBaseVersionG": "3", "profileNameG": "AFIR Energy
  Infrastructure", "profileVersionG": "01-00-00", "aegiEnergyInfrastructureTablePublication": {...}}}`,
  a complete table: an accepted static delivery replaces the previous one.
- `POST {base}/status`: `{"messageContainer": {"payload": [{..."aegiEnergyInfrastructureStatusPublication":
  {...}}], "exchangeInformation": {...}}}`; `exchangeContext.codedExchangeProtocol.value`
  `snapshotPush` replaces every status held, `deltaPush` updates the points it names.
- `Authorization: Bearer <token>` (constant-time compare; 401 otherwise, the token never echoed).
- Answers: 200 `{"accepted": true, "delivery": "<id>"}`; 400 `{"accepted": false, "errors":
  ["<json path>: <reason>", ...], "delivery": "<id>"}` (malformed JSON, schema, meaning, physics);
  401; 413 above `max_body_bytes`; 415 unless `Content-Type: application/json` (UTF-8); 429/503
  from injected faults, with Retry-After. Every error body is `{"accepted": false, "errors": [...]}`.

Control surface (`control`): `GET /control/deliveries`, `GET /control/state`, `POST /control/reset`,
`POST /control/faults`; in-process: `deliveries()`, `last_delivery()`, `accepted_static()`,
`point_status(id)`, `point_statuses()`, `energy_rate(id)`, `state()`, `fail_next()`,
`drop_connections()`, `add_latency()`, `reset()`.

Modules by concern: `schemas` (check 1), `rules` (checks 2 and 3), `state` (what it holds),
`control` (knobs), `receiver` (HTTP handlers).
"""

from __future__ import annotations

from typing import Any

from evpipeline.simulators.datex2.receiver import Datex2Receiver
from evpipeline.simulators.datex2.rules import check_static, check_status
from evpipeline.simulators.datex2.schemas import schema_errors
from evpipeline.simulators.datex2.state import BASE, CONTROL, DEFAULT_TOKEN, Delivery

__all__ = [
    "BASE",
    "CONTROL",
    "DEFAULT_TOKEN",
    "Datex2Simulator",
    "Delivery",
    "check_static",
    "check_status",
    "schema_errors",
]


class Datex2Simulator(Datex2Receiver):
    """The access point's push receiver and its control surface."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.route("POST", f"{BASE}/static/?", self._post_static)
        self.route("POST", f"{BASE}/status/?", self._post_status)
        self.route("GET", f"{CONTROL}/deliveries", self._control_deliveries)
        self.route("GET", f"{CONTROL}/state", self._control_state)
        self.route("POST", f"{CONTROL}/reset", self._control_reset)
        self.route("POST", f"{CONTROL}/faults", self._control_faults)

    @property
    def base_url(self) -> str:
        """What `DATEX2_PUSH_URL` is set to for this simulator."""
        return f"{self.url}{BASE}"
