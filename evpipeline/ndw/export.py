"""Build NDW's OCPI 2.2.1 objects from `mart`, inside DuckDB, and write the daily export.

What is exported: public (`publish`) locations in the access point's countries
(`EVPIPELINE_NAP_COUNTRIES`, NDW: `NLD`) that are not deleted and not another source's duplicate of
one (`mart.identity`, evpipeline/model/identity.py), with their EVSEs (removed ones as status REMOVED) and
Connectors, and the tariffs those connectors reference. Every object must carry NDW's AFIR-mandatory fields
(Location `opening_times`, `energy_mix`; EVSE `parking_restrictions`; Connector `max_electric_power`,
`tariff_ids` pointing at exported tariffs) and respect OCPI lengths; an object that cannot is left
out and listed with its reasons (a connector that fails takes nothing else with it; an EVSE without
valid connectors and a location without valid EVSEs are left out too).

The nested JSON is assembled bottom-up in SQL (connector -> EVSE -> location), with absent optional
fields omitted (`json_merge_patch` drops nulls), DateTimes as `YYYY-MM-DDTHH:MM:SSZ`, coordinates as
strings with 6 decimals, and each parent's `last_updated` bumped to its newest child. The same
warehouse state always yields the same bytes. The pull server serves these same objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from evpipeline import settings
from evpipeline.model.identity import not_a_duplicate
from evpipeline.ndw.files import canonical_json, write_file, write_manifest
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse.rows import one_row, scalar

OCPI_TS = "%Y-%m-%dT%H:%M:%SZ"
# Temp tables that limit a build to some locations and tariffs (the real-time lane's changes).
SCOPE_LOCATIONS = "_ndw_scope_locations"  # country_code, party_id, location_id
SCOPE_TARIFFS = "_ndw_scope_tariffs"  # country_code, party_id, tariff_id


def nap_countries() -> list[str]:
    """ISO alpha-3 countries whose public locations the national access point receives (NDW: NLD)."""
    return [c.strip().upper() for c in settings.get("EVPIPELINE_NAP_COUNTRIES").split(",") if c.strip()]


class Reason(str):
    """A rejection reason computed per row (an SQL expression), e.g. naming the figures that broke a rule."""


def sql_literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sql_format(template: str, values: dict[str, str]) -> Reason:
    """A `str.format` template as SQL text: literal parts and `values` (SQL expressions) concatenated."""
    parts = re.split(r"\{(\w+)\}", template)
    pieces = [
        sql_literal(p) if i % 2 == 0 else f"CAST({values[p]} AS VARCHAR)" for i, p in enumerate(parts) if p
    ]
    return Reason(" || ".join(pieces))


# The plausibility rules of our definition (evpipeline.ocpi.definition), from the same constants.
_PHASES = "CASE c.power_type " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in ocpi.PHASES.items()) + " END"
_POWER_LIMIT = f"(CAST(c.max_voltage AS BIGINT) * c.max_amperage * {_PHASES})"
POWER_RULE = (
    f"CAST(c.max_electric_power AS BIGINT) * 100 > {_POWER_LIMIT} * {100 + ocpi.POWER_TOLERANCE_PERCENT}",
    _sql_format(
        ocpi.POWER_PROBLEM,
        {
            "power": "c.max_electric_power",
            "voltage": "c.max_voltage",
            "amperage": "c.max_amperage",
            "phases": _PHASES,
            "power_type": "c.power_type",
            "limit": _POWER_LIMIT,
        },
    ),
)
EVSE_ID_RULES = [
    ("e.evse_id IS NULL", "evse_id missing (AFIR: the eMI3 EVSE ID)"),
    (
        f"NOT regexp_full_match(e.evse_id, {sql_literal(ocpi.EVSE_ID_PATTERN)})",
        Reason("'evse_id ' || e.evse_id || ' is not an eMI3 EVSE ID'"),
    ),
]

# (object, condition, reason) rules per level; a row failing any is left out and reported.
TARIFF_RULES = [
    ("length(t.tariff_id) > 36", "id longer than 36 characters"),
    ("t.currency IS NULL OR length(t.currency) <> 3", "currency is not an ISO 4217 code"),
    ("t.elements IS NULL OR json_array_length(t.elements) = 0", "no tariff elements"),
    ("length(t.party_id) <> 3 OR length(t.country_code) <> 2", "country_code/party_id malformed"),
]
CONNECTOR_RULES = [
    ("c.standard IS NULL", "standard unmapped (see mart.unmapped_values)"),
    ("c.format IS NULL", "format missing"),
    ("c.power_type IS NULL", "power_type missing"),
    ("c.max_voltage IS NULL OR c.max_amperage IS NULL", "max_voltage/max_amperage missing"),
    ("c.max_electric_power IS NULL", "max_electric_power missing (AFIR-mandatory)"),
    ("c.tariff_ids IS NULL OR json_array_length(c.tariff_ids) = 0", "tariff_ids missing (AFIR-mandatory)"),
    ("length(c.connector_id) > 36", "id longer than 36 characters"),
    ("length(c.terms_and_conditions) > 255", "terms_and_conditions longer than 255 characters"),
    POWER_RULE,
]
EVSE_RULES = [
    ("e.parking_restrictions IS NULL", "parking_restrictions missing (AFIR-mandatory)"),
    ("length(e.evse_uid) > 36", "uid longer than 36 characters"),
    ("length(e.evse_id) > 48", "evse_id longer than 48 characters"),
    ("length(e.floor_level) > 4", "floor_level longer than 4 characters"),
    ("length(e.physical_reference) > 16", "physical_reference longer than 16 characters"),
    *EVSE_ID_RULES,
]
LOCATION_RULES = [
    ("l.opening_times IS NULL", "opening_times missing (AFIR-mandatory)"),
    ("l.energy_mix IS NULL", "energy_mix missing (AFIR-mandatory)"),
    ("l.operator IS NULL", "operator missing (AFIR: the operator's name)"),
    ("l.address IS NULL OR length(l.address) > 45", "address missing or longer than 45 characters"),
    ("l.city IS NULL OR length(l.city) > 45", "city missing or longer than 45 characters"),
    ("length(l.postal_code) > 10", "postal_code longer than 10 characters"),
    ("length(l.state) > 20", "state longer than 20 characters"),
    ("length(l.name) > 255", "name longer than 255 characters"),
    ("l.latitude IS NULL OR l.longitude IS NULL", "coordinates missing"),
    ("l.time_zone IS NULL", "time_zone missing"),
    ("length(l.location_id) > 36", "id longer than 36 characters"),
    ("length(l.party_id) <> 3 OR length(l.country_code) <> 2", "country_code/party_id malformed"),
]


def _reasons(rules: list[tuple[str, str]]) -> str:
    items = ", ".join(
        f"CASE WHEN {cond} THEN {reason if isinstance(reason, Reason) else sql_literal(reason)} END"
        for cond, reason in rules
    )
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def _coordinates(lat: str, lon: str) -> str:
    return (
        f"CASE WHEN {lat} IS NOT NULL AND {lon} IS NOT NULL THEN {{'latitude': printf('%.6f', {lat}), "
        f"'longitude': printf('%.6f', {lon})}} END"
    )


def _own_json(struct: str) -> str:
    """JSON text of a flat struct with null-valued fields omitted (OCPI optional fields are absent,
    not null)."""
    return f"CAST(json_merge_patch('{{}}', to_json({struct})) AS VARCHAR)"


def _with_child(own: str, key: str, children: str) -> str:
    """Splice an already-built JSON array into an object's text: nested JSON is never parsed twice."""
    return f"rtrim({own}, '}}') || ',\"{key}\":' || {children} || '}}'"


