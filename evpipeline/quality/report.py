"""The report's SQL: every figure is computed inside DuckDB and written to a `quality` table.

Each `write_*` replaces its table's rows (the tables hold the latest report; the PNGs under
`data/reports/<date>/` keep the history). Definitions and formulas: docs/quality.md.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from evpipeline.clocks import TABLE as CLOCKS
from evpipeline.ndw.export import nap_countries, rejection_rows, select_objects
from evpipeline.quality import tables
from evpipeline.quality.elements import ALIAS, elements

WORKING = ("AVAILABLE", "CHARGING", "RESERVED")  # UK Open Charge Point Data Regulations 2023
NOT_IN_SERVICE = ("PLANNED", "REMOVED")  # not counted in the observed time
RAPID_W = 50_000
RELIABILITY_TARGET = 0.99
DYNAMIC_TARGET_S = 60.0  # AFIR: dynamic data within 1 minute
STATIC_TARGET_S = 86_400.0  # static data within 24 hours

_WORKING = ", ".join(f"'{s}'" for s in WORKING)
_NOT_IN_SERVICE = ", ".join(f"'{s}'" for s in NOT_IN_SERVICE)

# Live objects of published, live locations (what a CPO publishes, whatever the country).
_SCOPES = {
    "location": "mart.locations l WHERE l.publish AND NOT l.is_deleted",
    "evse": """mart.evses e JOIN mart.locations l USING (country_code, party_id, location_id)
               WHERE l.publish AND NOT l.is_deleted AND NOT e.is_deleted AND e.status <> 'REMOVED'""",
    "connector": """mart.connectors c
               JOIN mart.evses e USING (country_code, party_id, location_id, evse_uid)
               JOIN mart.locations l USING (country_code, party_id, location_id)
               WHERE l.publish AND NOT l.is_deleted AND NOT e.is_deleted AND e.status <> 'REMOVED'
                   AND NOT c.is_deleted""",
}


def _replace(con: duckdb.DuckDBPyConnection, table: str, select: str, params: dict[str, object]) -> None:
    con.execute(f"DELETE FROM {table}")
    con.execute(f"INSERT INTO {table} BY NAME {select}", params)


def write_completeness(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Per CPO and source: the share of locations/EVSEs/connectors carrying each AFIR element."""
    parts = []
    for el in elements():
        a = ALIAS[el.object]
        parts.append(f"""
            SELECT {a}.country_code, {a}.party_id, {a}.source, '{el.object}' AS object,
                   '{el.name}' AS element,
                   '{el.requirement}' AS requirement, count(*) AS objects,
                   count(*) FILTER (WHERE {el.present}) AS present
            FROM {_SCOPES[el.object]}
            GROUP BY ALL""")
    _replace(
        con,
        tables.COMPLETENESS,
        f"""
        SELECT *, present / objects AS share, $now AS computed_at FROM ({" UNION ALL ".join(parts)})
        ORDER BY country_code, party_id, source, object, element""",
        {"now": now},
    )


