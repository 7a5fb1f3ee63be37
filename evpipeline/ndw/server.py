"""The OCPI 2.2.1 pull server NDW GETs from (`evpipeline serve-ocpi`): Locations and Tariffs (Sender).

It serves exactly the objects of the daily export (`build_export`), read from the BI snapshot
(`snapshots/warehouse.duckdb`, swapped in atomically after each run; the live warehouse is locked by
the pipeline). `SnapshotStore` keeps every object pre-serialised in memory and reloads when the
snapshot file changes, so a page is a join of ready-made bytes. Docs: docs/ndw.md.

- `GET /ocpi/versions`, `GET /ocpi/2.2.1` (version details), `GET /ocpi/2.2.1/locations` and
  `/locations/{location_id}[/{evse_uid}[/{connector_id}]]`, `GET /ocpi/2.2.1/tariffs`;
  `POST /oauth/token` (OAuth2 client credentials), `GET /health` (no auth, no data).
- Paging per OCPI: `offset`, `limit` (capped; 0 is refused), `date_from` (inclusive), `date_to`
  (exclusive) on the wire `last_updated`; `X-Total-Count`, `X-Limit`, `Link: <...>; rel="next"`
  (absent on the last page) carrying the filters plus `snapshot=<version>`, which pins the rest of
  a crawl to the data set it started on while that version is retained.
- Auth: `Authorization: Token <base64(OCPI_TOKEN)>` (raw token accepted for 2.1.1/2.2 clients) or
  `Authorization: Bearer <JWT>` from `/oauth/token`; everything but the token endpoint and
  `/health` answers 401 without them. `X-Request-ID` / `X-Correlation-ID` are echoed everywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode

import jwt
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evpipeline.ndw.export import OcpiExport, build_export

log = logging.getLogger(__name__)

VERSION = "2.2.1"
OCPI_PREFIX = "/ocpi"
BASE_PATH = f"{OCPI_PREFIX}/{VERSION}"
TOKEN_PATH = "/oauth/token"
PUBLIC_PATHS = frozenset({TOKEN_PATH, "/health"})
MODULES = ("locations", "tariffs")

DEFAULT_PAGE_CAP = 1000
JWT_ISSUER = "evpipeline-ocpi-pull"
JWT_AUDIENCE = "ocpi-2.2.1-pull"
JWT_ALGORITHM = "HS256"
_JWT_KEY_CONTEXT = b"evpipeline/ocpi-pull/jwt/v1"
_MAX_FORM_BYTES = 16 * 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# OCPI DateTime (RFC 3339, UTC implied without a designator). A numeric offset is tolerated and
# converted; a space where the `+` was (an unencoded `+` in a query string) is read as `+`.
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+\- ]\d{2}:\d{2})?$"
)
_INTEGER = re.compile(r"^[0-9]+$")


# --------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class OcpiServerSettings:
    """Credentials and knobs of the pull server (from the OCPI_* variables, see README)."""

    token: str = ""  # accepted `Authorization: Token`; empty disables token auth
    client_id: str = ""  # OAuth2 client; empty id or secret disables the token endpoint
    client_secret: str = ""
    jwt_secret: str = ""  # empty: the JWT key is derived from client_secret
    public_url: str = ""  # base of Link / version URLs; empty: the request's own base URL
    page_cap: int = DEFAULT_PAGE_CAP
    token_lifetime: int = 3600  # seconds a JWT stays valid
    jwt_leeway: int = 10  # clock skew tolerated on exp/iat (seconds)

    def __post_init__(self) -> None:
        if self.page_cap < 1:
            raise ValueError("page_cap must be at least 1")

    @classmethod
    def from_env(cls, **overrides: Any) -> OcpiServerSettings:
        """OCPI_TOKEN, OCPI_CLIENT_ID, OCPI_CLIENT_SECRET, OCPI_JWT_SECRET, OCPI_PUBLIC_URL.

        OCPI_PUBLIC_URL has no default: unset, links use the request's own base URL, which is right
        for a server on any host and port; set it when a proxy changes what NDW sees.
        """
        from evpipeline import settings

        values: dict[str, Any] = {
            "token": settings.get("OCPI_TOKEN"),
            "client_id": settings.get("OCPI_CLIENT_ID"),
            "client_secret": settings.get("OCPI_CLIENT_SECRET"),
            "jwt_secret": os.environ.get("OCPI_JWT_SECRET", ""),
            "public_url": os.environ.get("OCPI_PUBLIC_URL", ""),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def oauth_enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    def jwt_key(self) -> bytes:
        """32-byte HS256 key: HMAC-SHA256 of OCPI_JWT_SECRET, else of OCPI_CLIENT_SECRET.

        Deterministic, so tokens survive restarts and are valid on every replica; derived from
        the client secret by default, so rotating that secret revokes every issued token.
        """
        secret = self.jwt_secret or self.client_secret
        return hmac.new(secret.encode(), _JWT_KEY_CONTEXT, hashlib.sha256).digest()


# --------------------------------------------------------------------------------------------
# The in-memory data set


def _micros(when: datetime) -> int:
    if when.tzinfo is None:  # the mart stores UTC
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(microseconds=1)


@dataclass(eq=False)
class Collection:
    """One module's objects in the export's stable order: JSON bytes, keys, wire last_updated."""

    bodies: list[bytes]
    keys: list[tuple[str, str, str]]
    updated: np.ndarray  # int64 microseconds since the epoch, parallel to bodies
    by_id: dict[str, tuple[int, ...]] = field(default_factory=dict)  # casefolded id -> positions
    _windows: OrderedDict[tuple[int | None, int | None], np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, bodies: list[bytes], keys: list[tuple[str, str, str]], updated: list[datetime]) -> Collection:
        by_id: dict[str, list[int]] = {}
        for i, (_cc, _pid, object_id) in enumerate(keys):
            by_id.setdefault(object_id.casefold(), []).append(i)  # ids are CiStrings
        return cls(
            bodies=bodies,
            keys=list(keys),
            updated=np.fromiter((_micros(u) for u in updated), dtype=np.int64, count=len(updated)),
            by_id={k: tuple(v) for k, v in by_id.items()},
        )

    def __len__(self) -> int:
        return len(self.bodies)

    def window(self, date_from: int | None, date_to: int | None) -> Sequence[int]:
        """Positions with date_from <= last_updated < date_to, in stable order (cached per window:
        a crawl asks for the same window on every page)."""
        if date_from is None and date_to is None:
            return range(len(self.bodies))
        key = (date_from, date_to)
        with self._lock:
            cached = self._windows.get(key)
            if cached is not None:
                self._windows.move_to_end(key)
                return cached
        mask = np.ones(len(self.updated), dtype=bool)
        if date_from is not None:
            mask &= self.updated >= date_from
        if date_to is not None:
            mask &= self.updated < date_to
        positions = np.flatnonzero(mask)
        with self._lock:
            self._windows[key] = positions
            while len(self._windows) > 32:
                self._windows.popitem(last=False)
        return positions

    def page(self, positions: Sequence[int], offset: int, limit: int) -> list[bytes]:
        chosen = positions[offset:offset + limit]
        if isinstance(chosen, range):
            return self.bodies[chosen.start:chosen.stop]
        return [self.bodies[i] for i in chosen.tolist()]  # type: ignore[attr-defined]


@dataclass(eq=False)
class DataVersion:
    """One immutable data set, named by a hash of its content (same data, same token)."""

    token: str
    locations: Collection
    tariffs: Collection
    data_as_of: datetime | None
    loaded_at: float  # time.time()
    signature: tuple[int, ...] = ()

    @classmethod
    def from_export(cls, export: OcpiExport, signature: tuple[int, ...] = ()) -> DataVersion:
        locations = [body.encode() for body in export.locations]
        tariffs = [body.encode() for body in export.tariffs]
        digest = hashlib.blake2b(digest_size=8)
        for part in (locations, tariffs):
            for body in part:
                digest.update(body)
                digest.update(b"\x1e")
            digest.update(b"\x1d")
        return cls(
            token=digest.hexdigest(),
            locations=Collection.build(locations, export.location_keys, export.location_updated),
            tariffs=Collection.build(tariffs, export.tariff_keys, export.tariff_updated),
            data_as_of=export.data_as_of,
            loaded_at=time.time(),
            signature=signature,
        )

    def module(self, name: str) -> Collection:
        return self.locations if name == "locations" else self.tariffs


def snapshot_path(data_dir: str | Path | None = None) -> Path:
    """`<data dir>/snapshots/warehouse.duckdb`; without a data dir, the snapshot next to the warehouse."""
    from evpipeline.model.snapshot import SNAPSHOT_NAME, snapshot_dir

    if data_dir:
        return Path(data_dir).expanduser().resolve() / "snapshots" / SNAPSHOT_NAME
    from evpipeline import settings

    return snapshot_dir(settings.warehouse_path()) / SNAPSHOT_NAME


def load_snapshot(path: Path) -> OcpiExport:
    """`build_export` on a read-only connection to the snapshot (UTC, as the daily export)."""
    from evpipeline.warehouse.resource import attach

    # Not warehouse.connect(): it retries for minutes on IOException to wait out a writer's lock,
    # but nobody writes the snapshot (it is swapped in whole), so a failure is final: fail fast and
    # keep serving the previous version. One core stays free for the event loop: a reload must not
    # starve the requests being served.
    con = attach(str(path), read_only=True, config={"threads": max(1, (os.cpu_count() or 2) - 1)})
    try:
        con.execute("SET TimeZone = 'UTC'")
        return build_export(con)
    finally:
        con.close()


def _file_signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class SnapshotStore:
    """The served data: the snapshot's export in memory, reloaded when the file changes.

    The snapshot is replaced with os.replace, so a load opens either the old or the new complete
    file, never a half-written one. A load runs off the request path (the watcher thread) and the
    new version is swapped in with one reference assignment. Superseded versions stay available
    to `version(token)` for `retain_seconds` (at most `keep_previous` of them), so a crawl that
    started on one keeps consistent pages; an unknown or expired token gets the current version.
    """

    def __init__(
        self,
        path: Path | str | None,
        *,
        poll_interval: float = 2.0,
        keep_previous: int = 1,
        retain_seconds: float = 900.0,
        loader: Callable[[Path], OcpiExport] = load_snapshot,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.poll_interval, self.keep_previous, self.retain_seconds = poll_interval, keep_previous, retain_seconds
        self._loader, self._clock = loader, clock
        self._current: DataVersion | None = None
        # token -> (version, retired_at or None for the current one); replaced, never mutated.
        self._versions: dict[str, tuple[DataVersion, float | None]] = {}
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_signature: tuple[int, ...] | None = None
        self._failed_at = 0.0
        self.reloads = 0
        self.last_error: str | None = None

    @classmethod
    def from_export(cls, export: OcpiExport, **kwargs: Any) -> SnapshotStore:
        """A store serving a fixed export (no file): benchmarks and embedding."""
        store = cls(None, **kwargs)
        store.install(DataVersion.from_export(export))
        return store

    # -- reads (request path, lock-free) --------------------------------------------------------
    @property
    def current(self) -> DataVersion | None:
        return self._current

    def version(self, token: str | None) -> DataVersion | None:
        """The version a pinned crawl started on, if still retained; else the current one."""
        if token:
            found = self._versions.get(token)
            if found is not None and (found[1] is None or self._clock() - found[1] <= self.retain_seconds):
                return found[0]
        return self._current

    # -- loading ----------------------------------------------------------------------------------
    def install(self, version: DataVersion) -> bool:
        """Make `version` current (atomic swap); False when it holds the same data as the current one."""
        with self._load_lock:
            return self._install(version)

    def _install(self, version: DataVersion) -> bool:
        now = self._clock()
        old = self._current
        if old is not None and old.token == version.token:
            old.signature = version.signature  # same content in a new file: nothing to swap
            return False
        versions = {
            t: (v, retired) for t, (v, retired) in self._versions.items()
            if retired is not None and now - retired <= self.retain_seconds and t != version.token
        }
        if old is not None:
            versions.pop(old.token, None)
            versions[old.token] = (old, now)
        retired = list(versions.items())  # in order of retirement, the newest last
        kept = retired[max(0, len(retired) - self.keep_previous):] if self.keep_previous > 0 else []
        self._versions = {**dict(kept), version.token: (version, None)}
        self._current = version
        self.reloads += 1
        return True

    def refresh(self, *, force: bool = False) -> bool:
        """Reload if the snapshot file changed (or `force`); True when a new version became current."""
        if self.path is None:
            return False
        with self._load_lock:
            signature = _file_signature(self.path)
            if signature is None:
                if self._current is None:
                    self.last_error = f"no snapshot at {self.path} yet"
                return False
            current = self._current
            if not force and current is not None and current.signature == signature:
                return False
            if not force and signature == self._failed_signature and time.monotonic() - self._failed_at < 60:
                return False  # a file that failed to load is retried once a minute, not every poll
            started = time.monotonic()
            try:
                export = self._loader(self.path)
            except Exception as exc:  # keep serving the previous version
                self._failed_signature, self._failed_at = signature, time.monotonic()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("OCPI pull server: loading snapshot %s failed; serving the previous data", self.path)
                return False
            version = DataVersion.from_export(export, signature)
            changed = self._install(version)
            self.last_error = None
            log.info(
                "OCPI pull server: snapshot %s %s in %.2fs (%d locations, %d tariffs, version %s)",
                self.path, "loaded" if changed else "unchanged", time.monotonic() - started,
                len(version.locations), len(version.tariffs), version.token,
            )
            return changed

    def start(self) -> None:
        """Load once now, then watch the file in a daemon thread (idempotent)."""
        if self._thread is not None or self.path is None:
            return
        try:
            self.refresh()
        except Exception:  # never keep the server from starting; the watcher retries
            log.exception("OCPI pull server: initial snapshot load failed")
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="ocpi-snapshot-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:
                log.exception("OCPI pull server: snapshot watcher")


# --------------------------------------------------------------------------------------------
# Wire helpers

_stamp_cache: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Envelope timestamp, OCPI DateTime in UTC with Z (formatted once per second)."""
    global _stamp_cache
    second = int(time.time())
    if _stamp_cache[0] != second:
        _stamp_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp_cache[1]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _envelope(data: bytes | None, status_code: int = 1000, message: str = "Success") -> bytes:
    head = b'{"data":' + data + b"," if data is not None else b"{"
    tail = f'"status_code":{status_code},"status_message":{json.dumps(message)},"timestamp":"{_timestamp()}"}}'
    return head + tail.encode()


