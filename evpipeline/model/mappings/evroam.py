"""EVRoam -> OCPI: site -> Location, charging station -> EVSE, connector -> Connector.

- Party: the site's operator through `operators.csv` (unknown operators are reported, not mapped).
- Address "9048 Far North Road, Waitiki Landing 0484, NZ": street, then "<city> <postcode>".
- EVSE status: deleted or decommissioned -> REMOVED; proposed/planned/under construction -> PLANNED;
  every connector Inoperative -> INOPERATIVE; else the station's availability (Occupied ->
  CHARGING, …); no availability -> UNKNOWN (an Operative connector may still be occupied).
- EVSE = charging station: `station_id` is the station; with an operator entry for the CPO its
  derived eMI3 EVSE id takes the station's GUID, written in base 36 (26 characters: eMI3 allows 30).
- Connector: connectorType -> standard/format by rule; power from the station's `kwRated`;
  AC voltage/amperage derived from the power (230 V line to neutral; T1 single phase, T2 three),
  DC 500 V up to 100 kW, 920 V above. EVRoam has no tariffs.
- Stations whose site is missing (the real sample has such orphans) are reported, not placed.
"""

from evpipeline.model.mappings import Scope, SourceMapping, moved_from


def _sites(scope: Scope) -> str:
    return f"""
    SELECT s.*, p.country_code, p.party_id,
           trim(split_part(s.address, ',', 1)) AS street,
           trim(split_part(s.address, ',', 2)) AS locality
    FROM evroam.sites s
    JOIN rules_operators p ON p.source = 'evroam' AND p.operator = s.operator
    WHERE {scope.locations("s.site_id")}
"""


def locations(scope: Scope) -> str:
    return f"""
    SELECT s.country_code, s.party_id, s.site_id AS location_id,
           true AS publish,
           s.name,
           s.street AS address,
           nullif(trim(regexp_replace(s.locality, '\\s*[0-9]{{4}}$', '')), '') AS city,
           nullif(regexp_extract(s.locality, '([0-9]{{4}})$', 1), '') AS postal_code,
           CAST(NULL AS VARCHAR) AS state,
           'NZL' AS country,
           s.latitude, s.longitude,
           CAST(NULL AS VARCHAR) AS parking_type,
           'Pacific/Auckland' AS time_zone,
           CASE WHEN s.is_24_hours THEN '{{"twentyfourseven": true}}'::JSON END AS opening_times,
           CAST(NULL AS BOOLEAN) AS charging_when_closed,
           CAST(NULL AS JSON) AS energy_mix,
           CASE WHEN s.has_tourist_attraction THEN '["RECREATION_AREA"]'::JSON END AS facilities,
           CAST(NULL AS JSON) AS directions,
           to_json({{'name': s.operator}}) AS operator,
           CAST(NULL AS JSON) AS suboperator,
           CAST(NULL AS JSON) AS owner,
           CAST(NULL AS JSON) AS images,
           CAST(NULL AS VARCHAR) AS nuts_code,
           'evroam' AS source, s.site_id AS source_id, s.last_updated AS source_last_updated,
           s.last_updated, s.is_deleted
    FROM ({_sites(scope)}) s
"""


def _station_in(scope: Scope, column: str) -> str:
    """A station id column limited to the stations of the sites in scope."""
    if not scope.incremental:
        return "true"
    return (
        f"{column} IN (SELECT charging_station_id FROM evroam.charging_stations "
        f"WHERE {scope.locations('site_id')})"
    )


def _stations(scope: Scope) -> str:
    return f"""
    SELECT st.*, s.country_code, s.party_id,
           a.availability_status, a.last_updated AS availability_updated,
           c.connectors_updated, c.all_inoperative
    FROM evroam.charging_stations st
    JOIN ({_sites(scope)}) s ON s.site_id = st.site_id
    LEFT JOIN evroam.availability a ON a.charging_station_id = st.charging_station_id
    LEFT JOIN (
        SELECT charging_station_id, max(last_updated) AS connectors_updated,
               bool_and(operation_status = 'Inoperative') FILTER (WHERE NOT is_deleted) AS all_inoperative
        FROM evroam.connectors
        WHERE {_station_in(scope, "charging_station_id")}
        GROUP BY 1
    ) c ON c.charging_station_id = st.charging_station_id
    WHERE {scope.locations("st.site_id")}
"""


def evses(scope: Scope) -> str:
    return f"""
    SELECT st.country_code, st.party_id, st.site_id AS location_id,
           st.charging_station_id AS evse_uid,
           CAST(NULL AS VARCHAR) AS evse_id,
           CASE WHEN st.is_deleted THEN 'REMOVED'
                WHEN inst.status IS NOT NULL THEN inst.status
                WHEN st.all_inoperative THEN 'INOPERATIVE'
                ELSE coalesce(av.status, 'UNKNOWN') END AS status,
           CAST(NULL AS JSON) AS capabilities,
           CASE WHEN length(st.floor_level) <= 4 THEN st.floor_level ELSE fl.floor_level END AS floor_level,
           st.latitude, st.longitude,
           CAST(NULL AS VARCHAR) AS physical_reference,
           CAST(NULL AS JSON) AS parking_restrictions,
           CAST(NULL AS JSON) AS directions,
           CAST(NULL AS JSON) AS images,
           st.charging_station_id AS station_id,
           st.charging_station_id AS point_ref,
           'evroam' AS source, st.charging_station_id AS source_id,
           greatest(st.last_updated, st.availability_updated, st.connectors_updated) AS source_last_updated,
           greatest(st.last_updated, st.availability_updated, st.connectors_updated) AS last_updated,
           st.is_deleted
    FROM ({_stations(scope)}) st
    LEFT JOIN rules_evroam_installation inst ON inst.value = st.installation_status
    LEFT JOIN rules_evroam_availability av ON av.value = st.availability_status
    LEFT JOIN rules_evroam_floors fl ON fl.value = st.floor_level
"""


