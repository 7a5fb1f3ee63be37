"""Warehouse tables of the GreenFlux source (schema `greenflux`).

OCPI field names and values are kept as GreenFlux sends them (2.1.1 style: `voltage`, `amperage`,
one `tariff_id`); nested objects are JSON columns, a few custom fields are also typed columns,
and keys nobody modelled land in `extra`, so nothing is dropped.

EVSEs are keyed on (location_id, evse_uid): a moved EVSE keeps a REMOVED copy in its old
location and a live one in the new, both kept. `greenflux.current_evses` names the one place
each EVSE is now (its non-REMOVED copy, else the newest); `ops.status_history` keeps the move.
"""

from evpipeline.warehouse import Migration, register, source_table

LOCATIONS = "greenflux.locations"
EVSES = "greenflux.evses"
CONNECTORS = "greenflux.connectors"
CHARGE_STATIONS = "greenflux.charge_stations"
TARIFFS = "greenflux.tariffs"
CURRENT_EVSES = "greenflux.current_evses"

KEYS = {
    LOCATIONS: ("location_id",),
    EVSES: ("location_id", "evse_uid"),
    CONNECTORS: ("location_id", "evse_uid", "connector_id"),
    CHARGE_STATIONS: ("charge_station_id",),
    TARIFFS: ("tariff_id",),
}
STATUS = {EVSES: "status", CHARGE_STATIONS: "connectivity_status"}

register(
    Migration(
        "greenflux",
        1,
        "locations, evses, connectors, charge stations, tariffs, current_evses view",
        "CREATE SCHEMA IF NOT EXISTS greenflux;\n"
        + source_table(
            LOCATIONS,
            """
            location_id VARCHAR NOT NULL,
            cpo_id VARCHAR,                     -- country code + party id, e.g. NLALF
            type VARCHAR,
            publish BOOLEAN,
            access_type VARCHAR,
            name VARCHAR,
            address VARCHAR,
            address_line_2 VARCHAR,
            city VARCHAR,
            postal_code VARCHAR,
            country VARCHAR,                    -- ISO 3166 alpha-3
            latitude DOUBLE,
            longitude DOUBLE,
            time_zone VARCHAR,
            opening_times JSON,
            charging_when_closed BOOLEAN,
            energy_mix JSON,
            energy_mix_profile_id VARCHAR,
            is_green_energy BOOLEAN,
            directions JSON,
            facilities JSON,
            operator JSON,
            suboperator JSON,
            owner JSON,
            auth_rules JSON,
            custom_groups JSON,
            customised_fields JSON,
            maintenance_info VARCHAR,
            remarks VARCHAR,
            payment_provider JSON,
            wallet_id VARCHAR,
            cpo_customer_external_id VARCHAR,
            etag VARCHAR,
            created_by VARCHAR,
            modified_by VARCHAR,
            created TIMESTAMPTZ,
            modified TIMESTAMPTZ,               -- the Location object's own edits (last_updated includes EVSEs)
            extra JSON""",
        )
        + source_table(
            EVSES,
            """
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,
            evse_id VARCHAR,
            status VARCHAR,
            status_schedule JSON,
            capabilities JSON,
            floor_level VARCHAR,
            latitude DOUBLE,
            longitude DOUBLE,
            physical_reference VARCHAR,
            directions JSON,
            parking_restrictions JSON,
            images JSON,
            evse_sequence_number INTEGER,
            extra JSON""",
        )
        + source_table(
            CONNECTORS,
            """
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,
            connector_id VARCHAR NOT NULL,
            standard VARCHAR,
            format VARCHAR,
            power_type VARCHAR,
            voltage INTEGER,
            amperage INTEGER,
            max_electric_power INTEGER,         -- W
            tariff_id VARCHAR,
            reimbursement_tariff_id VARCHAR,
            terms_and_conditions VARCHAR,
            extra JSON""",
        )
        + source_table(
            CHARGE_STATIONS,
            """
            charge_station_id VARCHAR NOT NULL,
            location_id VARCHAR,
            name VARCHAR,
            deploy_state VARCHAR,
            installation_date TIMESTAMPTZ,
            default_charge_station_tariff_id VARCHAR,
            default_charge_station_reimbursement_tariff_id VARCHAR,
            default_charge_station_directions JSON,
            default_charge_station_floor_level VARCHAR,
            driver_id VARCHAR,
            customer_id VARCHAR,
            evse_uids JSON,                     -- the station's EVSEs, in order
            evses JSON,                         -- as sent; statuses here go stale (see docs/sources.md)
            maintenance_info VARCHAR,
            remarks VARCHAR,
            contactless_terminal_serial_number VARCHAR,
            contactless_terminal_auth_amount DOUBLE,
            contactless_type VARCHAR,
            status_schedule JSON,
            auth_rules JSON,
            tap_to_stop BOOLEAN,
            stop_on_parking BOOLEAN,
            grid_connection_id VARCHAR,
            dynamic_time_based_tariffs BOOLEAN,
            time_of_use_tariffs BOOLEAN,
            exclude_vat BOOLEAN,
            charger_type VARCHAR,
            charge_station_template_id VARCHAR,
            etag VARCHAR,
            created_by VARCHAR,
            modified_by VARCHAR,
            status VARCHAR,
            charging_speed VARCHAR,
            created TIMESTAMPTZ,
            heartbeat_interval INTEGER,
            charge_point_model VARCHAR,
            charge_point_vendor VARCHAR,
            charge_point_serial_number VARCHAR,
            charge_box_serial_number VARCHAR,
            client_ip_address VARCHAR,
            firmware_version VARCHAR,
            iccid VARCHAR,
            imsi VARCHAR,
            meter_serial_number VARCHAR,
            meter_type VARCHAR,
            remote_manageable BOOLEAN,
            connectivity_status VARCHAR,
            protocol_version VARCHAR,
            endpoint VARCHAR,
            extra JSON""",
        )
        + source_table(
            TARIFFS,
            """
            tariff_id VARCHAR NOT NULL,
            cpo_id VARCHAR,
            currency VARCHAR,
            tariff_alt_text JSON,
            tariff_alt_url VARCHAR,
            elements JSON,
            energy_mix JSON,
            extra JSON""",
        )
        + f"""
        -- One row per EVSE uid: where it is now (its non-REMOVED copy; else its newest copy).
        CREATE VIEW {CURRENT_EVSES} AS
        SELECT * FROM {EVSES}
        WHERE NOT is_deleted
        QUALIFY row_number() OVER (
            PARTITION BY evse_uid ORDER BY status = 'REMOVED', last_updated DESC, _observed_at DESC, location_id
        ) = 1;
        """,
    )
)
