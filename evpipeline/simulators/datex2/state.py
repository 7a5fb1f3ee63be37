"""What the simulated access point holds: the accepted static publication (its objects by kind, id
and version; energy rates with their prices), the current status and ad-hoc price overrides per
charging point, and every delivery with its outcome. Reads return copies, taken under the lock."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from evpipeline.simulators.datex2.rules import (
    HOURS,
    ORGANISATION,
    POINT,
    RATE,
    SITE,
    STATION,
    TABLE,
    StaticIndex,
)
from evpipeline.simulators.toolkit import SimClock, SimServer, iso_z

BASE = "/datex2"  # POST {BASE}/static, POST {BASE}/status
CONTROL = "/control"
DEFAULT_TOKEN = "sim-datex2-token"
DEFAULT_MAX_BODY = 64 * 1024 * 1024  # bytes; larger deliveries are answered 413


@dataclass
class Delivery:
    """One request to a delivery endpoint, with the receiver's answer."""

    id: str
    kind: str  # static | status
    protocol: str | None  # status: snapshotPush | deltaPush (as the message said); static: None
    http_status: int
    accepted: bool
    errors: list[str]
    received_at: datetime  # simulator clock
    mono: float  # time.monotonic() on arrival
    size: int  # body bytes
    counts: dict[str, int] = field(default_factory=dict)
    document: Any = field(default=None, repr=False)  # the parsed body (in-process only, never over HTTP)

    def to_json(self) -> dict[str, Any]:
        return {
            "delivery": self.id,
            "kind": self.kind,
            "protocol": self.protocol,
            "http_status": self.http_status,
            "accepted": self.accepted,
            "errors": list(self.errors),
            "received_at": iso_z(self.received_at, millis=True),
            "size": self.size,
            "counts": dict(self.counts),
        }


@dataclass
class AcceptedStatic:
    delivery: str
    received_at: datetime
    index: StaticIndex
    document: Any

    def summary(self) -> dict[str, Any]:
        objects = self.index.objects

        def versions(kind: str) -> dict[str, dict[str, Any]]:
            return {i: {"versionG": d.version} for i, d in objects[kind].items()}

        return {
            "delivery": self.delivery,
            "received_at": iso_z(self.received_at, millis=True),
            "publicationTime": self.index.publication_time,
            "counts": self.index.counts(),
            "tables": versions(TABLE),
            "sites": {i: {"versionG": d.version, "table": d.parent} for i, d in objects[SITE].items()},
            "stations": {
                i: {
                    "versionG": d.version,
                    "site": d.parent,
                    "chargingPoints": list(self.index.station_points.get(i, [])),
                }
                for i, d in objects[STATION].items()
            },
            "chargingPoints": {
                i: {
                    "versionG": d.version,
                    "station": d.parent,
                    "currentType": (d.obj.get("currentType") or {}).get("value"),
                }
                for i, d in objects[POINT].items()
            },
            "energyRates": {
                i: {
                    k: copy.deepcopy(d.obj[k])
                    for k in ("ratePolicy", "lastUpdated", "applicableCurrency", "energyPrice")
                    if k in d.obj
                }
                for i, d in objects[RATE].items()
            },
            "organisations": versions(ORGANISATION),
            "operatingHours": versions(HOURS),
        }


@dataclass
class Gate:
    """A delivery held before it is judged: `arrived` when it is there, judged once `release` is set."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class Datex2State(SimServer):
    """The receiver's memory, guarded by the server lock."""

    name = "datex2"

    def __init__(
        self,
        *,
        scale: float = 1.0,  # accepted for the registry; a receiver has no fleet of its own
        token: str = DEFAULT_TOKEN,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.delivery_latency = 0.0  # seconds added to every delivery (the control surface's knob)
        self.gates: dict[str, Gate] = {}  # kind -> the gate its next delivery waits at (`hold_next`)
        self.static: AcceptedStatic | None = None
        self.points: dict[str, dict[str, Any]] = {}  # charging point id -> the status held
        self.station_rates: dict[str, dict[str, dict[str, Any]]] = {}  # station id -> rate id -> its update
        self._deliveries: list[Delivery] = []
        self._sequence = 0

    def reset(self, clock: SimClock | None = None) -> None:
        """Forget everything received and every scripted fault (tests share one server this way)."""
        with self.lock:
            self.static = None
            self.points.clear()
            self.station_rates.clear()
            self._deliveries.clear()
            self._sequence = 0
            self.delivery_latency = 0.0
            for gate in self.gates.values():
                gate.release.set()
            self.gates.clear()
            self.faults.clear()
            self.requests.clear()
            if clock is not None:
                self.clock = clock

    def _next_id(self, kind: str) -> str:
        with self.lock:
            self._sequence += 1
            return f"{kind}-{self._sequence:06d}"

    # -- in-process accessors for tests (copies) ----------------------------------------------
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, oldest first (401s, refusals and injected faults included)."""
        with self.lock:
            return [copy.copy(d) for d in self._deliveries]

    def accepted_deliveries(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.accepted]

    def last_delivery(self) -> Delivery | None:
        with self.lock:
            return copy.copy(self._deliveries[-1]) if self._deliveries else None

    def accepted_static(self) -> dict[str, Any] | None:
        """What the receiver holds of the accepted static publication (ids, versions, rates), or None."""
        with self.lock:
            return self.static.summary() if self.static else None

    def static_document(self) -> Any:
        """The accepted static publication as it was delivered, or None."""
        with self.lock:
            return copy.deepcopy(self.static.document) if self.static else None

    def point_status(self, point_id: str) -> dict[str, Any] | None:
        """The status held for one charging point: status, lastUpdated, energyRateUpdates, versions."""
        with self.lock:
            return copy.deepcopy(self.points.get(point_id))

    def point_statuses(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.points)

    def energy_rate(self, rate_id: str) -> dict[str, Any] | None:
        """A declared energy rate as the static publication gave it, plus every override held
        (`updates`: {"point <id>" | "station <id>": {lastUpdated, energyPrice}})."""
        with self.lock:
            defined = self.static.index.find(RATE, rate_id) if self.static else None
            if defined is None:
                return None
            updates = {
                f"point {p}": copy.deepcopy(s["energyRateUpdates"][rate_id])
                for p, s in self.points.items()
                if rate_id in s["energyRateUpdates"]
            }
            updates |= {
                f"station {s}": copy.deepcopy(rates[rate_id])
                for s, rates in self.station_rates.items()
                if rate_id in rates
            }
            return {**copy.deepcopy(defined.obj), "updates": updates}

    def state(self) -> dict[str, Any]:
        """Everything held, as `GET /control/state` shows it."""
        with self.lock:
            return {
                "static": self.static.summary() if self.static else None,
                "points": copy.deepcopy(self.points),
                "stations": copy.deepcopy(
                    {s: {"energyRateUpdates": r} for s, r in self.station_rates.items()}
                ),
                "deliveries": len(self._deliveries),
                "accepted": sum(d.accepted for d in self._deliveries),
                "now": iso_z(self.clock.now()),
            }
