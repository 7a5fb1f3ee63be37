"""Declared paging: how a list endpoint pages (`PageNumberPaginator`, `OffsetPaginator`,
`PageIndexPaginator`), the pages a walk yields, and `select_data`, which picks the records out of a body.

Apart from the client, which walks these declarations (`HttpClient.paginate`); paginators only read
pages, and see the client (type-only reference to `client`, above this module) for its shape check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import requests

if TYPE_CHECKING:
    from evpipeline.http.client import HttpClient

# Paging, in the spirit of dlt's rest_api paginators: a client declares how its API pages.

Selector = str | Callable[[Any], Any] | None


def select_data(body: Any, selector: Selector) -> Any:
    """The part of `body` a dotted path names (None when absent), what a callable returns, or the body."""
    if selector is None:
        return body
    if callable(selector):
        return selector(body)
    for key in selector.split("."):
        body = body.get(key) if isinstance(body, dict) else None
    return body


@dataclass
class Page:
    """One fetched page: its records, the paging query that asked for it,
    the decoded body and the response."""

    records: list[Any]
    query: dict[str, Any]
    body: Any
    response: requests.Response
    number: int  # 1 for the first request of the walk


@dataclass
class Pull:
    """Every record of a paged list, the server time of its first page (its as-of) and the pages read."""

    records: list[dict[str, Any]]
    server_time: datetime
    pages: int


class Paginator(Protocol):
    """How a list endpoint pages. Stateless: one paginator serves any number of walks and threads."""

    def first(self) -> dict[str, Any]:
        """The paging parameters of the first page."""
        ...

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        """The paging parameters of the page after `page`; None when `page` was the last."""
        ...


@dataclass(frozen=True)
class PageNumberPaginator:
    """Page numbers (`param` = start, start + 1, ...) while the body's `has_more` flag is truthy."""

    param: str = "page"
    has_more: str = "hasMore"
    start: int = 1

    def first(self) -> dict[str, Any]:
        return {self.param: self.start}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        if not select_data(page.body, self.has_more):
            return None
        return {self.param: page.query[self.param] + 1}


@dataclass(frozen=True)
class OffsetPaginator:
    """`offset`/`limit` until a short page. The server may cap the limit in a header (OCPI `X-Limit`):
    a page of the capped size is then not the last one."""

    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    cap_header: str | None = "X-Limit"

    def first(self) -> dict[str, Any]:
        return {self.offset_param: 0, self.limit_param: self.limit}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        cap = _positive_int(page.response.headers.get(self.cap_header)) if self.cap_header else None
        if len(page.records) < min(self.limit, cap or self.limit):
            return None
        return {
            self.offset_param: page.query[self.offset_param] + len(page.records),
            self.limit_param: self.limit,
        }


@dataclass(frozen=True)
class PageIndexPaginator:
    """Page indexes (`index_param` = start, start + 1, ...) up to the page count the body reports."""

    size: int
    index_param: str = "PageIndex"
    size_param: str = "PageSize"
    count: str = "Pages"
    start: int = 0

    def first(self) -> dict[str, Any]:
        return {self.index_param: self.start, self.size_param: self.size}

    def after(self, page: Page, http: HttpClient) -> dict[str, Any] | None:
        pages = http.expect(
            select_data(page.body, self.count),
            int,
            f"an integer {self.count!r} (the page count)",
            page.response,
        )
        index = page.query[self.index_param] + 1
        return {self.index_param: index, self.size_param: self.size} if index - self.start < pages else None


def announced_total(page: Page, paginator: Paginator) -> int | None:
    """How many records the whole walk holds, when the API says so (for progress and its ETA): OCPI's
    `X-Total-Count`, or a page count times the page size."""
    total = _positive_int(page.response.headers.get("X-Total-Count"))
    if total is None and isinstance(paginator, PageIndexPaginator):
        pages = select_data(page.body, paginator.count)
        total = pages * paginator.size if isinstance(pages, int) and pages > 0 else None
    return total


def _positive_int(value: str | None) -> int | None:
    """A header's integer value; None when absent, malformed or not positive."""
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number and number > 0 else None
