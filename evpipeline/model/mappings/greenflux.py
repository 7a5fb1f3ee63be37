"""GreenFlux (OCPI 2.1.1-like Locations v2) -> OCPI 2.2.1.

- Party: `cpo_id` is country code + party id (`NLALF` -> NL, ALF): GreenFlux knows the CPO itself.
  A feed shaped like OCPI 2.1.1 carries no `cpo_id`: then the operator's reference `parties`
  assign it (per location, operator name or the whole feed); what stays unassigned is reported.
- Location: `publish` only when GreenFlux publishes it and `access_type` is not PRIVATE; `type` ->
  `parking_type` by rule (OTHER/UNKNOWN omitted); `address_line_2` and GreenFlux's own fields
  (auth rules, custom groups, remarks, etag, ...) stay in the source tables; `energy_mix` loses
  GreenFlux's `energy_mix_profile_id` and its 2.1.1 `environ_impact[].source` becomes `category`;
  BusinessDetails keep name/website/logo (2.1.1's `phone_number` is not OCPI 2.2.1).
- EVSE: every copy, so an EVSE moved to another location stays REMOVED in the old one (GreenFlux
  marks it so) and lives in the new; status, capabilities, parking restrictions as sent, values
  outside OCPI's vocabularies reported and left out; `station_id` the ChargeStation whose `evses`
  list its uid (`greenflux.charge_stations`), else its own uid.
- Connector: `voltage`/`amperage` -> `max_voltage`/`max_amperage`; 2.1.1's single `tariff_id` ->
  `tariff_ids: [tariff_id]`.
- Tariff: as sent (elements are OCPI-shaped), party from `cpo_id`.
"""

from evpipeline.model.mappings import Scope, SourceMapping, moved_from
from evpipeline.model.rules import sql_values

_PARTY_OK = "regexp_full_match({t}.cpo_id, '[A-Za-z]{{2}}[A-Za-z0-9]{{3}}')"
# The operator's assignment (reference `parties`) for rows whose cpo_id names no party (an OCPI
# 2.1.1-shaped feed): the most specific rule (location, then operator name), then the later one.
_ASSIGNED = """
    SELECT l.location_id, arg_max(p.country_code, p.specificity * 100000 + p.position) AS country_code,
           arg_max(p.party_id, p.specificity * 100000 + p.position) AS party_id
    FROM greenflux.locations l
    JOIN reference.parties p ON NOT p.is_deleted AND p.source = 'greenflux'
         AND (p.location_id IS NULL OR p.location_id = l.location_id)
         AND (p.operator IS NULL OR p.operator = json_extract_string(l.operator, '$.name'))
    WHERE NOT coalesce({ok}, false) AND {scope}
    GROUP BY 1
"""


def _parties(scope: Scope) -> str:
    """Each location's CPO party: from its cpo_id (the source wins), else the operator's assignment."""
    ok = _PARTY_OK.format(t="l")
    return f"""
    SELECT l.location_id,
           CASE WHEN {ok} THEN upper(left(l.cpo_id, 2)) ELSE a.country_code END AS country_code,
           CASE WHEN {ok} THEN upper(substr(l.cpo_id, 3, 3)) ELSE a.party_id END AS party_id
    FROM greenflux.locations l
    LEFT JOIN ({_ASSIGNED.format(ok=ok, scope=scope.locations("l.location_id"))}) a USING (location_id)
    WHERE {scope.locations("l.location_id")}
"""


def _stations(scope: Scope) -> str:
    """The charge station of each EVSE uid in scope: the one whose `evses` list it (the lowest id, should
    two ever list the same uid). By uid, not location: a moved EVSE's REMOVED copy keeps its station."""
    in_scope = (
        "true"
        if not scope.incremental
        else f"uid IN (SELECT evse_uid FROM greenflux.evses WHERE {scope.locations('location_id')})"
    )
    return f"""
    SELECT uid AS evse_uid, min(cs.charge_station_id) AS charge_station_id
    FROM greenflux.charge_stations cs, unnest(CAST(cs.evse_uids AS VARCHAR[])) AS u(uid)
    WHERE NOT cs.is_deleted AND {in_scope}
    GROUP BY 1
"""


def _business(column: str) -> str:
    return f"""CASE WHEN {column} IS NOT NULL THEN json_object(
        'name', json_extract_string({column}, '$.name'), 'website',
            json_extract_string({column}, '$.website'),
        'logo', CASE WHEN json_extract({column}, '$.logo') IS NOT NULL
            AND json_type(json_extract({column}, '$.logo')) = 'OBJECT' THEN json_extract({column}, '$.logo')
            END) END"""


def _enum_list(column: str, kind: str) -> str:
    return (
        f"CASE WHEN {column} IS NOT NULL THEN to_json(list_filter(CAST({column} AS VARCHAR[]), lambda x: "
        f"list_contains({sql_values(kind)}, x))) END"
    )


