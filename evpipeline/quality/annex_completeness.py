"""Completeness per CPO and AFIR Annex row (`quality.afir_annex_completeness`, docs/quality.md).

For each row of the Annex map (evpipeline/afir/annex.yaml) and each CPO with a published, live
location: the share of the row's objects (its `level`, among published-candidate objects) that
carry a value in every one of the row's `model` columns. Presence follows the column's type
(non-empty text, non-empty JSON or list, else non-null) unless the row gives a condition.

A value is read where the level can reach it: on the object itself or above it (its location, its
CPO's operator rows: any one carrying it), or below it (every live EVSE or connector must carry it,
and there must be one); a connector also reaches the tariffs it names. Rows with no model column
are listed with their `not_carried` reason; rows whose columns the warehouse lacks are listed with
the missing columns: never counted as 0.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from evpipeline.afir.annex import STATION_KEY, Annex, Level, Row, load
from evpipeline.quality import tables

# The alias each mart table's rows go by, in the conditions of annex.yaml (`present`) too.
ALIAS = {
    "mart.operators": "o",
    "mart.locations": "l",
    "mart.evses": "e",
    "mart.connectors": "c",
    "mart.tariffs": "t",
}
# How deep each level and table sits (operator = the CPO on top); tariffs are reached by reference.
DEPTH: dict[str, int] = {
    "operator": 0,
    "location": 1,
    "station": 2,
    "evse": 3,
    "connector": 4,
    "tariff": 4,
    "mart.operators": 0,
    "mart.locations": 1,
    "mart.evses": 3,
    "mart.connectors": 4,
}
# The candidate objects (public, live locations; EVSEs not REMOVED, as the report's other figures).
_CANDIDATES = """
    cand_l AS (SELECT * FROM mart.locations WHERE publish AND NOT is_deleted),
    cand_e AS (SELECT e.*, {station} AS _station FROM mart.evses e
               JOIN cand_l l ON l.country_code = e.country_code AND l.party_id = e.party_id
               AND l.location_id = e.location_id
               WHERE NOT e.is_deleted AND e.status <> 'REMOVED'),
    cand_c AS (SELECT c.*, e._station FROM mart.connectors c
               JOIN cand_e e ON e.country_code = c.country_code AND e.party_id = c.party_id
                            AND e.location_id = c.location_id AND e.evse_uid = c.evse_uid
               WHERE NOT c.is_deleted),
    cpos AS (SELECT DISTINCT country_code, party_id FROM cand_l)"""
# Each level's objects, under the alias its conditions use (with the objects above it joined).
_OBJECTS: dict[Level, tuple[str, str]] = {
    "operator": ("p", "cpos p"),
    "location": ("l", "cand_l l"),
    "station": (
        "s",
        """(SELECT country_code, party_id, location_id, _station FROM cand_e GROUP BY ALL) s
                        JOIN cand_l l ON l.country_code = s.country_code AND l.party_id = s.party_id
                                     AND l.location_id = s.location_id""",
    ),
    "evse": (
        "e",
        """cand_e e JOIN cand_l l ON l.country_code = e.country_code AND l.party_id = e.party_id
                                           AND l.location_id = e.location_id""",
    ),
    "connector": (
        "c",
        """cand_c c JOIN cand_e e ON e.country_code = c.country_code AND e.party_id = c.party_id
                                                AND e.location_id = c.location_id AND e.evse_uid = c.evse_uid
                          JOIN cand_l l ON l.country_code = c.country_code AND l.party_id = c.party_id
                                       AND l.location_id = c.location_id""",
    ),
    "tariff": (
        "t",
        """(SELECT * FROM mart.tariffs x WHERE NOT x.is_deleted AND EXISTS (
                          SELECT 1 FROM cand_c c WHERE c.country_code = x.country_code
                                                 AND c.party_id = x.party_id
                                                 AND list_contains(CAST(c.tariff_ids AS VARCHAR[]),
                                                 x.tariff_id))) t""",
    ),
}
# Objects below a level: their candidate relation and how they join the object above.
_BELOW = {"mart.locations": "cand_l", "mart.evses": "cand_e", "mart.connectors": "cand_c"}


def _join_down(alias: str, outer: str, level: Level) -> str:
    """How rows `alias` below belong to the `outer` object of `level`."""
    on = [f"{alias}.country_code = {outer}.country_code", f"{alias}.party_id = {outer}.party_id"]
    if DEPTH[level] >= 1:
        on.append(f"{alias}.location_id = {outer}.location_id")
    if level == "station":
        on.append(f"{alias}._station = {outer}._station")
    if level == "evse":
        on.append(f"{alias}.evse_uid = {outer}.evse_uid")
    return " AND ".join(on)


def by_type(alias: str, column: str, data_type: str) -> str:
    """The presence condition a column's type implies: non-empty text, JSON or list, else non-null."""
    ref, kind = f"{alias}.{column}", data_type.upper()
    if kind == "VARCHAR":
        return f"nullif(trim({ref}), '') IS NOT NULL"
    if kind == "JSON":
        return (
            f"({ref} IS NOT NULL AND CASE json_type({ref}) WHEN 'NULL' THEN false "  # SQL NULL or JSON null
            f"WHEN 'ARRAY' THEN json_array_length({ref}) > 0 WHEN 'OBJECT' THEN len(json_keys({ref})) > 0 "
            "ELSE true END)"
        )
    if kind.endswith("[]"):
        return f"coalesce(len({ref}) > 0, false)"
    return f"{ref} IS NOT NULL"


