"""What the DATEX II documents are rendered from: lookup tables for the whole document and, per
chunk, one row per published site, station and charging point with its content hash and version.

Document-wide (`create_lookups`, small): the rule tables of `rules`, each time zone's UTC offset,
each distinct OCPI opening-hours value in DATEX II terms, the operator and helpdesk organisations
(operator reference data, `mart.operators`), each ad hoc tariff as an energy rate (`rates`).

Per chunk (`chunk_input`, after the chunk's selection): `points`, `stations`, `sites` temp tables
(what `evpipeline.datex2.document` reads), each object's content hash (its own content; children
count by id) and, from the ledger (`versions`), its version and lastUpdated.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from evpipeline.datex2 import rates, rules, versions
from evpipeline.datex2.document import Declarations
from evpipeline.datex2.encoding import folded, render
from evpipeline.datex2.selection import CHUNK, CONNECTOR_TYPES, ORGS, RATE_PROBLEMS, RATES, ZONES
from evpipeline.ndw.export import candidate, sql_literal

HOURS = "_dx_hours"
RULE_FORMATS, RULE_MODES, RULE_STATUSES, RULE_AUTH, RULE_COUNTRIES, RULE_FACILITIES = (
    "_dx_rule_connector_format",
    "_dx_rule_charging_mode",
    "_dx_rule_status",
    "_dx_rule_auth",
    "_dx_rule_country",
    "_dx_rule_facility",
)
TS = "%Y-%m-%dT%H:%M:%SZ"

# Columns of a chunk's tables that are not the object's own content (keys, order, dynamic data,
# what belongs to another object): excluded from its content hash.
POINT_NOT_CONTENT = (
    "site_no",
    "site_id",
    "country_code",
    "party_id",
    "location_id",
    "evse_uid",
    "station_id",
    "station_ref",
    "capabilities",
    "lat",
    "lon",
    "floor_level",
    "parking_restrictions",
    "status",
    "status_time",
    "data_updated",
    "rate_def_ids",
)
STATION_NOT_CONTENT = ("site_no", "site_id", "data_updated")
SITE_NOT_CONTENT = (
    "site_no",
    "party",
    "country_code",
    "party_id",
    "hours_key",
    "hours_hash",
    "data_updated",
    "defines_orgs",
)

_PERIOD = pa.struct(
    [
        ("start_of", pa.string()),
        ("end_of", pa.string()),
        ("tstart", pa.string()),
        ("tend", pa.string()),
        ("days", pa.list_(pa.string())),
    ]
)
_PRICE = pa.struct(
    [
        ("price_type", pa.string()),
        ("value", pa.float64()),
        ("tax_included", pa.bool_()),
        ("tax_rate", pa.float64()),
        ("overall_start", pa.string()),
        ("overall_end", pa.string()),
        ("valid", pa.list_(_PERIOD)),
        ("exceptions", pa.list_(_PERIOD)),
        ("from_minute", pa.int64()),
        ("to_minute", pa.int64()),
        ("from_kwh", pa.float64()),
        ("to_kwh", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Lookups:
    """What `create_lookups` found: the ledger exists, and the tariffs it could not publish."""

    ledger: bool
    rate_losses: dict[str, int]  # loss -> rates


def _table(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
    con.register("_dx_arrow", data)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _dx_arrow")
    finally:
        con.unregister("_dx_arrow")


def _pairs(con: duckdb.DuckDBPyConnection, name: str, table: Mapping[Any, str | None]) -> None:
    _table(con, name, pa.table({"k": [str(k) for k in table], "v": list(table.values())}))


def create_lookups(
    con: duckdb.DuckDBPyConnection, countries: list[str], doc: Declarations, *, status_json_only: bool = False
) -> Lookups:
    """The document-wide lookup tables (see the module docstring), their nested parts (periods,
    prices, energy rates) rendered once in both formats: they are few, and DuckDB plans the nested
    lambdas it would take to render them inside every point slowly. `status_json_only`: only what a
    pushed status publication needs (the rates' price updates in JSON): the real-time lane's case."""
    _pairs(con, CONNECTOR_TYPES, rules.CONNECTOR_TYPES)
    _pairs(con, RULE_MODES, rules.CHARGING_MODES)
    _pairs(con, RULE_STATUSES, rules.REFILL_POINT_STATUSES)
    _pairs(con, RULE_AUTH, rules.AUTHENTICATION_METHODS)
    _pairs(con, RULE_COUNTRIES, rules.COUNTRIES)
    facilities = [(k, "service", v) for k, v in rules.SERVICE_FACILITIES.items()]
    facilities += [(k, "equipment", v) for k, v in rules.EQUIPMENT_FACILITIES.items()]
    _table(
        con,
        RULE_FACILITIES,
        pa.table(
            {
                "k": [k for k, _, _ in facilities],
                "kind": [kind for _, kind, _ in facilities],
                "v": [v for _, _, v in facilities],
            }
        ),
    )
    formats = rules.CONNECTOR_FORMATS
    _table(
        con,
        RULE_FORMATS,
        pa.table(
            {
                "format": [f for f, _ in formats],
                "current": [c for _, c in formats],
                "v": list(formats.values()),
            }
        ),
    )
    where = candidate(countries)
    zones = [
        z
        for (z,) in con.execute(
            f"SELECT DISTINCT time_zone FROM mart.locations l WHERE {where} AND time_zone IS NOT NULL"
        ).fetchall()
    ]
    offsets = {z: offset for z in zones if (offset := standard_offset(z)) is not None}
    _table(
        con,
        ZONES,
        pa.table(
            {"time_zone": list(offsets), "tz_offset": list(offsets.values())},
            schema=pa.schema([("time_zone", pa.string()), ("tz_offset", pa.string())]),
        ),
    )
    hours = [
        h
        for (h,) in con.execute(
            f"SELECT DISTINCT CAST(opening_times AS VARCHAR) FROM mart.locations l "
            f"WHERE {where} AND opening_times IS NOT NULL"
        ).fetchall()
    ]
    _table(
        con,
        HOURS,
        pa.Table.from_pylist(
            [{"opening_times": h, **opening_hours(json.loads(h))} for h in hours],
            schema=pa.schema(
                [
                    ("opening_times", pa.string()),
                    ("open_all", pa.bool_()),
                    ("valid", pa.list_(_PERIOD)),
                    ("exceptions", pa.list_(_PERIOD)),
                    ("hash", pa.string()),
                ]
            ),
        ),
    )
    ledger = versions.has_ledger(con)
    _create_orgs(con, ledger)
    losses = _create_rates(con, doc.lang_code)
    if not status_json_only:
        _render_orgs(con, doc)
        _render_hours(con, doc)
    _render_rates(
        con, doc, ("json",) if status_json_only else ("json", "xml"), definitions=not status_json_only
    )
    return Lookups(ledger, losses)


def _aggregate(fragment: str, order: str, sep: str, where: str | None = None) -> str:
    """An aggregate: the group's fragments in `order`, joined by `sep` ('' for none)."""
    condition = f" FILTER (WHERE {where})" if where else ""
    return f"coalesce(array_to_string(list({fragment} ORDER BY {order}){condition}, '{sep}'), '')"


def _render_periods(
    con: duckdb.DuckDBPyConnection,
    doc: Declarations,
    source: str,
    keys: str,
    *,
    native: bool,
    formats: tuple[str, ...] = ("json", "xml"),
) -> str:
    """Render the periods of `source` (rows: keys, kind valid|exceptions, n, period struct q); returns
    a query of keys + valid_<fmt>, exceptions_<fmt> per format."""
    period = doc.period("q")
    prefix = "afir" if native else "com"
    columns = []
    for fmt in formats:
        for kind, tag in (("valid", "validPeriod"), ("exceptions", "exceptionPeriod")):
            fragment = period.json() if fmt == "json" else period.xml(f"{prefix}:{tag}", native)
            where = f"kind = {chr(39)}{kind}{chr(39)}"
            columns.append(
                f"{_aggregate(fragment, 'n', ',' if fmt == 'json' else '', where)} AS {kind}_{fmt}"
            )
    return f"SELECT {keys}, {', '.join(columns)} FROM {source} GROUP BY {keys}"


def _periods_of(table: str, keys: str, valid: str, exceptions: str) -> str:
    return (
        f"SELECT {keys}, 'valid' AS kind, unnest(range(1, len({valid}) + 1)) AS n, unnest({valid}) AS q "
        f"FROM {table} UNION ALL SELECT {keys}, 'exceptions', unnest(range(1, len({exceptions}) + 1)), "
        f"unnest({exceptions}) FROM {table}"
    )


def _render_hours(con: duckdb.DuckDBPyConnection, doc: Declarations) -> None:
    """Each distinct opening-hours value's periods, rendered (3.7 placement:
    they sit in fac:operatingHours)."""
    rendered = _render_periods(
        con,
        doc,
        f"({_periods_of(HOURS, 'opening_times', 'valid', 'exceptions')})",
        "opening_times",
        native=False,
    )
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {HOURS} AS
                    SELECT h.*, coalesce(r.valid_json, '') AS valid_json,
                           coalesce(r.valid_xml, '') AS valid_xml,
                           coalesce(r.exceptions_json, '') AS exceptions_json,
                           coalesce(r.exceptions_xml, '') AS exceptions_xml
                    FROM {HOURS} h LEFT JOIN ({rendered}) r USING (opening_times)""")


def _render_rates(
    con: duckdb.DuckDBPyConnection, doc: Declarations, formats: tuple[str, ...], *, definitions: bool
) -> None:
    """Each energy rate rendered whole (its definition, `def_<fmt>`, with `definitions`) and as a
    status price update (`upd_<fmt>`), for each of `formats`, its prices and their periods first
    (profile-native XML: rates live in extensions)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _dx_price_rows AS SELECT rate_id, unnest(range(1, "
        f"len(prices) + 1)) AS price_no, unnest(prices) AS p FROM {RATES}"
    )
    periods = _render_periods(
        con,
        doc,
        "(" + _periods_of("_dx_price_rows", "rate_id, price_no", "p.valid", "p.exceptions") + ")",
        "rate_id, price_no",
        native=True,
        formats=formats,
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dx_price_periods AS {periods}")
    price, rate, update = doc.energy_price("p"), doc.energy_rate("r"), doc.rate_update("r")
    for fmt in formats:
        # The declarations read `valid`/`exceptions` (a price's periods) and `prices_rendered` (a
        # rate's prices) in the format being rendered.
        fragment = price.json() if fmt == "json" else price.xml("afir:energyPrice", True)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _dx_prices_{fmt} AS
            SELECT rate_id, {_aggregate(fragment, "price_no", "," if fmt == "json" else "")}
                AS prices_rendered
            FROM (SELECT pr.*, coalesce(pp.valid_{fmt}, '') AS valid,
                  coalesce(pp.exceptions_{fmt}, '') AS exceptions
                  FROM _dx_price_rows pr LEFT JOIN _dx_price_periods pp USING (rate_id, price_no))
            GROUP BY rate_id""")
    for fmt in formats:
        rendered = [(rate, "def", "afir:energyRate")] if definitions else []
        rendered.append((update, "upd", "afir:energyRateUpdate"))
        columns = ", ".join(
            f"{(node.json() if fmt == 'json' else node.xml(tag, True))} AS {name}_{fmt}"
            for node, name, tag in rendered
        )
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {RATES} AS
            SELECT r.* EXCLUDE (prices_rendered), {columns}
            FROM (SELECT r.*, x.prices_rendered FROM {RATES} r LEFT JOIN _dx_prices_{fmt} x
                USING (rate_id)) r;
            DROP TABLE _dx_prices_{fmt}""")
    con.execute("DROP TABLE _dx_price_rows; DROP TABLE _dx_price_periods")


def standard_offset(zone: str) -> str | None:
    """An IANA zone's standard (non-daylight-saving) UTC offset, `+01:00`: FacilityLocation.timeZone
    takes a fixed offset (ISO 8601); opening hours stay local time. None for an unknown zone."""
    try:
        tz = zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    moment = datetime(2026, 1, 15, 12, tzinfo=UTC)
    offset = (tz.utcoffset(moment) or timedelta()) - (tz.dst(moment) or timedelta())
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _time(hhmm: str) -> str:
    return "23:59:59Z" if hhmm == "24:00" else f"{hhmm}:00Z"


def _moment(value: str) -> str:
    """An OCPI DateTime as DATEX II UTC seconds (a value without offset is UTC)."""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).strftime(TS)


def opening_hours(hours: dict[str, Any]) -> dict[str, Any]:
    """OCPI Hours in DATEX II terms: `open_all` (OpenAllHours), else the periods of an
    OperatingHoursSpecification: regular hours as recurring periods (one per time span, with its
    weekdays), exceptional openings as extra valid periods, exceptional closings as exceptions."""
    closings: list[dict[str, Any]] = [
        {
            "start_of": _moment(c["period_begin"]),
            "end_of": _moment(c["period_end"]),
            "tstart": None,
            "tend": None,
            "days": [],
        }
        for c in hours.get("exceptional_closings") or []
    ]
    openings: list[dict[str, Any]] = [
        {
            "start_of": _moment(o["period_begin"]),
            "end_of": _moment(o["period_end"]),
            "tstart": None,
            "tend": None,
            "days": [],
        }
        for o in hours.get("exceptional_openings") or []
    ]
    spans: dict[tuple[str, str], list[int]] = {}
    if not hours.get("twentyfourseven"):
        for regular in hours.get("regular_hours") or []:
            spans.setdefault((regular["period_begin"], regular["period_end"]), []).append(
                int(regular["weekday"])
            )
    valid = [
        {
            "start_of": None,
            "end_of": None,
            "tstart": _time(b),
            "tend": _time(e),
            "days": [rules.WEEKDAYS[d] for d in sorted(set(days))],
        }
        for (b, e), days in sorted(spans.items())
    ]
    canonical = json.dumps(hours, sort_keys=True)
    return {
        "open_all": bool(hours.get("twentyfourseven")) and not closings,
        "valid": valid + openings,
        "exceptions": closings,
        "hash": versions_hash(canonical),
    }


def versions_hash(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _create_orgs(con: duckdb.DuckDBPyConnection, ledger: bool) -> None:
    """Each CPO's operator and helpdesk organisation (operator reference data), with versions."""
    has_view = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'mart' "
        "AND table_name = 'operators'"
    ).fetchone()
    source = (
        "mart.operators"
        if has_view and has_view[0]
        else (
            "(SELECT NULL::VARCHAR AS country_code, NULL::VARCHAR AS party_id, NULL::VARCHAR AS operator_id, "
            "NULL::VARCHAR AS name, NULL::VARCHAR AS legal_name, NULL::VARCHAR AS website, "
            "NULL::VARCHAR AS helpdesk_phone, NULL::VARCHAR AS helpdesk_email, "
            "NULL::VARCHAR AS helpdesk_name, NULL::BOOLEAN AS staffed, NULL::VARCHAR[] AS payment_means, "
            "NULL::TIMESTAMPTZ AS last_updated WHERE false)"
        )
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ORGS} AS
        SELECT country_code, party_id, country_code || ':' || party_id AS party,
               country_code || ':' || party_id || ':operator' AS op_id, name AS op_name,
               legal_name AS op_legal_name,
               website AS op_website, operator_id AS op_operator_id,
               country_code || ':' || party_id || ':helpdesk' AS hd_id,
                   coalesce(helpdesk_name, name) AS hd_name,
               helpdesk_phone AS hd_phone, helpdesk_email AS hd_email,
               staffed, CAST(payment_means AS VARCHAR[]) AS payment_means, last_updated AS data_updated
        FROM {source}""")
    con.execute(f"""ALTER TABLE {ORGS} ADD COLUMN op_hash VARCHAR;
                    ALTER TABLE {ORGS} ADD COLUMN hd_hash VARCHAR;
                    UPDATE {ORGS} SET op_hash = {
        versions.hash_sql(("op_id", "op_name", "op_legal_name", "op_website", "op_operator_id"))
    },
                                      hd_hash = {
        versions.hash_sql(("hd_id", "hd_name", "hd_phone", "hd_email"))
    }""")
    versions.versioned(con, ORGS, "operator", "op_id", "op_hash", "data_updated", ledger=ledger, prefix="op")
    versions.versioned(con, ORGS, "helpdesk", "hd_id", "hd_hash", "data_updated", ledger=ledger, prefix="hd")


def _render_orgs(con: duckdb.DuckDBPyConnection, doc: Declarations) -> None:
    """Each CPO's operator and helpdesk organisation rendered as defined and as referenced, in both
    formats (profile-native XML: organisations live in the site's extension)."""
    columns = []
    for prefix, role, definition in (("op", "operator", doc.operator()), ("hd", "helpdesk", doc.helpdesk())):
        for form, node in (
            ("definition", doc.organisation(definition)),
            ("reference", doc.organisation_reference(f"{prefix}_id", f"{prefix}_version")),
        ):
            columns.append(f"{render(node, 'json')} AS {prefix}_{form}_json")
            columns.append(f"{folded(node.xml(f'afir:{role}', True))} AS {prefix}_{form}_xml")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {ORGS} AS SELECT *, {', '.join(columns)} FROM {ORGS}")


def _create_rates(con: duckdb.DuckDBPyConnection, lang: str) -> dict[str, int]:
    """Each ad hoc tariff as an energy rate (`RATES`), or why it has no DATEX II form (`RATE_PROBLEMS`)."""
    cur = con.execute("""
        SELECT t.country_code, t.party_id, t.tariff_id, t.currency, CAST(t.elements AS VARCHAR) AS elements,
               CAST(t.min_price AS VARCHAR) AS min_price, CAST(t.max_price AS VARCHAR) AS max_price,
               CAST(t.tariff_alt_text AS VARCHAR) AS tariff_alt_text, t.start_date_time, t.end_date_time,
                   t.last_updated
        FROM mart.tariffs t WHERE NOT t.is_deleted AND (t.type IS NULL OR t.type = 'AD_HOC_PAYMENT')
        ORDER BY t.country_code, t.party_id, t.tariff_id""")
    names = [d[0] for d in cur.description]
    found: list[dict[str, Any]] = []
    problems: list[dict[str, str]] = []
    losses: dict[str, int] = {}
    for row in cur.fetchall():
        tariff = dict(zip(names, row, strict=True))
        try:
            rate = rates.convert(tariff, lang=lang)
        except rates.InexpressibleTariff as exc:
            problems.append(
                {
                    "country_code": tariff["country_code"],
                    "party_id": tariff["party_id"],
                    "tariff_id": tariff["tariff_id"],
                    "reason": str(exc),
                }
            )
            continue
        for loss in rate.losses:
            losses[loss] = losses.get(loss, 0) + 1
        found.append(
            {
                "rate_id": rate.rate_id,
                "country_code": tariff["country_code"],
                "party_id": tariff["party_id"],
                "tariff_id": tariff["tariff_id"],
                "currency": rate.currency,
                "last_updated": rate.last_updated,
                "name": rate.name,
                "with_parking_fee": rate.with_parking_fee,
                "min_fee": rate.min_fee,
                "max_fee": rate.max_fee,
                "valid_from": rate.valid_from,
                "valid_until": rate.valid_until,
                "prices": [_price(p) for p in rate.prices],
            }
        )
    _table(
        con,
        "_dx_rates_found",
        pa.Table.from_pylist(
            found,
            schema=pa.schema(
                [
                    ("rate_id", pa.string()),
                    ("country_code", pa.string()),
                    ("party_id", pa.string()),
                    ("tariff_id", pa.string()),
                    ("currency", pa.string()),
                    ("last_updated", pa.string()),
                    ("name", pa.string()),
                    ("with_parking_fee", pa.bool_()),
                    ("valid_from", pa.string()),
                    ("valid_until", pa.string()),
                    ("min_fee", pa.float64()),
                    ("max_fee", pa.float64()),
                    ("prices", pa.list_(_PRICE)),
                ]
            ),
        ),
    )
    # The rate carries its operator's ad hoc payment means (operator reference data).
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {RATES} AS
                    SELECT r.*, o.payment_means FROM _dx_rates_found r
                    LEFT JOIN {ORGS} o ON o.country_code = r.country_code AND o.party_id = r.party_id;
                    DROP TABLE _dx_rates_found""")
    _table(
        con,
        RATE_PROBLEMS,
        pa.Table.from_pylist(
            problems,
            schema=pa.schema(
                [
                    ("country_code", pa.string()),
                    ("party_id", pa.string()),
                    ("tariff_id", pa.string()),
                    ("reason", pa.string()),
                ]
            ),
        ),
    )
    return losses


def _price(price: rates.Price) -> dict[str, Any]:
    def period(p: rates.Period) -> dict[str, Any]:
        return {"start_of": None, "end_of": None, "tstart": p.start, "tend": p.end, "days": list(p.days)}

    return {
        "price_type": price.price_type,
        "value": price.value,
        "tax_included": price.tax_included,
        "tax_rate": price.tax_rate,
        "overall_start": price.overall_start,
        "overall_end": price.overall_end,
        "valid": [period(p) for p in price.valid],
        "exceptions": [period(p) for p in price.exceptions],
        "from_minute": price.from_minute,
        "to_minute": price.to_minute,
        "from_kwh": price.from_kwh,
        "to_kwh": price.to_kwh,
    }


# ------------------------------------------------------------------------------------------------
# Per chunk


@dataclass(frozen=True)
class ChunkInput:
    """A chunk's render input: temp tables (or, once kept, what to read them from)."""

    points: str
    stations: str
    sites: str


PUBLISHED = "_dx_published_connectors"  # the chunk's published connectors with their DATEX II values


def _published_connectors(con: duckdb.DuckDBPyConnection) -> None:
    """`PUBLISHED`: the chunk's connectors that are published (they, their EVSE and location passed),
    with the rule tables' connector type and format and their current type."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PUBLISHED} AS
        SELECT c.*, ct.v AS connector_type, cf.v AS connector_format,
               CASE WHEN c.power_type = 'DC' THEN 'dc' WHEN starts_with(c.power_type, 'AC_') THEN 'ac'
               END AS current_type
        FROM {CHUNK.connectors} c
        JOIN _ndw_connectors vc USING (country_code, party_id, location_id, evse_uid, connector_id)
        JOIN _ndw_evses ve USING (country_code, party_id, location_id, evse_uid)
        JOIN _ndw_locations vl USING (country_code, party_id, location_id)
        LEFT JOIN {CONNECTOR_TYPES} ct ON ct.k = c.standard
        LEFT JOIN {RULE_FORMATS} cf ON cf.format = c.format
             AND cf.current = CASE WHEN c.power_type = 'DC' THEN 'DC' WHEN starts_with(c.power_type, 'AC_')
             THEN 'AC' END
        WHERE len(vc.reasons) = 0 AND len(ve.reasons) = 0 AND len(vl.reasons) = 0""")


def _impact(category: str) -> str:
    """SQL: an OCPI energy mix's environmental impact of `category` (g/kWh), from `energy_mix`
    (OCPI 2.2.1 names it `category`, 2.1.1 feeds `source`)."""
    return (
        "list_max(list_transform(list_filter(coalesce(CAST(json_extract(energy_mix, "
        "'$.environ_impact') AS JSON[]), []), lambda _x: coalesce(_x ->> 'category', "
        f"_x ->> 'source') = '{category}'), lambda _x: CAST(_x ->> 'amount' AS DOUBLE)))"
    )


def chunk_input(con: duckdb.DuckDBPyConnection, chunk: int, ledger: bool) -> ChunkInput:
    """Build the chunk's points, stations and sites (content hashes, versions) as temp tables (a
    site's facility location is rendered by the render query, in the one format it writes)."""
    points, stations, sites = f"_dx_points_{chunk}", f"_dx_stations_{chunk}", f"_dx_sites_{chunk}"
    _published_connectors(con)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {points} AS
        WITH per_evse AS (
            SELECT country_code, party_id, location_id, evse_uid,
                   -- Sorted lists, not ordered/DISTINCT aggregates: those sort each group
                   -- (measured 10x slower here).
                   -- A struct sorts by its first field: the connectors come out in connector_id order.
                   list_sort(list({{'connector_id': connector_id, 'connector_type': connector_type,
                                   'connector_format': connector_format,
                                   'power': CAST(max_electric_power AS DOUBLE),
                                   'voltage': CAST(max_voltage AS DOUBLE),
                                   'current': CAST(max_amperage AS DOUBLE),
                                   'connector_ref': {_site_id("")} || ':' || evse_uid || ':'
                                                    || connector_id}})) AS connectors,
                   list_reverse(list_sort(list_distinct(list(CAST(max_voltage AS DOUBLE))))) AS voltages,
                   list_reverse(list_sort(list_distinct(list(CAST(max_electric_power AS DOUBLE))))) AS powers,
                   any_value(current_type) AS current_type,
                   CASE WHEN min(power_type) = max(power_type) THEN min(power_type) END AS power_type,
                   list_distinct(flatten(list(coalesce(CAST(tariff_ids AS VARCHAR[]), [])))) AS tariff_ids,
                   max(last_updated) AS c_updated
            FROM {PUBLISHED} GROUP BY ALL),
        -- Each distinct tariff list's rate ids, worked out once (a fleet has few lists, many points).
        tariff_lists AS (SELECT DISTINCT country_code, party_id, tariff_ids FROM per_evse),
        list_rates AS (
            SELECT p.country_code, p.party_id, p.tariff_ids, list_sort(list_distinct(list(r.rate_id)))
            AS rate_ids
            FROM tariff_lists p, unnest(p.tariff_ids) t(tariff_id)
            JOIN {RATES} r ON r.country_code = p.country_code AND r.party_id = p.party_id
                AND r.tariff_id = t.tariff_id
            GROUP BY p.country_code, p.party_id, p.tariff_ids),
        -- Sites numbered in key order from the chunk's distinct locations (a window over every point sorts
        -- wide rows).
        site_nos AS (
            SELECT country_code, party_id, location_id,
                   row_number() OVER (ORDER BY country_code, party_id, location_id) AS site_no
            FROM (SELECT DISTINCT country_code, party_id, location_id FROM per_evse)),
        -- The location's energy mix in DATEX II terms, worked out once per distinct value.
        mixes AS (
            SELECT energy_mix, CAST(energy_mix ->> 'is_green_energy' AS BOOLEAN) AS green,
                   energy_mix ->> 'energy_product_name' AS product_name,
                   {_impact("CARBON_DIOXIDE")} AS co2, {_impact("NUCLEAR_WASTE")} AS nuclear_waste
            FROM (SELECT DISTINCT energy_mix FROM {CHUNK.locations} WHERE energy_mix IS NOT NULL))
        SELECT sn.site_no,
               e.country_code, e.party_id, e.location_id, {_site_id("e.")} AS site_id,
               coalesce(e.station_id, e.evse_uid) AS station_ref,
               {_site_id("e.")} || ':station:' || coalesce(e.station_id, e.evse_uid) AS station_id,
               {_site_id("e.")} || ':' || e.evse_uid AS point_id, e.evse_uid, e.evse_id,
               pe.current_type, cm.v AS charging_mode, pe.connectors, pe.voltages, pe.powers,
               e.is_deleted OR e.status = 'REMOVED' AS removed,
               m.green, m.product_name, m.co2, m.nuclear_waste,
               coalesce(pr.rate_ids, []) AS rate_ids,
               e.capabilities, coalesce(e.latitude, l.latitude) AS lat,
                   coalesce(e.longitude, l.longitude) AS lon,
               nullif(trim(e.floor_level), '') AS floor_level,
               CAST(e.parking_restrictions AS VARCHAR[]) AS parking_restrictions,
               coalesce(st.v, 'unknown') AS status, e.last_updated AS status_time,
               greatest(e.last_updated, pe.c_updated) AS data_updated,
               CAST([] AS VARCHAR[]) AS rate_def_ids  -- set by the publication: the rates this point defines
        FROM {CHUNK.evses} e
        JOIN per_evse pe USING (country_code, party_id, location_id, evse_uid)
        JOIN {CHUNK.locations} l USING (country_code, party_id, location_id)
        JOIN site_nos sn USING (country_code, party_id, location_id)
        LEFT JOIN mixes m ON m.energy_mix = l.energy_mix
        LEFT JOIN list_rates pr ON pr.country_code = pe.country_code AND pr.party_id = pe.party_id
            AND pr.tariff_ids = pe.tariff_ids
        LEFT JOIN {RULE_MODES} cm ON cm.k = pe.power_type
        LEFT JOIN {RULE_STATUSES} st ON st.k = CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END
    """)
    _hash(con, points, "point_hash", POINT_NOT_CONTENT)
    versions.versioned(
        con, points, "point", "point_id", "point_hash", "data_updated", ledger=ledger, prefix="point"
    )

    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {stations} AS
        WITH auth AS (
            SELECT p.station_id, list_sort(list_distinct(list(a.v))) AS auth_methods
            FROM {points} p, unnest(coalesce(CAST(p.capabilities AS VARCHAR[]), [])) u(cap)
            JOIN {RULE_AUTH} a ON a.k = u.cap WHERE a.v IS NOT NULL GROUP BY p.station_id)
        SELECT p.site_no, p.site_id, p.station_id, any_value(p.station_ref) AS station_ref,
               arg_min(p.lat, p.evse_uid) AS station_lat, arg_min(p.lon, p.evse_uid) AS station_lon,
               sum(p.powers[1]) AS total_power, count(*) AS n_points,
               coalesce(any_value(a.auth_methods), []) AS auth_methods, any_value(o.staffed) AS staffed,
               list(p.point_id ORDER BY p.point_id) AS point_ids,
               nullif(array_to_string(list_sort(list_distinct(list(p.floor_level))), ', '),
                   '') AS floor_levels,
               {_restricted_to(rules.VEHICLE_FUEL_TYPES)} AS fuel_types,
               {_restricted_to(rules.VEHICLE_TYPES)} AS vehicle_types,
               {_parking_spaces()} AS parking_spaces,
               -- the site's facility location (address, time zone, NUTS region), which the station repeats
               any_value({{'address': l.address, 'postal_code': l.postal_code, 'city': l.city,
                          'country': l.country,
                          'time_zone': l.time_zone, 'nuts_code': l.nuts_code}}) AS facility_source,
               greatest(max(p.data_updated), any_value(l.last_updated)) AS data_updated
        FROM {points} p LEFT JOIN auth a USING (station_id)
        JOIN {ORGS} o ON o.country_code = p.country_code AND o.party_id = p.party_id
        JOIN {CHUNK.locations} l ON l.country_code = p.country_code AND l.party_id = p.party_id
            AND l.location_id = p.location_id
        GROUP BY p.site_no, p.site_id, p.station_id""")
    _hash(con, stations, "station_hash", STATION_NOT_CONTENT)
    versions.versioned(
        con,
        stations,
        "station",
        "station_id",
        "station_hash",
        "data_updated",
        ledger=ledger,
        prefix="station",
    )

    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {sites} AS
        SELECT s.site_no, s.site_id, l.location_id, l.country_code, l.party_id,
               l.country_code || ':' || l.party_id AS party,
               l.name, l.latitude AS lat, l.longitude AS lon, {_address_lines("l.address")} AS address_lines,
               l.postal_code, l.city, cc.v AS country2, z.tz_offset, l.nuts_code,
               coalesce(h.open_all, false) AS hours_open_all,
               CASE WHEN NOT h.open_all THEN s.site_id || ':hours' END AS hours_id,
               h.opening_times AS hours_key, h.hash AS hours_hash,
               o.op_id, o.hd_id, st.station_ids, coalesce(f.facilities, []) AS facilities,
                   l.last_updated AS data_updated,
               false AS defines_orgs  -- set by the publication: this site defines its party's organisations
        FROM (SELECT DISTINCT site_no, site_id, country_code, party_id, location_id FROM {points}) s
        JOIN {CHUNK.locations} l USING (country_code, party_id, location_id)
        JOIN (SELECT site_no, list(station_id ORDER BY station_id) AS station_ids FROM {stations}
            GROUP BY site_no) st USING (site_no)
        JOIN {ORGS} o ON o.country_code = l.country_code AND o.party_id = l.party_id
        LEFT JOIN {HOURS} h ON h.opening_times = CAST(l.opening_times AS VARCHAR)
        LEFT JOIN (
            SELECT l.country_code, l.party_id, l.location_id,
                   list_sort(list_distinct(list({{'kind': r.kind, 'value': r.v,
                                                  'id': {_site_id("l.")} || ':facility:' || r.v}})))
                                                  AS facilities
            FROM {CHUNK.locations} l, unnest(coalesce(CAST(l.facilities AS VARCHAR[]), [])) u(facility)
            JOIN {RULE_FACILITIES} r ON r.k = u.facility WHERE r.v IS NOT NULL GROUP BY ALL) f
             USING (country_code, party_id, location_id)
        LEFT JOIN {ZONES} z ON z.time_zone = l.time_zone
        LEFT JOIN {RULE_COUNTRIES} cc ON cc.k = l.country""")
    _hash(con, sites, "site_hash", SITE_NOT_CONTENT)
    versions.versioned(
        con, sites, "site", "site_id", "site_hash", "data_updated", ledger=ledger, prefix="site"
    )
    versions.versioned(
        con, sites, "hours", "hours_id", "hours_hash", "data_updated", ledger=ledger, prefix="hours"
    )
    return ChunkInput(points, stations, sites)


def _restricted_to(table: Mapping[str, str]) -> str:
    """SQL aggregate over a station's points: the values of `table` whose parking restriction every
    point's bay has (sorted; empty when one bay is unrestricted)."""
    values = [
        f"CASE WHEN bool_and(list_contains(coalesce(p.parking_restrictions, []), {sql_literal(k)})) "
        f"THEN {sql_literal(v)} END"
        for k, v in sorted(table.items())
    ]
    return (
        f"list_sort(list_filter([{', '.join(values)}], lambda _x: _x IS NOT NULL))"
        if values
        else "CAST([] AS VARCHAR[])"
    )


