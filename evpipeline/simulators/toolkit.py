"""A small toolkit every API simulator is built on.

- `SimServer`: a threaded HTTP/1.1 server on loopback (free port by default), with routing, a
  request log, start/stop for tests, and admin endpoints under `/_sim/` (advance the clock,
  inject faults, read stats).
- `SimClock`: the simulators' notion of "now"; frozen for deterministic tests, or following the
  wall clock for `evpipeline simulate`. `advance()` moves it and lets the fleet change.
- `Faults`: knobs and scripted one-shot faults — latency, 429 + Retry-After, 5xx bursts,
  timeouts, truncated JSON, dropped connections, bad auth.
- `ServerRateLimit`: the server-side token bucket behind enforced API limits (deliberately not
  the client's limiter, so a bug in one cannot hide behind the other).
- Fleet helpers: deterministic ids, names, addresses and coordinates per country.

Simulators never import the pipeline's clients, normalizers or warehouse.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("evpipeline.simulators")


# --------------------------------------------------------------------------------------------
# Clock


class SimClock:
    """Simulated UTC time. Frozen clocks move only on `advance`; live ones also follow wall time."""

    def __init__(self, start: datetime | None = None, *, live: bool = False) -> None:
        self._base = (start or datetime.now(UTC).replace(microsecond=0)).astimezone(UTC)
        self._live = live
        self._mono = time.monotonic()
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            elapsed = timedelta(seconds=time.monotonic() - self._mono) if self._live else timedelta(0)
            return self._base + elapsed + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def iso_z(when: datetime, millis: bool = False) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{when.microsecond // 1000:03d}" if millis else "") + "Z"


# --------------------------------------------------------------------------------------------
# Requests and responses


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    client: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8", headers: dict[str, str] | None = None) -> Response:
        return cls(status, text.encode(), {"Content-Type": content_type, **(headers or {})})

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class HttpReply(Exception):  # noqa: N818 - control flow: a handler answering early
    """Raise from a handler to answer immediately (auth failures, bad parameters)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


Handler = Callable[[Request], Response]


# --------------------------------------------------------------------------------------------
# Faults and limits


