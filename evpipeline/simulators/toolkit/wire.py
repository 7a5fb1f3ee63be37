"""Requests and responses as handlers see them, and the small helpers every API's handlers share."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern
    client: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def int_arg(self, name: str, default: int) -> int:
        """A whole-number query parameter; `default` when absent or empty, ValueError when malformed."""
        value = self.arg(name)
        return int(value) if value else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> Response:
        return cls(status, text.encode(), {"Content-Type": content_type, **(headers or {})})

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class HttpReply(Exception):  # control flow: a handler answering early
    """Raise from a handler to answer immediately (auth failures, bad parameters)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


Handler = Callable[[Request], Response]


def retry_after(seconds: float) -> dict[str, str]:
    """A `Retry-After` header in whole seconds, never 0 (a client told "0" would retry at once)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def json_copy(value: Any) -> Any:
    """A deep copy through JSON: exactly what a client would get, and cheaper than deepcopy."""
    return json.loads(json.dumps(value))


def paginate(items: list[_T], offset: int, limit: int) -> list[_T]:
    """One page of `items` (offset-based; 1-based or page-index APIs convert first)."""
    return items[offset : offset + limit]
