"""Tables of the canonical model (schema `mart`): OCPI 2.2.1 terms plus lineage on every row.

They are merge targets like the source tables (same standard columns), so the canonical model is
maintained by the same merge: ids never change, nothing vanishes (EVSEs go REMOVED, rows get
`is_deleted`), and EVSE status changes land in `ops.status_history` (`mart.evse_status_history`).
Lineage on every row: `source`, `source_id`, `source_last_updated`, `_ingested_at`.
"""

from evpipeline.warehouse import Migration, register, source_table

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
