"""Zaptec's HTTP API (api.zaptec.com): OAuth2 password grant, PagedData lists of installations and
chargers, hierarchy and state, anonymous constants, messaging connection details, and its limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs

from evpipeline.simulators.toolkit import (
    HttpReply,
    Request,
    Response,
    ServerRateLimit,
    json_copy,
    paginate,
)
from evpipeline.simulators.toolkit import retry_after as retry_after_header
from evpipeline.simulators.zaptec.fleet import PULSE, Charger, Installation, ZaptecFleet, dotnet

_T = TypeVar("_T")
PAGE_SIZE_MAX = 100
PAGE_SIZE_DEFAULT = 20

_BAD_CREDENTIALS = {"error": "invalid_grant", "error_description": "The user name or password is incorrect."}
_DENIED = {"Message": "Authorization has been denied for this request."}


@dataclass
class Token:
    subject: str
    expires_at: datetime


LIST_ENDPOINTS = frozenset({"/api/chargers", "/api/installation"})


class _Limits(ServerRateLimit):
    """Zaptec's enforced limits: one bucket per API account (10/s), on top of it the list endpoints'
    own caps (30 a minute, 150 per 30 minutes), and a separate ~1/s bucket for the token endpoint.

    The Service Bus is another service: it is not counted against the API limit.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        token_rate: float,
        token_burst: float,
        list_limits: list[tuple[int, float]],
    ) -> None:
        super().__init__(rate, burst, windows={"list": list_limits})
        self.token = ServerRateLimit(token_rate, token_burst)

    def allow(self, account: str, endpoint_class: str | None = None) -> tuple[bool, float]:
        if account.startswith("bus:"):
            return True, 0.0
        if account.startswith("oauth:"):
            return self.token.allow(account)
        return super().allow(account, endpoint_class)


def _found(item: _T | None, what: str) -> _T:
    """`item`, or Zaptec's 404 for a missing `what`."""
    if item is None:
        raise HttpReply(Response.json({"Message": f"{what} not found"}, 404))
    return item


