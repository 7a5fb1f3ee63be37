"""TomTom's HTTP routes: EV Charging Stations Availability v2 (JSON or XML, documented error bodies,
`Tracking-ID`, gzip) and Search's category search around a point, behind a QPS limit per key."""

from __future__ import annotations

import gzip
import math
import re
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

from evpipeline.simulators.tomtom.fleet import (
    CONNECTOR_TYPES,
    DC_TYPES,
    OTHER_CATEGORIES,
    STATES,
    Poi,
    PowerLevel,
    TomTomFleet,
    distance_m,
)
from evpipeline.simulators.toolkit import HttpReply, Request, Response, paginate
from evpipeline.simulators.toolkit import retry_after as retry_after_header

TRACKING_ID = re.compile(r"^[a-zA-Z0-9-]{1,100}$")
ALPHA2 = {
    "NLD": "NL",
    "BEL": "BE",
    "NOR": "NO",
    "NZL": "NZ",
    "DEU": "DE",
    "FRA": "FR",
    "DNK": "DK",
    "SWE": "SE",
}
COUNTRY_NAMES = {"NLD": "Netherlands", "BEL": "Belgium", "NOR": "Norway", "NZL": "New Zealand"}


class TomTomHandlers(TomTomFleet):
    """Availability and category search over the fleet; errors in the shape each API documents."""

    api_key: str

    def _add_routes(self) -> None:
        self.route("GET", r"/search/2/chargingAvailability\.(?P<ext>[A-Za-z]+)", self._availability)
        self.route(
            "GET", r"/search/2/categorySearch/(?P<query>[^/]+)\.(?P<ext>[A-Za-z]+)", self._category_search
        )

    def availability_body(
        self,
        availability_id: str,
        connector_set: set[str] | None = None,
        min_kw: float | None = None,
        max_kw: float | None = None,
    ) -> dict[str, Any]:
        """The response body for one id; power filters are closed intervals, counts add up per level."""
        with self.lock:
            poi = self.by_availability.get(availability_id)
            by_type: dict[str, list[PowerLevel]] = {}
            for level in poi.levels if poi is not None else []:
                if connector_set is not None and level.connector_type not in connector_set:
                    continue
                if (min_kw is not None and level.power_kw < min_kw) or (
                    max_kw is not None and level.power_kw > max_kw
                ):
                    continue
                by_type.setdefault(level.connector_type, []).append(level)
            connectors = []
            for kind, levels in by_type.items():
                per_level = []
                for level in sorted(levels, key=lambda lv: lv.power_kw):
                    per_level.append(
                        {"powerKW": level.power_kw, **{s: level.states.count(s) for s in STATES}}
                    )
                current = {s: sum(p[s] for p in per_level) for s in STATES}
                connectors.append(
                    {
                        "type": kind,
                        "total": sum(len(level.states) for level in levels),
                        "availability": {"current": current, "perPowerLevel": per_level},
                    }
                )
            return {"connectors": connectors, "chargingAvailability": availability_id}

    # -- API ---------------------------------------------------------------------------------
    def account_of(self, request: Request) -> str:
        return request.arg("key") or request.client

    def _tracking(self, request: Request) -> str:
        value = request.header("Tracking-ID")
        return value if value and TRACKING_ID.match(value) else str(uuid.uuid4())

    def _ext(self, request: Request) -> str:
        ext = request.params.get("ext") or request.path.rsplit(".", 1)[-1]
        return "xml" if ext == "xml" else "json"

    def _error(
        self,
        request: Request,
        status: int,
        message: str,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """The documented EV error body, in the format the request's extension asked for."""
        extra = {"Tracking-ID": self._tracking(request), **(headers or {})}
        if self._ext(request) == "xml":
            root = ET.Element("ErrorEvResponse")
            ET.SubElement(root, "message").text = message
            detailed = ET.SubElement(root, "detailedError")
            ET.SubElement(detailed, "code").text = code
            ET.SubElement(detailed, "message").text = detail
            return Response.text(
                ET.tostring(root, encoding="unicode"), status, "application/xml; charset=utf-8", extra
            )
        body = {
            "message": message,
            "detailedError": {"code": code, "message": detail},
            "httpStatusCode": str(status),
        }
        return Response.json(body, status, extra)

    def too_many_requests(self, request: Request, retry_after: float) -> Response:
        return self._error(
            request,
            429,
            "Too Many Requests",
            "TooManyRequests",
            "The API key is over its QPS (queries per second) limit.",
            retry_after_header(retry_after),
        )

    def server_error(self, request: Request, status: int) -> Response:
        return self._error(
            request,
            status,
            "Internal Server Error",
            "InternalError",
            "The service was unable to process your request.",
        )

    def method_not_allowed(self, request: Request, allowed: list[str]) -> Response:
        return self._error(
            request,
            405,
            "Method Not Allowed",
            "MethodNotAllowed",
            f"Method {request.method} is not allowed; use GET.",
            {"Allow": "GET"},
        )

    def _authorize(self, request: Request) -> None:
        if not self.credential_ok(request.arg("key"), self.api_key):
            raise HttpReply(
                self._error(
                    request,
                    403,
                    "Forbidden",
                    "Forbidden",
                    "Not authorized: the API key is missing or invalid.",
                )
            )

    def _check_tracking(self, request: Request) -> None:
        value = request.header("Tracking-ID")
        if value is not None and not TRACKING_ID.match(value):
            raise HttpReply(
                self._error(
                    request,
                    400,
                    "Invalid header 'Tracking-ID'",
                    "InvalidHeader",
                    "Tracking-ID must match ^[a-zA-Z0-9-]{1,100}$.",
                )
            )

    def _invalid(self, request: Request, name: str, why: str) -> HttpReply:
        return HttpReply(
            self._error(request, 400, f"Invalid value for parameter '{name}'", "InvalidParameter", why)
        )

    def _float_arg(self, request: Request, name: str) -> float | None:
        value = request.arg(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self._invalid(request, name, f"'{value}' is not a number.") from None
        if not math.isfinite(number) or number < 0:
            raise self._invalid(request, name, f"'{value}' is out of range.")
        return number

    def _render(self, request: Request, body: dict[str, Any], xml: bool) -> Response:
        headers = {
            "Tracking-ID": self._tracking(request),
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "no-cache",
        }
        if xml:
            response = Response.text(availability_xml(body), 200, "application/xml; charset=utf-8", headers)
        else:
            response = Response.json(body, 200, headers)
        if "gzip" in (request.header("Accept-Encoding") or "") and len(response.body) >= 512:
            response.body = gzip.compress(response.body, mtime=0)
            response.headers["Content-Encoding"] = "gzip"
        return response

    def _availability(self, request: Request) -> Response:
        self._authorize(request)
        ext = request.params["ext"]
        if ext not in ("json", "xml"):  # case-sensitive, like every parameter
            raise self._invalid(request, "ext", "The response format must be json or xml.")
        self._check_tracking(request)
        availability_id = request.arg("chargingAvailability")
        if not availability_id:
            raise HttpReply(
                self._error(
                    request,
                    400,
                    "Missing parameter 'chargingAvailability'",
                    "MissingParameter",
                    "Missing required parameter 'chargingAvailability'.",
                )
            )
        connector_set: set[str] | None = None
        raw_set = request.arg("connectorSet")
        if raw_set is not None:
            connector_set = {c for c in raw_set.split(",") if c}
            unknown = sorted(connector_set - set(CONNECTOR_TYPES))
            if unknown or not connector_set:
                raise self._invalid(
                    request,
                    "connectorSet",
                    f"Unsupported connector type(s): {', '.join(unknown) or '(empty)'}.",
                )
        min_kw, max_kw = self._float_arg(request, "minPowerKW"), self._float_arg(request, "maxPowerKW")
        body = self.availability_body(availability_id, connector_set, min_kw, max_kw)
        return self._render(request, body, ext == "xml")

    def _search_error(self, status: int, message: str) -> HttpReply:
        """Search API errors use their own shape (`errorText`), not the EV one."""
        return HttpReply(
            Response.json(
                {
                    "errorText": message,
                    "detailedError": {
                        "message": message,
                        "code": "BadRequest" if status == 400 else "Forbidden",
                    },
                    "httpStatusCode": status,
                },
                status,
            )
        )

    def _category_search(self, request: Request) -> Response:
        if not self.credential_ok(request.arg("key"), self.api_key):
            raise self._search_error(403, "Not authorized: the API key is missing or invalid.")
        if request.params["ext"] != "json":
            raise self._search_error(400, "Unsupported response format (the simulator serves json).")
        query = unquote(request.params["query"])
        try:
            lat, lon = float(request.arg("lat", "nan") or "nan"), float(request.arg("lon", "nan") or "nan")
            radius = request.int_arg("radius", 10000)
            limit = request.int_arg("limit", 10)
            ofs = request.int_arg("ofs", 0)
            categories = {int(c) for c in (request.arg("categorySet") or "").split(",") if c}
        except ValueError as exc:
            raise self._search_error(400, f"Error parsing a parameter: {exc}") from None
        if math.isnan(lat) or math.isnan(lon) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise self._search_error(400, "Error parsing 'lat'/'lon': a position is required with 'radius'.")
        if not (1 <= limit <= 100) or not (0 <= ofs <= 1900) or not (0 < radius <= 50_000):
            raise self._search_error(400, "Error parsing 'limit', 'ofs' or 'radius': out of range.")
        with self.lock:
            hits = sorted(
                (
                    (distance_m(lat, lon, p.latitude, p.longitude), p)
                    for p in self._near(lat, lon, radius)
                    if not categories or p.category in categories
                ),
                key=lambda pair: (pair[0], pair[1].id),
            )
            results = [self._result(p, d, radius) for d, p in paginate(hits, ofs, limit)]
        body = {
            "summary": {
                "query": query,
                "queryType": "NEARBY",
                "queryTime": 7,
                "numResults": len(results),
                "offset": ofs,
                "totalResults": len(hits),
                "fuzzyLevel": 1,
                "geoBias": {"lat": lat, "lon": lon},
            },
            "results": results,
        }
        return Response.json(
            body, 200, {"Tracking-ID": self._tracking(request), "Access-Control-Allow-Origin": "*"}
        )

    def _result(self, poi: Poi, dist: float, radius: float) -> dict[str, Any]:
        label = (
            "electric vehicle station"
            if poi.charging
            else next(c[1] for c in OTHER_CATEGORIES if c[0] == poi.category)
        )
        code = (
            "ELECTRIC_VEHICLE_STATION"
            if poi.charging
            else next(c[2] for c in OTHER_CATEGORIES if c[0] == poi.category)
        )
        street, _, city = poi.address.partition(", ")
        result: dict[str, Any] = {
            "type": "POI",
            "id": poi.id,
            "score": round(2.5 * (1 - dist / max(radius, 1.0)) + 0.5, 5),
            "dist": round(dist, 6),
            "info": f"search:ev:{poi.id}",
            "poi": {
                "name": poi.name,
                "categorySet": [{"id": poi.category}],
                "categories": [label],
                "classifications": [{"code": code, "names": [{"nameLocale": "en-US", "name": label}]}],
            },
            "address": {
                "streetName": street.rsplit(" ", 1)[0],
                "municipality": city,
                "countryCode": ALPHA2.get(poi.country, poi.country[:2]),
                "country": COUNTRY_NAMES.get(poi.country, poi.country),
                "countryCodeISO3": poi.country,
                "freeformAddress": poi.address,
            },
            "position": {"lat": poi.latitude, "lon": poi.longitude},
            "entryPoints": [{"type": "main", "position": {"lat": poi.latitude, "lon": poi.longitude}}],
        }
        if poi.charging:
            result["chargingPark"] = {"connectors": [connector_details(level) for level in poi.levels]}
        if poi.availability_id:
            result["dataSources"] = {"chargingAvailability": {"id": poi.availability_id}}
        return result


def connector_details(level: PowerLevel) -> dict[str, Any]:
    """A `chargingPark.connectors` entry: type, rating and the electrical details that go with it."""
    kind, kw = level.connector_type, level.power_kw
    if kind in DC_TYPES or (kind == "Tesla" and kw > 22):
        volts, current_type = (500 if kw <= 50 else 920), "DC"
        amps = kw * 1000 / volts
    elif kw <= 7.4:
        volts, current_type, amps = 230, "AC1", kw * 1000 / 230
    else:
        volts, current_type, amps = 400, "AC3", kw * 1000 / (400 * math.sqrt(3))
    return {
        "connectorType": kind,
        "ratedPowerKW": kw,
        "voltageV": volts,
        "currentA": int(round(amps)),
        "currentType": current_type,
    }


def availability_xml(body: dict[str, Any]) -> str:
    """The documented XML form of an availability response (one `perPowerLevel` per level)."""
    root = ET.Element("response")
    ET.SubElement(root, "chargingAvailability").text = str(body["chargingAvailability"])
    connectors = ET.SubElement(root, "connectors")
    for connector in body["connectors"]:
        item = ET.SubElement(connectors, "item")
        ET.SubElement(item, "type").text = connector["type"]
        ET.SubElement(item, "total").text = str(connector["total"])
        availability = ET.SubElement(item, "availability")
        current = ET.SubElement(availability, "current")
        for state in STATES:
            ET.SubElement(current, state).text = str(connector["availability"]["current"][state])
        for level in connector["availability"]["perPowerLevel"]:
            power = ET.SubElement(ET.SubElement(availability, "perPowerLevel"), "power")
            ET.SubElement(power, "powerKW").text = repr(float(level["powerKW"]))
            for state in STATES:
                ET.SubElement(power, state).text = str(level[state])
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