@dataclass
class Faults:
    """Fault-injection knobs. Scripted faults apply to the next matching requests, in order."""

    latency: float = 0.0  # seconds added to every request
    bad_auth: bool = False  # reject every credential
    timeout_seconds: float = 5.0  # how long a "timeout" fault stalls before answering
    retry_after: float = 1.0  # Retry-After sent with injected 429s
    _script: deque[tuple[str, str | None]] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    KINDS = ("429", "500", "502", "503", "504", "timeout", "truncate", "disconnect")

    def inject(self, kind: str, count: int = 1, path: str | None = None) -> None:
        """Queue `count` faults of `kind` for the next requests whose path contains `path`."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {self.KINDS}")
        with self._lock:
            self._script.extend([(kind, path)] * count)

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
        self.latency, self.bad_auth = 0.0, False

    def take(self, path: str) -> str | None:
        with self._lock:
            for i, (kind, only) in enumerate(self._script):
                if only is None or only in path:
                    del self._script[i]
                    return kind
        return None

    @property
    def pending(self) -> int:
        return len(self._script)


class ServerRateLimit:
    """Enforced API limit: a token bucket per account (an empty bucket answers 429), plus optional
    budgets per endpoint class: at most `count` requests in any `seconds` (`windows`)."""

    def __init__(self, rate: float, burst: float, retry_after: float | None = None,
                 windows: dict[str, list[tuple[int, float]]] | None = None) -> None:
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self.windows = windows or {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._granted: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, account: str, endpoint_class: str | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the request would be)."""
        now = time.monotonic()
        with self._lock:
            if endpoint_class in self.windows:
                granted = self._granted.setdefault((account, endpoint_class), deque())
                wait = 0.0
                for count, seconds in self.windows[endpoint_class]:
                    inside = [t for t in granted if t > now - seconds]
                    if len(inside) >= count:
                        wait = max(wait, inside[len(inside) - count] + seconds - now)
                if wait > 0:
                    return False, wait
            tokens, stamp = self._buckets.get(account, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens >= 1:
                self._buckets[account] = (tokens - 1, now)
                if endpoint_class in self.windows:
                    self._granted[(account, endpoint_class)].append(now)
                return True, 0.0
            self._buckets[account] = (tokens, now)
            return False, (1 - tokens) / self.rate


@dataclass(frozen=True)
class ChargingPark:
    """A physical charging location as a map provider would know it (used to seed TomTom's POIs).

    `connectors` are (TomTom connector type, rated kW, count) triples, e.g.
    ("IEC62196Type2CCS", 150.0, 2). `ref` identifies the place in its own simulator (for tests).
    """

    ref: str
    name: str
    latitude: float
    longitude: float
    country: str  # ISO 3166 alpha-3
    connectors: tuple[tuple[str, float, int], ...]


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    at: float  # time.monotonic() when the request arrived
    account: str = ""


# --------------------------------------------------------------------------------------------
# Server


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # Headers and body leave in two writes: with Nagle on, the body waits for the client's
        # delayed ACK, which adds ~40 ms to every keep-alive response.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:  # clients that hang up are normal here
        log.debug("connection error from %s", client_address, exc_info=True)


class SimServer:
    """Base class of every simulator: routes, faults, clock, request log, lifecycle."""

    name = "sim"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: SimClock | None = None,
        faults: Faults | None = None,
        seed: int = 7,
    ) -> None:
        self.host, self._port = host, port
        self.clock = clock or SimClock()
        self.faults = faults or Faults()
        self.seed = seed
        self.rng = random.Random(f"{self.name}:{seed}:changes")
        self.requests: list[LoggedRequest] = []
        self.lock = threading.RLock()  # guards the fleet against concurrent handlers
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        self.route("POST", r"/_sim/advance", self._admin_advance)
        self.route("POST", r"/_sim/faults", self._admin_faults)
        self.route("GET", r"/_sim/stats", self._admin_stats)

    # -- routing -----------------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` and a path regex (named groups become `request.params`)."""
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def account_of(self, request: Request) -> str:
        """Who a request counts against for rate limits (override per API)."""
        return request.client

    def precheck(self, request: Request) -> Response | None:
        """An answer before routing and limits (e.g. a required header missing); None: go on."""
        return None

    def endpoint_class(self, request: Request) -> str | None:
        """Which endpoint budget of the rate limit a request counts against (None: the account's only)."""
        return None

    def rate_limit(self) -> ServerRateLimit | None:
        """The API's enforced limit, if it has one (override per API)."""
        return None

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        """How this API says 429 (override for API-specific bodies)."""
        return Response.json(
            {"message": "Too Many Requests"}, 429, {"Retry-After": str(max(1, math.ceil(retry_after)))}
        )

    def server_error(self, request: Request, status: int) -> Response:
        return Response.json({"message": "injected server error"}, status)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} simulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SimServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("%s: " + format, server.name, *args)

            def _serve(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

        self._server = _QuietServer((self.host, self._port), _Handler)
        # A short poll interval: `stop()` waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SimServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- change process ----------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Move the clock and let the fleet change accordingly."""
        self.clock.advance(seconds)
        with self.lock:
            self.evolve(seconds)

    def charging_parks(self) -> list[ChargingPark]:
        """The physical charging locations this API's fleet describes (TomTom's simulator lists the same
        places, as TomTom's own database does). Override per API."""
        return []

    def tick(self, seconds: float) -> None:
        """Let `seconds` worth of change happen now (live clocks move by themselves)."""
        with self.lock:
            self.evolve(seconds)

    def evolve(self, seconds: float) -> None:
        """Apply the changes `seconds` of simulated time bring (override per API)."""

    # -- request handling --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = Request(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=body,
            client=h.client_address[0],
        )
        admin = parts.path.startswith("/_sim/")
        # Logged on arrival (status filled in after), so a stalled request is already counted.
        entry = LoggedRequest(request.method, request.path, request.query, 0, arrived, "" if admin else self.account_of(request))
        if not admin:
            with self.lock:
                self.requests.append(entry)
        fault = None if admin else self.faults.take(parts.path)
        if self.faults.latency and not admin:
            time.sleep(self.faults.latency)
        response = self._dispatch(request, fault)
        entry.status = response.status
        self._write(h, response, fault)

    def _dispatch(self, request: Request, fault: str | None) -> Response:
        if fault in ("429",):
            return self.too_many_requests(request, self.faults.retry_after)
        if fault in ("500", "502", "503", "504"):
            return self.server_error(request, int(fault))
        if fault == "timeout":
            time.sleep(self.faults.timeout_seconds)
        if not request.path.startswith("/_sim/"):
            refused = self.precheck(request)
            if refused is not None:
                return refused
            limit = self.rate_limit()
            if limit is not None:
                allowed, wait = limit.allow(self.account_of(request), self.endpoint_class(request))
                if not allowed:
                    return self.too_many_requests(request, limit.retry_after or wait)
        allowed_methods = []
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if not match:
                continue
            if method != request.method:
                allowed_methods.append(method)
                continue
            request.params = {k: v for k, v in match.groupdict().items() if v is not None}
            try:
                return handler(request)
            except HttpReply as reply:
                return reply.response
            except Exception as exc:  # a simulator bug must be visible, not a hung client
                log.exception("%s handler failed", self.name)
                return Response.json({"message": f"simulator error: {exc}"}, 500)
        if allowed_methods:
            return self.method_not_allowed(request, allowed_methods)
        return self.not_found(request)

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return Response.json({"message": "Method Not Allowed"}, 405, {"Allow": ", ".join(sorted(set(allowed)))})

    def not_found(self, request: Request) -> Response:
        return Response.json({"message": "Resource not found"}, 404)

    def _write(self, h: BaseHTTPRequestHandler, response: Response, fault: str | None) -> None:
        body = response.body
        if fault == "truncate" and len(body) > 2:
            body = body[: max(1, len(body) // 2)]
        try:
            # send_response_only: the Date header must come from the simulated clock, once.
            h.send_response_only(response.status)
            headers = {"Date": http_date(self.clock.now()), "Server": f"evpipeline-sim/{self.name}", **response.headers}
            for name, value in headers.items():
                h.send_header(name, value)
            # "disconnect" promises the whole body, then hangs up halfway.
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body[: len(body) // 2] if fault == "disconnect" else body)
            if fault == "disconnect":
                h.close_connection = True
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            h.close_connection = True

    # -- admin -------------------------------------------------------------------------------
    def _admin_advance(self, request: Request) -> Response:
        seconds = float(request.arg("seconds", "60") or 60)
        self.advance(seconds)
        return Response.json({"now": iso_z(self.clock.now())})

    def _admin_faults(self, request: Request) -> Response:
        spec = request.json() or {}
        for kind, count in (spec.get("inject") or {}).items():
            self.faults.inject(kind, int(count), spec.get("path"))
        for knob in ("latency", "bad_auth", "timeout_seconds", "retry_after"):
            if knob in spec:
                setattr(self.faults, knob, spec[knob])
        return Response.json({"pending": self.faults.pending})

    def _admin_stats(self, request: Request) -> Response:
        with self.lock:
            statuses: dict[str, int] = {}
            for r in self.requests:
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            return Response.json({"requests": len(self.requests), "statuses": statuses, "now": iso_z(self.clock.now())})

    # -- helpers for tests and benchmarks ----------------------------------------------------
    def requests_to(self, path_part: str, method: str | None = None) -> list[LoggedRequest]:
        with self.lock:
            return [r for r in self.requests if path_part in r.path and (method is None or r.method == method)]

    def max_rate(self, window: float = 1.0, path_part: str = "") -> int:
        """Most requests seen in any `window`-second span (to prove a client stayed under a limit)."""
        times = sorted(r.at for r in self.requests_to(path_part))
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()


# --------------------------------------------------------------------------------------------
# Fleet helpers


def det_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def paginate(items: list[Any], offset: int, limit: int) -> list[Any]:
    return items[offset : offset + limit]


# Bounding boxes over land where chargers are (roughly); coordinates are then jittered.
REGIONS: dict[str, list[tuple[str, float, float]]] = {
    "NLD": [
        ("Amsterdam", 52.3676, 4.9041), ("Rotterdam", 51.9244, 4.4777), ("Utrecht", 52.0907, 5.1214),
        ("Den Haag", 52.0705, 4.3007), ("Eindhoven", 51.4416, 5.4697), ("Groningen", 53.2194, 6.5665),
        ("Tilburg", 51.5555, 5.0913), ("Almere", 52.3508, 5.2647), ("Breda", 51.5719, 4.7683),
        ("Nijmegen", 51.8126, 5.8372), ("Arnhem", 51.9851, 5.8987), ("Haarlem", 52.3874, 4.6462),
        ("Zwolle", 52.5168, 6.0830), ("Leiden", 52.1601, 4.4970), ("Maastricht", 50.8514, 5.6910),
    ],
    "BEL": [
        ("Gent", 51.0543, 3.7174), ("Antwerpen", 51.2194, 4.4025), ("Brussel", 50.8503, 4.3517),
        ("Leuven", 50.8798, 4.7005), ("Brugge", 51.2093, 3.2247),
    ],
    "NOR": [
        ("Oslo", 59.9139, 10.7522), ("Bergen", 60.3913, 5.3221), ("Trondheim", 63.4305, 10.3951),
        ("Stavanger", 58.9700, 5.7331), ("Drammen", 59.7439, 10.2045),
    ],
    "NZL": [
        ("Auckland", -36.8485, 174.7633), ("Wellington", -41.2866, 174.7756), ("Christchurch", -43.5321, 172.6362),
        ("Hamilton", -37.7870, 175.2793), ("Tauranga", -37.6878, 176.1651), ("Dunedin", -45.8788, 170.5028),
        ("Napier", -39.4928, 176.9120), ("Nelson", -41.2706, 173.2840), ("Queenstown", -45.0312, 168.6626),
    ],
}
STREETS: dict[str, list[str]] = {
    "NLD": ["Kerkstraat", "Stationsplein", "Dorpsstraat", "Molenweg", "Schoolstraat", "Marktplein", "Julianalaan",
            "Beatrixstraat", "Parkweg", "Industrieweg", "Havenstraat", "Prins Hendrikkade", "Oranjelaan", "Kanaalweg"],
    "BEL": ["Kerkstraat", "Stationsstraat", "Veldstraat", "F. Rooseveltlaan", "Nieuwstraat", "Grote Markt"],
    "NOR": ["Storgata", "Kirkeveien", "Sjøgata", "Parkveien", "Skolegata", "Bygdøy allé", "Trondheimsveien"],
    "NZL": ["Great South Road", "Queen Street", "State Highway 1", "Victoria Street", "Main Road", "Beach Road"],
}
POSTCODES: dict[str, Callable[[random.Random], str]] = {
    "NLD": lambda r: f"{r.randint(1000, 9999)} {chr(65 + r.randint(0, 25))}{chr(65 + r.randint(0, 25))}",
    "BEL": lambda r: f"{r.randint(1000, 9999)}",
    "NOR": lambda r: f"{r.randint(0, 9999):04d}",
    "NZL": lambda r: f"{r.randint(100, 9999):04d}",
}
TIME_ZONES = {"NLD": "Europe/Amsterdam", "BEL": "Europe/Brussels", "NOR": "Europe/Oslo", "NZL": "Pacific/Auckland"}


@dataclass(frozen=True)
class Place:
    country: str
    city: str
    street: str
    house_number: int
    postal_code: str
    latitude: float
    longitude: float

    @property
    def address(self) -> str:
        return f"{self.street} {self.house_number}"


def random_place(rng: random.Random, country: str, spread_km: float = 6.0) -> Place:
    city, lat, lon = rng.choice(REGIONS[country])
    dlat = rng.uniform(-1, 1) * spread_km / 111.0
    dlon = rng.uniform(-1, 1) * spread_km / (111.0 * max(0.2, math.cos(math.radians(lat))))
    return Place(
        country=country,
        city=city,
        street=rng.choice(STREETS[country]),
        house_number=rng.randint(1, 240),
        postal_code=POSTCODES[country](rng),
        latitude=round(lat + dlat, 6),
        longitude=round(lon + dlon, 6),
    )


def weighted(rng: random.Random, choices: Iterable[tuple[Any, float]]) -> Any:
    items = list(choices)
    return rng.choices([c for c, _ in items], weights=[w for _, w in items], k=1)[0]
