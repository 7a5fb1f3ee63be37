"""Cross-source identity: one physical charging location, however many sources report it.

A Zaptec charger run by an OCPP back office such as GreenFlux reaches us through both APIs, with
different ids, coordinates a few metres apart and differently written addresses. Matching finds such
pairs inside DuckDB and publishes each physical location once:

1. **Candidates** (blocking): locations of *different* sources within `POLICY.radius_m` of each
   other, found by a hash join on grid cells (each location meets the 3 x 3 cells around its own),
   never by comparing every pair.
2. **Features and score**: distance, street similarity (Jaro-Winkler after normalising case,
   accents, punctuation and Dutch street abbreviations), house number equality, name similarity,
   EVSE count and connector signature (standard and rated kW); a weighted sum in [0, 1].
3. **Decision**, first rule that applies (`rule` says which): an operator override from reference
   data (`same` / `not_same`), `different_cpo` (never merged across CPOs without an override),
   `evse_id` (a shared eMI3 EVSE id is decisive), `score` (>= `same_at`), `near_threshold`
   (between `review_from` and `same_at`: not merged, counted as unresolved), `score_below`.
4. **Clusters**: connected components of the `same` pairs. Each keeps one canonical member, whose
   ids are the ones published: the member already canonical before (sticky), else one NDW already
   holds, else the first source in `POLICY.source_priority`, else the smallest key. So a duplicate
   arriving a day later joins the published location instead of replacing it, and NDW gets no new
   object. The other members are withheld from NDW and DATEX II with the reason
   "duplicate of <identity>" (`withhold_duplicates`).

Tables (BI): `mart.identity_candidates` (every scored pair: features, score, decision, rule) and
`mart.identity` (every location in a cluster of two or more: its identity id, whether it is the
canonical member, the rule and score that put it there). A location not in `mart.identity` is its own
identity. The build updates both in its transaction: an incremental build re-scores only the pairs
touching the locations it changed (O(changes) candidates), a full build all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from evpipeline.model import reference
from evpipeline.model.tables import CONNECTORS, EVSES, LOCATIONS
from evpipeline.warehouse import Migration, describe_columns, register

IDENTITY = "mart.identity"
CANDIDATES = "mart.identity_candidates"
OVERRIDES = reference.IDENTITY_OVERRIDES  # the operator's `identity` entries of the reference file


@dataclass(frozen=True)
class MatchPolicy:
    """Every threshold and weight of the matching, in one place."""

    radius_m: float = 150.0  # candidates: locations of two sources at most this far apart
    cell_deg: float = (
        0.002  # blocking grid: ~220 m of latitude; longitude cells `lon_cell_factor` times wider
    )
    # A cell must be at least radius_m wide everywhere we publish: 0.0064 deg of longitude is 220 m at
    # 71.8 N (North Cape, the fleet's northernmost), 440 m in the Netherlands (more pairs compared,
    # none missed).
    lon_cell_factor: float = 3.2
    w_distance: float = 0.35  # 1 at 0 m, 0 at radius_m
    w_address: float = 0.30  # half street similarity, half house number equality
    w_name: float = 0.10
    w_evses: float = 0.10  # fewer EVSEs / more EVSEs
    w_connectors: float = 0.15  # Jaccard of the (standard, kW) signatures
    same_at: float = 0.80  # score from which a pair is the same location
    review_from: float = 0.65  # [review_from, same_at): not merged, reported as unresolved
    # Which member keeps its ids when none was canonical or published before: the CPO's own back
    # office first (its static data is the richest), aggregators last.
    source_priority: tuple[str, ...] = ("greenflux", "evroam", "zaptec", "tomtom")


POLICY = MatchPolicy()

register(
    Migration(
        "mart",
        5,
        "cross-source identity: scored candidate pairs and clusters",
        f"""
        CREATE TABLE {CANDIDATES} (
            a_country_code VARCHAR NOT NULL,
            a_party_id VARCHAR NOT NULL,
            a_location_id VARCHAR NOT NULL,
            a_source VARCHAR NOT NULL,
            b_country_code VARCHAR NOT NULL,
            b_party_id VARCHAR NOT NULL,
            b_location_id VARCHAR NOT NULL,
            b_source VARCHAR NOT NULL,
            distance_m DOUBLE NOT NULL,
            street_similarity DOUBLE,
            same_house_number BOOLEAN,
            name_similarity DOUBLE,
            evses_a INTEGER,
            evses_b INTEGER,
            connector_similarity DOUBLE,
            shared_evse_ids INTEGER NOT NULL,
            score DOUBLE NOT NULL,
            decision VARCHAR NOT NULL,
            rule VARCHAR NOT NULL,
            scored_at TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE {IDENTITY} (
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            location_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            identity_id VARCHAR NOT NULL,
            canonical BOOLEAN NOT NULL,
            members INTEGER NOT NULL,
            rule VARCHAR NOT NULL,
            score DOUBLE,
            decided_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (country_code, party_id, location_id)
        );
        """,
    ),
)

COLUMNS: dict[str, dict[str, str]] = {
    CANDIDATES: {
        "a_country_code": "First location of the pair (the smaller key): its CPO's country code.",
        "a_party_id": "First location: its CPO's party id.",
        "a_location_id": "First location: its OCPI id.",
        "a_source": "First location: the source that reports it.",
        "b_country_code": "Second location: its CPO's country code.",
        "b_party_id": "Second location: its CPO's party id.",
        "b_location_id": "Second location: its OCPI id.",
        "b_source": "Second location: the source that reports it.",
        "distance_m": "Great-circle distance between the two, in metres.",
        "street_similarity": "Jaro-Winkler similarity of the normalised street names (0-1).",
        "same_house_number": "Both addresses carry the same house number (with its letter).",
        "name_similarity": "Jaro-Winkler similarity of the normalised location names (0-1).",
        "evses_a": "EVSEs of the first location (not removed).",
        "evses_b": "EVSEs of the second location (not removed).",
        "connector_similarity": "Jaccard similarity of the (standard, rated kW) connector signatures (0-1).",
        "shared_evse_ids": "eMI3 EVSE ids both report (decisive when > 0).",
        "score": "Weighted score (weights in evpipeline/model/identity.py, MatchPolicy).",
        "decision": "same, not_same or review (near the threshold: not merged, reported).",
        "rule": "What decided: override, different_cpo, evse_id, score, near_threshold or score_below.",
        "scored_at": "When the pair was last scored (UTC).",
    },
    IDENTITY: {
        "country_code": "The location's CPO country code.",
        "party_id": "The location's CPO party id.",
        "location_id": "The location's OCPI id.",
        "source": "The source that reports it.",
        "identity_id": "The physical location: `country_code:party_id:location_id` of the canonical member, "
        "the ids published to NDW and the DATEX II receiver.",
        "canonical": "This row is the published member; the others are withheld as its duplicates.",
        "members": "Source locations in this physical location.",
        "rule": "The rule of the strongest pair linking this location into the cluster.",
        "score": "The score of that pair.",
        "decided_at": "When this row's decision (identity, canonical, members, rule, "
        "score) last changed (UTC).",
    },
}
describe_columns(__name__, COLUMNS)

_FEATURES = "_id_features"
_SCOPE = "_id_scope"


def _norm(expr: str) -> str:
    """SQL: lower case, accents stripped, anything but letters and digits a single space."""
    return f"trim(regexp_replace(lower(strip_accents(coalesce({expr}, ''))), '[^a-z0-9]+', ' ', 'g'))"


def _street_words(expr: str) -> str:
    """SQL: a normalised address with the usual Dutch abbreviations written out (Kerkstr. -> kerkstraat)."""
    out = _norm(expr)
    # Longest first: `ln` would otherwise turn `pln` (plein) into `plaan`.
    for short, long in (
        ("sngl", "singel"),
        ("pln", "plein"),
        ("str", "straat"),
        ("ln", "laan"),
        ("wg", "weg"),
    ):
        out = f"regexp_replace({out}, '{short}\\b', '{long}', 'g')"
    return out


def _cell(policy: MatchPolicy, lat: str, lon: str) -> tuple[str, str]:
    """SQL: the blocking cell (row, column) of a position."""
    return (
        f"CAST(floor({lat} / {policy.cell_deg}) AS BIGINT)",
        f"CAST(floor({lon} / {policy.cell_deg * policy.lon_cell_factor}) AS BIGINT)",
    )


def _features(con: duckdb.DuckDBPyConnection, policy: MatchPolicy, scoped: bool) -> None:
    """One row per live location with what matching compares, and its blocking cell; `scoped`: only
    the locations in the 3 x 3 cells around the scope's (all a scoped pass can pair), so the cost of
    an incremental pass follows the changes, not the fleet."""
    cy, cx = _cell(policy, "latitude", "longitude")
    near = ""
    if scoped:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _id_cells AS
            SELECT DISTINCT {cy} + dy AS cy, {cx} + dx AS cx
            FROM {LOCATIONS} l SEMI JOIN {_SCOPE} s USING (country_code, party_id, location_id),
                 (VALUES (-1), (0), (1)) y(dy), (VALUES (-1), (0), (1)) x(dx)
            WHERE latitude IS NOT NULL AND longitude IS NOT NULL""")
        near = f"AND ({cy}, {cx}) IN (SELECT (cy, cx) FROM _id_cells)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _id_live AS
        SELECT country_code, party_id, location_id, source, latitude AS lat, longitude AS lon, name, address
        FROM {LOCATIONS}
        WHERE NOT is_deleted AND latitude IS NOT NULL AND longitude IS NOT NULL {near}""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {_FEATURES} AS
        WITH addr AS (
            SELECT country_code, party_id, location_id, source, lat, lon,
                   {_norm("name")} AS name_n, {_street_words("address")} AS addr_n
            FROM _id_live),
        evses AS (
            SELECT country_code, party_id, location_id, CAST(count(*) AS INTEGER) AS evses,
                   list_distinct(list(upper(regexp_replace(evse_id, '[^A-Za-z0-9]', '', 'g')))
                                 FILTER (WHERE evse_id IS NOT NULL)) AS evse_ids
            FROM {EVSES} SEMI JOIN _id_live USING (country_code, party_id, location_id)
            WHERE NOT is_deleted AND status <> 'REMOVED' GROUP BY ALL),
        connectors AS (
            SELECT country_code, party_id, location_id,
                   list_distinct(list(standard || ':'
                                      || CAST(round(coalesce(max_electric_power, 0) / 1000.0) AS INTEGER)))
                       AS signature
            FROM {CONNECTORS} SEMI JOIN _id_live USING (country_code, party_id, location_id)
            WHERE NOT is_deleted GROUP BY ALL)
        SELECT a.*, trim(regexp_replace(a.addr_n, '\\d.*$', '')) AS street,
               nullif(regexp_extract(a.addr_n, '\\b(\\d+)(?: ([a-z])\\b|([a-z])\\b)?', 1)
                      || coalesce(
                             nullif(regexp_extract(a.addr_n, '\\b(\\d+)(?: ([a-z])\\b|([a-z])\\b)?', 2), ''),
                             regexp_extract(a.addr_n, '\\b(\\d+)(?: ([a-z])\\b|([a-z])\\b)?', 3)),
                         '') AS house,
               {_cell(policy, "a.lat", "a.lon")[0]} AS cy, {_cell(policy, "a.lat", "a.lon")[1]} AS cx,
               coalesce(e.evses, 0) AS evses, coalesce(e.evse_ids, []) AS evse_ids,
               coalesce(c.signature, []) AS signature
        FROM addr a
        LEFT JOIN evses e USING (country_code, party_id, location_id)
        LEFT JOIN connectors c USING (country_code, party_id, location_id)""")


def _distance(a: str, b: str) -> str:
    """SQL: haversine distance in metres between `a` and `b` (aliases with lat, lon)."""
    return (
        f"2 * 6371008.8 * asin(sqrt(pow(sin(radians({b}.lat - {a}.lat) / 2), 2) + "
        f"cos(radians({a}.lat)) * cos(radians({b}.lat)) * pow(sin(radians({b}.lon - {a}.lon) / 2), 2)))"
    )


def _score_pairs(con: duckdb.DuckDBPyConnection, policy: MatchPolicy, scoped: bool, now: datetime) -> int:
    """Insert the scored pairs of different sources within the radius (touching the scope when
    `scoped`) into the candidates table; returns how many."""
    near = f"""
        SELECT f.*, f.cy + dy AS ny, f.cx + dx AS nx
        FROM {_FEATURES} f
             {f"SEMI JOIN {_SCOPE} s USING (country_code, party_id, location_id)" if scoped else ""},
             (VALUES (-1), (0), (1)) y(dy), (VALUES (-1), (0), (1)) x(dx)"""
    key_a = "p.country_code || ':' || p.party_id || ':' || p.location_id"
    key_b = "q.country_code || ':' || q.party_id || ':' || q.location_id"
    w = policy
    before = con.execute(f"SELECT count(*) FROM {CANDIDATES}").fetchone()[0]  # type: ignore[index]
    con.execute(
        f"""
        INSERT INTO {CANDIDATES}
        WITH pairs AS (
            SELECT DISTINCT
                   CASE WHEN {key_a} < {key_b} THEN p.country_code ELSE q.country_code END AS a_cc,
                   CASE WHEN {key_a} < {key_b} THEN p.party_id ELSE q.party_id END AS a_pid,
                   CASE WHEN {key_a} < {key_b} THEN p.location_id ELSE q.location_id END AS a_loc,
                   CASE WHEN {key_a} < {key_b} THEN q.country_code ELSE p.country_code END AS b_cc,
                   CASE WHEN {key_a} < {key_b} THEN q.party_id ELSE p.party_id END AS b_pid,
                   CASE WHEN {key_a} < {key_b} THEN q.location_id ELSE p.location_id END AS b_loc
            FROM ({near}) p JOIN {_FEATURES} q ON q.cy = p.ny AND q.cx = p.nx AND q.source <> p.source
            WHERE {_distance("p", "q")} <= {w.radius_m}),
        featured AS (
            SELECT a.country_code AS a_cc, a.party_id AS a_pid, a.location_id AS a_loc, a.source AS a_source,
                   b.country_code AS b_cc, b.party_id AS b_pid, b.location_id AS b_loc, b.source AS b_source,
                   {_distance("a", "b")} AS distance_m,
                   CASE WHEN a.street <> '' AND b.street <> ''
                       THEN jaro_winkler_similarity(a.street, b.street) END AS street_sim,
                   CASE WHEN a.house IS NOT NULL AND b.house IS NOT NULL THEN a.house = b.house
                       END AS same_house,
                   CASE WHEN a.name_n <> '' AND b.name_n <> ''
                       THEN jaro_winkler_similarity(a.name_n, b.name_n) END AS name_sim,
                   a.evses AS evses_a, b.evses AS evses_b,
                   CASE WHEN len(a.signature) + len(b.signature) > 0
                        THEN len(list_intersect(a.signature, b.signature))
                        / len(list_distinct(list_concat(a.signature, b.signature)))
                   END AS conn_sim,
                   CAST(len(list_intersect(a.evse_ids, b.evse_ids)) AS INTEGER) AS shared_ids,
                   (a.country_code, a.party_id) = (b.country_code, b.party_id) AS same_cpo
            FROM pairs p
            JOIN {_FEATURES} a ON a.country_code = p.a_cc AND a.party_id = p.a_pid AND a.location_id = p.a_loc
            JOIN {_FEATURES} b ON b.country_code = p.b_cc AND b.party_id = p.b_pid
                AND b.location_id = p.b_loc),
        scored AS (
            SELECT *, {w.w_distance} * greatest(0, 1 - distance_m / {w.radius_m})
                      + {w.w_address} * (0.5 * coalesce(street_sim, 0)
                                         + 0.5 * CAST(coalesce(same_house, false) AS INTEGER))
                      + {w.w_name} * coalesce(name_sim, 0)
                      + {w.w_evses} * CASE WHEN greatest(evses_a, evses_b) > 0
                                           THEN least(evses_a, evses_b) / greatest(evses_a, evses_b) ELSE 0
                                           END
                      + {w.w_connectors} * coalesce(conn_sim, 0) AS score
            FROM featured)
        SELECT s.a_cc, s.a_pid, s.a_loc, s.a_source, s.b_cc, s.b_pid, s.b_loc, s.b_source,
               s.distance_m, s.street_sim, s.same_house, s.name_sim, s.evses_a, s.evses_b, s.conn_sim,
               s.shared_ids,
               s.score,
               CASE WHEN o.decision IS NOT NULL THEN o.decision
                    WHEN NOT s.same_cpo THEN 'not_same'
                    WHEN s.shared_ids > 0 OR s.score >= {w.same_at} THEN 'same'
                    WHEN s.score >= {w.review_from} THEN 'review'
                    ELSE 'not_same' END AS decision,
               CASE WHEN o.decision IS NOT NULL THEN 'override'
                    WHEN NOT s.same_cpo THEN 'different_cpo'
                    WHEN s.shared_ids > 0 THEN 'evse_id'
                    WHEN s.score >= {w.same_at} THEN 'score'
                    WHEN s.score >= {w.review_from} THEN 'near_threshold'
                    ELSE 'score_below' END AS rule,
               $now
        FROM scored s
        LEFT JOIN (
            SELECT a_country_code, a_party_id, a_location_id, b_country_code, b_party_id, b_location_id,
            decision
            FROM {OVERRIDES}
            UNION ALL  -- an override names the pair in either order
            SELECT b_country_code, b_party_id, b_location_id, a_country_code, a_party_id, a_location_id,
                decision
            FROM {OVERRIDES}) o
          ON o.a_country_code = s.a_cc AND o.a_party_id = s.a_pid AND o.a_location_id = s.a_loc
         AND o.b_country_code = s.b_cc AND o.b_party_id = s.b_pid AND o.b_location_id = s.b_loc""",
        {"now": now},
    )
    return int(con.execute(f"SELECT count(*) FROM {CANDIDATES}").fetchone()[0]) - int(before)  # type: ignore[index]


@dataclass
class IdentityUpdate:
    """What one matching pass did."""

    mode: str  # full | incremental | idle
    scope: int = 0  # locations whose pairs were re-scored
    pairs: int = 0  # pairs scored in this pass
    same: int = 0  # `same` pairs after it (all of them)
    clusters: int = 0  # physical locations with two or more source locations
    duplicates: int = 0  # source locations withheld as a duplicate


def update_identity(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    scope: str | None = None,
    policy: MatchPolicy = POLICY,
) -> IdentityUpdate:
    """Re-score the pairs touching the locations in `scope` (a table with country_code, party_id and
    location_id, or with source and location_id as the model build's scope has), or every pair when
    None, then re-decide the clusters. Runs inside the caller's transaction."""
    if scope is not None:
        keys = _scope_keys(con, scope)
        if not keys:
            return IdentityUpdate(mode="idle")
    _features(con, policy, scoped=scope is not None)
    if scope is None:
        con.execute(f"DELETE FROM {CANDIDATES}")
        result = IdentityUpdate(mode="full", scope=_count(con, _FEATURES))
    else:
        # Equality semi-joins on the key columns: no key text built for every stored pair.
        con.execute(f"""
            DELETE FROM {CANDIDATES} c
            WHERE EXISTS (SELECT 1 FROM {_SCOPE} s WHERE s.country_code = c.a_country_code
                          AND s.party_id = c.a_party_id AND s.location_id = c.a_location_id)
               OR EXISTS (SELECT 1 FROM {_SCOPE} s WHERE s.country_code = c.b_country_code
                          AND s.party_id = c.b_party_id AND s.location_id = c.b_location_id)""")
        result = IdentityUpdate(mode="incremental", scope=keys)
    result.pairs = _score_pairs(con, policy, scope is not None, now)
    _decide_clusters(con, now, policy, result, scoped=scope is not None)
    con.execute(
        f"DROP TABLE IF EXISTS {_FEATURES}; DROP TABLE IF EXISTS {_SCOPE}; DROP TABLE IF EXISTS _id_live; "
        "DROP TABLE IF EXISTS _id_cells; DROP TABLE IF EXISTS _id_keys"
    )
    return result


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


def _scope_keys(con: duckdb.DuckDBPyConnection, scope: str) -> int:
    """The scope as location keys in `_id_scope`; the build's scope names (source, location_id)."""
    columns = {name for (name, *_rest) in con.execute(f"DESCRIBE {scope}").fetchall()}
    if {"country_code", "party_id"} <= columns:
        select = f"SELECT DISTINCT country_code, party_id, location_id FROM {scope}"
    else:
        select = f"""SELECT DISTINCT l.country_code, l.party_id, l.location_id
                     FROM {LOCATIONS} l SEMI JOIN {scope} s ON s.source = l.source
                         AND s.location_id = l.location_id"""
    # The overrides' locations are always re-decided: an override added, changed or withdrawn in the
    # reference file takes effect at the next pass, whatever changed in the sources (a few rows).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {_SCOPE} AS
        {select}
        UNION SELECT a_country_code, a_party_id, a_location_id FROM {OVERRIDES}
        UNION SELECT b_country_code, b_party_id, b_location_id FROM {OVERRIDES}""")
    return _count(con, _SCOPE)


_KEY_A = "a_country_code || ':' || a_party_id || ':' || a_location_id"
_KEY_B = "b_country_code || ':' || b_party_id || ':' || b_location_id"
_KEY = "country_code || ':' || party_id || ':' || location_id"


def _affected(con: duckdb.DuckDBPyConnection, scoped: bool) -> None:
    """`_id_keys`: the locations whose cluster a pass must decide again. Scoped: the scope, the
    members of their clusters before, and everything `same` pairs link to those (transitively), so
    the work follows the changes; full: every location in a `same` pair or in the table."""
    if not scoped:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _id_keys AS
            SELECT {_KEY_A} AS k FROM {CANDIDATES} WHERE decision = 'same'
            UNION SELECT {_KEY_B} FROM {CANDIDATES} WHERE decision = 'same'
            UNION SELECT {_KEY} FROM {IDENTITY}""")
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _id_keys AS
        SELECT {_KEY} AS k FROM {_SCOPE}
        UNION SELECT {_KEY} FROM {IDENTITY}
              WHERE identity_id IN (SELECT identity_id FROM {IDENTITY} SEMI JOIN {_SCOPE}
              USING (country_code, party_id, location_id))""")
    while True:  # clusters are small: one or two rounds
        added = con.execute(f"""
            INSERT INTO _id_keys
            SELECT DISTINCT k FROM (
                SELECT {_KEY_A} AS k FROM {CANDIDATES} WHERE decision = 'same'
                AND {_KEY_B} IN (SELECT k FROM _id_keys)
                UNION SELECT {_KEY_B} FROM {CANDIDATES} WHERE decision = 'same'
                    AND {_KEY_A} IN (SELECT k FROM _id_keys))
            WHERE k NOT IN (SELECT k FROM _id_keys)""").fetchone()[0]  # type: ignore[index]
        if not added:
            return


def _decide_clusters(
    con: duckdb.DuckDBPyConnection, now: datetime, policy: MatchPolicy, result: IdentityUpdate, scoped: bool
) -> None:
    """Connected components of the `same` pairs, each with its canonical member (see the module), for
    the locations `_affected` names; only rows whose decision changed are written."""
    _affected(con, scoped)
    # Strongest pair first (then by key): which pair a member is linked by does not depend on the order rows
    # come in.
    pairs = con.execute(f"""
        SELECT {_KEY_A} AS a, a_source, {_KEY_B} AS b, b_source, rule, score
        FROM {CANDIDATES} WHERE decision = 'same' AND {_KEY_A} IN (SELECT k FROM _id_keys)
        ORDER BY score DESC, a, b""").fetchall()
    result.same = int(con.execute(f"SELECT count(*) FROM {CANDIDATES} WHERE decision = 'same'").fetchone()[0])  # type: ignore[index]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    source: dict[str, str] = {}
    link: dict[str, tuple[str, float]] = {}  # member -> (rule, score) of its strongest same pair
    for a, a_source, b, b_source, rule, score in pairs:
        source[a], source[b] = a_source, b_source
        link.setdefault(a, (rule, score))
        link.setdefault(b, (rule, score))
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            parent[max(root_a, root_b)] = min(root_a, root_b)
    clusters: dict[str, list[str]] = {}
    for member in source:
        clusters.setdefault(find(member), []).append(member)
    before = {
        key
        for (key,) in con.execute(
            f"SELECT {_KEY} FROM {IDENTITY} WHERE canonical AND {_KEY} IN (SELECT k FROM _id_keys)"
        ).fetchall()
    }
    published = _published(con)
    rank = {name: n for n, name in enumerate(policy.source_priority)}
    rows = []
    for members in clusters.values():
        canonical = min(
            members,
            key=lambda m: (
                m not in before,
                m not in published,
                rank.get(source[m], len(rank)),
                m,
            ),
        )
        for member in members:
            cc, pid, loc = member.split(":", 2)
            rule, score = link[member]
            rows.append(
                (cc, pid, loc, source[member], canonical, member == canonical, len(members), rule, score)
            )
    frame = pd.DataFrame(
        rows,
        columns=[
            "country_code",
            "party_id",
            "location_id",
            "source",
            "identity_id",
            "canonical",
            "members",
            "rule",
            "score",
        ],
    )
    # Typed, so an empty frame compares as well.
    frame = frame.astype({"canonical": "bool", "members": "int64", "score": "float64"})
    # Only what changed is written: a pass that decides nothing new writes nothing (and `decided_at`
    # says when a row's decision last changed). Rows compare by every decided column.
    same_row = (
        """i.country_code = r.country_code AND i.party_id = r.party_id AND i.location_id = r.location_id"""
    )
    decided = """i.source = r.source AND i.identity_id = r.identity_id AND i.canonical = r.canonical
                 AND i.members = r.members AND i.rule = r.rule AND i.score IS NOT DISTINCT FROM r.score"""
    con.register("_id_rows", frame)
    try:
        con.execute(
            f"""DELETE FROM {IDENTITY} i WHERE {_KEY} IN (SELECT k FROM _id_keys)
                AND NOT EXISTS (SELECT 1 FROM _id_rows r WHERE {same_row} AND {decided})"""
        )
        con.execute(
            f"""INSERT INTO {IDENTITY}
                SELECT r.country_code, r.party_id, r.location_id, r.source, r.identity_id, r.canonical,
                       CAST(r.members AS INTEGER), r.rule, r.score, $now
                FROM _id_rows r WHERE NOT EXISTS (SELECT 1 FROM {IDENTITY} i WHERE {same_row})""",
            {"now": now},
        )
    finally:
        con.unregister("_id_rows")
    result.clusters, result.duplicates = (
        int(x)
        for x in con.execute(  # type: ignore[union-attr]
            f"SELECT count(DISTINCT identity_id), count(*) FILTER (WHERE NOT canonical) FROM {IDENTITY}"
        ).fetchone()
    )


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]  # type: ignore[index]
    )


def _published(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Locations NDW holds (our push mirror), when this warehouse pushes to NDW."""
    if not _exists(con, "ops", "ndw_pushed"):
        return set()
    return {
        key
        for (key,) in con.execute(
            "SELECT DISTINCT country_code || ':' || party_id || ':' || object_id AS k FROM ops.ndw_pushed "
            "WHERE kind = 'location' AND k IN (SELECT k FROM _id_keys)"
        ).fetchall()
    }


def not_a_duplicate(con: duckdb.DuckDBPyConnection, alias: str = "l") -> str:
    """SQL condition on a location (as `alias`): it is no other location's duplicate. Duplicates are
    not candidates of a publication at all (not rejections: nothing is wrong with them); BI finds
    them in `mart.identity`. Empty where the table does not exist (a snapshot older than it)."""
    if not _exists(con, "mart", "identity"):
        return "true"
    return f"""NOT EXISTS (SELECT 1 FROM {IDENTITY} i WHERE NOT i.canonical
                                       AND i.country_code = {alias}.country_code
                                   AND i.party_id = {alias}.party_id AND i.location_id
                                       = {alias}.location_id)"""