class ZaptecHandlers(ZaptecFleet):
    """The REST API one portal account sees, over the fleet and its message subscription."""

    username: str
    password: str
    token_lifetime: float
    limits: _Limits
    tokens: dict[str, Token]
    constants: dict[str, Any]
    reject_tokens: bool  # the account lost API access: logins work, every API call is 401
    forbidden: set[str]  # installation/charger ids the account lost access to (403)
    _expire_countdown: int | None

    def _add_routes(self) -> None:
        self.route("POST", r"/oauth/token", self._token)
        self.route("GET", r"/api/constants", self._constants)
        self.route("GET", r"/api/installation", self._list_installations)
        self.route("GET", r"/api/installation/(?P<id>[\w\-]+)", self._installation)
        self.route("GET", r"/api/installation/(?P<id>[\w\-]+)/hierarchy", self._hierarchy)
        self.route(
            "GET",
            r"/api/installation/(?P<id>[\w\-]+)/messagingConnectionDetails",
            self._legacy_connection_details,
        )
        self.route("GET", r"/api/chargers", self._list_chargers)
        self.route("GET", r"/api/chargers/(?P<id>[\w\-]+)", self._charger)
        self.route("GET", r"/api/chargers/(?P<id>[\w\-]+)/state", self._state)
        self.route(
            "GET", r"/api/userGroups/(?P<id>[\w\-]+)/messagingConnectionDetails", self._connection_details
        )
        self.route(
            "POST", r"/api/userGroups/(?P<id>[\w\-]+)/messagingSubscription", self._recreate_subscription
        )
        self._add_bus_routes()

    # -- auth and limits ---------------------------------------------------------------------
    def endpoint_class(self, request: Request) -> str | None:
        return "list" if request.method == "GET" and request.path.rstrip("/") in LIST_ENDPOINTS else None

    def precheck(self, request: Request) -> Response | None:
        # Zaptec refuses API calls without a User-Agent (its fair-use policy asks for a descriptive one).
        if request.path.startswith("/api/") and not (request.header("User-Agent") or "").strip():
            return Response.json({"Message": "A User-Agent header is required"}, 403)
        return None

    def account_of(self, request: Request) -> str:
        if request.path == "/oauth/token":
            return f"oauth:{request.client}"
        if not request.path.startswith("/api/"):
            return "bus:"
        token = self.tokens.get((request.header("Authorization") or "")[len("Bearer ") :])
        return f"api:{token.subject}" if token else f"api:{request.client}"

    def _token(self, request: Request) -> Response:
        if "application/x-www-form-urlencoded" not in (request.header("Content-Type") or ""):
            return Response.json(
                {"error": "invalid_request", "error_description": "The request must be form-encoded."}, 400
            )
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "password":
            return Response.json({"error": "unsupported_grant_type"}, 400)
        user_ok = hmac.compare_digest(form.get("username", ""), self.username)
        password_ok = hmac.compare_digest(form.get("password", ""), self.password)
        if self.faults.bad_auth or not (user_ok and password_ok):
            return Response.json(_BAD_CREDENTIALS, 400)
        with self.lock:
            claims = {
                "sub": self.username,
                "jti": len(self.tokens) + 1,
                "iat": int(self.clock.now().timestamp()),
            }
            payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
            signature = hashlib.sha256(f"{payload}:{self.seed}".encode()).hexdigest()[:43]
            token = f"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{payload}.{signature}"
            self.tokens[token] = Token(
                self.username, self.clock.now() + timedelta(seconds=self.token_lifetime)
            )
        return Response.json(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)}
        )

    def _authorize(self, request: Request) -> str:
        header = request.header("Authorization") or ""
        with self.lock:
            if self._expire_countdown is not None:
                if self._expire_countdown <= 0:
                    now = self.clock.now()
                    for issued in self.tokens.values():
                        issued.expires_at = min(issued.expires_at, now)
                    self._expire_countdown = None
                else:
                    self._expire_countdown -= 1
            token = self.tokens.get(header[len("Bearer ") :]) if header.startswith("Bearer ") else None
            if token is None or self.clock.now() >= token.expires_at or self.reject_tokens:
                error = (
                    "invalid_token"
                    if token is None
                    else 'invalid_token", error_description="The token expired'
                )
                raise HttpReply(Response.json(_DENIED, 401, {"WWW-Authenticate": f'Bearer error="{error}"'}))
            return token.subject

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return Response.json({"Message": "Too many requests"}, 429, retry_after_header(retry_after))

    # -- API ---------------------------------------------------------------------------------
    def _paged(self, request: Request, items: list[dict[str, Any]]) -> Response:
        try:
            index = request.int_arg("PageIndex", 0)
            size = request.int_arg("PageSize", PAGE_SIZE_DEFAULT)
        except ValueError:
            return Response.json(
                {"Message": "The request is invalid: PageIndex and PageSize must be integers."}, 400
            )
        if index < 0 or size < 1:
            return Response.json(
                {"Message": "The request is invalid: PageIndex must be >= 0 and PageSize >= 1."}, 400
            )
        size = min(size, PAGE_SIZE_MAX)
        return Response.json(
            {
                "Pages": math.ceil(len(items) / size),
                "Data": paginate(items, index * size, size),
                "Message": None,
            }
        )

    def _constants(self, request: Request) -> Response:
        """Zaptec serves its constants anonymously: no token is checked."""
        with self.lock:
            return Response.json(self.constants)

    def _list_installations(self, request: Request) -> Response:
        return self._list(request, lambda: [i.body for i in self.installations.values()])

    def _list_chargers(self, request: Request) -> Response:
        return self._list(request, lambda: [c.body for c in self.chargers.values()])

    def _list(self, request: Request, bodies: Callable[[], list[dict[str, Any]]]) -> Response:
        """A paged list of copies, taken under the lock so evolve cannot change them half-way."""
        self._authorize(request)
        with self.lock:
            items = [json_copy(body) for body in bodies()]
        return self._paged(request, items)

    def _find_installation(self, request: Request) -> Installation:
        return _found(self.installations.get(request.params["id"]), "Installation")

    def _installation(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            installation = self._find_installation(request)
            # The single-installation model is large: it embeds the support group's logo.
            body = {
                **installation.body,
                "SupportGroup": {"Name": "Zaptec Support", "LogoBase64": "iVBORw0KGgo" + "A" * 4096},
            }
        return Response.json(body)

    def _forbid(self, request: Request) -> None:
        if request.params["id"] in self.forbidden:
            raise HttpReply(Response.json({"Message": "Access denied"}, 403))

    def _hierarchy(self, request: Request) -> Response:
        self._authorize(request)
        self._forbid(request)  # the pre-2025 answer for no access; 204 since
        with self.lock:
            installation = self._find_installation(request)
            if not installation.body["CurrentUserRoles"] & ~1:
                return Response.empty(204)  # User role only: formerly 403, since 2025 204 No Content
            body = installation.body
            circuits = []
            for circuit in installation.circuits:
                chargers = [
                    self.chargers[cid].body
                    for cid in installation.charger_ids
                    if self.chargers[cid].body["CircuitId"] == circuit["Id"]
                ]
                circuits.append(
                    {
                        **circuit,
                        "InstallationId": body["Id"],
                        "InstallationName": body["Name"],
                        "Chargers": [
                            {
                                "Id": c["Id"],
                                "DeviceId": c["DeviceId"],
                                "Name": c["Name"],
                                "Active": c["Active"],
                                "DeviceType": c["DeviceType"],
                            }
                            for c in chargers
                        ],
                    }
                )
            return Response.json(
                {
                    "Id": body["Id"],
                    "Name": body["Name"],
                    "NetworkType": body["NetworkType"],
                    "Circuits": circuits,
                }
            )

    def _find_charger(self, request: Request) -> Charger:
        return _found(self.chargers.get(request.params["id"]), "Charger")

    def _charger(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            return Response.json(self._find_charger(request).body)

    def _state(self, request: Request) -> Response:
        self._authorize(request)
        self._forbid(request)
        with self.lock:
            charger = self._find_charger(request)
            observations = []
            for state_id, (value, when) in sorted(charger.states.items()):
                observation: dict[str, Any] = {
                    "ChargerId": charger.id,
                    "StateId": state_id,
                    "Timestamp": dotnet(when),
                }
                if state_id != PULSE:  # Pulse carries no ValueAsString at all
                    observation["ValueAsString"] = value
                observations.append(observation)
            observations.extend(charger.extra)
        return Response.json(observations)

    def _user_group(self, request: Request) -> None:
        if request.params["id"] != self.user_group_id:
            raise HttpReply(Response.json({"Message": "User group not found"}, 404))

    def _descriptor(self) -> Response:
        # Zaptec keeps handing out the descriptor after Service Bus deleted the subscription.
        if self._registered is None:
            return Response.json({"Message": "Messaging is not enabled for this user group"}, 403)
        return Response.json(self._registered.descriptor(self.host, self.port))

    def _connection_details(self, request: Request) -> Response:
        self._authorize(request)
        self._user_group(request)
        with self.lock:
            return self._descriptor()

    def _legacy_connection_details(self, request: Request) -> Response:
        self._authorize(request)
        with self.lock:
            installation = self._find_installation(request)
            if not installation.body["MessagingEnabled"]:
                return Response.json({"Message": "Messaging is not enabled for this installation"}, 403)
            return self._descriptor()

    def _recreate_subscription(self, request: Request) -> Response:
        """Simulator-only stand-in for Zaptec support re-enabling messaging."""
        self._authorize(request)
        self._user_group(request)
        with self.lock:
            subscription = self._create_subscription()
            return Response.json(subscription.descriptor(self.host, self.port), 201)
