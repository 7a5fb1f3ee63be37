"""The NDW push client: OCPI 2.2.1 PUT/PATCH/DELETE to DOT-NL with OAuth2 client credentials.

Every push goes through the one HTTP layer (`evpipeline.http`) and comes back as a `PushOutcome`
that says what NDW answered, per the seed's error table:

| NDW answer | outcome | retried? |
|---|---|---|
| 200/201 + OCPI 1xxx (DELETE: 204) | `accepted` | - |
| 200 + OCPI 2xxx (content not compliant) | `rejected` (code and message kept) | no: sending the same JSON again cannot help |
| 200 + OCPI 3xxx, 429, 500/502/503/504, connection errors | retried with backoff; `failed` when they persist | yes |
| 400 (invalid JSON) | `invalid_json` | no |
| 404 (invalid resource) | `not_found` | no |
| 401 (no access) | a new token is fetched once; a second 401 (or a 403) raises `NdwAuthError` | once |

The token endpoint refusing our credentials also raises `NdwAuthError`; the token endpoint being
down (5xx, connection) is a transient `failed`, like NDW being down.

URLs are built from the object's own `country_code`/`party_id`/`id` (rules §2.5: they must equal
the object's, and ids never change), each segment percent-encoded.
"""  # noqa: E501 (Markdown table rows cannot wrap)

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import dagster as dg
import requests
from pydantic import Field

from evpipeline.http import (
    TRANSIENT_STATUSES,
    AuthError,
    ClientError,
    HttpClient,
    HttpError,
    OAuth2Bearer,
    OcpiError,
    ResponseFormatError,
    RetryPolicy,
)
from evpipeline.ocpi.status import ocpi_body, ocpi_check, ocpi_status

TOKEN_API = "ndw-iam"
LOCATIONS = "locations"
TARIFFS = "tariffs"
# Outcomes that say NDW did not get the object but may on a later try (the rest were answered).
TRANSIENT = frozenset({"failed"})


@dataclass
class PushOutcome:
    """One push and NDW's answer, as recorded in `ops.ndw_pushes`."""

    kind: str  # location | evse | tariff
    method: str  # PUT | PATCH | DELETE
    path: str  # relative to the push base URL, e.g. locations/NL/ALF/LOC-1
    key: str  # country_code/party_id/id[/evse_uid]
    outcome: str  # accepted | rejected | invalid_json | not_found | unauthorized | failed | deferred
    http_status: int | None = None
    ocpi_status: int | None = None
    message: str = ""
    attempts: int = 0
    elapsed_ms: float = 0.0
    request_id: str = ""
    pushed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.outcome == "accepted"


class NdwAuthError(AuthError):
    """NDW refused our credentials even after a fresh token: the run must fail, loudly."""

    def __init__(self, message: str, outcome: PushOutcome, cause: HttpError, body: str | None) -> None:
        super().__init__(
            message,
            api=cause.api,
            method=cause.method,
            url=cause.url,
            status=cause.status,
            body=body,
            attempts=cause.attempts,
        )
        self.outcome = outcome


class _CountingAuth:
    """Wraps the bearer to count the attempts of the current push (`apply` runs once per attempt)."""

    def __init__(self, inner: OAuth2Bearer) -> None:
        self.inner = inner
        self._local = threading.local()

    def reset(self) -> None:
        self._local.count = 0

    @property
    def count(self) -> int:
        return int(getattr(self._local, "count", 0))

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        self._local.count = self.count + 1
        self.inner.apply(headers, params)

    def refresh(self) -> bool:
        return self.inner.refresh()

    def secrets(self) -> Iterable[str]:
        return self.inner.secrets()


def _checked(*parts: object) -> list[str]:
    """`parts` (ids read from an object) checked to be non-empty strings, usable as URL segments."""
    checked: list[str] = []
    for part in parts:
        if not isinstance(part, str) or not part:
            raise ValueError(f"push URL segment must be a non-empty string, got {part!r}")
        checked.append(part)
    return checked


def _segments(*parts: object) -> str:
    return "/".join(quote(p, safe="") for p in _checked(*parts))


def _ocpi_of(excerpt: str | None) -> tuple[int | None, str]:
    """OCPI code and message from an error body excerpt (best effort: it may be cut short)."""
    if not excerpt:
        return None, ""
    try:
        return ocpi_status(json.loads(excerpt))
    except ValueError:
        return None, excerpt