def _parking_spaces() -> str:
    """SQL aggregate over a station's points: one {user, spaces, id} per user type of
    `rules.PARKING_USERS` some point's bay is restricted to, counting those bays."""
    spaces = [
        f"{{'user': {sql_literal(v)}, 'spaces': CAST(count_if(list_contains(coalesce(p.parking_restrictions, "
        f"[]), {sql_literal(k)})) AS INTEGER), 'id': p.station_id || ':parking:' || {sql_literal(v)}}}"
        for k, v in sorted(rules.PARKING_USERS.items())
    ]
    return f"list_filter([{', '.join(spaces)}], lambda _x: _x.spaces > 0)"


def _site_id(alias: str) -> str:
    """SQL: a site's id from its location's OCPI keys (`alias`: the table prefix, e.g. `e.`)."""
    return f"{alias}country_code || ':' || {alias}party_id || ':' || {alias}location_id"


def _address_lines(address: str) -> str:
    """An OCPI address as DATEX II address lines: `street house-number` (NL/LINDA convention: the
    number comes last) as a street and a houseNumber line; anything else as one street line."""
    pattern = sql_literal(r"^(.*\D)\s+(\d.*)$")
    return f"""(CASE WHEN nullif(trim({address}), '') IS NULL THEN []
                    WHEN regexp_matches({address}, {pattern}) THEN [
                        {{'line_order': 0, 'line_type': 'street', 'line_text': regexp_extract({address},
                        {pattern}, 1)}},
                        {{'line_order': 1, 'line_type': 'houseNumber',
                            'line_text': regexp_extract({address}, {pattern}, 2)}}]
                    ELSE [{{'line_order': 0, 'line_type': 'street', 'line_text': trim({address})}}] END)"""


def _hash(con: duckdb.DuckDBPyConnection, table: str, column: str, not_content: tuple[str, ...]) -> None:
    """Add `column`: the md5 of every column of `table` that is the object's own content (as JSON:
    standard text, and twice as fast as DuckDB's VARCHAR form of nested values)."""
    names = [
        name for (name, *_rest) in con.execute(f"DESCRIBE {table}").fetchall() if name not in not_content
    ]
    con.execute(
        f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR; UPDATE {table} "
        f"SET {column} = {versions.hash_sql(names)}"
    )
