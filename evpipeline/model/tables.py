"""Tables of the canonical model (schema `mart`): OCPI 2.2.1 terms plus lineage on every row.

They are merge targets like the source tables (same standard columns), so the canonical model is
maintained by the same merge: ids never change, nothing vanishes (EVSEs go REMOVED, rows get
`is_deleted`), and EVSE status changes land in `ops.status_history` (`mart.evse_status_history`).
Lineage on every row: `source`, `source_id`, `source_last_updated`, `_ingested_at`.
"""

from evpipeline.warehouse import Migration, describe_columns, register, source_table

LOCATIONS = "mart.locations"
EVSES = "mart.evses"
CONNECTORS = "mart.connectors"
TARIFFS = "mart.tariffs"

KEYS = {
    LOCATIONS: ("country_code", "party_id", "location_id"),
    EVSES: ("country_code", "party_id", "location_id", "evse_uid"),
    CONNECTORS: ("country_code", "party_id", "location_id", "evse_uid", "connector_id"),
    TARIFFS: ("country_code", "party_id", "tariff_id"),
}

_LINEAGE = """
    source VARCHAR NOT NULL,
    source_id VARCHAR NOT NULL,
    source_last_updated TIMESTAMPTZ"""

register(
    Migration(
        "mart",
        1,
        "canonical locations, evses, connectors, tariffs",
        "CREATE SCHEMA IF NOT EXISTS mart;\n"
        + source_table(
            LOCATIONS,
            f"""
            country_code VARCHAR NOT NULL,      -- ISO 3166 alpha-2 of the CPO that owns the location
            party_id VARCHAR NOT NULL,          -- that CPO's party id (not the aggregator's)
            location_id VARCHAR NOT NULL,       -- OCPI Location.id, stable forever
            publish BOOLEAN NOT NULL,           -- false for private/home locations: never exported
            name VARCHAR,
            address VARCHAR,
            city VARCHAR,
            postal_code VARCHAR,
            state VARCHAR,
            country VARCHAR,                    -- ISO 3166 alpha-3 (NLD)
            latitude DOUBLE,
            longitude DOUBLE,
            parking_type VARCHAR,
            time_zone VARCHAR,
            opening_times JSON,                 -- OCPI Hours
            charging_when_closed BOOLEAN,
            energy_mix JSON,                    -- OCPI EnergyMix
            facilities JSON,                    -- list of OCPI Facility
            directions JSON,                    -- list of DisplayText
            operator JSON,                      -- BusinessDetails
            suboperator JSON,
            owner JSON,
            images JSON,{_LINEAGE}""",
        )
        + source_table(
            EVSES,
            f"""
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,          -- OCPI EVSE.uid, stable forever
            evse_id VARCHAR,                    -- eMI3 id, e.g. NL*ABC*E123
            status VARCHAR NOT NULL,            -- OCPI Status; REMOVED instead of deleting
            capabilities JSON,
            floor_level VARCHAR,
            latitude DOUBLE,
            longitude DOUBLE,
            physical_reference VARCHAR,
            parking_restrictions JSON,          -- list of OCPI ParkingRestriction
            directions JSON,
            images JSON,{_LINEAGE}""",
        )
        + source_table(
            CONNECTORS,
            f"""
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,
            connector_id VARCHAR NOT NULL,
            standard VARCHAR,                   -- OCPI ConnectorType (NULL when unmappable: reported)
            format VARCHAR,                     -- SOCKET | CABLE
            power_type VARCHAR,                 -- AC_1_PHASE | AC_3_PHASE | DC ...
            max_voltage INTEGER,
            max_amperage INTEGER,
            max_electric_power INTEGER,         -- W
            tariff_ids JSON,                    -- list of tariff ids
            terms_and_conditions VARCHAR,{_LINEAGE}""",
        )
        + source_table(
            TARIFFS,
            f"""
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            tariff_id VARCHAR NOT NULL,
            currency VARCHAR NOT NULL,
            type VARCHAR,
            tariff_alt_text JSON,
            tariff_alt_url VARCHAR,
            min_price JSON,
            max_price JSON,
            elements JSON NOT NULL,             -- list of OCPI TariffElement
            start_date_time TIMESTAMPTZ,
            end_date_time TIMESTAMPTZ,
            energy_mix JSON,{_LINEAGE}""",
        ),
    )
)

