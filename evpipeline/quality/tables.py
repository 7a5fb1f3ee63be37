"""Tables of the AFIR quality report (schema `quality`), rewritten whole by each materialization."""

from evpipeline.warehouse import Migration, describe_columns, register

COMPLETENESS = "quality.afir_completeness"
REJECTIONS = "quality.afir_rejections"
TIMELINESS = "quality.timeliness"
DELAYS = "quality.ndw_delays"
RELIABILITY = "quality.reliability"
TIMELINE = "quality.status_timeline"
COVERAGE = "quality.coverage"
ANNEX_COMPLETENESS = "quality.afir_annex_completeness"

register(
    Migration(
        "quality",
        1,
        "AFIR quality report: completeness, timeliness, reliability, status timeline, coverage",
        f"""
        CREATE SCHEMA IF NOT EXISTS quality;
        CREATE TABLE {COMPLETENESS} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,          -- the CPO
            source VARCHAR NOT NULL,            -- source the objects were mapped from
            object VARCHAR NOT NULL,            -- location | evse | connector
            element VARCHAR NOT NULL,           -- OCPI field (or AFIR element) checked
            requirement VARCHAR NOT NULL,       -- NDW (AFIR) | NDW (OCPI) | AFIR static
            objects BIGINT NOT NULL,            -- live objects of published locations
            present BIGINT NOT NULL,            -- of those, how many carry the element
            share DOUBLE NOT NULL,              -- present / objects
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {REJECTIONS} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            object VARCHAR NOT NULL,            -- Location | EVSE | Connector | Tariff
            reason VARCHAR NOT NULL,            -- the NDW export's rejection reason
            objects BIGINT NOT NULL,            -- objects the export leaves out for this reason
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {DELAYS} (
            pushed_at TIMESTAMPTZ NOT NULL,     -- when NDW accepted the push
            data_class VARCHAR NOT NULL,        -- dynamic (status PATCH) | static (PUT)
            kind VARCHAR NOT NULL,              -- location | evse | tariff
            method VARCHAR NOT NULL,
            push_key VARCHAR NOT NULL,          -- country_code/party_id/id[/evse_uid]
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            changed_at TIMESTAMPTZ,             -- source time of the change the push carried
            observed_at TIMESTAMPTZ,            -- when the warehouse recorded that change
            delay_seconds DOUBLE,               -- pushed_at - changed_at
            observed_delay_seconds DOUBLE,      -- pushed_at - observed_at
            target_seconds DOUBLE NOT NULL,     -- 60 (dynamic) or 86400 (static)
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {TIMELINESS} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            data_class VARCHAR NOT NULL,        -- dynamic | static
            target_seconds DOUBLE NOT NULL,
            pushes BIGINT NOT NULL,             -- accepted pushes with a known change time
            p50_seconds DOUBLE,                 -- source change -> NDW accepted, median
            p95_seconds DOUBLE,
            max_seconds DOUBLE,
            within_target_share DOUBLE,         -- share of pushes with delay <= target
            observed_p50_seconds DOUBLE,        -- warehouse observed -> NDW accepted, median
            observed_p95_seconds DOUBLE,
            observed_within_target_share DOUBLE,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {RELIABILITY} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            observed_seconds DOUBLE NOT NULL,   -- time in service with a known status (not PLANNED/REMOVED)
            working_seconds DOUBLE NOT NULL,    -- of that, AVAILABLE/CHARGING/RESERVED
            working_share DOUBLE,               -- working_seconds / observed_seconds
            transitions BIGINT NOT NULL,        -- status changes inside the window
            max_power_w BIGINT,                 -- highest max_electric_power of its live connectors
            rapid BOOLEAN NOT NULL,             -- max_power_w >= 50 kW
            below_target BOOLEAN NOT NULL,      -- rapid and working_share < 0.99
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {TIMELINE} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            evse_uid VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            period_start TIMESTAMPTZ NOT NULL,
            period_end TIMESTAMPTZ NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {COVERAGE} (
            sampled_at TIMESTAMPTZ NOT NULL,    -- sample time
            status VARCHAR NOT NULL,
            evses BIGINT NOT NULL,              -- EVSEs in that status at that time
            computed_at TIMESTAMPTZ NOT NULL
        );
        """,
    )
)

