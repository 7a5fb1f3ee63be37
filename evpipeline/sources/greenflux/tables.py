"""Warehouse tables of the GreenFlux source (schema `greenflux`).

OCPI field names and values are kept as GreenFlux sends them (2.1.1 style: `voltage`, `amperage`,
one `tariff_id`); nested objects are JSON columns, a few custom fields are also typed columns,
and keys nobody modelled land in `extra`, so nothing is dropped.

EVSEs are keyed on (location_id, evse_uid): a moved EVSE keeps a REMOVED copy in its old
location and a live one in the new, both kept. `greenflux.current_evses` names the one place
each EVSE is now (its non-REMOVED copy, else the newest); `ops.status_history` keeps the move.
"""

from evpipeline.warehouse import Migration, describe_columns, register, source_table

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
            modified TIMESTAMPTZ,               -- the Location object's own edits (last_updated includes
                                                -- EVSEs)
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
            PARTITION BY evse_uid ORDER BY status = 'REMOVED', last_updated DESC, _observed_at DESC,
            location_id
        ) = 1;
        """,
    )
)

# What each column means, for the Dagster catalog (`evpipeline.catalog`); GreenFlux field names in
# backticks (OCPI 2.1.1 names where GreenFlux follows OCPI). Allowed values are those schemas.py enforces.
_EVSE_COLUMNS = {
    "location_id": "The Location this copy of the EVSE is in (Location `id`); "
    "a moved EVSE has a REMOVED copy in its old location.",
    "evse_uid": "EVSE `uid`, GreenFlux's stable id of the EVSE (derived from its evse_id); "
    "the mart EVSE uid.",
    "evse_id": "eMI3 EVSE id (`evse_id`, e.g. NL*ALF*E1000042).",
    "status": "OCPI EVSE `status`: AVAILABLE, BLOCKED, CHARGING, INOPERATIVE, OUTOFORDER, PLANNED, REMOVED, "
    "RESERVED or UNKNOWN (REMOVED also marks the old copy of a moved EVSE). Transitions in "
    "ops.status_history.",
    "status_schedule": "Planned future statuses (`status_schedule`, JSON list of OCPI StatusSchedule).",
    "capabilities": "`capabilities` as sent (JSON list of OCPI Capability); values outside OCPI's list are "
    "left out of the mart and reported.",
    "floor_level": "Floor the EVSE is on (`floor_level`).",
    "latitude": "WGS84 latitude of the EVSE (`coordinates.latitude`, sent as a decimal string).",
    "longitude": "WGS84 longitude of the EVSE (`coordinates.longitude`, sent as a decimal string).",
    "physical_reference": "Number or label printed on the charger (`physical_reference`).",
    "directions": "How to find the EVSE (`directions`, JSON list of DisplayText {language, text}).",
    "parking_restrictions": "`parking_restrictions` (JSON list of OCPI ParkingRestriction: EV_ONLY, PLUGGED, "
    "DISABLED, CUSTOMERS, MOTORCYCLES).",
    "images": "`images` (JSON list of OCPI Image).",
    "evse_sequence_number": "GreenFlux `evse_sequence_number`: the EVSE's sequence number on its charge "
    "station.",
    "extra": "EVSE keys the pipeline does not model, as JSON; NULL when there are none.",
}

COLUMNS: dict[str, dict[str, str]] = {
    LOCATIONS: {
        "location_id": "Location `id`, GreenFlux's stable id; the mart Location id.",
        "type": "OCPI 2.1.1 location `type`: ON_STREET, PARKING_GARAGE, UNDERGROUND_GARAGE, PARKING_LOT, "
        "OTHER or UNKNOWN; becomes the mart parking_type (OTHER/UNKNOWN have none).",
        "publish": "GreenFlux publishes the location (`publish`); the mart publishes it only when this is "
        "true and access_type is not PRIVATE.",
        "access_type": "`access_type`: PUBLIC, RESTRICTED or PRIVATE (PRIVATE locations are never "
        "published).",
        "name": "Location name (`name`).",
        "address": "Street and number (`address`).",
        "address_line_2": "Second address line (`address_line_2`); not carried into the mart.",
        "city": "City (`city`).",
        "postal_code": "Postal code (`postal_code`).",
        "latitude": "WGS84 latitude (`coordinates.latitude`, sent as a decimal string; "
        "unparseable -> quarantine).",
        "longitude": "WGS84 longitude (`coordinates.longitude`, sent as a decimal string).",
        "time_zone": "IANA time zone of the location (`time_zone`, e.g. Europe/Amsterdam).",
        "opening_times": "Opening hours (`opening_times`, JSON OCPI Hours: "
        "twentyfourseven or regular_hours).",
        "charging_when_closed": "Charging is possible outside the opening times (`charging_when_closed`).",
        "energy_mix": "Energy supplied (`energy_mix`, JSON OCPI 2.1.1 EnergyMix with GreenFlux's "
        "energy_mix_profile_id); the mart renames environ_impact[].source to category.",
        "energy_mix_profile_id": "GreenFlux's energy mix profile (`energy_mix.energy_mix_profile_id`).",
        "is_green_energy": "100 % renewable energy (`energy_mix.is_green_energy`).",
        "directions": "How to find the location (`directions`, JSON list of DisplayText).",
        "facilities": "Facilities nearby (`facilities`, JSON list of OCPI Facility); "
        "values outside OCPI's list are left out of the mart and reported.",
        "operator": "Operator (`operator`, JSON OCPI 2.1.1 BusinessDetails: name, website, logo, "
        "phone_number).",
        "suboperator": "Suboperator (`suboperator`, JSON BusinessDetails).",
        "owner": "Owner (`owner`, JSON BusinessDetails).",
        "auth_rules": "GreenFlux `auth_rules`: who may charge here (JSON list of type/value rules).",
        "custom_groups": "GreenFlux `custom_groups`: groups the location is in (JSON list of "
        "name/external_id).",
        "customised_fields": "GreenFlux `customised_fields`: the CPO's own fields (JSON list of type/value).",
        "maintenance_info": "Maintenance note (GreenFlux `maintenance_info`, free text).",
        "remarks": "Remarks (GreenFlux `remarks`, free text).",
        "payment_provider": "GreenFlux `payment_provider`, as sent (JSON).",
        "wallet_id": "GreenFlux `wallet_id`, as sent.",
        "cpo_customer_external_id": "The CPO's external customer id for the location (GreenFlux "
        "`cpo_customer_external_id`).",
        "etag": "GreenFlux `etag`: version tag of the object.",
        "created_by": "Who created the location in GreenFlux (`created_by`).",
        "modified_by": "Who last modified the location in GreenFlux (`modified_by`).",
        "created": "When the location was created in GreenFlux (`created`, UTC).",
        "extra": "Location keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    EVSES: _EVSE_COLUMNS,
    CURRENT_EVSES: _EVSE_COLUMNS,
    CONNECTORS: {
        "location_id": "The Location of the connector's EVSE copy.",
        "evse_uid": "The EVSE the connector belongs to (EVSE `uid`).",
        "connector_id": "Connector `id`, unique within its EVSE; the mart connector id.",
        "standard": "OCPI ConnectorType (`standard`, validated against OCPI's list, e.g. IEC_62196_T2, "
        "IEC_62196_T2_COMBO, CHADEMO).",
        "format": "`format`: SOCKET or CABLE.",
        "power_type": "`power_type`: AC_1_PHASE, AC_2_PHASE, AC_2_PHASE_SPLIT, AC_3_PHASE or DC.",
        "voltage": "Maximum voltage in V (OCPI 2.1.1 `voltage`); the mart max_voltage.",
        "amperage": "Maximum current in A (OCPI 2.1.1 `amperage`); the mart max_amperage.",
        "tariff_id": "The connector's tariff (OCPI 2.1.1 `tariff_id`, one id; a greenflux.tariffs id); "
        "becomes the mart tariff_ids [tariff_id].",
        "reimbursement_tariff_id": "GreenFlux `reimbursement_tariff_id`: the tariff used for reimbursement; "
        "not carried into the mart.",
        "terms_and_conditions": "URL of the terms and conditions (`terms_and_conditions`).",
        "extra": "Connector keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    CHARGE_STATIONS: {
        "charge_station_id": "GreenFlux `charge_station_id`.",
        "location_id": "The Location the station stands at (`location_id`).",
        "name": "Station name (`name`).",
        "deploy_state": "`deploy_state`: Stock, Production or Deprecated.",
        "installation_date": "When the station was installed (`installation_date`, UTC).",
        "default_charge_station_tariff_id": "Default tariff of the station's connectors "
        "(`default_charge_station_tariff_id`).",
        "default_charge_station_reimbursement_tariff_id": "Default reimbursement tariff of the station "
        "(`default_charge_station_reimbursement_tariff_id`).",
        "default_charge_station_directions": "Default directions for the station's EVSEs "
        "(`default_charge_station_directions`, JSON list of DisplayText).",
        "default_charge_station_floor_level": "Default floor level for the station's EVSEs "
        "(`default_charge_station_floor_level`).",
        "driver_id": "GreenFlux `driver_id`: the driver the station is assigned to, if any.",
        "customer_id": "GreenFlux `customer_id`: the customer the station is assigned to, if any.",
        "maintenance_info": "Maintenance note (`maintenance_info`, free text).",
        "remarks": "Remarks (`remarks`, free text).",
        "contactless_terminal_serial_number": "Serial number of the station's contactless payment terminal "
        "(`contactless_terminal_serial_number`).",
        "contactless_terminal_auth_amount": "Amount the contactless terminal pre-authorizes "
        "(`contactless_terminal_auth_amount`, >= 0).",
        "contactless_type": "Kind of contactless payment terminal (`contactless_type`).",
        "status_schedule": "Planned statuses of the station (`status_schedule`, JSON).",
        "auth_rules": "Who may charge at the station (`auth_rules`, JSON list of type/value rules).",
        "tap_to_stop": "GreenFlux `tap_to_stop` setting of the station.",
        "stop_on_parking": "GreenFlux `stop_on_parking` setting of the station.",
        "grid_connection_id": "Id of the station's grid connection (`grid_connection_id`).",
        "dynamic_time_based_tariffs": "GreenFlux `dynamic_time_based_tariffs` setting of the station.",
        "time_of_use_tariffs": "GreenFlux `time_of_use_tariffs` setting of the station.",
        "exclude_vat": "GreenFlux `exclude_vat` setting of the station.",
        "charger_type": "`charger_type`: Public, Home or Business.",
        "charge_station_template_id": "The GreenFlux template the station was configured from "
        "(`charge_station_template_id`).",
        "etag": "GreenFlux `etag`: version tag of the object.",
        "created_by": "Who created the station in GreenFlux (`created_by`).",
        "modified_by": "Who last modified the station in GreenFlux (`modified_by`).",
        "status": "Station status (`status`, OCPI EVSE status values); EVSE statuses come from "
        "greenflux.evses.",
        "charging_speed": "`charging_speed`: Slow, Fast, Rapid, Mix_AC_DC or Mix_DC.",
        "created": "When the station was created in GreenFlux (`created`, UTC).",
        "heartbeat_interval": "OCPP heartbeat interval of the station in seconds (`heartbeat_interval`).",
        "charge_point_model": "Charge point model as reported over OCPP (`charge_point_model`).",
        "charge_point_vendor": "Charge point vendor as reported over OCPP (`charge_point_vendor`).",
        "charge_point_serial_number": "Charge point serial number (`charge_point_serial_number`).",
        "charge_box_serial_number": "Charge box serial number (`charge_box_serial_number`).",
        "client_ip_address": "IP address the station connects from (`client_ip_address`).",
        "firmware_version": "Firmware version (`firmware_version`).",
        "iccid": "ICCID of the station's SIM card (`iccid`).",
        "imsi": "IMSI of the station's SIM card (`imsi`).",
        "meter_serial_number": "Serial number of the energy meter (`meter_serial_number`).",
        "meter_type": "Type of the energy meter (`meter_type`).",
        "remote_manageable": "The station can be managed remotely (`remote_manageable`).",
        "connectivity_status": "`connectivity_status`: Online or Offline; transitions in ops.status_history.",
        "protocol_version": "OCPP version the station speaks (`protocol_version`: Ocpp15, Ocpp15Soap, "
        "Ocpp16, Ocpp201).",
        "endpoint": "OCPP endpoint the station connects to (`endpoint`).",
        "extra": "Station keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    TARIFFS: {
        "tariff_id": "Tariff `id`; connectors reference it by tariff_id.",
        "cpo_id": "The CPO the tariff belongs to (GreenFlux `cpo_id`, country code + party id, e.g. NLALF).",
        "currency": "ISO 4217 currency code (`currency`, e.g. EUR).",
        "tariff_alt_text": "Human-readable tariff description (`tariff_alt_text`, JSON list of DisplayText).",
        "tariff_alt_url": "URL of a web page describing the tariff (`tariff_alt_url`).",
        "elements": "Price elements (`elements`, JSON list of OCPI TariffElement: price_components, "
        "restrictions).",
        "energy_mix": "Energy supplied under this tariff (`energy_mix`, JSON EnergyMix).",
        "extra": "Tariff keys the pipeline does not model, as JSON; NULL when there are none.",
    },
}
describe_columns(__name__, COLUMNS)