UNMAPPED = "mart.unmapped_values"

register(
    Migration(
        "mart",
        2,
        "unmapped values report, EVSE status history view",
        f"""
        CREATE TABLE {UNMAPPED} (
            source VARCHAR NOT NULL,
            field VARCHAR NOT NULL,
            value VARCHAR,
            rows BIGINT NOT NULL,
            run_id VARCHAR,
            built_at TIMESTAMPTZ NOT NULL
        );
        -- Every EVSE status transition the canonical model went through (fed by the merge).
        CREATE VIEW mart.evse_status_history AS
        SELECT split_part(entity_key, '|', 1) AS country_code,
               split_part(entity_key, '|', 2) AS party_id,
               split_part(entity_key, '|', 3) AS location_id,
               split_part(entity_key, '|', 4) AS evse_uid,
               old_status, new_status, status_at, recorded_at, run_id
        FROM ops.status_history
        WHERE table_name = '{EVSES}';
        """,
    )
)

register(
    Migration(
        "mart",
        3,
        "lineage of operator-supplied values",
        """
        -- Fields an operator reference rule filled (field -> rule id); NULL when every value is the source's.
        ALTER TABLE mart.locations ADD COLUMN reference_fields JSON;
        ALTER TABLE mart.evses ADD COLUMN reference_fields JSON;
        ALTER TABLE mart.connectors ADD COLUMN reference_fields JSON;
        """,
    )
)

register(
    Migration(
        "mart",
        4,
        "AFIR: NUTS-1 region of each location, physical charging station of each EVSE",
        """
        ALTER TABLE mart.locations ADD COLUMN nuts_code VARCHAR;
        ALTER TABLE mart.evses ADD COLUMN station_id VARCHAR;
        """,
    )
)

# What each column means, for the Dagster catalog (`evpipeline.catalog`): the OCPI 2.2.1 field, its unit
# and allowed values, and where each source's value comes from (mappings in evpipeline/model/mappings/).
# `reference_fields` names the fields an operator reference rule (evpipeline/model/reference.py) filled.
_PARTY = {
    "country_code": "ISO 3166 alpha-2 country code of the CPO that owns the location (OCPI `country_code`).",
    "party_id": "Party id of that CPO (OCPI `party_id`): from operators.csv, GreenFlux `cpo_id` or the "
    "operator's reference parties; never the aggregator's.",
}
_LOCATION_ID = (
    "The Location (OCPI Location.id): EVRoam `siteId`, GreenFlux location `id`, Zaptec installation `Id`."
)
_EVSE_UID = "The EVSE (OCPI EVSE.uid): EVRoam `chargingStationId`, GreenFlux `uid`, Zaptec charger `Id`."
_REFERENCE_FIELDS = (
    "Fields the operator reference data filled: JSON object field -> the rule id (reference.rules), "
    "`operators/<country_code>/<party_id>` (the CPO's entry in reference.operators) or "
    "`nuts-single-region/<country>` (a country that is one NUTS-1 region); NULL when every value is "
    "the source's."
)
_LATITUDE = "WGS84 latitude in decimal degrees (OCPI `coordinates.latitude`, a string in the export)"
_LONGITUDE = "WGS84 longitude in decimal degrees (OCPI `coordinates.longitude`, a string in the export)"

