"""Zaptec API client: password login, paged lists, hierarchies, state polling, Service Bus receiving.

One account, one budget: every API call of this process goes through one shared token bucket
(10 requests/s is Zaptec's limit; we stay just under it) and the token endpoint has its own 1/s
bucket. Callers pass a priority: state polls (0) are served before bulk static refreshes (10)
whenever both wait for the same bucket. State polls run on a small thread pool so that network
latency does not leave the budget unused.

Installations carry Zaptec's own `CountryId` (a GUID); `countries()` resolves it through the
Countries list of `GET /api/constants` (anonymous, read once per client), plus any ids a deployment
pins with `ZAPTEC_COUNTRY_IDS` (`<guid>=NLD,<guid>=BEL`) when its account's constants differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote, quote_plus

import dagster as dg
import requests
from pydantic import Field

from evpipeline import settings
from evpipeline.http import (
    AuthError,
    ClientError,
    HttpClient,
    HttpError,
    OAuth2Bearer,
    PageIndexPaginator,
    Pull,
    RateLimitedError,
    ResponseFormatError,
    RetryableResponse,
    RetryPolicy,
    select_data,
    shared_limiter,
)
from evpipeline.progress import Progress
from evpipeline.resources import ApiResource
from evpipeline.timeutil import parse_http_date, utcnow

PAGE_SIZE_MAX = 100  # Zaptec enforces at most 100 records per page
POLL, STATIC = 0, 10  # limiter priorities: live state before bulk static data
# Zaptec caps its list endpoints (30 a minute, 150 per 30 minutes, per account) besides 10 requests/s.
LIST = "list"
LIST_PATHS = frozenset({"api/chargers", "api/installation"})
EMPTY_CHARGER_ID = "00000000-0000-0000-0000-000000000000"
COUNTRY_IDS_ENV = "ZAPTEC_COUNTRY_IDS"
_ALPHA3 = re.compile(r"[A-Z]{3}")

log = dg.get_dagster_logger("zaptec")  # inside a run, also in the run's event log


def parse_country_ids(text: str) -> dict[str, str]:
    """Pinned `<CountryId>=<ISO alpha-3>` pairs, comma-separated; a malformed pair is a config error."""
    pinned: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        guid, _, code = pair.partition("=")
        guid, code = guid.strip().lower(), code.strip().upper()
        if not guid or not _ALPHA3.fullmatch(code):
            raise ValueError(f"{COUNTRY_IDS_ENV}: {pair!r} is not <CountryId>=<ISO alpha-3>, e.g. <guid>=NLD")
        pinned[guid] = code
    return pinned


class SubscriptionGone(Exception):  # a state of the world, not a bug
    """The Service Bus subscription no longer exists (Zaptec removes them after 14 days unused)."""


@dataclass
class StatePoll:
    """Observations of every polled charger, and what could not be polled."""

    observations: list[dict[str, Any]] = field(default_factory=list)
    server_time: datetime | None = None
    polled: int = 0
    missing: list[str] = field(default_factory=list)  # 403/404: removed, or no access any more
    failed: dict[str, str] = field(default_factory=dict)  # transient errors that outlived the retries
    seconds: float = 0.0


@dataclass(frozen=True)
class ConnectionDetails:
    """Zaptec's ConnectionDescriptor: where the Service Bus topic subscription is and how to log in."""

    host: str
    port: int
    use_ssl: bool
    username: str
    password: str = field(repr=False)
    topic: str
    subscription: str

    @classmethod
    def from_descriptor(cls, body: Any) -> ConnectionDetails:
        fields = ("Host", "Port", "UseSSL", "Username", "Password", "Topic", "Subscription")
        if not isinstance(body, dict) or any(body.get(k) is None for k in fields):
            missing = [k for k in fields if not isinstance(body, dict) or body.get(k) is None]
            raise ValueError(f"ConnectionDescriptor lacks {missing}")
        return cls(
            str(body["Host"]),
            int(body["Port"]),
            bool(body["UseSSL"]),
            str(body["Username"]),
            str(body["Password"]),
            str(body["Topic"]),
            str(body["Subscription"]),
        )

    @property
    def base_url(self) -> str:
        """The REST endpoint of the namespace. Zaptec hands out the AMQP port (5671); REST is HTTPS on 443."""
        scheme = "https" if self.use_ssl else "http"
        if self.port in (5671, 5672, 443, 80):
            return f"{scheme}://{self.host}"
        return f"{scheme}://{self.host}:{self.port}"