def ocpi_response(data: bytes | None, *, http_status: int = 200, status_code: int = 1000, message: str = "Success",
                  headers: dict[str, str] | None = None) -> Response:
    """An OCPI envelope around already-serialised `data` (None: no data field)."""
    return Response(_envelope(data, status_code, message), status_code=http_status, headers=headers,
                    media_type="application/json")


def ocpi_error(http_status: int, status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return ocpi_response(None, http_status=http_status, status_code=status_code, message=message, headers=headers)


class BadParameter(ValueError):
    """A query parameter OCPI defines, with a value it does not allow (HTTP 400, OCPI 2001)."""


def parse_datetime(name: str, value: str) -> int:
    """An OCPI DateTime query value -> microseconds since the epoch (UTC)."""
    match = _DATETIME.match(value.strip())
    if not match:
        raise BadParameter(f"{name} is not an OCPI DateTime (e.g. 2026-11-01T08:00:00Z): {value[:40]!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    micros = int((match.group(7) or "0").ljust(6, "0")[:6])
    try:
        when = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        raise BadParameter(f"{name} is not a valid date and time: {value[:40]!r}") from None
    zone = match.group(8)
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        when -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return _micros(when)


def _non_negative(name: str, value: str) -> int:
    if not _INTEGER.match(value):
        raise BadParameter(f"{name} must be a non-negative integer, got {value[:40]!r}")
    return int(value) if len(value) <= 18 else 10**18  # no giant int parsing; anything that big is "past the end"


@dataclass(frozen=True)
class PageQuery:
    offset: int
    limit: int  # effective: min(requested, cap)
    date_from: int | None
    date_to: int | None
    filters: dict[str, str]  # date_from/date_to as the client sent them, for the next Link
    snapshot: str | None


def parse_page_query(params: Any, cap: int) -> PageQuery:
    """OCPI paging parameters; empty values count as absent, unknown parameters are ignored."""
    raw = {k: params.get(k, "") for k in ("offset", "limit", "date_from", "date_to", "snapshot")}
    offset = _non_negative("offset", raw["offset"]) if raw["offset"] else 0
    limit = cap
    if raw["limit"]:
        requested = _non_negative("limit", raw["limit"])
        if requested == 0:
            # An empty last page would tell a client that nothing exists ("all pages together are
            # the new truth"): refuse rather than risk a client dropping every object.
            raise BadParameter("limit must be at least 1")
        limit = min(requested, cap)
    date_from = parse_datetime("date_from", raw["date_from"]) if raw["date_from"] else None
    date_to = parse_datetime("date_to", raw["date_to"]) if raw["date_to"] else None
    filters = {k: raw[k] for k in ("date_from", "date_to") if raw[k]}
    return PageQuery(offset, limit, date_from, date_to, filters, raw["snapshot"] or None)


# --------------------------------------------------------------------------------------------
# Auth


def _token_ok(presented: str, settings: OcpiServerSettings) -> bool:
    """Base64 (2.2.1) or raw (2.1.1/2.2 compatibility) token, compared in constant time."""
    if not settings.token:
        return False
    given = presented.encode()
    encoded = base64.b64encode(settings.token.encode())
    # Both comparisons always run (`|`, not `or`): timing does not reveal which form matched.
    return hmac.compare_digest(given, encoded) | hmac.compare_digest(given, settings.token.encode())


def _bearer_ok(presented: str, settings: OcpiServerSettings, key: bytes) -> str | None:
    """None when the JWT is valid for us, else why not (never the token itself)."""
    if not settings.oauth_enabled:
        return "OAuth2 is not configured"
    try:
        claims = jwt.decode(
            presented, key, algorithms=[JWT_ALGORITHM], audience=JWT_AUDIENCE, issuer=JWT_ISSUER,
            leeway=settings.jwt_leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return "token expired"
    except jwt.InvalidTokenError as exc:
        return f"invalid token ({type(exc).__name__})"
    if not hmac.compare_digest(str(claims.get("sub", "")).encode(), settings.client_id.encode()):
        return "token issued to another client"
    return None


def issue_token(settings: OcpiServerSettings, key: bytes | None = None, now: float | None = None) -> str:
    """A signed JWT (HS256) for the OAuth2 client: iss, aud, sub = client id, iat, nbf, exp, jti."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": settings.client_id, "iat": issued, "nbf": issued,
        "exp": issued + settings.token_lifetime, "jti": uuid.uuid4().hex, "scope": "ocpi:pull",
    }
    return jwt.encode(claims, key or settings.jwt_key(), algorithm=JWT_ALGORITHM)


def _challenge(settings: OcpiServerSettings, error: str | None = None) -> str:
    bearer = 'Bearer realm="ocpi"' + (f', error="{error}"' if error else "")
    schemes = (['Token realm="ocpi"'] if settings.token else []) + ([bearer] if settings.oauth_enabled else [])
    return ", ".join(schemes) or 'Token realm="ocpi"'


class OcpiMiddleware:
    """Echo X-Request-ID / X-Correlation-ID on every answer (a UUID when absent), authenticate
    everything but the public paths, and turn an unhandled error into an OCPI 3000 envelope."""

    def __init__(self, app: ASGIApp, settings: OcpiServerSettings) -> None:
        self.app, self.settings, self.key = app, settings, settings.jwt_key()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # lower-case names; a repeated header keeps its last value
        echo = [(name, headers.get(name) or str(uuid.uuid4()).encode()) for name in (b"x-request-id", b"x-correlation-id")]
        started = False

        async def send_with_ids(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *echo]}
            await send(message)

        try:
            if scope["path"] not in PUBLIC_PATHS:
                refusal = self._authenticate(headers.get(b"authorization", b"").decode("latin-1"))
                if refusal is not None:
                    client = (scope.get("client") or ("?", 0))[0]
                    log.info("401 %s %s from %s: %s", scope["method"], scope["path"], client, refusal[0])
                    await refusal[1](scope, receive, send_with_ids)
                    return
            await self.app(scope, receive, send_with_ids)
        except Exception:
            log.exception("OCPI pull server: %s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            await ocpi_error(500, 3000, "Internal server error")(scope, receive, send_with_ids)

    def _authenticate(self, header: str) -> tuple[str, Response] | None:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        scheme = scheme.lower()  # auth schemes are case-insensitive (RFC 9110)
        if scheme == "token" and credentials:
            if _token_ok(credentials, self.settings):
                return None
            reason, error = "unknown token", None
        elif scheme == "bearer" and credentials:
            reason = _bearer_ok(credentials, self.settings, self.key)
            if reason is None:
                return None
            error = "invalid_token"
        else:
            reason, error = ("no Authorization header" if not header else f"unsupported scheme {scheme[:20]!r}"), None
        challenge = {"WWW-Authenticate": _challenge(self.settings, error)}
        return reason, ocpi_error(401, 2000, "Unauthorized: missing or invalid credentials", challenge)


async def _read_form(request: Request) -> dict[str, list[str]]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise BadParameter("the body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise BadParameter("request body too large")
    form: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise BadParameter("the body is not UTF-8") from None
    for k, v in pairs:
        form.setdefault(k, []).append(v)
    return form


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    # RFC 6749 2.3.1: id and secret are form-urlencoded before the Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


# --------------------------------------------------------------------------------------------
# The app


def create_ocpi_app(store: SnapshotStore, settings: OcpiServerSettings) -> Starlette:
    """The pull server: OCPI 2.2.1 Locations + Tariffs (Sender), versions, OAuth2 token endpoint."""
    jwt_key = settings.jwt_key()

    def base_url(request: Request) -> str:
        return settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")

    def data_or_503() -> Response | None:
        if store.current is None:
            return ocpi_error(503, 3000, "No data available yet: the snapshot has not been loaded",
                              {"Retry-After": str(max(1, round(store.poll_interval)))})
        return None

    async def versions(request: Request) -> Response:
        return ocpi_response(_dumps([{"version": VERSION, "url": f"{base_url(request)}{BASE_PATH}"}]))

    async def version_details(request: Request) -> Response:
        base = f"{base_url(request)}{BASE_PATH}"
        endpoints = [{"identifier": m, "role": "SENDER", "url": f"{base}/{m}"} for m in MODULES]
        return ocpi_response(_dumps({"version": VERSION, "endpoints": endpoints}))

    def listing(module: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if (unavailable := data_or_503()) is not None:
                return unavailable
            try:
                query = parse_page_query(request.query_params, settings.page_cap)
            except BadParameter as exc:
                return ocpi_error(400, 2001, str(exc))
            version = store.version(query.snapshot)
            assert version is not None
            collection = version.module(module)
            positions = collection.window(query.date_from, query.date_to)
            total = len(positions)
            page = collection.page(positions, query.offset, query.limit)
            headers = {"X-Total-Count": str(total), "X-Limit": str(query.limit)}
            if page and query.offset + len(page) < total:
                next_query = {"offset": str(query.offset + len(page)), "limit": str(query.limit), **query.filters,
                              "snapshot": version.token}
                url = f"{base_url(request)}{BASE_PATH}/{module}?{urlencode(next_query, safe=':', quote_via=quote)}"
                headers["Link"] = f'<{url}>; rel="next"'
            return ocpi_response(b"[" + b",".join(page) + b"]", headers=headers)

        return handler

    def find_location(request: Request) -> tuple[bytes | None, Response | None]:
        if (unavailable := data_or_503()) is not None:
            return None, unavailable
        version = store.current
        assert version is not None
        location_id = request.path_params["location_id"]
        found = version.locations.by_id.get(location_id.casefold(), ())
        if len(found) > 1:  # the same id at several CPOs: the OCPI routing headers say which one
            cc = request.headers.get("OCPI-to-country-code", "").casefold()
            pid = request.headers.get("OCPI-to-party-id", "").casefold()
            found = tuple(i for i in found if (not cc or version.locations.keys[i][0].casefold() == cc)
                          and (not pid or version.locations.keys[i][1].casefold() == pid))
            if len(found) > 1:
                return None, ocpi_error(409, 2002, f"Location {location_id!r} exists at several parties: "
                                        "send OCPI-to-country-code and OCPI-to-party-id")
        if not found:
            return None, ocpi_error(404, 2003, f"Unknown location {location_id!r}")
        return version.locations.bodies[found[0]], None

    def _child(items: list[dict[str, Any]], name: str, value: str) -> dict[str, Any] | None:
        return next((item for item in items if str(item.get(name, "")).casefold() == value.casefold()), None)

    async def location(request: Request) -> Response:
        body, error = find_location(request)
        return error if body is None else ocpi_response(body)  # type: ignore[return-value]

    async def evse_or_connector(request: Request) -> Response:
        body, error = find_location(request)
        if body is None:
            return error  # type: ignore[return-value]
        evse_uid = request.path_params["evse_uid"]
        evse = _child(json.loads(body).get("evses", []), "uid", evse_uid)
        if evse is None:
            return ocpi_error(404, 2003, f"Unknown EVSE {evse_uid!r} at location {request.path_params['location_id']!r}")
        connector_id = request.path_params.get("connector_id")
        if connector_id is None:
            return ocpi_response(_dumps(evse))
        connector = _child(evse.get("connectors", []), "id", connector_id)
        if connector is None:
            return ocpi_error(404, 2003, f"Unknown connector {connector_id!r} on EVSE {evse_uid!r}")
        return ocpi_response(_dumps(connector))

    async def token(request: Request) -> Response:
        try:
            form = await _read_form(request)
        except BadParameter as exc:
            return _oauth_error(400, "invalid_request", str(exc))
        if any(len(values) > 1 for values in form.values()):
            return _oauth_error(400, "invalid_request", "a parameter is repeated")
        fields = {k: v[0] for k, v in form.items()}
        if "grant_type" not in fields:
            return _oauth_error(400, "invalid_request", "grant_type is missing")
        if fields["grant_type"] != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
        basic = _basic_credentials(request.headers.get("authorization", ""))
        if basic is not None and ("client_secret" in fields):
            return _oauth_error(400, "invalid_request", "use one client authentication method, not two")
        client_id, secret = basic if basic is not None else (fields.get("client_id", ""), fields.get("client_secret", ""))
        valid = settings.oauth_enabled & hmac.compare_digest(client_id.encode(), settings.client_id.encode()) \
            & hmac.compare_digest(secret.encode(), settings.client_secret.encode())
        if not valid:
            log.info("token endpoint: invalid client credentials from %s", request.client.host if request.client else "?")
            return _oauth_error(401, "invalid_client", "client authentication failed",
                                {"WWW-Authenticate": 'Basic realm="ocpi"'})
        return JSONResponse(
            {"access_token": issue_token(settings, jwt_key), "token_type": "Bearer",
             "expires_in": settings.token_lifetime, "scope": "ocpi:pull"},
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def health(request: Request) -> Response:
        version = store.current
        body = {
            "status": "ok" if version is not None else "no data",
            "version": version.token if version else None,
            "data_as_of": version.data_as_of.strftime("%Y-%m-%dT%H:%M:%SZ") if version and version.data_as_of else None,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(version.loaded_at)) if version else None,
        }
        return JSONResponse(body, status_code=200 if version is not None else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return ocpi_error(404, 2000, "Unknown resource")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        allow = exc.headers.get("Allow", "GET") if isinstance(exc, HTTPException) and exc.headers else "GET"
        return ocpi_error(405, 2000, "Method not allowed", {"Allow": allow})

    def both(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str] | None = None) -> list[Route]:
        """The path with and without a trailing slash (no redirects: clients would resend credentials)."""
        return [Route(path, endpoint, methods=methods or ["GET"]), Route(path + "/", endpoint, methods=methods or ["GET"])]

    routes = [
        *both(f"{OCPI_PREFIX}/versions", versions),
        *both(BASE_PATH, version_details),
        *both(f"{BASE_PATH}/locations", listing("locations")),
        *both(f"{BASE_PATH}/tariffs", listing("tariffs")),
        *both(f"{BASE_PATH}/locations/{{location_id}}", location),
        *both(f"{BASE_PATH}/locations/{{location_id}}/{{evse_uid}}", evse_or_connector),
        *both(f"{BASE_PATH}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", evse_or_connector),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route("/health", health),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.start()
        try:
            yield
        finally:
            store.stop()

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: method_not_allowed})
    app.add_middleware(OcpiMiddleware, settings=settings)
    app.state.store, app.state.settings = store, settings
    return app


def app_from_env(data_dir: str | Path | None = None, *, page_cap: int = DEFAULT_PAGE_CAP) -> Starlette:
    """The pull server as `evpipeline serve-ocpi` / `dev` run it: the snapshot under `data_dir`
    (default: next to the warehouse), credentials from the OCPI_* variables."""
    from evpipeline.settings import ENVIRONMENT

    defaults = [name for name in ("OCPI_TOKEN", "OCPI_CLIENT_SECRET")
                if os.environ.get(name, ENVIRONMENT[name][0]) == ENVIRONMENT[name][0]]
    if defaults:  # the development values guard nothing; say so once, without printing them
        log.warning("OCPI pull server: %s not set, using the development default(s)", ", ".join(defaults))
    return create_ocpi_app(SnapshotStore(snapshot_path(data_dir)), OcpiServerSettings.from_env(page_cap=page_cap))
