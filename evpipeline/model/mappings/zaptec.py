"""Zaptec -> OCPI: installation -> Location, charger -> EVSE (one Type 2 connector), operation mode -> status.

- Party: the CPO whose fleet account we read, per installation country (`operators.csv`).
- `publish` is the installation's `is_public` (private home sites are never published or exported).
- EVSE status: deleted -> REMOVED; charger inactive -> INOPERATIVE; offline (IsOnline 0) -> UNKNOWN
  (OCPI's status for "no information"); else the ChargerOperationMode by rule (Disconnected ->
  AVAILABLE, a connected vehicle -> CHARGING); no observation yet -> UNKNOWN.
- Connector by model rule (Sense meters are not chargers: reported, not placed); phases: what the
  installation's grid (NetworkType) brings, fewer when the charger's MaxPhases (520) says so, and
  power_type from them; volts per phase from the grid (230, or 230 / sqrt(3) on an IT grid's three
  phases); amperage the charger's ChargerMaxCurrent (510) observation, else the model's rating;
  power = phases x volts x amperage.
- A charger is one charging station with one EVSE (`station_id` = the charger); its DeviceId (the serial
  printed on it, e.g. ZPR123456) is the id part of the eMI3 EVSE id derived from the CPO's operator id.
- Zaptec's API has no opening hours, energy mix or tariffs: those stay empty (the NDW export lists
  such locations as rejected with that reason instead of inventing them).
"""

from evpipeline.model.mappings import Scope, SourceMapping, moved_from


def _installations(scope: Scope) -> str:
    return f"""
    SELECT i.*, p.country_code, p.party_id
    FROM zaptec.installations i
    JOIN rules_operators p ON p.source = 'zaptec' AND p.operator = i.country
    WHERE {scope.locations("i.installation_id")}
"""


def locations(scope: Scope) -> str:
    return f"""
    SELECT i.country_code, i.party_id, i.installation_id AS location_id,
           i.is_public AS publish,
           i.name, i.address, i.city, i.zip_code AS postal_code, CAST(NULL AS VARCHAR) AS state, i.country,
           i.latitude, i.longitude,
           CAST(NULL AS VARCHAR) AS parking_type,
           i.time_zone,
           CAST(NULL AS JSON) AS opening_times,
           CAST(NULL AS BOOLEAN) AS charging_when_closed,
           CAST(NULL AS JSON) AS energy_mix,
           CAST(NULL AS JSON) AS facilities,
           CAST(NULL AS JSON) AS directions,
           CAST(NULL AS JSON) AS operator,
           CAST(NULL AS JSON) AS suboperator,
           CAST(NULL AS JSON) AS owner,
           CAST(NULL AS JSON) AS images,
           CAST(NULL AS VARCHAR) AS nuts_code,
           'zaptec' AS source, i.installation_id AS source_id, i.last_updated AS source_last_updated,
           i.last_updated, i.is_deleted OR NOT coalesce(i.active, true) AS is_deleted
    FROM ({_installations(scope)}) i
"""


def _charger_in(scope: Scope, column: str) -> str:
    """A charger id column limited to the chargers of the installations in scope."""
    if not scope.incremental:
        return "true"
    return f"{column} IN (SELECT charger_id FROM zaptec.chargers WHERE {scope.locations('installation_id')})"


def _chargers(scope: Scope) -> str:
    # The live fields as `zaptec.charger_live` defines them, aggregated here over the chargers in
    # scope only (the view would aggregate every charger's states on every incremental build).
    return f"""
    SELECT c.*, i.country_code, i.party_id, i.network_type, m.standard, m.format,
           m.amperage AS rated_amperage,
           coalesce(m.not_a_charger, false) AS not_a_charger,
           st.operation_mode, st.operation_mode_since, st.is_online,
           st.max_current, st.max_phases, st.observed_updated
    FROM zaptec.chargers c
    JOIN ({_installations(scope)}) i ON i.installation_id = c.installation_id
    LEFT JOIN rules_zaptec_models m ON m.value = c.model
    LEFT JOIN (
        SELECT charger_id,
               max(operation_mode) FILTER (WHERE state_id = 710) AS operation_mode,
               max(last_updated) FILTER (WHERE state_id = 710) AS operation_mode_since,
               bool_or(value_bool) FILTER (WHERE state_id = -2) AS is_online,
               max(value_number) FILTER (WHERE state_id = 510) AS max_current,
               max(value_number) FILTER (WHERE state_id = 520) AS max_phases,
               max(last_updated) AS observed_updated
        FROM zaptec.charger_states WHERE NOT is_deleted AND {_charger_in(scope, "charger_id")} GROUP BY 1
    ) st ON st.charger_id = c.charger_id
    WHERE NOT coalesce(m.not_a_charger, false) AND {scope.locations("c.installation_id")}
"""