register(
    Migration(
        "quality",
        2,
        "AFIR completeness per CPO and Annex row (evpipeline/afir/annex.yaml)",
        f"""
        CREATE TABLE {ANNEX_COMPLETENESS} (
            country_code VARCHAR NOT NULL,      -- ISO 3166 alpha-2 country code of the CPO
            party_id VARCHAR NOT NULL,          -- party id of the CPO (a CPO with a published, live location)
            annex_id VARCHAR NOT NULL,          -- the row's id in evpipeline/afir/annex.yaml (docs/afir.md)
            annex_number VARCHAR NOT NULL,      -- the Annex's number of the data element (A1..A24, B1..B10,
                                                -- F1..F3)
            annex_group VARCHAR NOT NULL,       -- the Annex's table: static-general | static-recharging |
                                                -- dynamic-recharging
            position INTEGER NOT NULL,          -- the row's place in the Annex map (report order)
            element VARCHAR NOT NULL,           -- the data element in the Annex's wording
            level VARCHAR NOT NULL,             -- what is counted: operator (the CPO) | location | station |
                                                -- evse | connector | tariff
            model VARCHAR,                      -- the mart columns presence is measured from,
                                                -- comma-separated; NULL when none
            objects BIGINT,                     -- published-candidate objects of that level (public, live);
                                                -- NULL when not measured
            present BIGINT,                     -- of those, how many carry a value in every model column;
                                                -- NULL when not measured
            share DOUBLE,                       -- present / objects; NULL when not measured or without
                                                -- objects
            reason VARCHAR,                     -- why share is NULL: the row's not_carried reason, a missing
                                                -- column, or no objects
            computed_at TIMESTAMPTZ NOT NULL    -- when the report was computed (UTC); each run rewrites the
                                                -- table
        );
        """,
    )
)

register(
    Migration(
        "quality",
        3,
        "timeliness on comparable clocks (provider skew, first publications apart); timeline names",
        f"""
        DROP TABLE {DELAYS};
        CREATE TABLE {DELAYS} (
            pushed_at TIMESTAMPTZ NOT NULL,     -- when NDW accepted the push (our clock)
            data_class VARCHAR NOT NULL,        -- dynamic (status PATCH) | static (PUT)
            publication VARCHAR NOT NULL,       -- first (NDW did not hold the object: a PUT with reason new)
                                                -- | change
            kind VARCHAR NOT NULL,              -- location | evse | tariff
            method VARCHAR NOT NULL,
            push_key VARCHAR NOT NULL,          -- country_code/party_id/id[/evse_uid]
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            changed_at TIMESTAMPTZ,             -- the source's time of the change the push carried (provider
                                                -- clock)
            clock_skew_seconds DOUBLE,          -- the provider's clock minus ours when we recorded the change
                                                -- (ops.source_clocks); NULL: not measured
            observed_at TIMESTAMPTZ,            -- when the warehouse recorded that change (our clock)
            observable_at TIMESTAMPTZ,          -- when the change became observable to us: changed_at minus
                                                -- the skew, else observed_at (clock_note)
            delay_seconds DOUBLE,               -- pushed_at - observable_at; never negative
            observed_delay_seconds DOUBLE,      -- pushed_at - observed_at (our own part)
            clock_note VARCHAR,                 -- why observable_at is our recording, or that the provider
                                                -- clock was not measured; NULL otherwise
            target_seconds DOUBLE NOT NULL,     -- 60 (dynamic) or 86400 (static)
            computed_at TIMESTAMPTZ NOT NULL
        );
        DROP TABLE {TIMELINESS};
        CREATE TABLE {TIMELINESS} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            data_class VARCHAR NOT NULL,        -- dynamic | static
            publication VARCHAR NOT NULL,       -- first | change
            target_seconds DOUBLE NOT NULL,
            pushes BIGINT NOT NULL,             -- accepted pushes with a known change time
            p50_seconds DOUBLE,                 -- change observable to us -> NDW accepted, median
            p95_seconds DOUBLE,
            max_seconds DOUBLE,
            within_target_share DOUBLE,         -- share of pushes with delay <= target
            observed_p50_seconds DOUBLE,        -- warehouse recorded -> NDW accepted, median
            observed_p95_seconds DOUBLE,
            observed_within_target_share DOUBLE,
            clock_skew_seconds DOUBLE,          -- median provider clock skew taken off the source times used
                                                -- (provider minus ours); NULL: none used
            measured_from_recording BIGINT,     -- pushes measured from our recording, not the source's change
                                                -- time (clock_note)
            window_start TIMESTAMPTZ NOT NULL,
            window_end TIMESTAMPTZ NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL
        );
        DROP TABLE {TIMELINE};
        CREATE TABLE {TIMELINE} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            location_name VARCHAR,              -- mart.locations.name
            evse_uid VARCHAR NOT NULL,
            evse_id VARCHAR,                    -- the EVSE's eMI3 id (mart.evses.evse_id)
            status VARCHAR NOT NULL,
            period_start TIMESTAMPTZ NOT NULL,
            period_end TIMESTAMPTZ NOT NULL,
            computed_at TIMESTAMPTZ NOT NULL
        );
        """,
    )
)

