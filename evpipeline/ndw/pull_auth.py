"""Authentication of the pull server: `Authorization: Token` (OCPI) or an OAuth2 bearer JWT that
its own client-credentials token endpoint issues; the middleware also echoes the request ids."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote_plus

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evpipeline.ndw.pull_paging import BadParameter, ocpi_error
from evpipeline.ndw.pull_settings import OcpiServerSettings

# One logger name for the whole pull server, as before the split: operators filter on it.
log = logging.getLogger("evpipeline.ndw.server")

TOKEN_PATH = "/oauth/token"
PUBLIC_PATHS = frozenset({TOKEN_PATH, "/health"})
JWT_ISSUER = "evpipeline-ocpi-pull"
JWT_AUDIENCE = "ocpi-2.2.1-pull"
JWT_ALGORITHM = "HS256"
_MAX_FORM_BYTES = 16 * 1024


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
            presented,
            key,
            algorithms=[JWT_ALGORITHM],
            audience=JWT_AUDIENCE,
            issuer=JWT_ISSUER,
            leeway=settings.jwt_leeway,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        return "token expired"
    except jwt.InvalidTokenError as exc:
        return f"invalid token ({type(exc).__name__})"
    except (OverflowError, ValueError, TypeError) as exc:  # a claim PyJWT cannot convert: a 401, never a 500
        return f"invalid token ({type(exc).__name__} reading a claim)"
    if not hmac.compare_digest(str(claims.get("sub", "")).encode(), settings.client_id.encode()):
        return "token issued to another client"
    # PyJWT reads a NumericDate with int(): "9999999999" (a string), true or 10**400 passed. We issue
    # plain numbers (`issue_token`), so anything else was not issued by us, however it is signed.
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _numeric_date(claims[name]):
            return f"invalid token ({name} is not a NumericDate)"
    if claims["exp"] - claims["iat"] > settings.token_lifetime + settings.jwt_leeway:
        return "invalid token (valid for longer than we issue tokens)"
    if claims["iat"] > time.time() + settings.jwt_leeway:
        return "invalid token (issued in the future)"
    return None


def _numeric_date(value: object) -> bool:
    """A JSON number (not a bool, not a string), finite, between 1970 and 2242."""
    if type(value) is int:  # type(), not isinstance: True is an int too; never float() a 10**400
        return 0 <= value < 2**33
    return type(value) is float and math.isfinite(value) and 0 <= value < 2**33


def issue_token(settings: OcpiServerSettings, key: bytes | None = None, now: float | None = None) -> str:
    """A signed JWT (HS256) for the OAuth2 client: iss, aud, sub = client id, iat, nbf, exp, jti."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": settings.client_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + settings.token_lifetime,
        "jti": uuid.uuid4().hex,
        "scope": "ocpi:pull",
    }
    return jwt.encode(claims, key or settings.jwt_key(), algorithm=JWT_ALGORITHM)


def _challenge(settings: OcpiServerSettings, error: str | None = None) -> str:
    bearer = 'Bearer realm="ocpi"' + (f', error="{error}"' if error else "")
    schemes = (['Token realm="ocpi"'] if settings.token else []) + (
        [bearer] if settings.oauth_enabled else []
    )
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
        echo = [
            (name, headers.get(name) or str(uuid.uuid4()).encode())
            for name in (b"x-request-id", b"x-correlation-id")
        ]
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
            problem = _bearer_ok(credentials, self.settings, self.key)
            if problem is None:
                return None
            reason, error = problem, "invalid_token"
        else:
            reason, error = (
                ("no Authorization header" if not header else f"unsupported scheme {scheme[:20]!r}"),
                None,
            )
        challenge = {"WWW-Authenticate": _challenge(self.settings, error)}
        return reason, ocpi_error(401, 2000, "Unauthorized: missing or invalid credentials", challenge)


async def _read_form(request: Request) -> dict[str, list[str]]:
    if (
        request.headers.get("content-type", "").split(";")[0].strip().lower()
        != "application/x-www-form-urlencoded"
    ):
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


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})},
    )


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


def token_endpoint(settings: OcpiServerSettings) -> Callable[[Request], Awaitable[Response]]:
    """`POST /oauth/token`: OAuth2 client credentials (form or Basic) -> a JWT for the bearer scheme."""
    jwt_key = settings.jwt_key()

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
        client_id, secret = (
            basic if basic is not None else (fields.get("client_id", ""), fields.get("client_secret", ""))
        )
        valid = (
            settings.oauth_enabled
            & hmac.compare_digest(client_id.encode(), settings.client_id.encode())
            & hmac.compare_digest(secret.encode(), settings.client_secret.encode())
        )
        if not valid:
            log.info(
                "token endpoint: invalid client credentials from %s",
                request.client.host if request.client else "?",
            )
            return _oauth_error(
                401,
                "invalid_client",
                "client authentication failed",
                {"WWW-Authenticate": 'Basic realm="ocpi"'},
            )
        return JSONResponse(
            {
                "access_token": issue_token(settings, jwt_key),
                "token_type": "Bearer",
                "expires_in": settings.token_lifetime,
                "scope": "ocpi:pull",
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    return token
