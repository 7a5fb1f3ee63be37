"""Warehouse tables of the Zaptec source (schema `zaptec`)."""

from evpipeline.warehouse import Migration, describe_columns, register, source_table

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
            network_type INTEGER,               -- 0 Unknown, 1 IT 1-phase, 2 IT 3-phase, 3 TN 1-phase, 4 TN
                                                -- 3-phase
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

# What each column means, for the Dagster catalog (`evpipeline.catalog`); Zaptec field names in backticks.
_ROLES = "bit flags: 1 User, 2 Owner, 4 Maintainer, 8 Administrator"
COLUMNS: dict[str, dict[str, str]] = {
    INSTALLATIONS: {
        "installation_id": "Zaptec installation `Id` (a GUID); the mart Location id.",
        "name": "Installation name (`Name`).",
        "address": "Street address (`Address`), as Zaptec sends it (homes included; "
        "never exported when private).",
        "zip_code": "Postal code (`ZipCode`).",
        "city": "City (`City`).",
        "latitude": "WGS84 latitude (`Latitude`).",
        "longitude": "WGS84 longitude (`Longitude`).",
        "is_required_authentication": "Drivers must authenticate to charge (`IsRequiredAuthentication`); "
        "with installation_type 0 this makes the installation public.",
        "active": "The installation is active (`Active`); an inactive one is a deleted Location in the mart.",
        "max_current": "Maximum current of the installation in A (`MaxCurrent`).",
        "available_current_phase1": "Current available to the installation on phase 1, "
        "in A (`AvailableCurrentPhase1`).",
        "available_current_phase2": "Current available to the installation on phase 2, "
        "in A (`AvailableCurrentPhase2`).",
        "available_current_phase3": "Current available to the installation on phase 3, "
        "in A (`AvailableCurrentPhase3`).",
        "use_load_balancing": "Load balancing is on (`UseLoadBalancing`).",
        "messaging_enabled": "State messages are published to Service Bus for this installation "
        "(`MessagingEnabled`).",
        "active_charger_count": "Active chargers in the installation (`ActiveChargerCount`).",
        "created_on": "When the installation was created (`CreatedOnDate`, UTC).",
        "updated_on": "When Zaptec last updated the installation (`UpdatedOn`, UTC).",
        "visibility_reason": 'Why the installation is public or private (e.g. "private: Zaptec Home/Smart '
        'installation").',
        "extra": "Installation keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    CIRCUITS: {
        "circuit_id": "Circuit `Id` (a GUID), from the installation's hierarchy "
        "(/api/installation/{id}/hierarchy).",
        "installation_id": "The installation the circuit belongs to (`InstallationId`, "
        "else the hierarchy's).",
        "name": "Circuit name (`Name`).",
        "max_current": "Maximum current of the circuit in A (`MaxCurrent`).",
        "is_active": "The circuit is active (`IsActive`).",
        "charger_ids": "Chargers on the circuit (JSON sorted list of `Chargers[].Id`).",
        "extra": "Circuit keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    CHARGERS: {
        "charger_id": "Zaptec charger `Id` (a GUID); the mart EVSE uid.",
        "installation_id": "The charger's installation (`InstallationId`).",
        "circuit_id": "The charger's circuit (`CircuitId`).",
        "device_id": "Device id (`DeviceId`, e.g. ZAP000123); its prefix gives the model.",
        "mid": "The charger's `MID`, as sent.",
        "serial_no": "Zaptec `SerialNo`, as sent (the API may echo the charger's name here).",
        "name": "Charger name (`Name`); its first 16 characters are the mart EVSE physical_reference.",
        "active": "The charger is active (`Active`); an inactive charger is an INOPERATIVE EVSE in the mart.",
        "is_authorization_required": "Drivers must authorize to charge (`IsAuthorizationRequired`).",
        "authentication_type": "`AuthenticationType`: 0 Native, 1 WebHooks, 2 Ocpp.",
        "current_user_roles": f"Our account's roles on the charger (`CurrentUserRoles`, {_ROLES}).",
        "installation_name": "Name of the charger's installation (`InstallationName`).",
        "created_on": "When the charger was created (`CreatedOnDate`, UTC).",
        "extra": "Charger keys the pipeline does not model, as JSON (live fields such as OperatingMode and "
        "IsOnline are left out: they are state); NULL when there are none.",
    },
    STATES: {
        "charger_id": "The charger (`ChargerId`).",
        "state_id": "Observation id (`StateId`, e.g. -2 IsOnline, 510 ChargerMaxCurrent, "
        "513 TotalChargePower, 553 TotalChargePowerSession, 710 ChargerOperationMode, 718 FinalStopActive); "
        "one row per charger and id, its latest value.",
        "state_name": "Name of the observation id (NULL for ids the pipeline does not know).",
        "unit": "Unit of value_number (V, A, W, kWh, Cel, %, dBm); NULL for counts, "
        "codes and non-numeric values.",
        "operation_mode": "ChargerOperationMode name (state 710 only): Unknown, Disconnected, "
        "Connected_Requesting, Connected_Charging or Connected_Finished. Transitions in ops.status_history.",
    },
    "zaptec.charger_live": {
        "charger_id": "The charger (zaptec.charger_states.charger_id).",
        "operation_mode": "ChargerOperationMode (state 710): Unknown, Disconnected, Connected_Requesting, "
        "Connected_Charging or Connected_Finished.",
        "operation_mode_since": "Timestamp of the observation that set the current operation mode (UTC).",
        "is_online": "The charger is online (state -2 IsOnline).",
        "power_w": "Charging power now, in W (state 513 TotalChargePower).",
        "session_kwh": "Energy charged in the current (or last) session, in kWh (state 553 "
        "TotalChargePowerSession).",
        "final_stop_active": "Charging was stopped with a final stop (state 718 FinalStopActive).",
        "observed_at": "When we last heard from the charger (newest _observed_at of its states).",
    },
}
describe_columns(__name__, COLUMNS)