COLUMNS: dict[str, dict[str, str]] = {
    LOCATIONS: {
        "name": "Display name (OCPI `name`): EVRoam site `name`, GreenFlux `name`, "
        "Zaptec installation `Name`.",
        "address": "Street and number (OCPI `address`): EVRoam the part of `address` before the first comma, "
        "GreenFlux `address`, Zaptec `Address`.",
        "city": "City or town (OCPI `city`): EVRoam the locality of `address` without its postcode, "
        "GreenFlux `city`, Zaptec `City`.",
        "postal_code": "Postal code (OCPI `postal_code`): EVRoam the 4-digit postcode in `address`, "
        "GreenFlux `postal_code`, Zaptec `ZipCode`.",
        "state": "State or province (OCPI `state`); no source provides one: NULL.",
        "latitude": f"{_LATITUDE}: EVRoam the site's first access location, GreenFlux `coordinates`, Zaptec "
        "`Latitude`.",
        "longitude": f"{_LONGITUDE}: EVRoam the site's first access location, GreenFlux `coordinates`, "
        "Zaptec `Longitude`.",
        "parking_type": "OCPI ParkingType: ALONG_MOTORWAY, PARKING_GARAGE, PARKING_LOT, ON_DRIVEWAY, "
        "ON_STREET or UNDERGROUND_GARAGE; GreenFlux `type` by rule (OTHER/UNKNOWN: NULL), "
        "else a reference rule.",
        "time_zone": "IANA time zone (OCPI `time_zone`): EVRoam Pacific/Auckland, GreenFlux `time_zone`, "
        "Zaptec `TimeZoneIanaName`, or a reference rule.",
        "charging_when_closed": "Charging is possible outside the opening times (OCPI "
        "`charging_when_closed`): GreenFlux `charging_when_closed` or a reference rule.",
        "suboperator": "Suboperator (OCPI `suboperator`, JSON BusinessDetails: name, website, logo): "
        "GreenFlux `suboperator` without 2.1.1's phone_number.",
        "owner": "Owner (OCPI `owner`, JSON BusinessDetails): GreenFlux `owner`, or a reference rule.",
        "images": "Images of the location (OCPI `images`, JSON list of Image); no source maps any yet: NULL.",
        "nuts_code": "NUTS-1 region (AFIR; e.g. NL3): no source gives one, "
        "so a reference rule's `nuts_code`, else the CPO's operator entry's when the location is in that "
        "entry's country, else the region of a country that is one NUTS-1 region "
        "(evpipeline/model/nuts.py); NULL otherwise, never guessed.",
        "reference_fields": _REFERENCE_FIELDS,
    },
    EVSES: {
        **_PARTY,
        "location_id": _LOCATION_ID,
        "capabilities": "OCPI Capability list (JSON, e.g. RFID_READER, REMOTE_START_STOP_CAPABLE, "
        "CREDIT_CARD_PAYABLE): GreenFlux `capabilities` within OCPI's list, or a reference rule.",
        "floor_level": "Floor (OCPI `floor_level`, at most 4 characters): "
        "EVRoam `floorLevel` (longer values by rule), GreenFlux `floor_level`.",
        "latitude": f"{_LATITUDE}: EVRoam the station's `location`, GreenFlux EVSE `coordinates`; "
        "NULL for Zaptec.",
        "longitude": f"{_LONGITUDE}: EVRoam the station's `location`, GreenFlux EVSE `coordinates`; "
        "NULL for Zaptec.",
        "physical_reference": "Label on the charger (OCPI `physical_reference`, at most 16 characters): "
        "GreenFlux `physical_reference`, Zaptec the first 16 characters of the charger `Name`.",
        "directions": "How to find the EVSE (OCPI `directions`, JSON list of DisplayText): GreenFlux EVSE "
        "`directions`.",
        "images": "Images of the EVSE (OCPI `images`, JSON list of Image): GreenFlux EVSE `images`.",
        "station_id": "The physical charging station the EVSE belongs to (AFIR), stable: "
        "GreenFlux the charge station (`charge_station_id`) listing the EVSE's uid, "
        "Zaptec the charger (one EVSE each), EVRoam `chargingStationId`; "
        "the EVSE's own uid when the source names none.",
        "reference_fields": _REFERENCE_FIELDS,
    },
    CONNECTORS: {
        **_PARTY,
        "location_id": _LOCATION_ID,
        "evse_uid": _EVSE_UID,
        "connector_id": "The connector (OCPI Connector.id): EVRoam `connectorId`, GreenFlux connector `id`, "
        "Zaptec always 1 (one socket per charger).",
        "max_voltage": "Maximum voltage in V, line to neutral for AC (OCPI `max_voltage`): "
        "GreenFlux `voltage`; EVRoam AC 230, DC 500 up to 100 kW else 920; Zaptec 230.",
        "max_amperage": "Maximum current in A (OCPI `max_amperage`): GreenFlux `amperage`; "
        "EVRoam power / voltage rounded up (3 x 230 V for AC three-phase); "
        "Zaptec ChargerMaxCurrent (state 510), else the model's 32 A.",
        "terms_and_conditions": "URL of the terms and conditions (OCPI `terms_and_conditions`): GreenFlux "
        "`terms_and_conditions`, or a reference rule.",
        "reference_fields": _REFERENCE_FIELDS,
    },
    TARIFFS: {
        "country_code": "ISO 3166 alpha-2 country code of the CPO the tariff belongs to (OCPI "
        "`country_code`).",
        "party_id": "Party id of that CPO (OCPI `party_id`): GreenFlux `cpo_id` or the feed's reference "
        "party; reference tariffs name their own.",
        "tariff_id": "The tariff (OCPI Tariff.id), referenced by mart.connectors.tariff_ids: "
        "GreenFlux tariff `id` or the reference file's tariff `id`.",
        "currency": "ISO 4217 currency code (OCPI `currency`, e.g. EUR).",
        "type": "OCPI TariffType: AD_HOC_PAYMENT, PROFILE_CHEAP, PROFILE_FAST, "
        "PROFILE_GREEN or REGULAR (reference tariffs; NULL for GreenFlux).",
        "tariff_alt_text": "Human-readable description (OCPI `tariff_alt_text`, JSON list of DisplayText).",
        "tariff_alt_url": "URL of a web page describing the tariff (OCPI `tariff_alt_url`).",
        "min_price": "Minimum price of a session (OCPI `min_price`, JSON Price: excl_vat, incl_vat); "
        "reference tariffs only.",
        "max_price": "Maximum price of a session (OCPI `max_price`, JSON Price); reference tariffs only.",
        "start_date_time": "When the tariff becomes valid (OCPI `start_date_time`, UTC); "
        "reference tariffs only.",
        "end_date_time": "When the tariff stops being valid (OCPI `end_date_time`, UTC); "
        "reference tariffs only.",
        "energy_mix": "Energy supplied under this tariff (OCPI `energy_mix`, JSON EnergyMix).",
    },
    UNMAPPED: {
        "source": "The source whose value has no rule (evroam, greenflux, zaptec).",
        "field": "The source field whose value has no mapping rule (e.g. connector.connectorType, "
        "site.operator).",
        "value": "The value no rule maps, as text.",
        "rows": "Source rows carrying it.",
        "run_id": "The mart build (Dagster run) that wrote the report.",
        "built_at": "When that build wrote it (UTC); full builds rewrite the whole report.",
    },
    "mart.evse_status_history": {
        **_PARTY,
        "location_id": _LOCATION_ID,
        "evse_uid": _EVSE_UID,
        "old_status": "OCPI EVSE status before the transition (NULL for the EVSE's first).",
        "new_status": "OCPI EVSE status after it: AVAILABLE, BLOCKED, CHARGING, INOPERATIVE, OUTOFORDER, "
        "PLANNED, REMOVED, RESERVED or UNKNOWN.",
        "status_at": "Source time of the change (the EVSE row's last_updated, UTC).",
        "recorded_at": "When the warehouse recorded it (UTC).",
        "run_id": "The run that recorded it.",
    },
}
describe_columns(__name__, COLUMNS)
