"""Settings of the OCPI pull server: credentials (OCPI_* variables), page cap, JWT lifetime and key."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from evpipeline import settings

DEFAULT_PAGE_CAP = 1000
_JWT_KEY_CONTEXT = b"evpipeline/ocpi-pull/jwt/v1"


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
        values: dict[str, Any] = {
            "token": settings.get("OCPI_TOKEN"),
            "client_id": settings.get("OCPI_CLIENT_ID"),
            "client_secret": settings.get("OCPI_CLIENT_SECRET"),
            "jwt_secret": settings.get("OCPI_JWT_SECRET"),
            "public_url": settings.get("OCPI_PUBLIC_URL"),
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