@dataclass
class OcpiExport:
    """Every exported object as JSON text, with its key and last_updated, in stable order."""

    locations: list[str] = field(default_factory=list)
    location_keys: list[tuple[str, str, str]] = field(default_factory=list)
    location_updated: list[datetime] = field(default_factory=list)
    tariffs: list[str] = field(default_factory=list)
    tariff_keys: list[tuple[str, str, str]] = field(default_factory=list)
    tariff_updated: list[datetime] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    candidates: int = 0  # locations that should have been exported (public, in a NAP country, not deleted)
    evses: int = 0
    connectors: int = 0

    @property
    def data_as_of(self) -> datetime | None:
        stamps = [*self.location_updated, *self.tariff_updated]
        return max(stamps) if stamps else None


LOCATION_KEY = ("country_code", "party_id", "location_id")
EVSE_KEY = (*LOCATION_KEY, "evse_uid")
CONNECTOR_KEY = (*EVSE_KEY, "connector_id")


def _valid(table: str, alias: str, keys: tuple[str, ...]) -> str:
    match = " AND ".join(f"v.{k} = {alias}.{k}" for k in keys)
    return f"EXISTS (SELECT 1 FROM {table} v WHERE {match} AND len(v.reasons) = 0)"


def candidate(countries: list[str], alias: str = "l") -> str:
    """SQL condition on `mart.locations` (as `alias`): a location the access point should receive
    (public, in one of its countries, not deleted), whether or not it passes the rules."""
    in_countries = ", ".join(sql_literal(c) for c in countries) or "NULL"
    return f"{alias}.country IN ({in_countries}) AND {alias}.publish AND NOT {alias}.is_deleted"


