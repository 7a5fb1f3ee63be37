"""GreenFlux's HTTP routes: CLM Locations v2 and Charge Stations, OCPI 2.1.1 tariffs, `Token` auth,
the OCPI envelope, `offset`/`limit` paging with `X-Total-Count`/`X-Limit`/`Link`, and GreenFlux's
two ways of saying "slow down"."""

from __future__ import annotations

import base64
import copy
import hmac
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import numpy as np

from evpipeline.simulators.greenflux.fleet import GreenFluxFleet
from evpipeline.simulators.greenflux.records import CPOS, iso, parse_time
from evpipeline.simulators.toolkit import HttpReply, Request, Response, Script

API = "/api/2.0"
TARIFFS_PATH = "/api/1.0/tariffs"


class GreenFluxHandlers(GreenFluxFleet):
    """The API a CLM client sees, over the fleet below."""

    token: str
    max_limit: int
    default_limit: int
    bare_lists: bool
    rate_limit_style: str
    _throttled: int
    _ocpi_script: Script[tuple[int, str]]

    def _add_routes(self) -> None:
        self.route("GET", f"{API}/Locations", self._list_locations)
        self.route("GET", f"{API}/Locations/(?P<id>[^/]+)", self._get_location)
        self.route("GET", f"{API}/ChargeStations", self._list_charge_stations)
        self.route("GET", f"{API}/ChargeStations/(?P<id>[^/]+)", self._get_charge_station)
        self.route("GET", TARIFFS_PATH, self._list_tariffs)

    def account_of(self, request: Request) -> str:
        return request.header("Authorization") or request.client

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        """GreenFlux says "slow down" either as HTTP 429 + Retry-After or inside an HTTP 200."""
        self._throttled += 1
        seconds = max(0, math.ceil(retry_after))
        in_body = self.rate_limit_style == "body" or (
            self.rate_limit_style == "alternate" and self._throttled % 2 == 1
        )
        payload = self._envelope(None, 2000, f"API rate limit exceeded. Try again in {seconds} seconds.")
        if in_body:
            return Response.json(payload)
        return Response.json(payload, 429, {"Retry-After": str(seconds)})

    def _envelope(self, data: Any, code: int = 1000, message: str = "Success") -> dict[str, Any]:
        return {"data": data, "status_code": code, "status_message": message, "timestamp": iso(self._now())}

    def _ocpi_reply(self, code: int, message: str, http: int = 200) -> HttpReply:
        return HttpReply(Response.json(self._envelope(None, code, message), http))

    def _authorize(self, request: Request) -> None:
        header = request.header("Authorization") or ""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "token" or not presented.strip():
            raise self._ocpi_reply(2000, "Authorization header with a Token is required", 401)
        presented = presented.strip()
        try:
            decoded = base64.b64decode(presented, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = ""
        ok = hmac.compare_digest(presented, self.token) or hmac.compare_digest(decoded, self.token)
        if self.faults.bad_auth or not ok:
            raise self._ocpi_reply(2000, "Invalid or expired token", 403)
        scripted = self._ocpi_script.take(request.path)
        if scripted is not None:
            raise self._ocpi_reply(*scripted)

    def _paging(self, request: Request) -> tuple[int, int, int | None, int | None]:
        """offset, limit (capped at max_limit), date_from, date_to (epoch seconds)."""
        try:
            offset = request.int_arg("offset", 0)
            limit = request.int_arg("limit", self.default_limit)
            if offset < 0 or limit < 1:
                raise ValueError
        except ValueError:
            raise self._ocpi_reply(
                2001, "Invalid or missing parameters: offset and limit must be non-negative integers"
            ) from None
        bounds = []
        for name in ("date_from", "date_to"):
            value = request.arg(name)
            try:
                bounds.append(parse_time(value) if value else None)
            except ValueError:
                raise self._ocpi_reply(
                    2001, f"Invalid or missing parameters: {name} must be yyyy-MM-ddTHH:mm:ssZ"
                ) from None
        return offset, min(limit, self.max_limit), bounds[0], bounds[1]

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return (request.arg(name) or "").lower() in ("true", "1", "yes")

    def _select(
        self, stamps: np.ndarray, date_from: int | None, date_to: int | None, extra: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Indices matching the filters (creation order); None when nothing filters (all of them)."""
        if date_from is None and date_to is None and extra is None:
            return None
        mask = np.ones(len(stamps), dtype=bool) if extra is None else extra.copy()
        if date_from is not None:
            mask &= stamps >= date_from  # inclusive
        if date_to is not None:
            mask &= stamps < date_to  # exclusive
        return np.flatnonzero(mask)

    def _list(
        self, request: Request, total_count: int, matching: np.ndarray | None, render: Any, bare: bool
    ) -> Response:
        offset, limit, _, _ = self._paging(request)
        total = total_count if matching is None else len(matching)
        chunk = (
            range(offset, min(total, offset + limit))
            if matching is None
            else matching[offset : offset + limit]
        )
        data = [render(int(k)) for k in chunk]
        headers = {"X-Total-Count": str(total), "X-Limit": str(limit)}
        if offset + len(data) < total:
            query = {k: v[0] for k, v in request.query.items()}
            query.update(offset=str(offset + len(data)), limit=str(limit))
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return Response.json(data if bare else self._envelope(data), headers=headers)

    def _list_locations(self, request: Request) -> Response:
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        # exclude_evses_modified: only changes of the Location object itself count.
        with_evses = not self._flag(request, "exclude_evses")
        with self.lock:
            stamps = (
                self._loc_modified if self._flag(request, "exclude_evses_modified") else self._loc_updated
            ).view
            cpo = request.arg("cpoId")
            extra = np.isin(self._loc_cpo.view, self._cpo_indices(cpo)) if cpo else None
            matching = self._select(stamps, date_from, date_to, extra)
            return self._list(
                request, self.n_locations, matching, lambda i: self._location(i, with_evses), self.bare_lists
            )

    @staticmethod
    def _cpo_indices(cpo_id: str) -> list[int]:
        """Indices into CPOS of a `cpoId` filter (GreenFlux matches it case-insensitively)."""
        return [n for n, c in enumerate(CPOS) if c.cpo_id.lower() == cpo_id.lower()]

    def _get_one(
        self,
        request: Request,
        what: str,
        index: Callable[[str], int | None],
        render: Callable[[int], dict[str, Any]],
    ) -> Response:
        """One object by id, enveloped; OCPI 2003 + HTTP 404 for an unknown id."""
        self._authorize(request)
        with self.lock:
            k = index(request.params["id"])
            if k is None:
                raise self._ocpi_reply(2003, f"Unknown {what} {request.params['id']}", 404)
            return Response.json(self._envelope(render(k)))

    def _get_location(self, request: Request) -> Response:
        return self._get_one(
            request,
            "location",
            self.location_index,
            lambda i: self._location(i, not self._flag(request, "excludeEvses")),
        )

    def _list_charge_stations(self, request: Request) -> Response:
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        with self.lock:
            extra = None
            location = request.arg("location_id")
            if location:
                extra = self._cs_loc.view == (
                    self.location_index(location) if self.location_index(location) is not None else -1
                )
            cpo = request.arg("cpoId")
            if cpo:
                by_cpo = np.isin(self._loc_cpo.view[self._cs_loc.view], self._cpo_indices(cpo))
                extra = by_cpo if extra is None else extra & by_cpo
            matching = self._select(self._cs_modified.view, date_from, date_to, extra)
            return self._list(
                request, self.n_charge_stations, matching, self._charge_station, self.bare_lists
            )

    def _get_charge_station(self, request: Request) -> Response:
        return self._get_one(request, "charge station", self.charge_station_index, self._charge_station)

    def _list_tariffs(self, request: Request) -> Response:
        """OCPI 2.1.1-style tariffs of every CPO on the platform (always enveloped)."""
        self._authorize(request)
        _, _, date_from, date_to = self._paging(request)
        with self.lock:
            tariffs = sorted(self.tariffs.values(), key=lambda t: int(t["id"]))
            stamps = np.array([parse_time(t["last_updated"]) for t in tariffs], dtype=np.int64)
            matching = self._select(stamps, date_from, date_to)
            return self._list(
                request, len(tariffs), matching, lambda k: copy.deepcopy(tariffs[k]), bare=False
            )