class SasAuth:
    """Azure Service Bus shared access signature for one entity, renewed before it expires."""

    def __init__(self, resource_uri: str, key_name: str, key: str, lifetime: int = 3600) -> None:
        self.resource = quote_plus(resource_uri)
        self.key_name, self.key, self.lifetime = key_name, key, lifetime
        self._token, self._expires = "", 0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            now = int(time.time())
            if now > self._expires - 300:
                self._expires = now + self.lifetime
                signed = hmac.new(
                    self.key.encode(), f"{self.resource}\n{self._expires}".encode(), hashlib.sha256
                )
                signature = quote(base64.b64encode(signed.digest()).decode(), safe="")
                self._token = (
                    "SharedAccessSignature "
                    f"sr={self.resource}&sig={signature}&se={self._expires}&skn={self.key_name}"
                )
            return self._token

    def apply(self, headers: dict[str, str], params: dict[str, Any]) -> None:
        headers["Authorization"] = self.token()

    def refresh(self) -> bool:
        return False  # a 401 here means the key rotated: fetch the connection details again

    def secrets(self) -> Iterable[str]:
        return [self.key, *([self._token] if self._token else [])]


@dataclass
class BusMessage:
    """One message received with a peek-lock: its body, broker properties and where to complete it."""

    body: bytes
    properties: dict[str, Any]
    location: str | None

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("MessageId")
        return None if value is None else str(value)