def column_condition(row: Row, column: str, types: dict[tuple[str, str], str]) -> str:
    """Whether the row's object carries `column` (schema.table.column), read where its level reaches it."""
    table, name = column.rsplit(".", 1)
    alias = ALIAS[table]
    cond = row.present.get(column) or by_type(alias, name, types[(table, name)])
    outer, _ = _OBJECTS[row.level]
    if table == "mart.operators":  # any of the CPO's operator rows
        return (
            f"EXISTS (SELECT 1 FROM mart.operators o WHERE o.country_code = {outer}.country_code "
            f"AND o.party_id = {outer}.party_id AND ({cond}))"
        )
    if table == "mart.tariffs" and row.level == "connector":  # a live tariff the connector names
        return (
            "EXISTS (SELECT 1 FROM mart.tariffs t WHERE NOT t.is_deleted AND t.country_code = c.country_code "
            "AND t.party_id = c.party_id AND list_contains(CAST(c.tariff_ids AS VARCHAR[]), t.tariff_id) "
            f"AND ({cond}))"
        )
    if table == "mart.tariffs" or DEPTH[table] <= DEPTH[row.level]:  # the object itself or one above it
        return f"coalesce({cond}, false)"
    below, on = _BELOW[table], _join_down(alias, outer, row.level)  # every live object below carries it
    return (
        f"(EXISTS (SELECT 1 FROM {below} {alias} WHERE {on}) "
        f"AND NOT EXISTS (SELECT 1 FROM {below} {alias} WHERE {on} AND NOT coalesce({cond}, false)))"
    )


def measure_sql(row: Row, types: dict[tuple[str, str], str]) -> str:
    """objects and present per CPO for one measurable row."""
    outer, objects = _OBJECTS[row.level]
    present = " AND ".join(column_condition(row, c, types) for c in row.model)
    return f"""
        SELECT '{row.id}' AS annex_id, {outer}.country_code, {outer}.party_id, count(*) AS objects,
               count(*) FILTER (WHERE {present}) AS present
        FROM {objects} GROUP BY ALL"""


def column_types(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """(schema.table, column) -> DuckDB type of every mart table and view column."""
    rows = con.execute("""
        SELECT schema_name || '.' || table_name, column_name, data_type FROM duckdb_columns()
        WHERE database_name = current_database() AND schema_name = 'mart'""").fetchall()
    return {(str(t), str(c)): str(d) for t, c, d in rows}


def unmeasured(row: Row, types: dict[tuple[str, str], str]) -> str | None:
    """Why the row cannot be measured here (no model column, or columns the warehouse lacks), else None."""
    if not row.model:
        return f"not carried: {row.not_carried}"
    missing = [f"{t}.{c}" for t, c in row.columns() if (t, c) not in types]
    return f"model column(s) not in the warehouse: {', '.join(missing)}" if missing else None


def write_annex_completeness(
    con: duckdb.DuckDBPyConnection, now: datetime, annex: Annex | None = None
) -> None:
    """Rewrite quality.afir_annex_completeness: every CPO x every Annex row."""
    annex = annex or load()
    types = column_types(con)
    con.execute("""CREATE OR REPLACE TEMP TABLE _annex_rows (annex_id VARCHAR, annex_number VARCHAR,
                       annex_group VARCHAR,
                   position INTEGER, element VARCHAR, level VARCHAR, model VARCHAR, reason VARCHAR)""")
    con.executemany(
        "INSERT INTO _annex_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [r.id, r.number, r.group, i, r.element, r.level, ", ".join(r.model) or None, unmeasured(r, types)]
            for i, r in enumerate(annex.rows, 1)
        ],
    )
    measured = [measure_sql(r, types) for r in annex.rows if unmeasured(r, types) is None]
    station = (
        "coalesce(e.station_id, e.evse_uid)" if tuple(STATION_KEY.rsplit(".", 1)) in types else "e.evse_uid"
    )
    rows = (
        " UNION ALL ".join(measured)
        or "SELECT NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, 0::BIGINT, 0::BIGINT WHERE false"
    )
    con.execute(f"DELETE FROM {tables.ANNEX_COMPLETENESS}")
    con.execute(
        f"""
        INSERT INTO {tables.ANNEX_COMPLETENESS} BY NAME
        WITH {_CANDIDATES.format(station=station)},
        measured AS ({rows})
        SELECT p.country_code, p.party_id, r.annex_id, r.annex_number, r.annex_group, r.position, r.element,
               r.level,
               r.model,
               CASE WHEN r.reason IS NULL THEN coalesce(m.objects, 0) END AS objects,
               CASE WHEN r.reason IS NULL THEN coalesce(m.present, 0) END AS present,
               CASE WHEN r.reason IS NULL AND m.objects > 0 THEN m.present / m.objects END AS share,
               coalesce(r.reason, CASE WHEN coalesce(m.objects, 0) = 0 THEN 'no ' || r.level || ' objects'
                   END) AS reason,
               $now AS computed_at
        FROM cpos p CROSS JOIN _annex_rows r
        LEFT JOIN measured m ON m.annex_id = r.annex_id AND m.country_code = p.country_code
            AND m.party_id = p.party_id
        ORDER BY p.country_code, p.party_id, r.position""",
        {"now": now},
    )