def locations(scope: Scope) -> str:
    return f"""
    SELECT pa.country_code, pa.party_id, l.location_id,
           coalesce(l.publish, false) AND l.access_type IS DISTINCT FROM 'PRIVATE' AS publish,
           l.name, l.address, l.city, l.postal_code, CAST(NULL AS VARCHAR) AS state, l.country,
           l.latitude, l.longitude,
           pt.parking_type,
           l.time_zone,
           l.opening_times,
           l.charging_when_closed,
           CASE WHEN l.energy_mix IS NOT NULL THEN json_object(
               'is_green_energy', coalesce(CAST(json_extract_string(l.energy_mix,
               '$.is_green_energy') AS BOOLEAN), l.is_green_energy),
               'energy_sources', json_extract(l.energy_mix, '$.energy_sources'),
               'environ_impact', CASE WHEN json_extract(l.energy_mix, '$.environ_impact') IS NOT NULL
                   THEN to_json(list_transform(
                   CAST(json_extract(l.energy_mix, '$.environ_impact') AS JSON[]),
                   lambda x: json_object('category', coalesce(json_extract_string(x, '$.category'),
                       json_extract_string(x, '$.source')), 'amount',
                       CAST(json_extract_string(x, '$.amount') AS DOUBLE)))) END,
               'supplier_name', json_extract_string(l.energy_mix, '$.supplier_name'),
               'energy_product_name', json_extract_string(l.energy_mix, '$.energy_product_name'))
                   END AS energy_mix,
           {_enum_list("l.facilities", "facility")} AS facilities,
           l.directions,
           {_business("l.operator")} AS operator,
           {_business("l.suboperator")} AS suboperator,
           {_business("l.owner")} AS owner,
           CAST(NULL AS JSON) AS images,
           CAST(NULL AS VARCHAR) AS nuts_code,
           'greenflux' AS source, l.location_id AS source_id, l.last_updated AS source_last_updated,
           l.last_updated, l.is_deleted
    FROM greenflux.locations l
    JOIN ({_parties(scope)}) pa USING (location_id)
    LEFT JOIN rules_greenflux_parking pt ON pt.value = l.type
    WHERE {scope.locations("l.location_id")}
"""


def evses(scope: Scope) -> str:
    return f"""
    SELECT pa.country_code, pa.party_id, e.location_id, e.evse_uid, e.evse_id,
           CASE WHEN list_contains({sql_values("status")}, e.status) THEN e.status ELSE 'UNKNOWN'
           END AS status,
           {_enum_list("e.capabilities", "capability")} AS capabilities,
           e.floor_level, e.latitude, e.longitude, e.physical_reference,
           {_enum_list("e.parking_restrictions", "parking_restriction")} AS parking_restrictions,
           e.directions, e.images,
           coalesce(cs.charge_station_id, e.evse_uid) AS station_id,
           e.evse_uid AS point_ref,
           'greenflux' AS source, e.location_id || '/' || e.evse_uid AS source_id,
           e.last_updated AS source_last_updated, e.last_updated, e.is_deleted
    FROM greenflux.evses e
    JOIN ({_parties(scope)}) pa ON pa.location_id = e.location_id
    LEFT JOIN ({_stations(scope)}) cs ON cs.evse_uid = e.evse_uid
    WHERE {scope.locations("e.location_id")}
"""


def connectors(scope: Scope) -> str:
    return f"""
    SELECT pa.country_code, pa.party_id, c.location_id, c.evse_uid, c.connector_id,
           CASE WHEN list_contains({sql_values("standard")}, c.standard) THEN c.standard END AS standard,
           CASE WHEN list_contains({sql_values("format")}, c.format) THEN c.format END AS format,
           CASE WHEN list_contains({sql_values("power_type")}, c.power_type) THEN c.power_type
               END AS power_type,
           c.voltage AS max_voltage, c.amperage AS max_amperage, c.max_electric_power,
           CASE WHEN c.tariff_id IS NOT NULL THEN to_json([c.tariff_id]) END AS tariff_ids,
           c.terms_and_conditions,
           'greenflux' AS source, c.location_id || '/' || c.evse_uid || '/' || c.connector_id AS source_id,
           c.last_updated AS source_last_updated, c.last_updated, c.is_deleted
    FROM greenflux.connectors c
    JOIN ({_parties(scope)}) pa ON pa.location_id = c.location_id
    WHERE {scope.locations("c.location_id")}
"""


