"""NDW DOT-NL simulator: IAM token endpoint, OCPI 2.2.1 push receiver that validates, daily crawler.

Faithful to NDW's supplier page (seed 002) and the OCPI rules (docs/ocpi.md):
- `POST /auth/realms/ndw/protocol/openid-connect/token` (client credentials, form-encoded) answers
  Keycloak's shape; tokens expire by the simulator clock (`expires_in` 1800 by default).
- Push under `/ocpi/2.2.1/`: PUT/PATCH Location, EVSE and Connector; PUT/DELETE Tariff. Bearer token
  required (401). Invalid JSON -> 400; unknown path, or PATCH/DELETE of (or PUT below) something never
  PUT -> 404; content that breaks NDW's published schema or its receiver rules (`compliance`) -> HTTP 200
  with OCPI 2001 and a message naming the fields (nothing stored); compliant -> 201 (created) or 200
  (updated) with 1000; DELETE tariff -> 204 (NDW-specific). Every other answer is an OCPI envelope.
  `data` is left out, as the 2.2.1-d2 note advises senders to do where the spec does not define it.
- Accepted state (`locations` with nested EVSEs/connectors, `tariffs`) and a log of every push that
  reached the receiver with its outcome (`pushes`), stamped with the simulator clock and monotonic
  time, so tests can assert what NDW holds and when it got it.
- Knobs: the toolkit's faults (429/5xx bursts, latency, `bad_auth`), `reject_content(n, code)` to
  refuse the next n pushes with a 2xxx, `force_unauthorized(n)` to answer 401 to the next n pushes
  (a revoked token), `revoke_tokens()`; also via `POST /_sim/ndw`.

`crawl()` is NDW's daily pull of a supplier's OCPI server (ours): it follows `Link: rel="next"`,
authenticates with `Token <base64>` or an OAuth2 bearer, sends unique X-Request-ID/X-Correlation-ID
and checks they are echoed, checks X-Total-Count/X-Limit, that objects are unique across pages and
(by default) that each passes the same compliance check.

Modules by concern: `state` (what NDW holds), `control` (test knobs), `receiver` (HTTP handlers),
`compliance` (the independent check), `crawler` (the daily pull).
"""

from __future__ import annotations

from typing import Any

from evpipeline.simulators.ndw.compliance import check
from evpipeline.simulators.ndw.crawler import CrawlError, CrawlResult, crawl
from evpipeline.simulators.ndw.receiver import NdwReceiver
from evpipeline.simulators.ndw.state import OCPI_BASE, TOKEN_PATH, IssuedToken, PushRecord

__all__ = [
    "OCPI_BASE",
    "TOKEN_PATH",
    "CrawlError",
    "CrawlResult",
    "IssuedToken",
    "NdwSimulator",
    "PushRecord",
    "check",
    "crawl",
]

_SEG = r"[^/]+"


class NdwSimulator(NdwReceiver):
    """NDW's IAM token endpoint and OCPI 2.2.1 push receiver, validating with `compliance.check`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.route("POST", TOKEN_PATH, self._token)
        loc = (
            f"{OCPI_BASE}/locations/(?P<cc>{_SEG})/(?P<pid>{_SEG})/(?P<loc>{_SEG})"
            f"(?:/(?P<evse>{_SEG}))?(?:/(?P<conn>{_SEG}))?/?"
        )
        tariff = f"{OCPI_BASE}/tariffs/(?P<cc>{_SEG})/(?P<pid>{_SEG})/(?P<tid>{_SEG})/?"
        for method in ("PUT", "PATCH"):
            self.route(method, loc, self._push_location)
        for method in ("PUT", "DELETE"):
            self.route(method, tariff, self._push_tariff)
        self.route("POST", r"/_sim/ndw", self._admin_knobs)
        self.route("GET", r"/_sim/ndw/state", self._admin_state)