# What each column means, for the Dagster catalog (`evpipeline.catalog`); formulas in docs/quality.md.
_CPO = {
    "country_code": "ISO 3166 alpha-2 country code of the CPO.",
    "party_id": "Party id of the CPO.",
}
_EVSE = {
    **_CPO,
    "location_id": "The mart location (mart.locations.location_id).",
    "evse_uid": "The mart EVSE (mart.evses.evse_uid).",
}
_COMPUTED = "When the report was computed (UTC); each run rewrites the table."
_WINDOW = {
    "window_start": "Start of the report's window (as_of minus days), UTC.",
    "window_end": "End of the report's window (as_of, default now), UTC.",
}
COLUMNS: dict[str, dict[str, str]] = {
    COMPLETENESS: {"country_code": _CPO["country_code"], "computed_at": _COMPUTED},
    REJECTIONS: {**_CPO, "computed_at": _COMPUTED},
    DELAYS: {
        **_CPO,
        "method": "PATCH (EVSE status) or PUT (location or tariff): the accepted push.",
        "computed_at": _COMPUTED,
    },
    TIMELINESS: {
        **_CPO,
        "target_seconds": "The AFIR target: 60 (dynamic) or 86400 (static).",
        "p95_seconds": "Change observable to us -> NDW accepted, 95th percentile (linear interpolation), "
        "in s.",
        "max_seconds": "Change observable to us -> NDW accepted, longest, in s.",
        "observed_p95_seconds": "Warehouse recorded -> NDW accepted, 95th percentile, in s.",
        "observed_within_target_share": "Share of pushes with an observed delay <= target_seconds.",
        **_WINDOW,
        "computed_at": _COMPUTED,
    },
    RELIABILITY: {**_EVSE, **_WINDOW, "computed_at": _COMPUTED},
    TIMELINE: {
        **_EVSE,
        "status": "OCPI EVSE status during the period (from mart.evse_status_history).",
        "period_start": "Start of the period: the transition's source time, clipped to the window (UTC).",
        "period_end": "End of the period: the EVSE's next transition, or the window's end (UTC).",
        "computed_at": _COMPUTED,
    },
    COVERAGE: {
        "status": "OCPI EVSE status (each EVSE in its latest status at or before sampled_at).",
        "computed_at": _COMPUTED,
    },
}
describe_columns(__name__, COLUMNS)
