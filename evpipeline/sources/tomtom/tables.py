"""Tables of the TomTom source (schema `tomtom`)."""

from evpipeline.warehouse import Migration, describe_columns, register, source_table

MAPPING = "tomtom.location_mapping"
SNAPSHOTS = "tomtom.availability_snapshots"
LATEST = "tomtom.availability_latest"
POLLS = "tomtom.availability_polls"

KEYS = {
    MAPPING: ("country_code", "party_id", "location_id"),
    # Poll time is part of the key: every poll inserts, a replayed poll matches itself and changes nothing.
    SNAPSHOTS: ("availability_id", "connector_type", "power_kw", "polled_at"),
    LATEST: ("availability_id", "connector_type", "power_kw"),
    POLLS: ("availability_id", "polled_at"),
}
STATUS = {MAPPING: "match_status", LATEST: "status"}

_COUNTS = """
            total INTEGER,
            available INTEGER,
            occupied INTEGER,
            reserved INTEGER,
            unknown INTEGER,
            out_of_service INTEGER"""

register(
    Migration(
        "tomtom",
        1,
        "location mapping, availability snapshots, latest availability, poll log",
        "CREATE SCHEMA IF NOT EXISTS tomtom;\n"
        + source_table(
            MAPPING,
            """
            country_code VARCHAR NOT NULL,      -- the mart location this row maps
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            source VARCHAR,
            location_name VARCHAR,
            latitude DOUBLE,                    -- where we searched (the location's coordinates then)
            longitude DOUBLE,
            connector_types JSON,               -- the location's TomTom connector types (sorted list)
            match_status VARCHAR NOT NULL,      -- matched | no_live_data | ambiguous | unmatched
            availability_id VARCHAR,            -- dataSources.chargingAvailability.id of the match
            poi_id VARCHAR,
            poi_name VARCHAR,
            poi_latitude DOUBLE,
            poi_longitude DOUBLE,
            distance_m DOUBLE,
            connector_overlap DOUBLE,           -- Jaccard overlap of connector types, 0..1
            candidates INTEGER,                 -- charging POIs within the search radius
            runner_up_poi_id VARCHAR,
            runner_up_distance_m DOUBLE,
            reason VARCHAR,                     -- why a location is not matched
            searched_at TIMESTAMPTZ""",
        )
        + source_table(
            SNAPSHOTS,
            f"""
            availability_id VARCHAR NOT NULL,
            connector_type VARCHAR NOT NULL,
            power_kw DOUBLE NOT NULL,
            polled_at TIMESTAMPTZ NOT NULL,     -- the response's Date
            tracking_id VARCHAR,                -- the Tracking-ID we sent (for TomTom support),{_COUNTS}""",
        )
        + source_table(
            LATEST,
            f"""
            availability_id VARCHAR NOT NULL,
            connector_type VARCHAR NOT NULL,
            power_kw DOUBLE NOT NULL,
            status VARCHAR,                     -- AVAILABLE | OCCUPIED | RESERVED | OUT_OF_SERVICE |
                                                -- UNKNOWN,{_COUNTS}""",
        )
        + source_table(
            POLLS,
            """
            availability_id VARCHAR NOT NULL,
            polled_at TIMESTAMPTZ NOT NULL,
            tracking_id VARCHAR,
            wire_format VARCHAR,
            http_status INTEGER,
            outcome VARCHAR NOT NULL,           -- data | no_data | error
            connector_types INTEGER,
            error VARCHAR""",
        )
        + f"""
        CREATE VIEW tomtom.unmatched_locations AS
            SELECT country_code, party_id, location_id, source, location_name, latitude, longitude,
                   connector_types, match_status, reason, candidates, poi_id, distance_m, runner_up_poi_id,
                   runner_up_distance_m, searched_at
            FROM {MAPPING}
            WHERE NOT is_deleted AND match_status IN ('ambiguous', 'unmatched');
        CREATE VIEW tomtom.location_availability AS
            SELECT m.country_code, m.party_id, m.location_id, l.availability_id, l.connector_type, l.power_kw,
                   l.status,
                   l.total, l.available, l.occupied, l.reserved, l.unknown, l.out_of_service,
                   l.last_updated AS changed_at, l._observed_at AS observed_at
            FROM {MAPPING} m JOIN {LATEST} l USING (availability_id)
            WHERE NOT m.is_deleted AND m.match_status = 'matched' AND NOT l.is_deleted;
        """,
    )
)

