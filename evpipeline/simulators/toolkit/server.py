"""`SimServer`: the threaded loopback HTTP server every simulator is, with routing, a request log,
faults, rate limits, the `/_sim/` admin endpoints and start/stop for tests."""

from __future__ import annotations

import hmac
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from evpipeline.simulators.toolkit.clock import SimClock, http_date, iso_z
from evpipeline.simulators.toolkit.faults import Faults, ServerRateLimit
from evpipeline.simulators.toolkit.fleet import ChargingPark
from evpipeline.simulators.toolkit.wire import Handler, HttpReply, Request, Response
from evpipeline.simulators.toolkit.wire import retry_after as retry_after_header

log = logging.getLogger("evpipeline.simulators")


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
        self.server_limit: ServerRateLimit | None = None  # set by APIs with one enforced limit
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
        """The API's enforced limit, if it has one (`server_limit`, or override per API)."""
        return self.server_limit

    def credential_ok(self, presented: str | None, expected: str) -> bool:
        """A presented secret is there and right (constant-time compare), and no bad-auth fault is on."""
        return not self.faults.bad_auth and bool(presented) and hmac.compare_digest(presented or "", expected)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        """How this API says 429 (override for API-specific bodies)."""
        return Response.json({"message": "Too Many Requests"}, 429, retry_after_header(retry_after))

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

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s: " + format, server.name, *args)

            def _serve(self) -> None:
                server._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        self._server = _QuietServer((self.host, self._port), _Handler)
        # A short poll interval: `stop()` waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-{self.name}",
            daemon=True,
        )
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
        entry = LoggedRequest(
            request.method, request.path, request.query, 0, arrived, "" if admin else self.account_of(request)
        )
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
        return Response.json(
            {"message": "Method Not Allowed"}, 405, {"Allow": ", ".join(sorted(set(allowed)))}
        )

    def not_found(self, request: Request) -> Response:
        return Response.json({"message": "Resource not found"}, 404)

    def _write(self, h: BaseHTTPRequestHandler, response: Response, fault: str | None) -> None:
        body = response.body
        if fault == "truncate" and len(body) > 2:
            body = body[: max(1, len(body) // 2)]
        try:
            # send_response_only: the Date header must come from the simulated clock, once.
            h.send_response_only(response.status)
            headers = {
                "Date": http_date(self.clock.now()),
                "Server": f"evpipeline-sim/{self.name}",
                **response.headers,
            }
            for name, value in headers.items():
                h.send_header(name, value)
            # "disconnect" promises the whole body, then hangs up halfway.
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command != "HEAD" and fault == "trickle":
                # Slow, never silent: every read is answered well within a per-read timeout, the
                # whole body takes len(body) * trickle_seconds (what only an overall deadline stops).
                for i in range(len(body)):
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
                    time.sleep(self.faults.trickle_seconds)
            elif h.command != "HEAD":
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
        for knob in ("latency", "bad_auth", "timeout_seconds", "retry_after", "trickle_seconds"):
            if knob in spec:
                setattr(self.faults, knob, spec[knob])
        return Response.json({"pending": self.faults.pending})

    def _admin_stats(self, request: Request) -> Response:
        with self.lock:
            statuses: dict[str, int] = {}
            for r in self.requests:
                statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
            return Response.json(
                {"requests": len(self.requests), "statuses": statuses, "now": iso_z(self.clock.now())}
            )

    # -- helpers for tests and benchmarks ----------------------------------------------------
    def requests_to(self, path_part: str, method: str | None = None) -> list[LoggedRequest]:
        with self.lock:
            return [
                r for r in self.requests if path_part in r.path and (method is None or r.method == method)
            ]

    def max_rate(self, window: float = 1.0, path_part: str = "") -> int:
        """Most requests seen in any `window`-second span (to prove a client stayed under a limit)."""
        return most_in_window([r.at for r in self.requests_to(path_part)], window)

    def reset_log(self) -> None:
        with self.lock:
            self.requests.clear()


def most_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """Most of `times` (seconds) inside any half-open `window`-second span."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