class NdwPushClient:
    """Pushes single objects to NDW; never raises for NDW's answers except a persistent 401."""

    def __init__(self, http: HttpClient, bearer: OAuth2Bearer, token_http: HttpClient) -> None:
        self.http, self.bearer, self._token_http = http, bearer, token_http
        self._auth = _CountingAuth(bearer)
        http.auth = self._auth
        self._check = ocpi_check(http)

    @property
    def tokens_fetched(self) -> int:
        return self.bearer.tokens_fetched

    def close(self) -> None:
        self.http.close()
        self._token_http.close()

    # -- the four pushes NDW supports --------------------------------------------------------
    def put_location(
        self, obj: Mapping[str, Any] | str, key: tuple[str, str, str] | None = None
    ) -> PushOutcome:
        """PUT a full Location (with its EVSEs and Connectors); the URL comes from the object."""
        body, data = _body(obj)
        ids = (body.get("country_code"), body.get("party_id"), body.get("id"))
        if key is not None and tuple(key) != ids:
            raise ValueError(f"location {ids} pushed under key {tuple(key)}: ids never change")
        segments = _checked(*ids)
        path = f"{LOCATIONS}/{_segments(*segments)}"
        return self._send("location", "PUT", path, "/".join(segments), data, ok=(200, 201))

    def patch_evse_status(
        self,
        country_code: str,
        party_id: str,
        location_id: str,
        evse_uid: str,
        status: str,
        last_updated: str,
    ) -> PushOutcome:
        """PATCH an EVSE's status; OCPI requires `last_updated` in every PATCH."""
        if not last_updated:
            raise ValueError("a PATCH must contain last_updated")
        data = json.dumps({"status": status, "last_updated": last_updated}, separators=(",", ":")).encode()
        path = f"{LOCATIONS}/{_segments(country_code, party_id, location_id, evse_uid)}"
        key = "/".join((country_code, party_id, location_id, evse_uid))
        return self._send("evse", "PATCH", path, key, data, ok=(200, 201))

    def put_tariff(
        self, obj: Mapping[str, Any] | str, key: tuple[str, str, str] | None = None
    ) -> PushOutcome:
        """PUT a full Tariff; the URL comes from the object."""
        body, data = _body(obj)
        ids = (body.get("country_code"), body.get("party_id"), body.get("id"))
        if key is not None and tuple(key) != ids:
            raise ValueError(f"tariff {ids} pushed under key {tuple(key)}: ids never change")
        segments = _checked(*ids)
        path = f"{TARIFFS}/{_segments(*segments)}"
        return self._send("tariff", "PUT", path, "/".join(segments), data, ok=(200, 201))

    def delete_tariff(self, country_code: str, party_id: str, tariff_id: str) -> PushOutcome:
        """DELETE a withdrawn Tariff; NDW answers 204 (OCPI's 200 + 1000 is accepted too)."""
        path = f"{TARIFFS}/{_segments(country_code, party_id, tariff_id)}"
        return self._send(
            "tariff", "DELETE", path, "/".join((country_code, party_id, tariff_id)), None, ok=(204, 200)
        )

    # -- one request -------------------------------------------------------------------------
    def _send(
        self, kind: str, method: str, path: str, key: str, data: bytes | None, ok: tuple[int, ...]
    ) -> PushOutcome:
        request_id = str(uuid.uuid4())
        headers = {
            "X-Request-ID": request_id,
            "X-Correlation-ID": str(uuid.uuid4()),
            "Accept": "application/json",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        answered: dict[str, Any] = {}

        def check(response: requests.Response) -> None:
            # Keep NDW's OCPI code/message of the last answer, then let the shared hook decide.
            answered["code"], answered["message"] = ocpi_status(ocpi_body(response))
            self._check(response)

        outcome = PushOutcome(kind, method, path, key, "failed", request_id=request_id)
        self._auth.reset()
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, data=data, headers=headers, ok=ok, check=check)
            outcome.outcome, outcome.http_status = "accepted", response.status_code
            outcome.ocpi_status, outcome.message = answered.get("code"), answered.get("message", "")
        except OcpiError as exc:
            code = exc.ocpi_status if exc.ocpi_status is not None else answered.get("code")
            outcome.outcome = "rejected" if code is not None and 2000 <= code < 3000 else "failed"
            outcome.http_status, outcome.ocpi_status = exc.status, code
            outcome.message = answered.get("message") or str(exc)
        except HttpError as exc:
            # The IAM server or NDW being down (5xx, 429, connection) is transient like any push
            # failure; refused credentials or a malformed token answer are not.
            refused = isinstance(exc, AuthError) or (
                exc.api == TOKEN_API and isinstance(exc, (ClientError, ResponseFormatError))
            )
            if not refused:
                outcome = _failed(outcome, exc)
            else:  # no token, or NDW refused a fresh one: nothing else in this run can succeed
                outcome.outcome, outcome.http_status = "unauthorized", exc.status
                outcome.ocpi_status, outcome.message = _ocpi_of(exc.body_excerpt)
                outcome.attempts = max(self._auth.count, 1)
                outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
                if exc.api != TOKEN_API:
                    where = f"push API answered HTTP {exc.status} (no access)" + (
                        " even to a fresh token" if exc.status == 401 else ""
                    )
                elif exc.status is None:
                    where = "token endpoint's answer had no access_token"
                else:
                    where = f"token endpoint answered HTTP {exc.status} to our client credentials"
                outcome.message = self.http.safe(f"{where}: {outcome.message}")[:500]
                outcome.pushed_at = datetime.now(UTC)
                raise NdwAuthError(
                    f"NDW {where}; check NDW_CLIENT_ID/NDW_CLIENT_SECRET and the service account's access",
                    outcome,
                    exc,
                    self.http.safe(exc.body_excerpt or ""),
                ) from None
        outcome.attempts = max(self._auth.count, 1)
        outcome.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        outcome.pushed_at = datetime.now(UTC)
        outcome.message = self.http.safe(outcome.message)[:500]
        return outcome