# The canonical model's availability (docs/mart.md) is TomTom's, per mapped mart location. It lives
# in `mart` for BI users; it is defined here because it depends on TomTom, not the other way round.
register(
    Migration(
        "tomtom",
        2,
        "canonical availability views in mart",
        f"""
        CREATE SCHEMA IF NOT EXISTS mart;
        CREATE VIEW mart.availability AS
            SELECT m.country_code, m.party_id, m.location_id, l.availability_id, l.connector_type, l.power_kw,
                   l.status, l.total, l.available, l.occupied, l.reserved, l.unknown, l.out_of_service,
                   'tomtom' AS source, l.availability_id AS source_id, l.last_updated AS source_last_updated,
                   l._observed_at AS observed_at, l._ingested_at
            FROM {MAPPING} m JOIN {LATEST} l USING (availability_id)
            WHERE NOT m.is_deleted AND m.match_status = 'matched' AND NOT l.is_deleted;
        CREATE VIEW mart.availability_history AS
            SELECT m.country_code, m.party_id, m.location_id, s.availability_id, s.connector_type, s.power_kw,
                   s.polled_at, s.total, s.available, s.occupied, s.reserved, s.unknown, s.out_of_service,
                   'tomtom' AS source, s.availability_id AS source_id, s.polled_at AS source_last_updated,
                       s._ingested_at
            FROM {SNAPSHOTS} s JOIN {MAPPING} m USING (availability_id)
            WHERE m.match_status = 'matched';
        """,
    )
)

# What each column means, for the Dagster catalog (`evpipeline.catalog`); TomTom field names in backticks.
# The views repeat the columns of the tables they read, so they share these descriptions.
_COUNT_COLUMNS = {
    "total": "Charging points of this connector type at this power level: the sum of the five state counts "
    "(NULL when one is missing).",
    "available": "Charging points available (`perPowerLevel[].available`).",
    "occupied": "Charging points occupied (`perPowerLevel[].occupied`).",
    "reserved": "Charging points reserved (`perPowerLevel[].reserved`).",
    "unknown": "Charging points in an unknown state (`perPowerLevel[].unknown`).",
    "out_of_service": "Charging points out of service (`perPowerLevel[].outOfService`).",
}
_LEVEL_COLUMNS = {
    "availability_id": "TomTom charging availability id (the search result's "
    "`dataSources.chargingAvailability.id`, the `chargingAvailability` parameter of the availability "
    "request).",
    "connector_type": "TomTom connector type (`connectors[].type`, e.g. IEC62196Type2Outlet, "
    "IEC62196Type2CCS, Chademo; an open list).",
    "power_kw": "Power level in kW (`perPowerLevel[].powerKW`); the counts are per level.",
}
_MAPPED_LOCATION = {
    "country_code": "ISO 3166 alpha-2 country code of the mapped mart location's CPO.",
    "party_id": "Party id of the mapped mart location's CPO.",
    "location_id": "The mapped mart location (mart.locations.location_id).",
}
_STATUS = (
    "Most useful state of the level: AVAILABLE if any point is available, else OCCUPIED, RESERVED, "
    "OUT_OF_SERVICE, UNKNOWN (derived from the counts)."
)
_MAPPING_COLUMNS = {  # those the table's DDL leaves undescribed
    "party_id": _MAPPED_LOCATION["party_id"],
    "location_id": _MAPPED_LOCATION["location_id"],
    "location_name": "Name of the mart location when it was searched.",
    "longitude": "Longitude searched around (the mart location's, when it was searched).",
    "poi_id": "TomTom search result `id` of the best eligible charging POI (NULL when unmatched).",
    "poi_name": "Name of that POI (`poi.name`).",
    "poi_latitude": "Latitude of that POI (`position.lat`).",
    "poi_longitude": "Longitude of that POI (`position.lon`).",
    "distance_m": "Great-circle distance from the location to that POI, in m.",
    "runner_up_poi_id": "The second eligible POI; for an unmatched location, "
    "the best candidate that missed the thresholds.",
    "runner_up_distance_m": "Distance to the runner-up POI, in m.",
    "searched_at": "When the search ran (our clock); ambiguous and unmatched locations are searched again "
    "after retry_unmatched_after_minutes.",
}