def write_rejections(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Per CPO and source: the NDW export's rejection reasons (`select_objects`), counted."""
    select_objects(con)
    rows = rejection_rows(con)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _quality_rejections (object VARCHAR, country_code VARCHAR, "
        "party_id VARCHAR, location_id VARCHAR, evse_uid VARCHAR, connector_id VARCHAR, tariff_id VARCHAR, "
        "reasons VARCHAR[])"
    )
    if rows:
        con.executemany(
            "INSERT INTO _quality_rejections VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [
                    r["object"],
                    r["country_code"],
                    r["party_id"],
                    r.get("location_id"),
                    r.get("evse_uid"),
                    r.get("connector_id"),
                    r.get("tariff_id"),
                    r["reasons"],
                ]
                for r in rows
            ],
        )
    _replace(
        con,
        tables.REJECTIONS,
        """
        SELECT r.country_code, r.party_id,
               coalesce(CASE r.object WHEN 'Location' THEN l.source WHEN 'EVSE' THEN e.source
                                      WHEN 'Connector' THEN c.source ELSE t.source END, 'unknown') AS source,
               r.object, r.reason, count(*) AS objects, $now AS computed_at
        FROM (SELECT * EXCLUDE (reasons), unnest(reasons) AS reason FROM _quality_rejections) r
        LEFT JOIN mart.locations l ON l.country_code = r.country_code AND l.party_id = r.party_id
            AND l.location_id = r.location_id
        LEFT JOIN mart.evses e ON e.country_code = r.country_code AND e.party_id = r.party_id
                              AND e.location_id = r.location_id
                              AND e.evse_uid = r.evse_uid
        LEFT JOIN mart.connectors c ON c.country_code = r.country_code AND c.party_id = r.party_id
                              AND c.location_id = r.location_id AND c.evse_uid = r.evse_uid
                              AND c.connector_id = r.connector_id
        LEFT JOIN mart.tariffs t ON t.country_code = r.country_code AND t.party_id = r.party_id
            AND t.tariff_id = r.tariff_id
        GROUP BY ALL ORDER BY ALL""",
        {"now": now},
    )


