"""A small toolkit every API simulator is built on.

- `server`: `SimServer`, a threaded HTTP/1.1 server on loopback (free port by default), with
  routing, a request log, start/stop for tests, and admin endpoints under `/_sim/` (advance the
  clock, inject faults, read stats).
- `clock`: `SimClock`, the simulators' notion of "now"; frozen for deterministic tests, or
  following the wall clock for `evpipeline simulate`. `advance()` moves it and lets the fleet change.
- `wire`: `Request`, `Response`, `HttpReply` and the helpers handlers share.
- `faults`: `Faults` (latency, 429 + Retry-After, 5xx bursts, timeouts, truncated JSON, dropped
  connections, bad auth) and `ServerRateLimit`, the server-side token bucket behind enforced API
  limits (deliberately not the client's limiter, so a bug in one cannot hide behind the other).
- `fleet`: deterministic ids, names, addresses and coordinates per country, `ChargingPark`.

Simulators never import the pipeline's clients, normalizers or warehouse.
"""

from evpipeline.simulators.toolkit.clock import SimClock, http_date, iso_z
from evpipeline.simulators.toolkit.faults import Script, ServerRateLimit
from evpipeline.simulators.toolkit.fleet import (
    NUTS1_CITIES,
    REGIONS,
    STREETS,
    TIME_ZONES,
    ChargingPark,
    det_uuid,
    park_connectors,
    random_place,
    weighted,
)
from evpipeline.simulators.toolkit.server import SimServer, _QuietServer, most_in_window
from evpipeline.simulators.toolkit.wire import HttpReply, Request, Response, json_copy, paginate, retry_after

__all__ = [
    "ChargingPark",
    "HttpReply",
    "NUTS1_CITIES",
    "REGIONS",
    "Request",
    "Response",
    "STREETS",
    "Script",
    "ServerRateLimit",
    "SimClock",
    "SimServer",
    "TIME_ZONES",
    "_QuietServer",
    "det_uuid",
    "http_date",
    "iso_z",
    "json_copy",
    "most_in_window",
    "paginate",
    "park_connectors",
    "random_place",
    "retry_after",
    "weighted",
]