def tariffs(scope: Scope) -> str:
    return f"""
    SELECT CASE WHEN {_PARTY_OK.format(t="t")} THEN upper(left(t.cpo_id, 2)) ELSE fallback.country_code
           END AS country_code,
           CASE WHEN {_PARTY_OK.format(t="t")} THEN upper(substr(t.cpo_id, 3, 3)) ELSE fallback.party_id
           END AS party_id,
           t.tariff_id, t.currency, CAST(NULL AS VARCHAR) AS type,
           t.tariff_alt_text, t.tariff_alt_url, CAST(NULL AS JSON) AS min_price,
               CAST(NULL AS JSON) AS max_price,
           t.elements, CAST(NULL AS TIMESTAMPTZ) AS start_date_time,
               CAST(NULL AS TIMESTAMPTZ) AS end_date_time,
           t.energy_mix,
           'greenflux' AS source, t.tariff_id AS source_id, t.last_updated AS source_last_updated,
           t.last_updated, t.is_deleted
    FROM greenflux.tariffs t
    -- A tariff names no location: only an assignment for the whole feed (no location/operator match) applies.
    LEFT JOIN (SELECT arg_max(country_code, position) AS country_code, arg_max(party_id, position) AS party_id
               FROM reference.parties WHERE NOT is_deleted AND source = 'greenflux'
                 AND location_id IS NULL AND operator IS NULL) fallback ON true
    WHERE {scope.tariffs("t.tariff_id")}
"""


UNMAPPED = f"""
    SELECT 'greenflux' AS source, 'location.cpo_id (no CPO party, none assigned)' AS field,
           coalesce(l.cpo_id, 'missing') AS value, count(*) AS rows
    FROM greenflux.locations l JOIN ({_parties(Scope("greenflux"))}) pa USING (location_id)
    WHERE pa.party_id IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'greenflux', 'location.type (no OCPI parking_type)', l.type, count(*)
    FROM greenflux.locations l LEFT JOIN rules_greenflux_parking p ON p.value = l.type
    WHERE l.type IS NOT NULL AND p.parking_type IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'greenflux', 'connector.' || field, value, count(*) FROM (
        SELECT 'standard' AS field, standard AS value FROM greenflux.connectors
        WHERE NOT list_contains({sql_values("standard")}, standard)
        UNION ALL SELECT 'format', format FROM greenflux.connectors
            WHERE NOT list_contains({sql_values("format")}, format)
        UNION ALL SELECT 'power_type', power_type FROM greenflux.connectors
            WHERE NOT list_contains({sql_values("power_type")}, power_type)
    ) GROUP BY ALL
    UNION ALL
    SELECT 'greenflux', 'evse.status', status, count(*) FROM greenflux.evses
    WHERE NOT list_contains({sql_values("status")}, status) GROUP BY ALL
    UNION ALL
    SELECT 'greenflux', 'evse.capabilities', v, count(*)
    FROM (SELECT unnest(CAST(capabilities AS VARCHAR[])) AS v FROM greenflux.evses
        WHERE capabilities IS NOT NULL)
    WHERE NOT list_contains({sql_values("capability")}, v) GROUP BY ALL
    UNION ALL
    SELECT 'greenflux', 'location.facilities', v, count(*)
    FROM (SELECT unnest(CAST(facilities AS VARCHAR[])) AS v FROM greenflux.locations
        WHERE facilities IS NOT NULL)
    WHERE NOT list_contains({sql_values("facility")}, v) GROUP BY ALL
"""

# A moved EVSE appears as a new (location, uid) row and its old copy turns REMOVED: both rows change.
# A charge station that changed may have gained or lost EVSEs: the locations of both are touched.
_CHANGED_STATIONS = (
    "SELECT charge_station_id, evse_uids FROM greenflux.charge_stations WHERE _ingested_at > $since"
)
CHANGED_LOCATIONS = f"""
    SELECT location_id FROM greenflux.locations WHERE _ingested_at > $since
    UNION SELECT location_id FROM greenflux.evses WHERE _ingested_at > $since
    UNION SELECT location_id FROM greenflux.connectors WHERE _ingested_at > $since
    UNION {moved_from("greenflux", "SELECT evse_uid FROM greenflux.evses WHERE _ingested_at > $since")}
    UNION SELECT location_id FROM greenflux.evses
          WHERE evse_uid IN (SELECT unnest(CAST(evse_uids AS VARCHAR[])) FROM ({_CHANGED_STATIONS}))
    UNION SELECT location_id FROM mart.evses
          WHERE source = 'greenflux' AND station_id IN (SELECT charge_station_id FROM ({_CHANGED_STATIONS}))
"""

MAPPING = SourceMapping(
    source="greenflux",
    requires=(
        "greenflux.locations",
        "greenflux.evses",
        "greenflux.connectors",
        "greenflux.charge_stations",
        "greenflux.tariffs",
        "reference.parties",
    ),
    inputs=(
        "greenflux/locations",
        "greenflux/evses",
        "greenflux/connectors",
        "greenflux/charge_stations",
        "greenflux/tariffs",
    ),
    locations=locations,
    evses=evses,
    connectors=connectors,
    unmapped=UNMAPPED,
    changed_locations=CHANGED_LOCATIONS,
    tariffs=tariffs,
    changed_tariffs="SELECT tariff_id FROM greenflux.tariffs WHERE _ingested_at > $since",
)
