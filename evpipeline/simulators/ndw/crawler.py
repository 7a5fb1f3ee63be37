"""NDW's daily pull of a supplier's OCPI server (ours): `crawl()` follows `Link: rel="next"`,
authenticates with `Token <base64>` or an OAuth2 bearer, and checks the pull contract and (by
default) that every object passes NDW's `compliance.check`."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import requests

from evpipeline.simulators.ndw.compliance import DATETIME_Z, Kind, Profile, check
from evpipeline.simulators.ndw.state import OCPI_BASE, Key, object_key


@dataclass
class CrawlResult:
    objects: list[dict[str, Any]]
    pages: int
    requests: int  # HTTP requests sent, token requests included
    headers_seen: list[dict[str, str]]  # response headers of every page, in order
    urls: list[str] = field(default_factory=list)  # every page URL requested
    problems: list[str] = field(default_factory=list)


class CrawlError(Exception):
    """The supplier's server broke the pull contract; `problems` says how."""

    def __init__(self, problems: list[str], result: CrawlResult | None = None) -> None:
        super().__init__(
            "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else "")
        )
        self.problems, self.result = problems, result


_FILTERS_KEPT_OUT = {"offset", "limit"}


class _Auth:
    def __init__(
        self,
        session: requests.Session,
        token: str | None,
        oauth: tuple[str, str, str] | None,
        base64_token: bool,
        timeout: float,
    ) -> None:
        if (token is None) == (oauth is None):
            raise ValueError("give exactly one of token= or oauth=(token_url, client_id, client_secret)")
        self.session, self.token, self.oauth, self.b64, self.timeout = (
            session,
            token,
            oauth,
            base64_token,
            timeout,
        )
        self.bearer: str | None = None
        self.requests = 0

    def header(self) -> str:
        if self.token is not None:
            value = base64.b64encode(self.token.encode()).decode() if self.b64 else self.token
            return f"Token {value}"
        if self.bearer is None:
            self.refresh()
        return f"Bearer {self.bearer}"

    def refresh(self) -> None:
        assert self.oauth is not None
        token_url, client_id, client_secret = self.oauth
        self.requests += 1
        r = self.session.post(
            token_url,
            data={"client_id": client_id, "client_secret": client_secret, "grant_type": "client_credentials"},
            timeout=self.timeout,
        )
        try:
            payload = r.json()
        except ValueError:
            payload = None
        if r.status_code != 200 or not isinstance(payload, dict) or "access_token" not in payload:
            raise CrawlError([f"token endpoint {token_url} -> HTTP {r.status_code}: {r.text[:200]}"])
        self.bearer = str(payload["access_token"])


def crawl(
    base_url: str,
    *,
    token: str | None = None,
    oauth: tuple[str, str, str] | None = None,
    module: Literal["locations", "tariffs"] = "locations",
    limit: int | None = None,
    params: dict[str, str] | None = None,
    path_prefix: str = OCPI_BASE,
    base64_token: bool = True,
    profile: Profile | None = "ndw",
    strict: bool = True,
    max_pages: int = 10_000,
    timeout: float = 10.0,
) -> CrawlResult:
    """GET `{base_url}{path_prefix}/{module}` and every `rel="next"` page, checking the pull contract.

    `params` are filters (e.g. date_from) the next links must preserve. `profile` validates every
    object (None: skip). Problems are collected; with `strict` (default) they raise CrawlError.
    """
    session = requests.Session()
    auth = _Auth(session, token, oauth, base64_token, timeout)
    filters = {k: str(v) for k, v in (params or {}).items()}
    query = {**filters, **({"limit": str(limit)} if limit is not None else {})}
    url: str | None = f"{base_url.rstrip('/')}{path_prefix}/{module}" + (
        f"?{urlencode(query)}" if query else ""
    )
    result = CrawlResult(objects=[], pages=0, requests=0, headers_seen=[])
    problems = result.problems
    seen: set[Key] = set()
    totals: set[int] = set()
    kind: Kind = "location" if module == "locations" else "tariff"
    try:
        while url is not None:
            if url in result.urls or result.pages >= max_pages:
                problems.append(f"pagination does not end (next link {url} repeats or > {max_pages} pages)")
                break
            result.urls.append(url)
            response = _get(session, url, auth, result, timeout)
            page = _check_page(response, url, limit, problems)
            result.pages += 1
            headers = dict(response.headers)
            result.headers_seen.append(headers)
            if (total := _int_header(response.headers, "X-Total-Count", url, problems)) is not None:
                totals.add(total)
            for index, obj in enumerate(page):
                where = f"page {result.pages} item {index}"
                if not isinstance(obj, dict):
                    problems.append(f"{where}: not a JSON object")
                    continue
                found = object_key(
                    str(obj.get("country_code", "")), str(obj.get("party_id", "")), str(obj.get("id", ""))
                )
                if found in seen:
                    problems.append(
                        f"{where}: duplicate object {'/'.join(found)} (already on an earlier page)"
                    )
                seen.add(found)
                result.objects.append(obj)
                if profile is not None:
                    problems.extend(f"{where} ({obj.get('id')}): {e}" for e in check(kind, obj, profile))
            next_link = response.links.get("next", {}).get("url")
            url = urljoin(url, next_link) if next_link else None
            if url is not None:
                kept = dict(parse_qsl(urlsplit(url).query))
                lost = {k: v for k, v in filters.items() if k not in _FILTERS_KEPT_OUT and kept.get(k) != v}
                if lost:
                    problems.append(f"next link {url} drops or changes the filters {lost}")
    finally:
        result.requests += auth.requests
        session.close()
    if len(totals) > 1:
        problems.append(f"X-Total-Count changed between pages: {sorted(totals)}")
    elif totals and (total := totals.pop()) != len(result.objects):
        problems.append(f"X-Total-Count says {total} objects, the pages held {len(result.objects)}")
    if strict and problems:
        raise CrawlError(problems, result)
    return result


