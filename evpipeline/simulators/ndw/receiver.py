"""The simulated NDW's HTTP handlers: the Keycloak-shaped token endpoint and the OCPI 2.2.1 push
receiver, which stores a push only when `compliance.check` finds nothing wrong with it (and with
the Location it would produce)."""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

from evpipeline.simulators.ndw.compliance import Kind, check, ocpi_datetime
from evpipeline.simulators.ndw.control import NdwControl
from evpipeline.simulators.ndw.state import IssuedToken, PushRecord, find, later, object_key, same, upsert
from evpipeline.simulators.toolkit import Request, Response


class Reply(Exception):  # control flow inside a push handler
    def __init__(self, http_status: int, status_code: int | None, message: str) -> None:
        super().__init__(message)
        self.http_status, self.status_code, self.message = http_status, status_code, message


def summary(prefix: str, errors: list[str], limit: int = 5) -> str:
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return f"{prefix}: " + "; ".join(errors[:limit]) + more


def kind_of(params: Mapping[str, str]) -> Kind:
    """What a push URL addresses, from its path parameters."""
    return (
        "tariff"
        if "tid" in params
        else "connector"
        if "conn" in params
        else "evse"
        if "evse" in params
        else "location"
    )


class NdwReceiver(NdwControl):
    """Token endpoint and push receiver; the routes are wired in `NdwSimulator.__init__`."""

    # -- OCPI envelope -----------------------------------------------------------------------
    def envelope(
        self, http_status: int, status_code: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        body = {
            "status_code": status_code,
            "status_message": message,
            "timestamp": ocpi_datetime(self.clock.now()),
        }
        return Response.json(body, http_status, headers)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return self.envelope(429, 2000, "Too Many Requests", {"Retry-After": str(max(1, round(retry_after)))})

    def server_error(self, request: Request, status: int) -> Response:
        return self.envelope(status, 3000, "injected server error")

    def not_found(self, request: Request) -> Response:
        return self.envelope(404, 2000, "Invalid resource")

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return self.envelope(
            405, 2000, "Method not supported by NDW", {"Allow": ", ".join(sorted(set(allowed)))}
        )

    # -- token endpoint ----------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.header("Authorization") or ""
        if basic.lower().startswith("basic "):  # Keycloak also accepts client_secret_basic
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        if "grant_type" not in form:
            return Response.json(
                {"error": "invalid_request", "error_description": "Missing form parameter: grant_type"}, 400
            )
        if form["grant_type"] != "client_credentials":
            return Response.json(
                {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"}, 400
            )
        valid = hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            client_secret, self.client_secret
        )
        if self.faults.bad_auth or not valid:
            return Response.json(
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
                401,
            )
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = IssuedToken(
                client_id, self.clock.now() + timedelta(seconds=self.token_lifetime)
            )
            self.tokens_issued += 1
        return Response.json(
            {
                "access_token": token,
                "expires_in": int(self.token_lifetime),
                "refresh_expires_in": int(self.refresh_lifetime),
                "refresh_token": "",
                "token_type": "Bearer",
                "not-before-policy": 0,
                "session_state": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "scope": "profile email",
            }
        )

    def _authorize(self, request: Request) -> None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        with self.lock:
            if self._unauthorized > 0:
                self._unauthorized -= 1
                raise Reply(401, 2000, "Unauthorized: token revoked")
            issued = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if issued is None or self.faults.bad_auth:
                raise Reply(401, 2000, "Unauthorized: missing or unknown bearer token")
            if self.clock.now() >= issued.expires_at:
                raise Reply(401, 2000, "Unauthorized: token expired")

    # -- push receiver -----------------------------------------------------------------------
    def _push_location(self, request: Request) -> Response:
        return self._push(request, self._apply_location)

    def _push_tariff(self, request: Request) -> Response:
        return self._push(request, self._apply_tariff)

    def _push(
        self, request: Request, apply: Callable[[str, dict[str, str], Any, PushRecord], tuple[int, str]]
    ) -> Response:
        params = {k: unquote(v) for k, v in request.params.items()}
        kind = kind_of(params)
        record = PushRecord(
            request.method,
            request.path,
            kind,
            0,
            None,
            "",
            False,
            self.clock.now(),
            time.monotonic(),
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
                    raise Reply(400, 2000, "Invalid JSON message") from None
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
        except Reply as reply:
            record.http_status, record.status_code, record.status_message = (
                reply.http_status,
                reply.status_code,
                reply.message,
            )
            headers = {
                **echo,
                **({"WWW-Authenticate": 'Bearer error="invalid_token"'} if reply.http_status == 401 else {}),
            }
            response = self.envelope(reply.http_status, reply.status_code or 2000, reply.message, headers)
        with self.lock:
            self.pushes.append(record)
        return response

    def _content_checks(self, body: Any, kind: Kind, patch: bool, ids: dict[str, str]) -> None:
        """The OCPI-level checks (HTTP 200 + 2xxx): knob, object shape, ids, last_updated, schema."""
        if self._reject:
            code, message = self._reject.pop(0)
            raise Reply(200, code, message)
        if not isinstance(body, dict):
            raise Reply(200, 2001, "The body must be a JSON object")
        for name, expected in ids.items():
            if name in body and not same(body[name], expected):  # a missing id is a schema error below
                raise Reply(
                    200, 2001, f"{name} {body.get(name)!r} in the body differs from {expected!r} in the URL"
                )
        if patch and "last_updated" not in body:
            raise Reply(200, 2001, "A PATCH must contain last_updated")
        errors = check(kind, body, self.profile, patch=patch)
        if errors:
            raise Reply(200, 2001, summary("Not compliant", errors))

    def _apply_location(
        self, method: str, p: dict[str, str], body: Any, record: PushRecord
    ) -> tuple[int, str]:
        key = object_key(p["cc"], p["pid"], p["loc"])
        stored = self.locations.get(key)
        kind = kind_of(p)  # what record.kind says: a location, evse or connector URL
        patch = method == "PATCH"
        evse = find(stored.get("evses", []), "uid", p["evse"]) if stored and "evse" in p else None
        conn = find(evse["connectors"], "id", p["conn"]) if evse and "conn" in p else None
        target = {"location": stored, "evse": evse, "connector": conn}[kind]
        parent = {"location": True, "evse": stored, "connector": evse}[kind]
        if (patch and target is None) or parent is None:
            raise Reply(
                404,
                2003 if stored is None else 2000,
                f"Invalid resource: unknown {kind if patch else 'parent'}",
            )

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
            assert new_evse is not None  # a connector's EVSE exists (parent checked above)
            if kind == "connector":
                upsert(new_evse["connectors"], "id", obj)
                new_evse["last_updated"] = later(new_evse.get("last_updated"), obj.get("last_updated"))
            upsert(result.setdefault("evses", []), "uid", new_evse)
            # The receiver keeps the parent's last_updated no older than its children's (OCPI).
            result["last_updated"] = later(result.get("last_updated"), new_evse.get("last_updated"))
        errors = check("location", result, self.profile)
        if errors:
            raise Reply(200, 2001, summary("The resulting Location would not be compliant", errors))
        self.locations[key] = result
        created = target is None
        return (201, f"{kind} created") if created else (200, f"{kind} updated")

    def _apply_tariff(self, method: str, p: dict[str, str], body: Any, record: PushRecord) -> tuple[int, str]:
        key = object_key(p["cc"], p["pid"], p["tid"])
        if method == "DELETE":
            if key not in self.tariffs:
                raise Reply(404, 2000, "Invalid resource: unknown tariff")
            del self.tariffs[key]
            record.warnings = self._tariff_references(p["tid"])
            return 204, "tariff deleted"
        self._content_checks(
            body, "tariff", False, {"country_code": p["cc"], "party_id": p["pid"], "id": p["tid"]}
        )
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
            if any(same(t, tariff_id) for t in conn.get("tariff_ids", []))
        ]
        return [f"deleted tariff is still referenced by connector {r}" for r in refs]
