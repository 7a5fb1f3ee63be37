"""What the simulated NDW holds: issued tokens, accepted Locations/Tariffs, the push log, and
read-only copies of them for tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evpipeline.simulators.ndw.compliance import Profile, parse_datetime
from evpipeline.simulators.toolkit import SimClock, SimServer

TOKEN_PATH = "/auth/realms/ndw/protocol/openid-connect/token"
OCPI_BASE = "/ocpi/2.2.1"
Key = tuple[str, str, str]


def object_key(country_code: str, party_id: str, object_id: str) -> Key:
    """OCPI ids are CiStrings: compared case-insensitively."""
    return (country_code.casefold(), party_id.casefold(), object_id.casefold())


def same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.casefold() == b.casefold()


def later(a: str | None, b: str | None) -> str | None:
    """The later of two OCPI DateTimes (for bumping a parent's last_updated)."""
    if a is None or b is None:
        return a or b
    return a if parse_datetime(a) >= parse_datetime(b) else b


def find(items: list[dict[str, Any]], field_name: str, value: str) -> dict[str, Any] | None:
    return next((item for item in items if same(item.get(field_name), value)), None)


def upsert(items: list[dict[str, Any]], field_name: str, obj: dict[str, Any]) -> None:
    for i, item in enumerate(items):
        if same(item.get(field_name), obj[field_name]):
            items[i] = obj
            return
    items.append(obj)


@dataclass
class IssuedToken:
    client_id: str
    expires_at: datetime


@dataclass
class PushRecord:
    """One push that reached the receiver, with NDW's answer."""

    method: str
    path: str
    kind: str  # location | evse | connector | tariff | unknown
    http_status: int
    status_code: int | None  # OCPI status code (None for 204)
    status_message: str
    accepted: bool
    at: datetime  # simulator clock
    mono: float  # time.monotonic() on arrival
    request_id: str | None
    body: Any = None
    warnings: list[str] = field(default_factory=list)


class NdwState(SimServer):
    """The simulator's memory; every read returns a copy, taken under the server lock."""

    name = "ndw"

    def __init__(
        self,
        *,
        scale: float = 1.0,  # accepted for the registry; NDW has no fleet of its own
        client_id: str = "sim-ndw-client",
        client_secret: str = "sim-ndw-secret",
        token_lifetime: float = 1800.0,
        refresh_lifetime: float = 3600.0,
        profile: Profile = "ndw",
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime, self.refresh_lifetime = token_lifetime, refresh_lifetime
        self.profile: Profile = profile
        self.tokens: dict[str, IssuedToken] = {}
        self.tokens_issued = 0
        self.locations: dict[Key, dict[str, Any]] = {}
        self.tariffs: dict[Key, dict[str, Any]] = {}
        self.pushes: list[PushRecord] = []
        self._reject: list[tuple[int, str]] = []  # scripted content rejections, in order
        self._unauthorized = 0

    def reset(self, clock: SimClock | None = None) -> None:
        """Forget everything received, issued and scripted (tests share one server this way)."""
        with self.lock:
            self.tokens.clear()
            self.tokens_issued = 0
            self.locations.clear()
            self.tariffs.clear()
            self.pushes.clear()
            self._reject.clear()
            self._unauthorized = 0
            self.faults.clear()
            self.requests.clear()
            if clock is not None:
                self.clock = clock

    def hold(self, locations: list[dict[str, Any]], tariffs: list[dict[str, Any]]) -> None:
        """Hold these objects as if they had been pushed before (`evpipeline dev` restarts NDW with what the
        warehouse says it holds); nothing is judged or logged as a push."""
        with self.lock:
            for obj in locations:
                self.locations[object_key(obj["country_code"], obj["party_id"], obj["id"])] = copy.deepcopy(
                    obj
                )
            for obj in tariffs:
                self.tariffs[object_key(obj["country_code"], obj["party_id"], obj["id"])] = copy.deepcopy(obj)

    def location(self, country_code: str, party_id: str, location_id: str) -> dict[str, Any] | None:
        """A copy of the Location NDW holds (with its EVSEs and connectors), or None."""
        with self.lock:
            found = self.locations.get(object_key(country_code, party_id, location_id))
            return copy.deepcopy(found)

    def evse(
        self, country_code: str, party_id: str, location_id: str, evse_uid: str
    ) -> dict[str, Any] | None:
        found = self.location(country_code, party_id, location_id)
        return find(found.get("evses", []), "uid", evse_uid) if found else None

    def connector(
        self, country_code: str, party_id: str, location_id: str, evse_uid: str, connector_id: str
    ) -> dict[str, Any] | None:
        found = self.evse(country_code, party_id, location_id, evse_uid)
        return find(found["connectors"], "id", connector_id) if found else None

    def tariff(self, country_code: str, party_id: str, tariff_id: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.tariffs.get(object_key(country_code, party_id, tariff_id)))

    def accepted_pushes(self) -> list[PushRecord]:
        with self.lock:
            return [p for p in self.pushes if p.accepted]