def _failed(outcome: PushOutcome, exc: HttpError) -> PushOutcome:
    """400 -> invalid_json, 404 -> not_found (answered, not retried); 5xx/429/transport -> failed."""
    outcome.http_status = exc.status
    outcome.ocpi_status, message = _ocpi_of(exc.body_excerpt)
    if isinstance(exc, ClientError) and exc.api != TOKEN_API:
        outcome.outcome = {400: "invalid_json", 404: "not_found"}.get(exc.status or 0, "failed")
        outcome.message = message or str(exc)
    else:  # persisted through the retries
        outcome.message = str(exc)
    return outcome


def _body(obj: Mapping[str, Any] | str) -> tuple[dict[str, Any], bytes]:
    """The object (for its ids) and the exact bytes to send (export JSON text is sent as is)."""
    if isinstance(obj, str):
        return json.loads(obj), obj.encode()
    return dict(obj), json.dumps(obj, separators=(",", ":")).encode()


class NdwPushResource(dg.ConfigurableResource):
    """NDW DOT-NL push API (OCPI 2.2.1 receiver); OAuth2 client credentials from NDW's IAM."""

    push_base_url: str = Field(description="Push API base, e.g. https://<ndw>/ocpi/2.2.1 (NDW_PUSH_BASE_URL)")
    token_url: str = Field(description="NDW IAM token endpoint (NDW_TOKEN_URL)")
    client_id: str = Field(description="Service-account client id (secret: use dg.EnvVar)")
    client_secret: str = Field(description="Service-account client secret (secret: use dg.EnvVar)")
    connect_timeout: float = 3.05
    read_timeout: float = Field(default=15.0, description="Seconds to wait for NDW's answer to one push")
    max_attempts: int = Field(
        default=4, description="Tries per push for transient failures (429/5xx/3xxx/connection)"
    )
    backoff_base: float = Field(
        default=0.5, description="First backoff in seconds (exponential, full jitter)"
    )
    backoff_max: float = Field(
        default=8.0, description="Longest single backoff: status pushes have a 60 s budget"
    )
    max_retry_after: float = Field(
        default=20.0, description="Give up rather than honour a longer Retry-After"
    )
    token_refresh_margin: float = Field(
        default=60.0, description="Fetch a new token this many seconds before expiry"
    )
    concurrency: int = Field(default=4, description="Pushes in flight at once")
    max_consecutive_failures: int = Field(
        default=5, description="Stop a run's pushes after this many transient failures in a row"
    )
    max_static_pushes: int = Field(
        default=1000, description="Location/tariff PUTs per run; the rest follow next run"
    )

    def client(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> NdwPushClient:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            max_retry_after=self.max_retry_after,
            statuses=TRANSIENT_STATUSES,
        )
        timeout = (self.connect_timeout, self.read_timeout)
        token_http = HttpClient(TOKEN_API, self.token_url, retry=retry, timeout=timeout, sleep=sleep)
        form = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "client_credentials",
        }
        bearer = OAuth2Bearer(
            token_http, self.token_url, form, refresh_margin=self.token_refresh_margin, clock=clock
        )
        http = HttpClient(
            "ndw-push",
            self.push_base_url,
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            pool_size=max(4, self.concurrency),
        )  # NdwPushClient installs the bearer
        return NdwPushClient(http, bearer, token_http)
