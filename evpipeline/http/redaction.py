"""Keeping secrets out of what we log and raise: URLs with secret query values hidden, text scrubbed.

Apart from the client because callers (the OCPI status check) redact URLs of their own with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def redact_url(url: str, secrets: Iterable[str] = (), params_to_hide: Iterable[str] = ()) -> str:
    """The URL with secret-bearing query values replaced, safe for logs and errors."""
    hidden = {p.lower() for p in params_to_hide} | {
        "key",
        "code",
        "sig",
        "token",
        "password",
        "client_secret",
        "access_token",
    }
    parts = urlsplit(url)
    query = [
        (k, "***" if k.lower() in hidden else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    safe = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*,:"), ""))
    return scrub(safe, secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
