"""Tables of the TomTom source (schema `tomtom`)."""

from evpipeline.warehouse import Migration, register, source_table

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
            status VARCHAR,                     -- AVAILABLE | OCCUPIED | RESERVED | OUT_OF_SERVICE | UNKNOWN,{_COUNTS}""",
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
            SELECT country_code, party_id, location_id, source, location_name, latitude, longitude, connector_types,
                   match_status, reason, candidates, poi_id, distance_m, runner_up_poi_id, runner_up_distance_m, searched_at
            FROM {MAPPING}
            WHERE NOT is_deleted AND match_status IN ('ambiguous', 'unmatched');
        CREATE VIEW tomtom.location_availability AS
            SELECT m.country_code, m.party_id, m.location_id, l.availability_id, l.connector_type, l.power_kw, l.status,
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
                   'tomtom' AS source, s.availability_id AS source_id, s.polled_at AS source_last_updated, s._ingested_at
            FROM {SNAPSHOTS} s JOIN {MAPPING} m USING (availability_id)
            WHERE m.match_status = 'matched';
        """,
    )
)