def write_timeliness(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, now: datetime) -> None:
    """Per accepted NDW push in the window: the delay from when the change it carried became observable
    to us (the source's change time on our clock, the provider's measured clock skew taken off) to NDW
    accepting it; first publications from when we recorded the object. Then per CPO, source, data class
    and publication p50/p95/max and the share within 1 min (dynamic) / 24 h (static). docs/quality.md."""
    params = {"start": start, "end": end, "now": now, "dyn": DYNAMIC_TARGET_S, "stat": STATIC_TARGET_S}
    _replace(
        con,
        tables.DELAYS,
        f"""
        WITH accepted AS (
            SELECT pushed_at, kind, method, reason, key AS push_key,
                   split_part(key, '/', 1) AS country_code, split_part(key, '/', 2) AS party_id,
                   split_part(key, '/', 3) AS object_id, split_part(key, '/', 4) AS evse_uid,
                   lag(pushed_at) OVER (PARTITION BY kind, method, key ORDER BY pushed_at) AS previous_push_at
            FROM ops.ndw_pushes
            WHERE ok AND ((method = 'PATCH' AND kind = 'evse')
                OR (method = 'PUT' AND kind IN ('location', 'tariff')))
        ), pushes AS (
            SELECT * FROM accepted WHERE pushed_at >= $start AND pushed_at < $end
        ), history AS (
            SELECT country_code, party_id, location_id, evse_uid, status_at, recorded_at
            FROM mart.evse_status_history
        ), dynamic AS (
            -- a status PATCH carries the EVSE's latest transition the warehouse had recorded when it was sent
            SELECT p.*, h.status_at AS changed_at, h.recorded_at AS observed_at
            FROM pushes p
            ASOF LEFT JOIN history h ON h.country_code = p.country_code AND h.party_id = p.party_id
                 AND h.location_id = p.object_id AND h.evse_uid = p.evse_uid AND p.pushed_at >= h.recorded_at
            WHERE p.method = 'PATCH'
        ), stamps AS (
            -- a Location PUT carries its own, its EVSEs' and its connectors' static data
            SELECT country_code, party_id, location_id AS object_id, 'location' AS kind,
                   coalesce(source_last_updated, last_updated) AS changed_at, _ingested_at AS observed_at
                   FROM mart.locations
            UNION ALL SELECT country_code, party_id, location_id, 'location',
                   coalesce(source_last_updated, last_updated),
                   _ingested_at FROM mart.evses
            UNION ALL SELECT country_code, party_id, location_id, 'location',
                   coalesce(source_last_updated, last_updated),
                   _ingested_at FROM mart.connectors
            UNION ALL SELECT country_code, party_id, tariff_id, 'tariff',
                   coalesce(source_last_updated, last_updated),
                   _ingested_at FROM mart.tariffs
        ), static AS (
            SELECT p.*, max(s.changed_at) FILTER (WHERE s.changed_at <= p.pushed_at) AS changed_at,
                   max(s.observed_at) FILTER (WHERE s.observed_at <= p.pushed_at) AS observed_at
            FROM pushes p
            LEFT JOIN stamps s ON s.country_code = p.country_code AND s.party_id = p.party_id
                 AND s.object_id = p.object_id AND s.kind = p.kind
            WHERE p.method = 'PUT'
            GROUP BY ALL
        ), delays AS (
            SELECT *, 'dynamic' AS data_class, $dyn AS target_seconds FROM dynamic
            UNION ALL BY NAME SELECT *, 'static' AS data_class, $stat AS target_seconds FROM static
        ), sourced AS (
            SELECT d.*, coalesce(CASE d.kind WHEN 'tariff' THEN t.source ELSE l.source
                   END, 'unknown') AS source,
                   CASE WHEN d.method = 'PUT' AND d.reason = 'new' THEN 'first' ELSE 'change'
                   END AS publication
            FROM delays d
            LEFT JOIN mart.locations l ON d.kind <> 'tariff' AND l.country_code = d.country_code
                                      AND l.party_id = d.party_id
                                      AND l.location_id = d.object_id
            LEFT JOIN mart.tariffs t ON d.kind = 'tariff' AND t.country_code = d.country_code
                                    AND t.party_id = d.party_id
                                    AND t.tariff_id = d.object_id
        ), clocks AS (
            -- the provider's clock reading in force when we recorded the change (else the first one after)
            SELECT s.*, coalesce(b.skew_seconds, a.skew_seconds) AS clock_skew_seconds
            FROM sourced s
            ASOF LEFT JOIN {CLOCKS} b ON b.source = s.source AND s.observed_at >= b.measured_at
            ASOF LEFT JOIN {CLOCKS} a ON a.source = s.source AND s.observed_at <= a.measured_at
        ), local AS (
            SELECT *, changed_at - to_microseconds(CAST(round(coalesce(clock_skew_seconds,
            0) * 1e6) AS BIGINT)) AS changed_local
            FROM clocks
        ), judged AS (
            SELECT *,
                   CASE WHEN publication = 'first' THEN 'first publication: from our recording'
                        WHEN changed_local > observed_at THEN
                            'source time ' || round(epoch(changed_local - observed_at),
                            1) || ' s after our recording'
                            || CASE WHEN clock_skew_seconds IS NULL THEN ' (provider clock not measured)'
                                ELSE '' END
                            || ': from our recording'
                        WHEN data_class = 'static' AND changed_local <= previous_push_at THEN
                            'source unchanged since the previous push: from our recording'
                        WHEN clock_skew_seconds IS NULL AND changed_at IS NOT NULL
                            THEN 'provider clock not measured'
                   END AS clock_note
            FROM local
        )
        SELECT pushed_at, data_class, publication, kind, method, push_key, country_code, party_id, source,
               changed_at, clock_skew_seconds, observed_at,
               CASE WHEN clock_note LIKE '%from our recording' THEN observed_at ELSE changed_local
                   END AS observable_at,
               epoch(pushed_at - CASE WHEN clock_note LIKE '%from our recording' THEN observed_at
                   ELSE changed_local END)
                   AS delay_seconds,
               epoch(pushed_at - observed_at) AS observed_delay_seconds,
               clock_note, target_seconds, $now AS computed_at
        FROM judged
        ORDER BY pushed_at, push_key""",
        params,
    )
    _replace(
        con,
        tables.TIMELINESS,
        f"""
        SELECT country_code, party_id, source, data_class, publication,
               any_value(target_seconds) AS target_seconds,
               count(delay_seconds) AS pushes,
               quantile_cont(delay_seconds, 0.5) AS p50_seconds,
               quantile_cont(delay_seconds, 0.95) AS p95_seconds,
               max(delay_seconds) AS max_seconds,
               avg(CASE WHEN delay_seconds <= target_seconds THEN 1.0 ELSE 0.0
                   END) FILTER (WHERE delay_seconds IS NOT NULL)
                   AS within_target_share,
               quantile_cont(observed_delay_seconds, 0.5) AS observed_p50_seconds,
               quantile_cont(observed_delay_seconds, 0.95) AS observed_p95_seconds,
               avg(CASE WHEN observed_delay_seconds <= target_seconds THEN 1.0 ELSE 0.0 END)
                   FILTER (WHERE observed_delay_seconds IS NOT NULL) AS observed_within_target_share,
               median(clock_skew_seconds) FILTER (WHERE clock_note IS NULL) AS clock_skew_seconds,
               count(*) FILTER (WHERE delay_seconds IS NOT NULL AND clock_note LIKE '%from our recording')
                   AS measured_from_recording,
               $start AS window_start, $end AS window_end, $now AS computed_at
        FROM {tables.DELAYS}
        GROUP BY country_code, party_id, source, data_class, publication
        ORDER BY ALL""",
        {"start": start, "end": end, "now": now},
    )


