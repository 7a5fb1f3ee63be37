"""Warehouse tables of the EVRoam source (schema `evroam`)."""

from evpipeline.warehouse import Migration, describe_columns, register, source_table

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

# What each column means, for the Dagster catalog (`evpipeline.catalog`); EVRoam field names in backticks.
COLUMNS: dict[str, dict[str, str]] = {
    SITES: {
        "site_id": "EVRoam `siteId` (a UUID): the site, the mart Location id.",
        "name": "Site name (`name`); the mart Location name.",
        "operator": "Operator name (`operator`, e.g. ChargeNet NZ); gives the CPO party through "
        "evpipeline/model/operators.csv (unknown operators are reported in mart.unmapped_values).",
        "address": 'Address as one string (`address`, "street, city postcode, NZ"); the mart splits it '
        "into address, city and postal_code.",
        "is_24_hours": "Open around the clock (`is24Hours`); true becomes OCPI opening_times "
        "twentyfourseven.",
        "car_park_count": "Number of parking spaces at the site (`carParkCount`).",
        "has_carpark_cost": "Parking is paid (`hasCarparkCost`).",
        "max_time_limit": 'Maximum parking/charging stay as free text (`maxTimeLimit`, e.g. "Unlimited", '
        '"60 minutes").',
        "has_tourist_attraction": "A tourist attraction is nearby (`hasTouristAttraction`); "
        "true becomes OCPI facility RECREATION_AREA.",
        "latitude": "WGS84 latitude of the first access location (`accessLocations[0].lat`).",
        "longitude": "WGS84 longitude of the first access location (`accessLocations[0].lon`).",
        "access_locations": "Every access point of the site as sent (`accessLocations`, JSON list of {lat, "
        "lon}).",
        "extra": "Site keys the pipeline does not model, as JSON (nothing is dropped); "
        "NULL when there are none.",
    },
    STATIONS: {
        "charging_station_id": "EVRoam `chargingStationId` (a UUID): the station, the mart EVSE uid.",
        "site_id": "The station's site (`siteId`); a station whose site is unknown is reported, not placed.",
        "operator": "Operator name of the station (`operator`).",
        "owner": "Owner name of the station (`owner`).",
        "asset_id": "The provider's asset id (`assetId`; the chargingStationId when absent).",
        "current": "AC or DC (`current`, validated).",
        "has_charging_cost": "Charging is paid (`hasChargingCost`).",
        "kw_rated": "Rated power of the station in kW (`kwRated`); x 1000 is the mart connectors' "
        "max_electric_power.",
        "date_first_operational": "When the station first went into service (`dateFirstOperational`, UTC).",
        "next_planned_outage": "Next planned outage as sent (`nextPlannedOutage`, as text).",
        "installation_status": "`installationStatus`: Proposed, Planned, Under Construction, Commissioned, "
        "Decommissioned or Abandoned; planned ones become OCPI PLANNED, "
        "decommissioned/abandoned REMOVED.",
        "floor_level": "Floor as free text (`floorLevel`, e.g. Ground, 1, UG); "
        "the mart keeps values of up to 4 characters and maps longer ones by rule (Ground -> 0, "
        "Basement -> -1, Rooftop -> R).",
        "manufacturer": "Charger manufacturer (`manufacturer`).",
        "model": "Charger model (`model`).",
        "images": "Image URLs of the station (`images`, JSON list).",
        "latitude": "WGS84 latitude of the station (`location.lat`).",
        "longitude": "WGS84 longitude of the station (`location.lon`).",
        "extra": "Station keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    CONNECTORS: {
        "charging_station_id": "The station the connector belongs to (`chargingStationId`).",
        "connector_id": "EVRoam `connectorId` (a UUID), unique within its station.",
        "connector_type": "Connector type as sent (`connectorType`, an open list: Type 2 Socketed, "
        "Type 2 Tethered, Type 1 Tethered, Type 2 CCS, CHAdeMO, ...); "
        "mapped to OCPI standard/format by rule, unknown types reported in mart.unmapped_values.",
        "operation_status": "`operationStatus`: Operative, Inoperative or Unknown; a station whose live "
        "connectors are all Inoperative is an INOPERATIVE EVSE (unless deleted or not "
        "commissioned). Transitions in ops.status_history.",
        "extra": "Connector keys the pipeline does not model, as JSON; NULL when there are none.",
    },
    AVAILABILITY: {
        "charging_station_id": "The station (`chargingStationId`); one row per station, "
        "its latest availability.",
        "operator": "Operator name as sent with the availability (`operator`).",
        "availability_status": "`availabilityStatus` (Available, Occupied, Unavailable, Unknown); "
        "becomes the mart EVSE status (Occupied -> CHARGING, Unavailable -> OUTOFORDER). Transitions in "
        "ops.status_history.",
        "kw_available": "Power available at the station now, in kW (`kwAvailable`).",
        "availability_time": "When the provider observed this availability (`availabilityTime`, UTC); "
        "also the row's last_updated. From push files or fields embedded in station records.",
    },
}
describe_columns(__name__, COLUMNS)