def evses(scope: Scope) -> str:
    return f"""
    SELECT c.country_code, c.party_id, c.installation_id AS location_id, c.charger_id AS evse_uid,
           CAST(NULL AS VARCHAR) AS evse_id,
           CASE WHEN c.is_deleted THEN 'REMOVED'
                WHEN NOT coalesce(c.active, true) THEN 'INOPERATIVE'
                WHEN c.is_online IS NOT DISTINCT FROM false THEN 'UNKNOWN'
                ELSE coalesce(r.status, 'UNKNOWN') END AS status,
           CAST(NULL AS JSON) AS capabilities,
           CAST(NULL AS VARCHAR) AS floor_level,
           CAST(NULL AS DOUBLE) AS latitude, CAST(NULL AS DOUBLE) AS longitude,
           left(c.name, 16) AS physical_reference,
           CAST(NULL AS JSON) AS parking_restrictions,
           CAST(NULL AS JSON) AS directions,
           CAST(NULL AS JSON) AS images,
           c.charger_id AS station_id,
           c.device_id AS point_ref,
           'zaptec' AS source, c.charger_id AS source_id,
           greatest(c.last_updated, c.operation_mode_since) AS source_last_updated,
           greatest(c.last_updated, c.operation_mode_since) AS last_updated,
           c.is_deleted
    FROM ({_chargers(scope)}) c
    LEFT JOIN rules_zaptec_modes r ON r.value = c.operation_mode
"""


def connectors(scope: Scope) -> str:
    # Phases: those the installation's grid brings, or fewer when the charger's MaxPhases (520) says so;
    # the volts across each follow from the grid (on IT's 3 phases 230 / sqrt(3) V, OCPI being line to
    # neutral). Power = phases x volts x the charger's maximum current (510, else the model's rating).
    # Voltage and amperage are rounded up to OCPI's integers, so the power never exceeds their product.
    return f"""
    WITH rated AS (
        SELECT c.*, p.phases, p.power_type,
               CASE p.phases WHEN 1 THEN n.single_phase_volts WHEN 3 THEN n.phase_volts END AS volts,
               coalesce(c.max_current, c.rated_amperage) AS amps
        FROM ({_chargers(scope)}) c
        LEFT JOIN rules_zaptec_networks n ON n.value = c.network_type
        LEFT JOIN rules_zaptec_power_types p ON n.value IS NOT NULL
            AND p.phases = least(n.phases, CAST(c.max_phases AS INTEGER))
    )
    SELECT country_code, party_id, installation_id AS location_id, charger_id AS evse_uid,
           '1' AS connector_id, standard, format, power_type,
           CAST(ceil(volts) AS INTEGER) AS max_voltage,
           CAST(ceil(amps) AS INTEGER) AS max_amperage,
           CAST(round(phases * volts * amps) AS INTEGER) AS max_electric_power,
           CAST(NULL AS JSON) AS tariff_ids,
           CAST(NULL AS VARCHAR) AS terms_and_conditions,
           'zaptec' AS source, charger_id || '/1' AS source_id,
           last_updated AS source_last_updated, last_updated,
           is_deleted
    FROM rated
"""


UNMAPPED = """
    SELECT 'zaptec' AS source, 'installation.country (no CPO party)' AS field,
        coalesce(i.country, 'unknown') AS value, count(*) AS rows
    FROM zaptec.installations i LEFT JOIN rules_operators p ON p.source = 'zaptec' AND p.operator = i.country
    WHERE p.party_id IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'zaptec', 'charger.model', coalesce(c.model, 'unknown'), count(*)
    FROM zaptec.chargers c LEFT JOIN rules_zaptec_models m ON m.value = c.model
    WHERE m.value IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'zaptec', 'charger.model (meter, not a charger)', c.model, count(*)
    FROM zaptec.chargers c JOIN rules_zaptec_models m ON m.value = c.model AND m.not_a_charger GROUP BY ALL
    UNION ALL
    SELECT 'zaptec', 'installation.network_type', CAST(i.network_type AS VARCHAR), count(*)
    FROM zaptec.installations i LEFT JOIN rules_zaptec_networks n ON n.value = i.network_type
    WHERE n.phases IS NULL GROUP BY ALL
    UNION ALL
    SELECT 'zaptec', 'charger_states.max_phases (MaxPhases 520)', CAST(s.value_number AS VARCHAR), count(*)
    FROM zaptec.charger_states s LEFT JOIN rules_zaptec_power_types p ON p.phases = s.value_number
    WHERE s.state_id = 520 AND NOT s.is_deleted AND s.value_number IS NOT NULL AND p.phases IS NULL
        GROUP BY ALL
    UNION ALL
    SELECT 'zaptec', 'charger_states.operation_mode', s.operation_mode, count(*)
    FROM zaptec.charger_live s LEFT JOIN rules_zaptec_modes r ON r.value = s.operation_mode
    WHERE s.operation_mode IS NOT NULL AND r.status IS NULL GROUP BY ALL
"""

_CHANGED_CHARGERS = """
    SELECT charger_id FROM zaptec.chargers WHERE _ingested_at > $since
    UNION SELECT charger_id FROM zaptec.charger_states WHERE _ingested_at > $since
"""

CHANGED_LOCATIONS = f"""
    SELECT installation_id AS location_id FROM zaptec.installations WHERE _ingested_at > $since
    UNION SELECT installation_id FROM zaptec.chargers WHERE charger_id IN ({_CHANGED_CHARGERS})
    UNION {moved_from("zaptec", _CHANGED_CHARGERS)}
"""

MAPPING = SourceMapping(
    source="zaptec",
    requires=("zaptec.installations", "zaptec.chargers", "zaptec.charger_states"),
    inputs=("zaptec/installations", "zaptec/chargers", "zaptec/charger_states"),
    locations=locations,
    evses=evses,
    connectors=connectors,
    unmapped=UNMAPPED,
    changed_locations=CHANGED_LOCATIONS,
)