def _intervals(start_param: str = "$start", end_param: str = "$end") -> str:
    """Every EVSE status period clipped to the window (a period starts at a transition's source time
    and lasts until the next one, or the window's end); time before an EVSE's first known status is not
    counted."""
    return f"""
        WITH h AS (
            SELECT country_code, party_id, location_id, evse_uid, new_status AS status, status_at,
                   lead(status_at) OVER (PARTITION BY country_code, party_id, location_id, evse_uid
                                         ORDER BY status_at, recorded_at) AS next_at
            FROM mart.evse_status_history
            WHERE new_status IS NOT NULL
        )
        SELECT country_code, party_id, location_id, evse_uid, status,
               greatest(status_at, {start_param}) AS period_start,
               least(coalesce(next_at, {end_param}), {end_param}) AS period_end,
               status_at >= {start_param} AS transition_in_window
        FROM h
        WHERE status_at < {end_param} AND coalesce(next_at, {end_param}) > {start_param}
          AND least(coalesce(next_at, {end_param}), {end_param}) > greatest(status_at, {start_param})"""


def _scope(countries: list[str] | None) -> str:
    """The EVSEs of published, live locations in the access point's countries (`EVPIPELINE_NAP_COUNTRIES`):
    an AFIR report is about the points the national access point receives, not a CPO's fleet elsewhere."""
    listed = ", ".join(
        "'" + c.replace("'", "''") + "'" for c in (nap_countries() if countries is None else countries)
    )
    return f"""
        SELECT e.country_code, e.party_id, e.location_id, e.evse_uid
        FROM mart.evses e JOIN mart.locations l USING (country_code, party_id, location_id)
        WHERE l.publish AND NOT l.is_deleted AND l.country IN ({listed or "NULL"})"""


def write_reliability(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    now: datetime,
    countries: list[str] | None = None,
) -> None:
    """Per EVSE of the access point's countries (default `EVPIPELINE_NAP_COUNTRIES`): time-weighted share
    of its in-service time in a working state over the window."""
    _replace(
        con,
        tables.RELIABILITY,
        f"""
        WITH scope AS ({_scope(countries)}),
        periods AS (SELECT * FROM ({_intervals()}) SEMI JOIN scope
            USING (country_code, party_id, location_id, evse_uid)),
        per_evse AS (
            SELECT country_code, party_id, location_id, evse_uid,
                   coalesce(sum(epoch(period_end - period_start)) FILTER
                       (WHERE status NOT IN ({_NOT_IN_SERVICE})), 0)
                       AS observed_seconds,
                   coalesce(sum(epoch(period_end - period_start)) FILTER (WHERE status IN ({_WORKING})),
                       0) AS working_seconds,
                   count(*) FILTER (WHERE transition_in_window) AS transitions
            FROM periods GROUP BY ALL
        ), power AS (
            SELECT country_code, party_id, location_id, evse_uid, max(max_electric_power) AS max_power_w
            FROM mart.connectors WHERE NOT is_deleted GROUP BY ALL
        )
        SELECT p.country_code, p.party_id, coalesce(e.source, 'unknown') AS source, p.location_id, p.evse_uid,
               $start AS window_start, $end AS window_end, p.observed_seconds, p.working_seconds,
               CASE WHEN p.observed_seconds > 0 THEN p.working_seconds / p.observed_seconds
                   END AS working_share,
               p.transitions, w.max_power_w,
               coalesce(w.max_power_w >= {RAPID_W}, false) AS rapid,
               coalesce(w.max_power_w >= {RAPID_W} AND p.working_seconds / nullif(p.observed_seconds,
                        0) < {RELIABILITY_TARGET},
                        false) AS below_target,
               $now AS computed_at
        FROM per_evse p
        LEFT JOIN mart.evses e USING (country_code, party_id, location_id, evse_uid)
        LEFT JOIN power w USING (country_code, party_id, location_id, evse_uid)
        ORDER BY ALL""",
        {"start": start, "end": end, "now": now},
    )


