"""The OCPI 2.2.1 pull server NDW GETs from (`evpipeline serve-ocpi`): Locations and Tariffs (Sender).

It serves exactly the objects of the daily export (`build_export`), read from the BI snapshot
(`snapshots/warehouse.duckdb`, swapped in atomically after each run; the live warehouse is locked by
the pipeline). `SnapshotStore` keeps every object pre-serialised in memory and reloads when the
snapshot file changes, so a page is a join of ready-made bytes. Docs: docs/ndw.md.

This module holds the app and its routes; by concern: `pull_settings` (OCPI_* settings),
`pull_snapshot` (the in-memory data and its watcher), `pull_paging` (envelopes, paging parameters)
and `pull_auth` (Token / OAuth2 JWT, the token endpoint, request-id echo).

- `GET /ocpi/versions`, `GET /ocpi/2.2.1` (version details), `GET /ocpi/2.2.1/locations` and
  `/locations/{location_id}[/{evse_uid}[/{connector_id}]]`, `GET /ocpi/2.2.1/tariffs`;
  `POST /oauth/token` (OAuth2 client credentials), `GET /health` (no auth, no data).
- Paging per OCPI: `offset`, `limit` (capped; 0 is refused), `date_from` (inclusive), `date_to`
  (exclusive) on the wire `last_updated`; `X-Total-Count`, `X-Limit`, `Link: <...>; rel="next"`
  (absent on the last page) carrying the filters plus `snapshot=<version>`, which pins the rest of
  a crawl to the data set it started on while that version is retained.
- DATEX II 3.7 (AFIR Energy Infrastructure profile, docs/datex2.md): `GET /datex2/v3.7/static.xml`,
  `static.json`, `status.xml`, `status.json` and `rejections.json`: the same objects from the same
  snapshot version as the OCPI routes (written once per version when the snapshot loads, streamed
  from disk), with `X-Data-Version` naming that version; `?snapshot=<version>` pins a retained one.
- Auth: `Authorization: Token <base64(OCPI_TOKEN)>` (raw token accepted for 2.1.1/2.2 clients) or
  `Authorization: Bearer <JWT>` from `/oauth/token`; everything but the token endpoint and
  `/health` answers 401 without them. `X-Request-ID` / `X-Correlation-ID` are echoed everywhere.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

# FileResponse opens files through anyio.open_file, which anyio imports lazily on first use. That
# first import must not happen in a server thread: compiling a module there while another thread
# compiles (an import in the main thread) can fail on CPython 3.11 ("AST constructor recursion depth
# mismatch"). Resolve it here, when this module is imported.
from anyio import open_file as _open_file  # noqa: F401
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from evpipeline import settings
from evpipeline.datex2.publication import Creator
from evpipeline.ndw.datex2_export import CONTENT_TYPES, DATEX_VERSION, REJECTIONS, document_name
from evpipeline.ndw.export import nap_countries
from evpipeline.ndw.pull_auth import TOKEN_PATH, OcpiMiddleware, token_endpoint
from evpipeline.ndw.pull_paging import BadParameter, dumps, ocpi_error, ocpi_response, parse_page_query
from evpipeline.ndw.pull_settings import DEFAULT_PAGE_CAP, OcpiServerSettings
from evpipeline.ndw.pull_snapshot import SnapshotStore, load_snapshot, snapshot_path

log = logging.getLogger(__name__)

VERSION = "2.2.1"
OCPI_PREFIX = "/ocpi"
BASE_PATH = f"{OCPI_PREFIX}/{VERSION}"
MODULES = ("locations", "tariffs")
DATEX2_PREFIX = f"/datex2/v{DATEX_VERSION}"


def create_ocpi_app(store: SnapshotStore, settings: OcpiServerSettings) -> Starlette:
    """The pull server: OCPI 2.2.1 Locations + Tariffs (Sender), versions, OAuth2 token endpoint."""

    def base_url(request: Request) -> str:
        return settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")

    def data_or_503() -> Response | None:
        if store.current is None:
            return ocpi_error(
                503,
                3000,
                "No data available yet: the snapshot has not been loaded",
                {"Retry-After": str(max(1, round(store.poll_interval)))},
            )
        return None

    async def versions(request: Request) -> Response:
        return ocpi_response(dumps([{"version": VERSION, "url": f"{base_url(request)}{BASE_PATH}"}]))

    async def version_details(request: Request) -> Response:
        base = f"{base_url(request)}{BASE_PATH}"
        endpoints = [{"identifier": m, "role": "SENDER", "url": f"{base}/{m}"} for m in MODULES]
        return ocpi_response(dumps({"version": VERSION, "endpoints": endpoints}))

    def listing(module: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if (unavailable := data_or_503()) is not None:
                return unavailable
            try:
                query = parse_page_query(request.query_params, settings.page_cap)
            except BadParameter as exc:
                return ocpi_error(400, 2001, str(exc))
            version = store.version(query.snapshot)
            assert version is not None
            collection = version.module(module)
            positions = collection.window(query.date_from, query.date_to)
            total = len(positions)
            page = collection.page(positions, query.offset, query.limit)
            headers = {"X-Total-Count": str(total), "X-Limit": str(query.limit)}
            if page and query.offset + len(page) < total:
                next_query = {
                    "offset": str(query.offset + len(page)),
                    "limit": str(query.limit),
                    **query.filters,
                    "snapshot": version.token,
                }
                url = (
                    f"{base_url(request)}{BASE_PATH}/{module}"
                    f"?{urlencode(next_query, safe=':', quote_via=quote)}"
                )
                headers["Link"] = f'<{url}>; rel="next"'
            return ocpi_response(b"[" + b",".join(page) + b"]", headers=headers)

        return handler

    def find_location(request: Request) -> bytes | Response:
        """The Location's JSON bytes, or the error response to send instead."""
        if (unavailable := data_or_503()) is not None:
            return unavailable
        version = store.current
        assert version is not None
        location_id = request.path_params["location_id"]
        found = version.locations.by_id.get(location_id.casefold(), ())
        if len(found) > 1:  # the same id at several CPOs: the OCPI routing headers say which one
            cc = request.headers.get("OCPI-to-country-code", "").casefold()
            pid = request.headers.get("OCPI-to-party-id", "").casefold()
            found = tuple(
                i
                for i in found
                if (not cc or version.locations.keys[i][0].casefold() == cc)
                and (not pid or version.locations.keys[i][1].casefold() == pid)
            )
            if len(found) > 1:
                return ocpi_error(
                    409,
                    2002,
                    f"Location {location_id!r} exists at several parties: "
                    "send OCPI-to-country-code and OCPI-to-party-id",
                )
        if not found:
            return ocpi_error(404, 2003, f"Unknown location {location_id!r}")
        return version.locations.bodies[found[0]]

    def _child(items: list[dict[str, Any]], name: str, value: str) -> dict[str, Any] | None:
        return next((item for item in items if str(item.get(name, "")).casefold() == value.casefold()), None)

    async def location(request: Request) -> Response:
        body = find_location(request)
        return body if isinstance(body, Response) else ocpi_response(body)

    async def evse_or_connector(request: Request) -> Response:
        body = find_location(request)
        if isinstance(body, Response):
            return body
        evse_uid = request.path_params["evse_uid"]
        evse = _child(json.loads(body).get("evses", []), "uid", evse_uid)
        if evse is None:
            return ocpi_error(
                404, 2003, f"Unknown EVSE {evse_uid!r} at location {request.path_params['location_id']!r}"
            )
        connector_id = request.path_params.get("connector_id")
        if connector_id is None:
            return ocpi_response(dumps(evse))
        connector = _child(evse.get("connectors", []), "id", connector_id)
        if connector is None:
            return ocpi_error(404, 2003, f"Unknown connector {connector_id!r} on EVSE {evse_uid!r}")
        return ocpi_response(dumps(connector))

    def datex2_document(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            if (unavailable := data_or_503()) is not None:
                return unavailable
            version = store.version(request.query_params.get("snapshot"))
            assert version is not None
            if version.publications is None and store.publications is None:
                return ocpi_error(404, 2000, "DATEX II publications are not enabled on this server")
            path = version.publications / name if version.publications is not None else None
            if path is None or not path.is_file():
                return ocpi_error(
                    503,
                    3000,
                    "DATEX II publications of this version are not available",
                    {"Retry-After": str(max(1, round(store.poll_interval)))},
                )
            return FileResponse(
                path,
                media_type=media_type,
                headers={"X-Data-Version": version.token, "Cache-Control": "no-cache"},
            )

        return handler

    datex2_routes = [
        Route(
            f"{DATEX2_PREFIX}/{document_name(kind, fmt)}",
            datex2_document(document_name(kind, fmt), CONTENT_TYPES[fmt]),
        )
        for kind in ("static", "status")
        for fmt in ("xml", "json")
    ] + [Route(f"{DATEX2_PREFIX}/{REJECTIONS}", datex2_document(REJECTIONS, CONTENT_TYPES["json"]))]

    async def health(request: Request) -> Response:
        version = store.current
        body = {
            "status": "ok" if version is not None else "no data",
            "version": version.token if version else None,
            "data_as_of": version.data_as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
            if version and version.data_as_of
            else None,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(version.loaded_at))
            if version
            else None,
        }
        return JSONResponse(body, status_code=200 if version is not None else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return ocpi_error(404, 2000, "Unknown resource")

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        allow = exc.headers.get("Allow", "GET") if isinstance(exc, HTTPException) and exc.headers else "GET"
        return ocpi_error(405, 2000, "Method not allowed", {"Allow": allow})

    def both(
        path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str] | None = None
    ) -> list[Route]:
        """The path with and without a trailing slash (no redirects: clients would resend credentials)."""
        return [
            Route(path, endpoint, methods=methods or ["GET"]),
            Route(path + "/", endpoint, methods=methods or ["GET"]),
        ]

    routes = [
        *both(f"{OCPI_PREFIX}/versions", versions),
        *both(BASE_PATH, version_details),
        *both(f"{BASE_PATH}/locations", listing("locations")),
        *both(f"{BASE_PATH}/tariffs", listing("tariffs")),
        *both(f"{BASE_PATH}/locations/{{location_id}}", location),
        *both(f"{BASE_PATH}/locations/{{location_id}}/{{evse_uid}}", evse_or_connector),
        *both(f"{BASE_PATH}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", evse_or_connector),
        *datex2_routes,
        Route(TOKEN_PATH, token_endpoint(settings), methods=["POST"]),
        Route("/health", health),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store.start()
        try:
            yield
        finally:
            store.stop()

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: method_not_allowed}
    )
    app.add_middleware(OcpiMiddleware, settings=settings)
    app.state.store, app.state.settings = store, settings
    return app