COLUMNS: dict[str, dict[str, str]] = {
    MAPPING: _MAPPING_COLUMNS,
    "tomtom.unmatched_locations": {
        **_MAPPED_LOCATION,
        **{
            k: _MAPPING_COLUMNS[k]
            for k in (
                "location_name",
                "longitude",
                "poi_id",
                "distance_m",
                "runner_up_poi_id",
                "runner_up_distance_m",
                "searched_at",
            )
        },
        "latitude": "Latitude searched around (the mart location's, when it was searched).",
        "connector_types": "The location's connector types in TomTom terms (JSON sorted list, "
        "from the OCPI standard and format of its live connectors).",
        "match_status": "ambiguous (two POIs fit almost equally well) or unmatched (no POI fits).",
        "reason": "Why the location is not matched, with the distances, overlaps and scores that decided it.",
        "candidates": "Charging POIs the search found within its radius (150 m by default).",
    },
    SNAPSHOTS: {**_LEVEL_COLUMNS, **_COUNT_COLUMNS},
    LATEST: {
        **_LEVEL_COLUMNS,
        **_COUNT_COLUMNS,
        "last_updated": "When the counts last changed (the poll that first saw them; "
        "_observed_at is the newest poll).",
    },
    POLLS: {
        "availability_id": _LEVEL_COLUMNS["availability_id"],
        "polled_at": "When TomTom answered (the response's Date, else our clock); for an error, "
        "when it failed.",
        "tracking_id": "The Tracking-ID (a UUID) we sent with the request, for TomTom support.",
        "wire_format": "json or xml: the format the request asked for.",
        "http_status": "HTTP status of TomTom's answer (NULL when none arrived).",
        "connector_types": "Connector types in the answer (0: an unknown id, outcome no_data; "
        "NULL on error).",
        "error": "What went wrong (outcome error only).",
    },
    "tomtom.location_availability": {
        **_MAPPED_LOCATION,
        **_LEVEL_COLUMNS,
        "status": _STATUS,
        **_COUNT_COLUMNS,
        "changed_at": "When the counts last changed (the latest state's last_updated).",
        "observed_at": "The newest poll that saw these counts (the latest state's _observed_at).",
    },
    "mart.availability": {
        **_MAPPED_LOCATION,
        **_LEVEL_COLUMNS,
        "status": _STATUS,
        **_COUNT_COLUMNS,
        "observed_at": "The newest poll that saw these counts.",
        "source": "Always tomtom.",
        "source_id": "The TomTom availability id.",
        "source_last_updated": "When the counts last changed (tomtom.availability_latest.last_updated).",
    },
    "mart.availability_history": {
        **_MAPPED_LOCATION,
        **_LEVEL_COLUMNS,
        **_COUNT_COLUMNS,
        "polled_at": "When TomTom answered the poll (the response's Date); one row per poll, append-only.",
        "source": "Always tomtom.",
        "source_id": "The TomTom availability id.",
        "source_last_updated": "The poll time (polled_at).",
    },
}
describe_columns(__name__, COLUMNS)