def decode_body(body: bytes) -> Any:
    """The JSON observation in a message: plain JSON, or the JSON text node inside Zaptec's MC-NBFX
    (.NET binary XML) envelope, which is located by its braces as other Zaptec consumers do."""
    try:
        return json.loads(body)
    except ValueError:
        pass
    end = body.rfind(b"}")
    start = body.find(b"{")
    for _ in range(3):  # a record's length byte can itself be "{" (0x7B): try the next brace
        if start == -1 or start >= end:
            return None
        try:
            return json.loads(body[start : end + 1].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            start = body.find(b"{", start + 1)
    return None


class ServiceBusReceiver:
    """Receives from one topic subscription through Service Bus's REST API (peek-lock, then complete)."""

    def __init__(
        self, details: ConnectionDetails, *, retry: RetryPolicy, timeout: tuple[float, float]
    ) -> None:
        self.details = details
        base = details.base_url
        auth = SasAuth(f"{base}/{details.topic}", details.username, details.password)
        self.http = HttpClient("zaptec-servicebus", base, auth=auth, retry=retry, timeout=timeout)
        self.path = f"{quote(details.topic)}/subscriptions/{quote(details.subscription)}/messages"
        self._timeout = timeout

    def _gone(self, exc: ClientError) -> SubscriptionGone:
        return SubscriptionGone(
            f"Service Bus subscription {self.details.topic}/{self.details.subscription} does not exist (HTTP "
            f"{exc.status})"
        )

    def peek_lock(self, wait_seconds: int = 0) -> BusMessage | None:
        """The next message, locked for us; None when none arrived within `wait_seconds`."""
        try:
            response = self.http.request(
                "POST",
                f"{self.path}/head",
                params={"timeout": int(wait_seconds)},
                ok=(201, 204),
                timeout=(self._timeout[0], self._timeout[1] + wait_seconds),
            )
        except ClientError as exc:
            if exc.status in (404, 410):  # 410 in the REST docs; the service also answers 404
                raise self._gone(exc) from None
            raise
        if response.status_code == 204:
            return None
        try:
            properties = json.loads(response.headers.get("BrokerProperties") or "{}")
        except ValueError:
            properties = {}
        return BusMessage(
            response.content,
            properties if isinstance(properties, dict) else {},
            response.headers.get("Location"),
        )

    def complete(self, message: BusMessage) -> bool:
        """Delete a locked message; False when the lock was lost (it will be delivered again)."""
        target = message.location or f"{self.path}/{message.message_id}/{message.properties.get('LockToken')}"
        try:
            self.http.request("DELETE", target, ok=(200,))
        except ClientError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    def close(self) -> None:
        self.http.close()


class ZaptecClient:
    """Calls the Zaptec API through the shared HTTP layer."""

    def __init__(
        self,
        api: HttpClient,
        *,
        page_size: int = PAGE_SIZE_MAX,
        concurrency: int = 4,
        user_group_id: str = "",
        retry: RetryPolicy | None = None,
        bus_timeout: tuple[float, float] = (3.05, 30.0),
        pinned_countries: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.page_size = max(1, min(page_size, PAGE_SIZE_MAX))
        self.paging = PageIndexPaginator(self.page_size)  # PagedData: PageIndex from 0 while < Pages
        self.concurrency = max(1, concurrency)
        self.user_group_id = user_group_id
        self.retry = retry or RetryPolicy()
        self.bus_timeout = bus_timeout
        self.pinned_countries = {k.lower(): v.upper() for k, v in (pinned_countries or {}).items()}
        self._countries: dict[str, str] | None = None
        self._countries_lock = threading.Lock()

    def _server_time(self, response: requests.Response) -> datetime:
        return parse_http_date(response.headers.get("Date")) or utcnow()

    def paged(self, path: str, *, priority: int = STATIC, params: Mapping[str, Any] | None = None) -> Pull:
        """Every record of a `PagedData` list: `PageIndex` 0, 1, ... up to `Pages` (one request per page).
        The list endpoints have budgets of their own (`LIST`), kept by the same limiter."""
        records: list[dict[str, Any]] = []
        server_time: datetime | None = None
        pages = 0
        for page in self.api.paginate(
            path,
            self.paging,
            params=params,
            select="Data",
            what="PagedData {Pages, Data, Message}",
            priority=priority,
            endpoint_class=LIST if path in LIST_PATHS else None,
        ):
            if server_time is None:  # the first page's time: the as-of of the snapshot
                server_time = self._server_time(page.response)
            records.extend(page.records)
            pages = page.number
        return Pull(records, server_time or utcnow(), pages)

    def installations(self, priority: int = STATIC) -> Pull:
        return self.paged("api/installation", priority=priority)

    def chargers(self, priority: int = STATIC) -> Pull:
        return self.paged("api/chargers", priority=priority)

    def countries(self, priority: int = STATIC) -> dict[str, str]:
        """Zaptec CountryId (lower-case GUID) -> ISO 3166 alpha-3, from the Countries of /api/constants.

        Read once per client (the list is static). Pinned ids win over the API's. A failure does not
        fail the caller: it is logged and only the pinned ids come back, so installations fall back
        to their time zone.
        """
        with self._countries_lock:
            if self._countries is None:
                self._countries = {**self._fetch_countries(priority), **self.pinned_countries}
            return dict(self._countries)

    def _fetch_countries(self, priority: int) -> dict[str, str]:
        parsed: list[Any] = []

        def parse(response: requests.Response) -> None:
            try:
                parsed.append(json.loads(response.content))
            except ValueError as exc:  # truncated in transit: retried, as get_json does
                raise RetryableResponse(f"malformed JSON: {exc}", give_up=ResponseFormatError) from None

        try:
            # Anonymous in Zaptec's API: no reason to send the account's token along.
            self.api.request("GET", "api/constants", check=parse, priority=priority, auth_required=False)
        except HttpError as exc:
            log.warning("Zaptec /api/constants failed; country from the time zone, not CountryId: %s", exc)
            return {}
        body = parsed[-1]
        listed = body.get("Countries") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            log.warning("Zaptec /api/constants has no Countries list; country falls back to the time zone")
            return {}
        countries: dict[str, str] = {}
        for country in listed:
            guid = country.get("Id") if isinstance(country, dict) else None
            code = country.get("Code") if isinstance(country, dict) else None
            if isinstance(guid, str) and isinstance(code, str) and _ALPHA3.fullmatch(code.strip().upper()):
                countries[guid.strip().lower()] = code.strip().upper()
        if len(countries) < len(listed):
            log.warning(
                "Zaptec /api/constants: %d of %d Countries lack an Id or alpha-3 Code; skipped",
                len(listed) - len(countries),
                len(listed),
            )
        return countries

    def hierarchy(
        self, installation_id: str, priority: int = STATIC
    ) -> tuple[dict[str, Any] | None, datetime]:
        """An installation's circuits and chargers; None when the account may not see it (204,
        formerly 403)."""
        try:
            body, response = self.api.get_json(
                f"api/installation/{quote(installation_id)}/hierarchy", ok=(200, 204), priority=priority
            )
        except AuthError as exc:  # the shared layer types 401/403 as auth errors
            if exc.status == 403:
                return None, utcnow()
            raise
        if response.status_code == 204 or body is None:
            return None, self._server_time(response)
        self.api.expect(
            select_data(body, "Circuits"), list, "an InstallationTreeModel with Circuits", response
        )
        return body, self._server_time(response)

    def state(self, charger_id: str, priority: int = POLL) -> tuple[list[dict[str, Any]], datetime]:
        """A charger's observations, each naming the charger (filled in when an item omits it)."""
        body, response = self.api.get_json(f"api/chargers/{quote(charger_id)}/state", priority=priority)
        self.api.expect(body, list, "a list of observations", response)
        observations = [{"ChargerId": charger_id, **o} if isinstance(o, dict) else o for o in body]
        return observations, self._server_time(response)

    def poll_states(
        self, charger_ids: Iterable[str], *, priority: int = POLL, max_failed_ratio: float = 0.1
    ) -> StatePoll:
        """Poll every charger's state on `concurrency` threads sharing the account's rate limit.

        A charger that answers 403/404 is skipped (removed, or access revoked since the last static
        refresh). Auth and rate-limit errors abort: they affect every charger. Other failures are
        tolerated up to `max_failed_ratio`, so one flaky charger does not cost the other 499.
        """
        ids = list(dict.fromkeys(charger_ids))
        result = StatePoll()
        started = time.monotonic()

        def one(charger_id: str) -> tuple[list[dict[str, Any]] | None, datetime | None, str | None]:
            try:
                observations, server_time = self.state(charger_id, priority)
                return observations, server_time, None
            except (ClientError, AuthError) as exc:
                if exc.status in (403, 404):  # 403 is typed AuthError, but only this charger is refused
                    return None, None, "missing"
                raise
            except RateLimitedError:
                raise
            except HttpError as exc:
                return None, None, str(exc)

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="zaptec-poll")
        futures = [pool.submit(one, charger_id) for charger_id in ids]
        progress = Progress("zaptec charger states", unit="chargers", total=len(ids))
        try:
            for charger_id, future in zip(ids, futures, strict=True):
                observations, server_time, error = future.result()
                progress.advance()
                if error == "missing":
                    result.missing.append(charger_id)
                elif error is not None:
                    result.failed[charger_id] = error
                else:
                    result.polled += 1
                    result.observations.extend(observations or [])
                    if result.server_time is None:
                        result.server_time = server_time
        finally:
            # On an auth or rate-limit error, the queued polls are pointless: drop them.
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
        result.seconds = time.monotonic() - started
        if ids and len(result.failed) > max(1, max_failed_ratio * len(ids)):
            first = next(iter(result.failed.values()))
            raise RuntimeError(
                f"{len(result.failed)} of {len(ids)} charger state polls failed; first: {first}"
            )
        return result

    # -- messaging ---------------------------------------------------------------------------
    def connection_details(self) -> ConnectionDetails:
        """Where the message subscription is, fetched before every connection (keys can rotate).

        Uses the user-group endpoint when a user group is configured, else the deprecated
        installation-level one for the first installation with messaging enabled.
        """
        if self.user_group_id:
            path = f"api/userGroups/{quote(self.user_group_id)}/messagingConnectionDetails"
        else:
            body, _ = self.api.get_json(
                "api/installation", params={"PageIndex": 0, "PageSize": self.page_size}, priority=POLL
            )
            enabled = [
                i for i in (body or {}).get("Data") or [] if isinstance(i, dict) and i.get("MessagingEnabled")
            ]
            if not enabled:
                raise SubscriptionGone("no installation has Service Bus messaging enabled; polling only")
            path = f"api/installation/{quote(str(enabled[0]['Id']))}/messagingConnectionDetails"
        try:
            body, response = self.api.get_json(path, priority=POLL)
        except (ClientError, AuthError) as exc:
            if exc.status in (403, 404):
                raise SubscriptionGone(
                    f"Service Bus messaging is not enabled (HTTP {exc.status} from {path})"
                ) from None
            raise
        try:
            return ConnectionDetails.from_descriptor(body)
        except ValueError as exc:
            raise self.api.format_error(str(exc), response) from None

    def recreate_subscription(self) -> ConnectionDetails:
        """Ask for a new subscription after Service Bus removed ours.

        Real Zaptec re-enables messaging through a support request (or, for installations, in the
        portal); `POST api/userGroups/{id}/messagingSubscription` exists only in the simulator.
        Against the real API it fails, and SubscriptionGone says what a person has to do.
        """
        advice = (
            "Zaptec removes message subscriptions unused for 14 days; ask Zaptec support to re-enable "
            "Service Bus messaging for user group "
            + (self.user_group_id or "(ZAPTEC_USER_GROUP_ID unset)")
            + ". State polling continues meanwhile."
        )
        if not self.user_group_id:
            raise SubscriptionGone(advice)
        try:
            response = self.api.request(
                "POST",
                f"api/userGroups/{quote(self.user_group_id)}/messagingSubscription",
                ok=(200, 201),
                priority=POLL,
            )
        except (ClientError, AuthError) as exc:  # 404/405 from the real API, 403 without the right role
            raise SubscriptionGone(f"{advice} (re-creation via API: HTTP {exc.status})") from None
        try:
            return ConnectionDetails.from_descriptor(self.api.decode_json(response))
        except ValueError as exc:
            raise SubscriptionGone(f"{advice} ({exc})") from None

    def receiver(self, details: ConnectionDetails) -> ServiceBusReceiver:
        return ServiceBusReceiver(details, retry=self.retry, timeout=self.bus_timeout)


_LOGINS: dict[tuple[str, str], OAuth2Bearer] = {}
_LOGINS_LOCK = threading.Lock()


class ZaptecResource(ApiResource):
    """Zaptec cloud API (api.zaptec.com): installations, chargers, charger states and messages."""

    base_url: str = Field(description="API base, e.g. https://api.zaptec.com")
    username: str = Field(description="Zaptec portal username (secret: use dg.EnvVar)")
    password: str = Field(description="Zaptec portal password (secret: use dg.EnvVar)")
    user_group_id: str = Field(
        default="", description="User group whose Service Bus messaging connection details to use"
    )
    requests_per_second: float = Field(
        default=9.5, description="Proactive limit for all API calls of this account (Zaptec allows 10/s)"
    )
    burst: float = Field(
        default=1.0,
        description="Token-bucket burst; 1 spaces requests evenly, so no 1 s window exceeds the limit",
    )
    token_requests_per_second: float = Field(
        default=0.9,
        description="Limit on the token endpoint (Zaptec allows about 1/s; kept under it for jitter)",
    )
    concurrency: int = Field(default=4, description="Threads polling charger states (they share the limit)")
    page_size: int = Field(default=PAGE_SIZE_MAX, description="PageSize of paged lists (at most 100)")
    listen: bool = Field(
        default=True, description="Let the real-time lane long-poll the Service Bus message subscription"
    )
    list_per_minute: int = Field(
        default=30, description="Zaptec's cap on list calls (/api/chargers, /api/installation) per minute"
    )
    list_per_30_minutes: int = Field(default=150, description="... and per 30 minutes")
    country_ids: str = Field(
        default="",
        description=f"Pinned `<CountryId>=<ISO alpha-3>` pairs, comma-separated, over /api/constants "
        f"(empty: ${COUNTRY_IDS_ENV})",
    )

    def _login(self, retry: RetryPolicy, timeout: tuple[float, float]) -> OAuth2Bearer:
        """One login per account in this process: every asset and thread shares the token (valid ~24 h)."""
        key = (self.base_url, hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest())
        with _LOGINS_LOCK:
            login = _LOGINS.get(key)
            if login is None:
                token_client = HttpClient(
                    "zaptec-auth",
                    self.base_url,
                    retry=retry,
                    timeout=timeout,
                    limiter=shared_limiter(
                        f"zaptec-token:{self.base_url}", self.token_requests_per_second, 1.0
                    ),
                )
                # Zaptec answers wrong credentials with 400 invalid_grant: an AuthError naming the settings.
                login = _LOGINS[key] = OAuth2Bearer(
                    token_client,
                    "oauth/token",
                    {"grant_type": "password", "username": self.username, "password": self.password},
                    credentials="ZAPTEC_USERNAME and ZAPTEC_PASSWORD",
                )
            return login

    def client(self) -> ZaptecClient:
        retry, timeout = self.retry_policy(), self.timeouts()
        account = hashlib.sha256(self.username.encode()).hexdigest()[:12]  # the limiter is per account
        api = HttpClient(
            "zaptec",
            self.base_url,
            auth=self._login(retry, timeout),
            limiter=shared_limiter(
                f"zaptec:{self.base_url}:{account}",
                self.requests_per_second,
                self.burst,
                windows={LIST: [(self.list_per_minute, 60.0), (self.list_per_30_minutes, 1800.0)]},
            ),
            retry=retry,
            timeout=timeout,
            **self.limits(),
            pool_size=max(16, 2 * self.concurrency),
            # Zaptec's fair-use policy asks for a descriptive User-Agent.
            user_agent="evpipeline/0.1 (EV charging data pipeline; Zaptec API integration)",
        )
        # A deployment-specific fix-up (no simulator value): the resource's own pins, else the setting's.
        pinned = parse_country_ids(self.country_ids or settings.get(COUNTRY_IDS_ENV))
        return ZaptecClient(
            api,
            page_size=self.page_size,
            concurrency=self.concurrency,
            user_group_id=self.user_group_id,
            retry=retry,
            bus_timeout=timeout,
            pinned_countries=pinned,
        )
