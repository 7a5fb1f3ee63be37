"""Warehouse tables of the EVRoam source (schema `evroam`)."""

from evpipeline.warehouse import Migration, register, source_table

SITES = "evroam.sites"
STATIONS = "evroam.charging_stations"
CONNECTORS = "evroam.connectors"
AVAILABILITY = "evroam.availability"

KEYS = {
    SITES: ("site_id",),
    STATIONS: ("charging_station_id",),
    CONNECTORS: ("charging_station_id", "connector_id"),
    AVAILABILITY: ("charging_station_id",),
}
STATUS = {CONNECTORS: "operation_status", AVAILABILITY: "availability_status"}

register(
    Migration(
        "evroam",
        1,
        "sites, charging stations, connectors, availability",
        "CREATE SCHEMA IF NOT EXISTS evroam;\n"
        + source_table(
            SITES,
            """
            site_id VARCHAR NOT NULL,
            name VARCHAR,
            operator VARCHAR,
            address VARCHAR,
            is_24_hours BOOLEAN,
            car_park_count INTEGER,
            has_carpark_cost BOOLEAN,
            max_time_limit VARCHAR,
            has_tourist_attraction BOOLEAN,
            latitude DOUBLE,
            longitude DOUBLE,
            access_locations JSON,
            extra JSON""",
        )
        + source_table(
            STATIONS,
            """
            charging_station_id VARCHAR NOT NULL,
            site_id VARCHAR,
            operator VARCHAR,
            owner VARCHAR,
            asset_id VARCHAR,
            current VARCHAR,
            has_charging_cost BOOLEAN,
            kw_rated DOUBLE,
            date_first_operational TIMESTAMPTZ,
            next_planned_outage VARCHAR,
            installation_status VARCHAR,
            floor_level VARCHAR,
            manufacturer VARCHAR,
            model VARCHAR,
            images JSON,
            latitude DOUBLE,
            longitude DOUBLE,
            extra JSON""",
        )
        + source_table(
            CONNECTORS,
            """
            charging_station_id VARCHAR NOT NULL,
            connector_id VARCHAR NOT NULL,
            connector_type VARCHAR,
            operation_status VARCHAR,
            extra JSON""",
        )
        + source_table(
            AVAILABILITY,
            """
            charging_station_id VARCHAR NOT NULL,
            operator VARCHAR,
            availability_status VARCHAR,
            kw_available DOUBLE,
            availability_time TIMESTAMPTZ""",
        ),
    )
)