def _get(
    session: requests.Session, url: str, auth: _Auth, result: CrawlResult, timeout: float
) -> requests.Response:
    for attempt in (1, 2):
        request_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        headers = {
            "Authorization": auth.header(),
            "X-Request-ID": request_id,
            "X-Correlation-ID": correlation_id,
            "Accept": "application/json",
        }
        result.requests += 1
        response = session.get(url, headers=headers, timeout=timeout)
        if response.status_code == 401 and auth.oauth is not None and attempt == 1:
            auth.refresh()  # an expired bearer: fetch a new one once
            continue
        if response.status_code != 200:
            raise CrawlError([f"GET {url} -> HTTP {response.status_code}: {response.text[:200]}"], result)
        for name, sent in (("X-Request-ID", request_id), ("X-Correlation-ID", correlation_id)):
            if response.headers.get(name) != sent:
                result.problems.append(
                    f"GET {url}: {name} not echoed (sent {sent}, got {response.headers.get(name)!r})"
                )
        return response
    raise AssertionError("unreachable")


def _check_page(response: requests.Response, url: str, limit: int | None, problems: list[str]) -> list[Any]:
    try:
        body = response.json()
    except ValueError:
        raise CrawlError([f"GET {url}: body is not JSON"]) from None
    if not isinstance(body, dict) or not isinstance(body.get("status_code"), int):
        raise CrawlError([f"GET {url}: not an OCPI envelope"])
    if not 1000 <= body["status_code"] <= 1999:
        raise CrawlError(
            [f"GET {url}: OCPI status_code {body['status_code']} {body.get('status_message', '')}"]
        )
    if not isinstance(body.get("timestamp"), str) or not DATETIME_Z.match(body["timestamp"]):
        problems.append(f"GET {url}: envelope timestamp {body.get('timestamp')!r} is not an OCPI DateTime")
    data = body.get("data")
    if not isinstance(data, list):
        raise CrawlError([f"GET {url}: data is not a list"])
    x_limit = _int_header(response.headers, "X-Limit", url, problems)
    if x_limit is not None and len(data) > x_limit:
        problems.append(f"GET {url}: {len(data)} objects on a page with X-Limit {x_limit}")
    if limit is not None and len(data) > limit:
        problems.append(f"GET {url}: {len(data)} objects though limit={limit} was asked")
    return data


def _int_header(headers: Mapping[str, str], name: str, url: str, problems: list[str]) -> int | None:
    value = headers.get(name)  # requests' headers are case-insensitive
    if value is None or not value.strip().isdigit():
        problems.append(f"GET {url}: {name} header missing or not an integer ({value!r})")
        return None
    return int(value)
