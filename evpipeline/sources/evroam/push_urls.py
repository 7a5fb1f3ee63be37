"""Which push-file URLs we fetch: one parse decides, and the URL we fetch is the one that parse rebuilt.

A push notification names a URL we did not choose, so it is vetted before any request:
- the allow-list (`EVROAM_PUSH_ALLOWED_HOSTS`) holds origins, `scheme://host[:port]`: the storage
  account's host (or `*.suffix` for a whole domain, when asked for) and its port; `https` unless an
  entry says `http` (the simulators only);
- the URL must be plain: no backslash, whitespace, control or non-ASCII character, no user info
  (`user@`), a numeric port, no fragment; otherwise two parsers could read two different hosts;
- the request goes to `urlunsplit` of that same parse, and redirects are refused (a SAS URL is
  never redirected; following one would let an allowed host send us anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"https": 443, "http": 80}


class PushUrlRefused(Exception):  # a verdict, not a bug
    """A push-file URL we will not fetch, with the reason."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str  # lowercase; `*.example.net` matches its subdomains (never the bare domain)
    port: int

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if (scheme, port) != (self.scheme, self.port):
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])  # `.example.net`: a subdomain, never the bare domain
        return host == self.host

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_origins(text: str) -> list[Origin]:
    """`https://evroamstore.blob.core.windows.net, http://127.0.0.1:8701` -> origins;
    ValueError on a bad entry."""
    origins = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        if "://" not in entry:
            raise ValueError(
                f"EVROAM_PUSH_ALLOWED_HOSTS entry {entry!r}: write scheme://host[:port], e.g. https://{entry}"
            )
        parts = urlsplit(entry)
        if (
            parts.scheme not in DEFAULT_PORTS
            or not parts.hostname
            or parts.username
            or parts.path not in ("", "/")
        ):
            raise ValueError(f"EVROAM_PUSH_ALLOWED_HOSTS entry {entry!r}: only http(s)://host[:port]")
        origins.append(
            Origin(parts.scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[parts.scheme])
        )
    return origins


def vet(url: object, origins: list[Origin]) -> str:
    """The URL to fetch (rebuilt from its one parse), or PushUrlRefused naming why not."""
    if not isinstance(url, str) or not url:
        raise PushUrlRefused("notification has no file URL")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" or c == "\\" for c in url):
        raise PushUrlRefused("URL contains a backslash, whitespace, control or non-ASCII character")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. a bracketed IPv4 host, an unclosed `[`: a verdict, not a bug
        raise PushUrlRefused(f"URL does not parse ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise PushUrlRefused(f"scheme {parts.scheme!r} is not http(s)")
    if "@" in parts.netloc:
        raise PushUrlRefused("URL carries user info (user@host)")
    if parts.fragment:
        raise PushUrlRefused("URL carries a fragment")
    try:
        port = parts.port
    except ValueError:
        raise PushUrlRefused("port is not a number from 0 to 65535") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise PushUrlRefused("URL has no host")
    effective = port or DEFAULT_PORTS[scheme]
    if not any(o.matches(scheme, host, effective) for o in origins):
        raise PushUrlRefused(f"{scheme}://{host}:{effective} is not an allowed push-file origin")
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
