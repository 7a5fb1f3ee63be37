"""Warehouse tables of the Zaptec source (schema `zaptec`)."""

from evpipeline.warehouse import Migration, register, source_table

INSTALLATIONS = "zaptec.installations"
CIRCUITS = "zaptec.circuits"
CHARGERS = "zaptec.chargers"
STATES = "zaptec.charger_states"

KEYS = {
    INSTALLATIONS: ("installation_id",),
    CIRCUITS: ("circuit_id",),
    CHARGERS: ("charger_id",),
    STATES: ("charger_id", "state_id"),
}
# Only the ChargerOperationMode row (710) has an operation_mode; NULL = NULL is no transition.
STATUS = {STATES: "operation_mode"}

register(
    Migration(
        "zaptec",
        1,
        "installations, circuits, chargers, charger states",
        "CREATE SCHEMA IF NOT EXISTS zaptec;\n"
        + source_table(
            INSTALLATIONS,
            """
            installation_id VARCHAR NOT NULL,
            name VARCHAR,
            address VARCHAR,
            zip_code VARCHAR,
            city VARCHAR,
            country_id VARCHAR,                 -- Zaptec's own country id
            country VARCHAR,                    -- ISO 3166 alpha-3, from the IANA time zone (NULL if unknown)
            latitude DOUBLE,
            longitude DOUBLE,
            installation_type INTEGER,          -- 0 Pro, 1 Smart (Home/Go)
            network_type INTEGER,               -- 0 Unknown, 1 IT 1-phase, 2 IT 3-phase, 3 TN 1-phase, 4 TN 3-phase
            authentication_type INTEGER,        -- 0 Native, 1 WebHooks, 2 Ocpp
            is_required_authentication BOOLEAN,
            current_user_roles INTEGER,         -- bit flags: 1 User, 2 Owner, 4 Maintainer, 8 Administrator
            active BOOLEAN,
            max_current DOUBLE,
            available_current_phase1 DOUBLE,
            available_current_phase2 DOUBLE,
            available_current_phase3 DOUBLE,
            use_load_balancing BOOLEAN,
            messaging_enabled BOOLEAN,
            time_zone VARCHAR,                  -- IANA
            active_charger_count INTEGER,
            created_on TIMESTAMPTZ,
            updated_on TIMESTAMPTZ,
            is_public BOOLEAN NOT NULL,         -- false: private (home) site, never published
            visibility_reason VARCHAR,
            extra JSON""",
        )
        + source_table(
            CIRCUITS,
            """
            circuit_id VARCHAR NOT NULL,
            installation_id VARCHAR NOT NULL,
            name VARCHAR,
            max_current DOUBLE,
            is_active BOOLEAN,
            charger_ids JSON,
            extra JSON""",
        )
        + source_table(
            CHARGERS,
            """
            charger_id VARCHAR NOT NULL,
            installation_id VARCHAR,
            circuit_id VARCHAR,
            device_id VARCHAR,
            mid VARCHAR,
            serial_no VARCHAR,
            name VARCHAR,
            device_type INTEGER,                -- 1 Smart (Pro/Home), 4 Apollo (Go), ...
            model VARCHAR,                      -- Pro | Go | Go2 | Sense, from the DeviceId prefix
            active BOOLEAN,
            is_authorization_required BOOLEAN,
            authentication_type INTEGER,
            current_user_roles INTEGER,
            installation_name VARCHAR,
            created_on TIMESTAMPTZ,
            extra JSON""",
        )
        + source_table(
            STATES,
            """
            charger_id VARCHAR NOT NULL,
            state_id INTEGER NOT NULL,
            state_name VARCHAR,
            value_as_string VARCHAR,            -- exactly as sent (every value is a string)
            value_number DOUBLE,                -- numeric observations, in `unit`
            value_bool BOOLEAN,                 -- 0/1 flags (IsOnline, FinalStopActive, ...)
            unit VARCHAR,
            -- ChargerOperationMode name (state 710 only)
            operation_mode VARCHAR""",
        )
        + """
        CREATE VIEW zaptec.charger_live AS
        SELECT charger_id,
               max(operation_mode) FILTER (WHERE state_id = 710) AS operation_mode,
               max(last_updated) FILTER (WHERE state_id = 710) AS operation_mode_since,
               bool_or(value_bool) FILTER (WHERE state_id = -2) AS is_online,
               max(value_number) FILTER (WHERE state_id = 513) AS power_w,
               max(value_number) FILTER (WHERE state_id = 553) AS session_kwh,
               max(value_bool::INTEGER) FILTER (WHERE state_id = 718) = 1 AS final_stop_active,
               max(_observed_at) AS observed_at
        FROM zaptec.charger_states
        WHERE NOT is_deleted
        GROUP BY charger_id;
        """,
    )
)

# `country` now comes from CountryId through /api/constants, the time zone being only the fallback;
# `country_source` says which one it was.
register(
    Migration(
        "zaptec",
        2,
        "installations.country_source",
        f"""
        ALTER TABLE {INSTALLATIONS} ADD COLUMN country_source VARCHAR;
        COMMENT ON COLUMN {INSTALLATIONS}.country IS
            'ISO 3166 alpha-3: CountryId via /api/constants, else from the IANA time zone, else NULL';
        COMMENT ON COLUMN {INSTALLATIONS}.country_source IS 'country_id | time_zone | NULL (country unknown)';
        """,
    )
)