def connectors(scope: Scope) -> str:
    return f"""
    WITH typed AS (
        SELECT c.*, st.country_code, st.party_id, st.site_id, st.kw_rated, st.current,
               st.is_deleted AS station_deleted, r.standard, r.format,
               CASE WHEN r.standard IN ('IEC_62196_T2_COMBO', 'IEC_62196_T1_COMBO', 'CHADEMO') THEN 'DC'
                    WHEN r.standard = 'IEC_62196_T1' THEN 'AC_1_PHASE'
                    WHEN r.standard = 'IEC_62196_T2' THEN 'AC_3_PHASE' END AS power_type,
               round(st.kw_rated * 1000) AS watts
        FROM evroam.connectors c
        JOIN ({_stations(scope)}) st ON st.charging_station_id = c.charging_station_id
        LEFT JOIN rules_evroam_connectors r ON r.value = c.connector_type
        WHERE {_station_in(scope, "c.charging_station_id")}
    )
    SELECT country_code, party_id, site_id AS location_id, charging_station_id AS evse_uid,
           connector_id, standard, format, power_type,
           CAST(CASE WHEN power_type = 'DC' THEN CASE WHEN watts <= 100000 THEN 500 ELSE 920 END
                     WHEN power_type IS NOT NULL THEN 230 END AS INTEGER) AS max_voltage,
           CAST(ceil(watts / CASE power_type WHEN 'DC' THEN CASE WHEN watts <= 100000 THEN 500 ELSE 920 END
                                             WHEN 'AC_1_PHASE' THEN 230 WHEN 'AC_3_PHASE' THEN 690
                                             END) AS INTEGER) AS max_amperage,
           CAST(watts AS INTEGER) AS max_electric_power,
           CAST(NULL AS JSON) AS tariff_ids,
           CAST(NULL AS VARCHAR) AS terms_and_conditions,
           'evroam' AS source, charging_station_id || '/' || connector_id AS source_id,
           last_updated AS source_last_updated, last_updated,
           is_deleted OR station_deleted AS is_deleted
    FROM typed
"""


UNMAPPED = """
    SELECT 'evroam' AS source, 'site.operator' AS field, s.operator AS value, count(*) AS rows
    FROM evroam.sites s LEFT JOIN rules_operators p ON p.source = 'evroam' AND p.operator = s.operator
    WHERE p.party_id IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'evroam', 'station.site_id (site not found)', 'missing site', count(*)
    FROM evroam.charging_stations st LEFT JOIN evroam.sites s ON s.site_id = st.site_id
    WHERE s.site_id IS NULL HAVING count(*) > 0
    UNION ALL
    SELECT 'evroam', 'connector.connectorType', c.connector_type, count(*)
    FROM evroam.connectors c LEFT JOIN rules_evroam_connectors r ON r.value = c.connector_type
    WHERE r.standard IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'evroam', 'availability.availabilityStatus', a.availability_status, count(*)
    FROM evroam.availability a LEFT JOIN rules_evroam_availability r ON r.value = a.availability_status
    WHERE r.status IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'evroam', 'station.floorLevel (longer than 4)', st.floor_level, count(*)
    FROM evroam.charging_stations st LEFT JOIN rules_evroam_floors f ON f.value = st.floor_level
    WHERE length(st.floor_level) > 4 AND f.floor_level IS NULL GROUP BY ALL
"""

_CHANGED_STATIONS = """
    SELECT charging_station_id FROM evroam.charging_stations WHERE _ingested_at > $since
    UNION SELECT charging_station_id FROM evroam.connectors WHERE _ingested_at > $since
    UNION SELECT charging_station_id FROM evroam.availability WHERE _ingested_at > $since
"""

CHANGED_LOCATIONS = f"""
    SELECT site_id AS location_id FROM evroam.sites WHERE _ingested_at > $since
    UNION SELECT site_id FROM evroam.charging_stations WHERE charging_station_id IN ({_CHANGED_STATIONS})
    UNION {moved_from("evroam", _CHANGED_STATIONS)}
"""

MAPPING = SourceMapping(
    source="evroam",
    requires=("evroam.sites", "evroam.charging_stations", "evroam.connectors", "evroam.availability"),
    inputs=("evroam/sites", "evroam/charging_stations", "evroam/connectors", "evroam/availability"),
    locations=locations,
    evses=evses,
    connectors=connectors,
    unmapped=UNMAPPED,
    changed_locations=CHANGED_LOCATIONS,
)