def app_from_env(
    data_dir: str | Path | None = None, *, page_cap: int = DEFAULT_PAGE_CAP, development: bool = False
) -> Starlette:
    """The pull server as `evpipeline serve-ocpi` / `dev` run it: the snapshot under `data_dir`
    (default: next to the warehouse), credentials from the OCPI_* variables (`development`: on the
    simulators' values on purpose, `evpipeline dev` and the demo, so no warning about them)."""
    config = OcpiServerSettings.from_env(page_cap=page_cap)
    if not config.token and not config.oauth_enabled:
        # A server we expose always requires auth: OCPI_TOKEN, or the OAuth2 pair, or both (README).
        settings.require(["OCPI_TOKEN", "OCPI_CLIENT_ID", "OCPI_CLIENT_SECRET"])
    on_dev_values = [name for name in ("OCPI_TOKEN", "OCPI_CLIENT_SECRET") if settings.dev_value(name)]
    if (
        on_dev_values and not development
    ):  # the simulators' values guard nothing; say so once, without printing them
        log.warning(
            "OCPI pull server: %s hold the development values; set your own", ", ".join(on_dev_values)
        )
    snapshot = snapshot_path(data_dir)
    creator = settings.get("DATEX2_PUBLICATION_CREATOR")
    if not creator:  # the DATEX II routes then answer 404 (the OCPI ones serve as ever)
        return create_ocpi_app(SnapshotStore(snapshot), config)
    # One DATEX II set per served version, next to the snapshot it was built from.
    loader = functools.partial(load_snapshot, countries=nap_countries(), creator=Creator.parse(creator))
    return create_ocpi_app(
        SnapshotStore(snapshot, publications=snapshot.parent / "datex2", loader=loader), config
    )
