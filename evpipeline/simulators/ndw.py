"""NDW DOT-NL simulator: IAM token endpoint, OCPI 2.2.1 push receiver that validates, daily crawler.

Faithful to NDW's supplier page (seed 002) and the OCPI rules (docs/ocpi.md):
- `POST /auth/realms/ndw/protocol/openid-connect/token` (client credentials, form-encoded) answers
  Keycloak's shape; tokens expire by the simulator clock (`expires_in` 1800 by default).
- Push under `/ocpi/2.2.1/`: PUT/PATCH Location, EVSE and Connector; PUT/DELETE Tariff. Bearer token
  required (401). Invalid JSON -> 400; unknown path, or PATCH/DELETE of (or PUT below) something never
  PUT -> 404; content that is not compliant with the NDW profile of `evpipeline.ocpi.definition` -> HTTP 200
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
(by default) that each complies with the NDW profile.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urljoin, urlsplit

import requests

from evpipeline.ocpi import definition as ocpi
from evpipeline.simulators.toolkit import Request, Response, SimClock, SimServer

TOKEN_PATH = "/auth/realms/ndw/protocol/openid-connect/token"
OCPI_BASE = "/ocpi/2.2.1"
_SEG = r"[^/]+"
Key = tuple[str, str, str]


def _key(country_code: str, party_id: str, object_id: str) -> Key:
    """OCPI ids are CiStrings: compared case-insensitively."""
    return (country_code.casefold(), party_id.casefold(), object_id.casefold())


def _same(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.casefold() == b.casefold()


def _later(a: str | None, b: str | None) -> str | None:
    """The later of two OCPI DateTimes (for bumping a parent's last_updated)."""
    if a is None or b is None:
        return a or b
    return a if ocpi.parse_datetime(a) >= ocpi.parse_datetime(b) else b


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


class _Reply(Exception):  # noqa: N818 - control flow inside a push handler
    def __init__(self, http_status: int, status_code: int | None, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status_code, self.message = http_status, status_code, message


class NdwSimulator(SimServer):
    """NDW's IAM token endpoint and OCPI 2.2.1 push receiver, validating with the NDW profile."""

    name = "ndw"

    def __init__(
        self,
        *,
        scale: float = 1.0,  # accepted for the registry; NDW has no fleet of its own
        client_id: str = "sim-ndw-client",
        client_secret: str = "sim-ndw-secret",
        token_lifetime: float = 1800.0,
        refresh_lifetime: float = 3600.0,
        profile: ocpi.Profile = "ndw",
        clock: SimClock | None = None,
        seed: int = 7,
        **kwargs: Any,
    ) -> None:
        super().__init__(clock=clock, seed=seed, **kwargs)
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime, self.refresh_lifetime = token_lifetime, refresh_lifetime
        self.profile = profile
        self.tokens: dict[str, IssuedToken] = {}
        self.tokens_issued = 0
        self.locations: dict[Key, dict[str, Any]] = {}
        self.tariffs: dict[Key, dict[str, Any]] = {}
        self.pushes: list[PushRecord] = []
        self._reject: list[tuple[int, str]] = []  # scripted content rejections, in order
        self._unauthorized = 0

        self.route("POST", TOKEN_PATH, self._token)
        loc = f"{OCPI_BASE}/locations/(?P<cc>{_SEG})/(?P<pid>{_SEG})/(?P<loc>{_SEG})(?:/(?P<evse>{_SEG}))?(?:/(?P<conn>{_SEG}))?/?"
        tariff = f"{OCPI_BASE}/tariffs/(?P<cc>{_SEG})/(?P<pid>{_SEG})/(?P<tid>{_SEG})/?"
        for method in ("PUT", "PATCH"):
            self.route(method, loc, self._push_location)
        for method in ("PUT", "DELETE"):
            self.route(method, tariff, self._push_tariff)
        self.route("POST", r"/_sim/ndw", self._admin_knobs)
        self.route("GET", r"/_sim/ndw/state", self._admin_state)

    # -- knobs and inspection ----------------------------------------------------------------
    def reject_content(self, count: int = 1, code: int = 2000, message: str = "rejected by simulator knob") -> None:
        """Answer the next `count` pushes with HTTP 200 + OCPI `code` (2xxx) and store nothing."""
        if not 2000 <= code <= 2999:
            raise ValueError("content rejections are OCPI 2xxx codes")
        with self.lock:
            self._reject.extend([(code, message)] * count)

    def force_unauthorized(self, count: int = 1) -> None:
        """Answer the next `count` pushes with 401, as if the token had been revoked."""
        with self.lock:
            self._unauthorized += count

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

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def location(self, country_code: str, party_id: str, location_id: str) -> dict[str, Any] | None:
        """A copy of the Location NDW holds (with its EVSEs and connectors), or None."""
        with self.lock:
            found = self.locations.get(_key(country_code, party_id, location_id))
            return copy.deepcopy(found)

    def evse(self, country_code: str, party_id: str, location_id: str, evse_uid: str) -> dict[str, Any] | None:
        found = self.location(country_code, party_id, location_id)
        return _find(found.get("evses", []), "uid", evse_uid) if found else None

    def connector(self, country_code: str, party_id: str, location_id: str, evse_uid: str, connector_id: str) -> dict[str, Any] | None:
        found = self.evse(country_code, party_id, location_id, evse_uid)
        return _find(found["connectors"], "id", connector_id) if found else None

    def tariff(self, country_code: str, party_id: str, tariff_id: str) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.tariffs.get(_key(country_code, party_id, tariff_id)))

    def accepted_pushes(self) -> list[PushRecord]:
        with self.lock:
            return [p for p in self.pushes if p.accepted]

    # -- OCPI envelope -----------------------------------------------------------------------
    def envelope(self, http_status: int, status_code: int, message: str, headers: dict[str, str] | None = None) -> Response:
        body = {"status_code": status_code, "status_message": message, "timestamp": ocpi.ocpi_datetime(self.clock.now())}
        return Response.json(body, http_status, headers)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return self.envelope(429, 2000, "Too Many Requests", {"Retry-After": str(max(1, round(retry_after)))})

    def server_error(self, request: Request, status: int) -> Response:
        return self.envelope(status, 3000, "injected server error")

    def not_found(self, request: Request) -> Response:
        return self.envelope(404, 2000, "Invalid resource")

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return self.envelope(405, 2000, "Method not supported by NDW", {"Allow": ", ".join(sorted(set(allowed)))})

    # -- token endpoint ----------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.header("Authorization") or ""
        if basic.lower().startswith("basic "):  # Keycloak also accepts client_secret_basic
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if "grant_type" not in form:
            return Response.json({"error": "invalid_request", "error_description": "Missing form parameter: grant_type"}, 400)
        if form["grant_type"] != "client_credentials":
            return Response.json({"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}, 400)
        valid = hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(client_secret, self.client_secret)
        if self.faults.bad_auth or not valid:
            return Response.json({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}, 401)
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = IssuedToken(client_id, self.clock.now() + timedelta(seconds=self.token_lifetime))
            self.tokens_issued += 1
        return Response.json({
            "access_token": token,
            "expires_in": int(self.token_lifetime),
            "refresh_expires_in": int(self.refresh_lifetime),
            "refresh_token": "",
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "scope": "profile email",
        })

    def _authorize(self, request: Request) -> None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        with self.lock:
            if self._unauthorized > 0:
                self._unauthorized -= 1
                raise _Reply(401, 2000, "Unauthorized: token revoked")
            issued = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if issued is None or self.faults.bad_auth:
                raise _Reply(401, 2000, "Unauthorized: missing or unknown bearer token")
            if self.clock.now() >= issued.expires_at:
                raise _Reply(401, 2000, "Unauthorized: token expired")

    # -- push receiver -----------------------------------------------------------------------
    def _push_location(self, request: Request) -> Response:
        return self._push(request, self._apply_location)

    def _push_tariff(self, request: Request) -> Response:
        return self._push(request, self._apply_tariff)

    def _push(self, request: Request, apply: Callable[[str, dict[str, str], Any, PushRecord], tuple[int, str]]) -> Response:
        params = {k: unquote(v) for k, v in request.params.items()}
        kind = "tariff" if "tid" in params else "connector" if "conn" in params else "evse" if "evse" in params else "location"
        record = PushRecord(
            request.method, request.path, kind, 0, None, "", False, self.clock.now(), time.monotonic(),
            request.header("X-Request-ID"),
        )
        echo = {h: v for h in ("X-Request-ID", "X-Correlation-ID") if (v := request.header(h))}
        try:
            self._authorize(request)
            body = None
            if request.method != "DELETE":
                try:
                    body = json.loads(request.body)
                except ValueError:  # includes an empty body and undecodable bytes
                    raise _Reply(400, 2000, "Invalid JSON message") from None
            record.body = body
            with self.lock:
                http_status, message = apply(request.method, params, body, record)
            record.accepted = True
            if http_status == 204:
                record.http_status, record.status_message = 204, message
                response = Response.empty(204, echo)
            else:
                record.http_status, record.status_code, record.status_message = http_status, 1000, message
                response = self.envelope(http_status, 1000, message, echo)
        except _Reply as reply:
            record.http_status, record.status_code, record.status_message = reply.http_status, reply.status_code, reply.message
            headers = {**echo, **({"WWW-Authenticate": 'Bearer error="invalid_token"'} if reply.http_status == 401 else {})}
            response = self.envelope(reply.http_status, reply.status_code or 2000, reply.message, headers)
        with self.lock:
            self.pushes.append(record)
        return response

    def _content_checks(self, body: Any, kind: ocpi.Kind, patch: bool, ids: dict[str, str]) -> None:
        """The OCPI-level checks (HTTP 200 + 2xxx): knob, object shape, ids, last_updated, schema."""
        if self._reject:
            code, message = self._reject.pop(0)
            raise _Reply(200, code, message)
        if not isinstance(body, dict):
            raise _Reply(200, 2001, "The body must be a JSON object")
        for name, expected in ids.items():
            if name in body and not _same(body[name], expected):  # a missing id is a schema error below
                raise _Reply(200, 2001, f"{name} {body.get(name)!r} in the body differs from {expected!r} in the URL")
        if patch and "last_updated" not in body:
            raise _Reply(200, 2001, "A PATCH must contain last_updated")
        errors = ocpi.validate_patch(kind, body, self.profile) if patch else ocpi.validate(kind, body, self.profile)
        if errors:
            raise _Reply(200, 2001, _summary("Not compliant", errors))

    def _apply_location(self, method: str, p: dict[str, str], body: Any, record: PushRecord) -> tuple[int, str]:
        key = _key(p["cc"], p["pid"], p["loc"])
        stored = self.locations.get(key)
        kind: ocpi.Kind = record.kind  # type: ignore[assignment]
        patch = method == "PATCH"
        evse = _find(stored.get("evses", []), "uid", p["evse"]) if stored and "evse" in p else None
        conn = _find(evse["connectors"], "id", p["conn"]) if evse and "conn" in p else None
        target = {"location": stored, "evse": evse, "connector": conn}[kind]
        parent = {"location": True, "evse": stored, "connector": evse}[kind]
        if (patch and target is None) or parent is None:
            raise _Reply(404, 2003 if stored is None else 2000, f"Invalid resource: unknown {kind if patch else 'parent'}")

        ids = {
            "location": {"country_code": p["cc"], "party_id": p["pid"], "id": p["loc"]},
            "evse": {"uid": p.get("evse", "")},
            "connector": {"id": p.get("conn", "")},
        }[kind]
        self._content_checks(body, kind, patch, ids)

        obj = {**target, **body} if patch and target is not None else body
        if kind == "location":
            result = obj
        else:
            result = copy.deepcopy(stored)
            assert result is not None
            new_evse = obj if kind == "evse" else copy.deepcopy(evse)
            if kind == "connector":
                assert new_evse is not None
                _upsert(new_evse["connectors"], "id", obj)
                new_evse["last_updated"] = _later(new_evse.get("last_updated"), obj.get("last_updated"))
            _upsert(result.setdefault("evses", []), "uid", new_evse)
            # The receiver keeps the parent's last_updated no older than its children's (OCPI).
            result["last_updated"] = _later(result.get("last_updated"), new_evse.get("last_updated"))
        errors = ocpi.validate("location", result, self.profile)
        if errors:
            raise _Reply(200, 2001, _summary("The resulting Location would not be compliant", errors))
        self.locations[key] = result
        created = target is None
        return (201, f"{kind} created") if created else (200, f"{kind} updated")

    def _apply_tariff(self, method: str, p: dict[str, str], body: Any, record: PushRecord) -> tuple[int, str]:
        key = _key(p["cc"], p["pid"], p["tid"])
        if method == "DELETE":
            if key not in self.tariffs:
                raise _Reply(404, 2000, "Invalid resource: unknown tariff")
            del self.tariffs[key]
            record.warnings = self._tariff_references(p["tid"])
            return 204, "tariff deleted"
        self._content_checks(body, "tariff", False, {"country_code": p["cc"], "party_id": p["pid"], "id": p["tid"]})
        created = key not in self.tariffs
        self.tariffs[key] = body
        return (201, "tariff created") if created else (200, "tariff updated")

    def _tariff_references(self, tariff_id: str) -> list[str]:
        """OCPI recommends not deleting a tariff a connector still references; NDW accepts it anyway."""
        refs = [
            f"{loc['id']}/{evse['uid']}/{conn['id']}"
            for loc in self.locations.values()
            for evse in loc.get("evses", [])
            for conn in evse["connectors"]
            if any(_same(t, tariff_id) for t in conn.get("tariff_ids", []))
        ]
        return [f"deleted tariff is still referenced by connector {r}" for r in refs]

    # -- admin -------------------------------------------------------------------------------
    def _admin_knobs(self, request: Request) -> Response:
        spec = request.json() or {}
        if spec.get("reject_content"):
            self.reject_content(int(spec["reject_content"]), int(spec.get("reject_code", 2000)))
        if spec.get("force_401"):
            self.force_unauthorized(int(spec["force_401"]))
        if spec.get("revoke_tokens"):
            self.revoke_tokens()
        if "token_lifetime" in spec:
            self.token_lifetime = float(spec["token_lifetime"])
        return Response.json({"pending_rejections": len(self._reject), "pending_401": self._unauthorized})

    def _admin_state(self, request: Request) -> Response:
        with self.lock:
            return Response.json({
                "locations": list(self.locations.values()),
                "tariffs": list(self.tariffs.values()),
                "pushes": len(self.pushes),
                "accepted": sum(p.accepted for p in self.pushes),
            })


def _find(items: list[dict[str, Any]], field_name: str, value: str) -> dict[str, Any] | None:
    return next((item for item in items if _same(item.get(field_name), value)), None)


def _upsert(items: list[dict[str, Any]], field_name: str, obj: dict[str, Any]) -> None:
    for i, item in enumerate(items):
        if _same(item.get(field_name), obj[field_name]):
            items[i] = obj
            return
    items.append(obj)


def _summary(prefix: str, errors: list[str], limit: int = 5) -> str:
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return f"{prefix}: " + "; ".join(errors[:limit]) + more


# --------------------------------------------------------------------------------------------
# NDW's daily pull of a supplier's OCPI server


@dataclass
class CrawlResult:
    objects: list[dict[str, Any]]
    pages: int
    requests: int  # HTTP requests sent, token requests included
    headers_seen: list[dict[str, str]]  # response headers of every page, in order
    urls: list[str] = field(default_factory=list)  # every page URL requested
    problems: list[str] = field(default_factory=list)


class CrawlError(Exception):
    """The supplier's server broke the pull contract; `problems` says how."""

    def __init__(self, problems: list[str], result: CrawlResult | None = None) -> None:
        super().__init__("; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""))
        self.problems, self.result = problems, result


_DATETIME_Z = re.compile(ocpi.DATETIME_Z)
_FILTERS_KEPT_OUT = {"offset", "limit"}


class _Auth:
    def __init__(self, session: requests.Session, token: str | None, oauth: tuple[str, str, str] | None, base64_token: bool, timeout: float) -> None:
        if (token is None) == (oauth is None):
            raise ValueError("give exactly one of token= or oauth=(token_url, client_id, client_secret)")
        self.session, self.token, self.oauth, self.b64, self.timeout = session, token, oauth, base64_token, timeout
        self.bearer: str | None = None
        self.requests = 0

    def header(self) -> str:
        if self.token is not None:
            value = base64.b64encode(self.token.encode()).decode() if self.b64 else self.token
            return f"Token {value}"
        if self.bearer is None:
            self.refresh()
        return f"Bearer {self.bearer}"

    def refresh(self) -> None:
        assert self.oauth is not None
        token_url, client_id, client_secret = self.oauth
        self.requests += 1
        r = self.session.post(
            token_url, data={"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"},
            timeout=self.timeout,
        )
        try:
            payload = r.json()
        except ValueError:
            payload = None
        if r.status_code != 200 or not isinstance(payload, dict) or "access_token" not in payload:
            raise CrawlError([f"token endpoint {token_url} -> HTTP {r.status_code}: {r.text[:200]}"])
        self.bearer = str(payload["access_token"])


def crawl(
    base_url: str,
    *,
    token: str | None = None,
    oauth: tuple[str, str, str] | None = None,
    module: Literal["locations", "tariffs"] = "locations",
    limit: int | None = None,
    params: dict[str, str] | None = None,
    path_prefix: str = OCPI_BASE,
    base64_token: bool = True,
    profile: ocpi.Profile | None = "ndw",
    strict: bool = True,
    max_pages: int = 10_000,
    timeout: float = 10.0,
) -> CrawlResult:
    """GET `{base_url}{path_prefix}/{module}` and every `rel="next"` page, checking the pull contract.

    `params` are filters (e.g. date_from) the next links must preserve. `profile` validates every
    object (None: skip). Problems are collected; with `strict` (default) they raise CrawlError.
    """
    session = requests.Session()
    auth = _Auth(session, token, oauth, base64_token, timeout)
    filters = {k: str(v) for k, v in (params or {}).items()}
    query = {**filters, **({"limit": str(limit)} if limit is not None else {})}
    url: str | None = f"{base_url.rstrip('/')}{path_prefix}/{module}" + (f"?{urlencode(query)}" if query else "")
    result = CrawlResult(objects=[], pages=0, requests=0, headers_seen=[])
    problems = result.problems
    seen: set[Key] = set()
    totals: set[int] = set()
    kind: ocpi.Kind = "location" if module == "locations" else "tariff"
    try:
        while url is not None:
            if url in result.urls or result.pages >= max_pages:
                problems.append(f"pagination does not end (next link {url} repeats or > {max_pages} pages)")
                break
            result.urls.append(url)
            response = _get(session, url, auth, result, timeout)
            page = _check_page(response, url, limit, problems)
            result.pages += 1
            headers = dict(response.headers)
            result.headers_seen.append(headers)
            if (total := _int_header(response.headers, "X-Total-Count", url, problems)) is not None:
                totals.add(total)
            for index, obj in enumerate(page):
                where = f"page {result.pages} item {index}"
                if not isinstance(obj, dict):
                    problems.append(f"{where}: not a JSON object")
                    continue
                key = _key(str(obj.get("country_code", "")), str(obj.get("party_id", "")), str(obj.get("id", "")))
                if key in seen:
                    problems.append(f"{where}: duplicate object {'/'.join(key)} (already on an earlier page)")
                seen.add(key)
                result.objects.append(obj)
                if profile is not None:
                    problems.extend(f"{where} ({obj.get('id')}): {e}" for e in ocpi.validate(kind, obj, profile))
            next_link = response.links.get("next", {}).get("url")
            url = urljoin(url, next_link) if next_link else None
            if url is not None:
                kept = dict(parse_qsl(urlsplit(url).query))
                lost = {k: v for k, v in filters.items() if k not in _FILTERS_KEPT_OUT and kept.get(k) != v}
                if lost:
                    problems.append(f"next link {url} drops or changes the filters {lost}")
    finally:
        result.requests += auth.requests
        session.close()
    if len(totals) > 1:
        problems.append(f"X-Total-Count changed between pages: {sorted(totals)}")
    elif totals and (total := totals.pop()) != len(result.objects):
        problems.append(f"X-Total-Count says {total} objects, the pages held {len(result.objects)}")
    if strict and problems:
        raise CrawlError(problems, result)
    return result


def _get(session: requests.Session, url: str, auth: _Auth, result: CrawlResult, timeout: float) -> requests.Response:
    for attempt in (1, 2):
        request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        headers = {"Authorization": auth.header(), "X-Request-ID": request_id, "X-Correlation-ID": correlation_id,
                   "Accept": "application/json"}
        result.requests += 1
        response = session.get(url, headers=headers, timeout=timeout)
        if response.status_code == 401 and auth.oauth is not None and attempt == 1:
            auth.refresh()  # an expired bearer: fetch a new one once
            continue
        if response.status_code != 200:
            raise CrawlError([f"GET {url} -> HTTP {response.status_code}: {response.text[:200]}"], result)
        for name, sent in (("X-Request-ID", request_id), ("X-Correlation-ID", correlation_id)):
            if response.headers.get(name) != sent:
                result.problems.append(f"GET {url}: {name} not echoed (sent {sent}, got {response.headers.get(name)!r})")
        return response
    raise AssertionError("unreachable")


def _check_page(response: requests.Response, url: str, limit: int | None, problems: list[str]) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        raise CrawlError([f"GET {url}: body is not JSON"]) from None
    if not isinstance(body, dict) or not isinstance(body.get("status_code"), int):
        raise CrawlError([f"GET {url}: not an OCPI envelope"])
    if not 1000 <= body["status_code"] <= 1999:
        raise CrawlError([f"GET {url}: OCPI status_code {body['status_code']} {body.get('status_message', '')}"])
    if not isinstance(body.get("timestamp"), str) or not _DATETIME_Z.match(body["timestamp"]):
        problems.append(f"GET {url}: envelope timestamp {body.get('timestamp')!r} is not an OCPI DateTime")
    data = body.get("data")
    if not isinstance(data, list):
        raise CrawlError([f"GET {url}: data is not a list"])
    x_limit = _int_header(response.headers, "X-Limit", url, problems)
    if x_limit is not None and len(data) > x_limit:
        problems.append(f"GET {url}: {len(data)} objects on a page with X-Limit {x_limit}")
    if limit is not None and len(data) > limit:
        problems.append(f"GET {url}: {len(data)} objects though limit={limit} was asked")
    return data


def _int_header(headers: Mapping[str, str], name: str, url: str, problems: list[str]) -> int | None:
    value = headers.get(name)  # requests' headers are case-insensitive
    if value is None or not value.strip().isdigit():
        problems.append(f"GET {url}: {name} header missing or not an integer ({value!r})")
        return None
    return int(value)