@dataclass(frozen=True)
class Model:
    """The tables a selection reads: the mart, or a staged piece of it with the same columns."""

    locations: str = "mart.locations"
    evses: str = "mart.evses"
    connectors: str = "mart.connectors"
    tariffs: str = "mart.tariffs"


MART = Model()


def _validate(con: duckdb.DuckDBPyConnection, countries: list[str], scoped: bool, model: Model) -> None:
    """Decide, per object, why it cannot be exported (keys and reasons only; no JSON yet)."""
    location_scope = (
        f"SEMI JOIN {SCOPE_LOCATIONS} s USING (country_code, party_id, location_id)" if scoped else ""
    )
    # Scoped: the tariffs in scope that NDW holds are re-validated (and re-sent when changed) even
    # when no location in scope references them.
    tariff_scope = (
        f"""OR (EXISTS (SELECT 1 FROM {SCOPE_TARIFFS} s WHERE s.country_code = t.country_code
                                  AND s.party_id = t.party_id AND s.tariff_id = t.tariff_id)
                       AND EXISTS (SELECT 1 FROM ops.ndw_pushed p WHERE p.kind = 'tariff'
                                  AND p.country_code = t.country_code
                                  AND p.party_id = t.party_id AND p.object_id = t.tariff_id))"""
        if scoped
        else ""
    )
    unique = not_a_duplicate(con)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ndw_locations AS
        SELECT l.country_code, l.party_id, l.location_id, {_reasons(LOCATION_RULES)} AS reasons
        FROM {model.locations} l {location_scope}
        WHERE {candidate(countries)} AND {unique};  -- one physical location, published once
                                                    -- (model/identity.py)

        CREATE OR REPLACE TEMP TABLE _ndw_connectors AS
        SELECT c.country_code, c.party_id, c.location_id, c.evse_uid, c.connector_id, c.tariff_ids,
               c.standard,
               {_reasons(CONNECTOR_RULES)} AS reasons
        FROM {model.connectors} c
        JOIN _ndw_locations l USING (country_code, party_id, location_id)
        WHERE NOT c.is_deleted;

        -- Tariffs referenced by candidate connectors; a connector pointing at a tariff that is not
        -- exported (unknown or invalid) cannot be exported either.
        CREATE OR REPLACE TEMP TABLE _ndw_tariff_refs AS
        SELECT DISTINCT c.country_code, c.party_id, c.location_id, c.evse_uid, c.connector_id, ref.tariff_id
        FROM _ndw_connectors c, unnest(CAST(c.tariff_ids AS VARCHAR[])) AS ref(tariff_id)
        WHERE c.tariff_ids IS NOT NULL;

        CREATE OR REPLACE TEMP TABLE _ndw_tariffs AS
        SELECT t.country_code, t.party_id, t.tariff_id, {_reasons(TARIFF_RULES)} AS reasons
        FROM {model.tariffs} t
        WHERE NOT t.is_deleted
          AND (EXISTS (SELECT 1 FROM _ndw_tariff_refs r
                       WHERE r.country_code = t.country_code AND r.party_id = t.party_id
                       AND r.tariff_id = t.tariff_id)
               {tariff_scope});

        UPDATE _ndw_connectors c SET reasons = list_append(c.reasons,
            'tariff_ids reference tariffs not in tariffs.json: ' || bad.ids)
        FROM (
            SELECT r.country_code, r.party_id, r.location_id, r.evse_uid, r.connector_id,
                   string_agg(r.tariff_id, ', ' ORDER BY r.tariff_id) AS ids
            FROM _ndw_tariff_refs r
            LEFT JOIN _ndw_tariffs t ON t.country_code = r.country_code AND t.party_id = r.party_id
                                   AND t.tariff_id = r.tariff_id AND len(t.reasons) = 0
            WHERE t.tariff_id IS NULL
            GROUP BY ALL
        ) bad
        WHERE c.country_code = bad.country_code AND c.party_id = bad.party_id
          AND c.location_id = bad.location_id
          AND c.evse_uid = bad.evse_uid AND c.connector_id = bad.connector_id;

        CREATE OR REPLACE TEMP TABLE _ndw_evses AS
        WITH good AS (SELECT DISTINCT country_code, party_id, location_id, evse_uid FROM _ndw_connectors
            WHERE len(reasons) = 0)
        SELECT e.country_code, e.party_id, e.location_id, e.evse_uid,
               list_concat({_reasons(EVSE_RULES)},
                           CASE WHEN g.evse_uid IS NULL THEN ['no valid connectors'] ELSE [] END) AS reasons
        FROM {model.evses} e
        JOIN _ndw_locations l USING (country_code, party_id, location_id)
        LEFT JOIN good g USING (country_code, party_id, location_id, evse_uid);

        UPDATE _ndw_locations l SET reasons = list_append(l.reasons, 'no valid EVSEs')
        WHERE NOT EXISTS (SELECT 1 FROM _ndw_evses e WHERE e.country_code = l.country_code
                          AND e.party_id = l.party_id
                          AND e.location_id = l.location_id AND len(e.reasons) = 0);
    """)


def select_objects(
    con: duckdb.DuckDBPyConnection,
    countries: list[str] | None = None,
    *,
    scoped: bool = False,
    model: Model = MART,
) -> None:
    """Decide which objects an access point receives: the temp tables `_ndw_locations`, `_ndw_evses`,
    `_ndw_connectors`, `_ndw_tariffs` (keys + `reasons`, and what a publication's own rules need
    beside them: a connector's `tariff_ids` and `standard`; an object is published iff its own and its
    parents' `reasons` are empty). Shared by the OCPI export and the DATEX II publication, so both
    carry the same objects. `model`: where the rows come from (a staged piece of the mart holding
    some locations with all their EVSEs and connectors gives those objects the whole mart's verdicts)."""
    _validate(con, nap_countries() if countries is None else countries, scoped, model)


def rejection_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The objects `select_objects` left out, with their reasons."""
    return _rejections(con)


def build_export(
    con: duckdb.DuckDBPyConnection, *, scoped: bool = False, countries: list[str] | None = None
) -> OcpiExport:
    """All NDW objects from the mart: validated per object, then nested into JSON in one streaming query.

    `scoped`: only the locations and tariffs in the scope temp tables (`SCOPE_LOCATIONS`,
    `SCOPE_TARIFFS`), for the real-time lane; the objects are exactly what a full build makes of them.
    """
    select_objects(con, countries, scoped=scoped)
    connector = _own_json(f"""{{
        'id': c.connector_id, 'standard': c.standard, 'format': c.format, 'power_type': c.power_type,
        'max_voltage': c.max_voltage, 'max_amperage': c.max_amperage,
        'max_electric_power': c.max_electric_power,
        'tariff_ids': c.tariff_ids, 'terms_and_conditions': c.terms_and_conditions,
        'last_updated': strftime(c.last_updated, '{OCPI_TS}')}}""")
    evse = _own_json(f"""{{
        'uid': e.evse_uid, 'evse_id': e.evse_id,
        'status': CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END,
        'capabilities': e.capabilities, 'floor_level': e.floor_level,
        'coordinates': {_coordinates("e.latitude", "e.longitude")},
        'physical_reference': e.physical_reference, 'directions': e.directions,
        'parking_restrictions': e.parking_restrictions, 'images': e.images,
        'last_updated': strftime(greatest(e.last_updated, c.newest), '{OCPI_TS}')}}""")
    location = _own_json(f"""{{
        'country_code': l.country_code, 'party_id': l.party_id, 'id': l.location_id, 'publish': l.publish,
        'name': l.name, 'address': l.address, 'city': l.city, 'postal_code': l.postal_code, 'state': l.state,
        'country': l.country, 'coordinates': {_coordinates("l.latitude", "l.longitude")},
        'parking_type': l.parking_type, 'directions': l.directions,
        'operator': l.operator, 'suboperator': l.suboperator, 'owner': l.owner, 'facilities': l.facilities,
        'time_zone': l.time_zone, 'opening_times': l.opening_times,
        'charging_when_closed': l.charging_when_closed, 'images': l.images, 'energy_mix': l.energy_mix,
        'last_updated': strftime(greatest(l.last_updated, e.newest), '{OCPI_TS}')}}""")
    rows = con.execute(f"""
        WITH connectors AS (
            SELECT c.country_code, c.party_id, c.location_id, c.evse_uid,
                   '[' || string_agg({connector}, ',' ORDER BY c.connector_id) || ']' AS body,
                   max(c.last_updated) AS newest
            FROM mart.connectors c
            WHERE {_valid("_ndw_connectors", "c", CONNECTOR_KEY)}
            GROUP BY ALL
        ), evses AS (
            SELECT e.country_code, e.party_id, e.location_id,
                   '[' || string_agg({_with_child(evse, "connectors", "c.body")}, ','
                   ORDER BY e.evse_uid) || ']' AS body,
                   max(greatest(e.last_updated, c.newest)) AS newest
            FROM mart.evses e
            JOIN connectors c USING (country_code, party_id, location_id, evse_uid)
            WHERE {_valid("_ndw_evses", "e", EVSE_KEY)}
            GROUP BY ALL
        )
        SELECT l.country_code, l.party_id, l.location_id,
               date_trunc('second', greatest(l.last_updated, e.newest)),
               {_with_child(location, "evses", "e.body")}
        FROM mart.locations l
        JOIN evses e USING (country_code, party_id, location_id)
        WHERE {_valid("_ndw_locations", "l", LOCATION_KEY)}
        ORDER BY l.country_code, l.party_id, l.location_id
    """).fetchall()

    export = OcpiExport(candidates=scalar(con.execute("SELECT count(*) FROM _ndw_locations")))
    for cc, pid, lid, updated, body in rows:
        export.location_keys.append((cc, pid, lid))
        export.location_updated.append(updated)
        export.locations.append(body)
    export.evses, export.connectors = one_row(
        con.execute("""
        SELECT count(DISTINCT (e.country_code, e.party_id, e.location_id, e.evse_uid)), count(*)
        FROM _ndw_connectors c
        JOIN _ndw_evses e USING (country_code, party_id, location_id, evse_uid)
        JOIN _ndw_locations l USING (country_code, party_id, location_id)
        WHERE len(c.reasons) = 0 AND len(e.reasons) = 0 AND len(l.reasons) = 0
    """)
    )
    tariff = _own_json(f"""{{
        'country_code': t.country_code, 'party_id': t.party_id, 'id': t.tariff_id, 'currency': t.currency,
        'type': t.type, 'tariff_alt_text': t.tariff_alt_text, 'tariff_alt_url': t.tariff_alt_url,
        'min_price': t.min_price, 'max_price': t.max_price, 'elements': t.elements,
        'start_date_time': strftime(t.start_date_time, '{OCPI_TS}'),
        'end_date_time': strftime(t.end_date_time, '{OCPI_TS}'),
        'energy_mix': t.energy_mix, 'last_updated': strftime(t.last_updated, '{OCPI_TS}')}}""")
    for cc, pid, tid, updated, body in con.execute(f"""
        SELECT country_code, party_id, tariff_id, date_trunc('second', last_updated), {tariff}
        FROM mart.tariffs t
        WHERE EXISTS (SELECT 1 FROM _ndw_tariffs v WHERE v.country_code = t.country_code
                      AND v.party_id = t.party_id
                      AND v.tariff_id = t.tariff_id AND len(v.reasons) = 0)
        ORDER BY country_code, party_id, tariff_id
    """).fetchall():
        export.tariff_keys.append((cc, pid, tid))
        export.tariff_updated.append(updated)
        export.tariffs.append(body)
    export.rejections = _rejections(con)
    return export


def _rejections(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    rows = con.execute("""
        SELECT 'Location' AS object, country_code, party_id, location_id, NULL AS evse_uid,
               NULL AS connector_id,
               NULL AS tariff_id, reasons FROM _ndw_locations WHERE len(reasons) > 0
        UNION ALL
        SELECT 'EVSE', country_code, party_id, location_id, evse_uid, NULL, NULL, reasons
        FROM _ndw_evses WHERE len(reasons) > 0
        UNION ALL
        SELECT 'Connector', country_code, party_id, location_id, evse_uid, connector_id, NULL, reasons
        FROM _ndw_connectors WHERE len(reasons) > 0
        UNION ALL
        SELECT 'Tariff', country_code, party_id, NULL, NULL, NULL, tariff_id, reasons
        FROM _ndw_tariffs WHERE len(reasons) > 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7
    """).fetchall()
    names = [
        "object",
        "country_code",
        "party_id",
        "location_id",
        "evse_uid",
        "connector_id",
        "tariff_id",
        "reasons",
    ]
    return [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in rows]


@dataclass
class Manifest:
    directory: Path
    body: dict[str, Any]


def _array(objects: list[str]) -> str:
    return "[\n" + ",\n".join(objects) + "\n]\n" if objects else "[]\n"


def write_export(
    export: OcpiExport, directory: Path, partition: str, *, warehouse_snapshot: int | None = None
) -> Manifest:
    """locations.json, tariffs.json, rejections.json and manifest.json for one day; same state, same bytes.

    `warehouse_snapshot`: the DuckLake snapshot the export read (recorded, so it can be rebuilt)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "locations.json": write_file(directory / "locations.json", _array(export.locations)),
        "tariffs.json": write_file(directory / "tariffs.json", _array(export.tariffs)),
        "rejections.json": write_file(directory / "rejections.json", canonical_json(export.rejections)),
    }
    as_of = export.data_as_of
    body = {
        "partition": partition,
        "ocpi_version": "2.2.1",
        "profile": "NDW DOT-NL (OCPI 2.2.1 with AFIR-mandatory fields)",
        # Deterministic: the newest last_updated among exported objects, not the wall clock, so a
        # re-materialization of the same warehouse state rewrites identical files.
        "generated_at": as_of.strftime(OCPI_TS) if as_of else None,
        "counts": {
            "locations": len(export.locations),
            "evses": export.evses,
            "connectors": export.connectors,
            "tariffs": len(export.tariffs),
            "rejected": len(export.rejections),
            "candidate_locations": export.candidates,
        },
        "files": files,
        **({"warehouse_snapshot": warehouse_snapshot} if warehouse_snapshot is not None else {}),
    }
    write_manifest(directory, body)
    return Manifest(directory, body)