def busiest_location(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, countries: list[str] | None = None
) -> str | None:
    """The location of the access point's countries with the most status transitions in the window
    (ties: the smallest id)."""
    row = con.execute(
        f"""
        SELECT location_id FROM mart.evse_status_history
        SEMI JOIN ({_scope(countries)}) s USING (country_code, party_id, location_id, evse_uid)
        WHERE status_at >= $start AND status_at < $end
        GROUP BY location_id ORDER BY count(*) DESC, location_id LIMIT 1""",
        {"start": start, "end": end},
    ).fetchone()
    return str(row[0]) if row else None


def write_timeline(
    con: duckdb.DuckDBPyConnection, location_id: str, start: datetime, end: datetime, now: datetime
) -> None:
    """Every status period of the location's EVSEs in the window, with the location's name and each EVSE's
    id."""
    _replace(
        con,
        tables.TIMELINE,
        f"""
        SELECT p.country_code, p.party_id, p.location_id, l.name AS location_name, p.evse_uid, e.evse_id,
               p.status, p.period_start, p.period_end, $now AS computed_at
        FROM ({_intervals()}) p
        LEFT JOIN mart.locations l USING (country_code, party_id, location_id)
        LEFT JOIN mart.evses e USING (country_code, party_id, location_id, evse_uid)
        WHERE p.location_id = $location
        ORDER BY coalesce(e.evse_id, p.evse_uid), p.period_start""",
        {"start": start, "end": end, "now": now, "location": location_id},
    )


def write_coverage(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    step_minutes: int,
    now: datetime,
    countries: list[str] | None = None,
) -> None:
    """EVSEs of the access point's countries per status at every sample time (each EVSE in its latest
    status at or before it; an EVSE whose first known status is later is not counted yet)."""
    _replace(
        con,
        tables.COVERAGE,
        f"""
        WITH ticks AS (
            SELECT unnest(generate_series(CAST($start AS TIMESTAMPTZ), CAST($end AS TIMESTAMPTZ),
                                          to_minutes(CAST($step AS BIGINT)))) AS sampled_at
        ), evses AS (
            SELECT DISTINCT country_code, party_id, location_id, evse_uid FROM mart.evse_status_history
            SEMI JOIN ({_scope(countries)}) s USING (country_code, party_id, location_id, evse_uid)
        ), history AS (
            SELECT country_code, party_id, location_id, evse_uid, new_status, status_at
            FROM mart.evse_status_history
            WHERE new_status IS NOT NULL
        ), states AS (
            SELECT t.sampled_at, h.new_status AS status
            FROM ticks t CROSS JOIN evses e
            ASOF JOIN history h ON h.country_code = e.country_code AND h.party_id = e.party_id
                 AND h.location_id = e.location_id AND h.evse_uid = e.evse_uid AND t.sampled_at >= h.status_at
        )
        SELECT sampled_at, status, count(*) AS evses, $now AS computed_at FROM states GROUP BY ALL
            ORDER BY ALL""",
        {"start": start, "end": end, "step": step_minutes, "now": now},
    )
