"""Which objects the DATEX II publications carry, decided chunk by chunk so memory stays flat.

The objects are the OCPI export's (`evpipeline.ndw.export.select_objects`: public locations in the
access point's countries, not deleted, every NDW/AFIR-mandatory OCPI field present and plausible),
minus what the AFIR DATEX II profile needs beyond OCPI (`*_RULES`): an operator entry in the
reference data (operator id, legal name, helpdesk), a NUTS-1 region, a known time zone, one current
type per charging point, an ad hoc price with a DATEX II form, a connector type DATEX II knows.
What is left out is a `Rejection` with its reasons, cascaded like the OCPI export's (a charging
point without valid connectors, a site without valid points).

A location's verdict depends only on it, its EVSEs, connectors and their tariffs, so the fleet is
cut into chunks of `CHUNK_LOCATIONS` candidate locations in publication order and each chunk is
selected alone (`Chunks`): the verdicts are the whole fleet's, memory is one chunk's. A one-chunk
fleet reads the mart itself; up to `DIRECT_CHUNKS` chunks copy their rows out of the mart (one pass
each); beyond that, passes would grow with chunks x fleet, so the rows are staged once as Parquet
partitions and each chunk reads its own (crossover measured at ~8 chunks, docs/datex2.md).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from evpipeline.ndw.export import Model, candidate, rejection_rows, select_objects, sql_literal
from evpipeline.warehouse.rows import scalar

CHUNK_LOCATIONS = 25_000  # candidate locations selected together: memory is bounded by one chunk
DIRECT_CHUNKS = 6  # up to this many chunks each reads its rows from the mart
_FLUSH_ROWS = 32_768  # rows a staging write buffers before writing them out
# One chunk's model rows (same columns as the mart's tables): what the selection and rendering read.
CHUNK = Model(locations="_dx_locations", evses="_dx_evses", connectors="_dx_connectors")
_STAGED = ("locations", "evses", "connectors")
KEYS = "country_code, party_id, location_id"
# Columns neither the selection nor the publication reads: not staged (most of a row's bytes).
_BOOKKEEPING = (
    "source",
    "source_id",
    "source_last_updated",
    "deleted_at",
    "_observed_at",
    "_row_hash",
    "_ingested_at",
    "_run_id",
    "_lineage",
    "_change",
    "_prev_status",
    "_observed_seq",
    "reference_fields",
)
# Looked up by the rules below; filled by `evpipeline.datex2.inputs.create_lookups` before selecting.
ORGS, RATES, RATE_PROBLEMS, ZONES, CONNECTOR_TYPES = (
    "_dx_orgs",
    "_dx_rates",
    "_dx_rate_problems",
    "_dx_zones",
    "_dx_rule_connector_type",
)


@dataclass(frozen=True)
class Rejection:
    """An object left out of the publication, with why (the ids that apply to its level)."""

    object: str  # Location | EVSE | Connector | Tariff
    country_code: str
    party_id: str
    location_id: str | None = None
    evse_uid: str | None = None
    connector_id: str | None = None
    tariff_id: str | None = None
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


_EVSE_KEY = (
    "e.country_code = c.country_code AND e.party_id = c.party_id AND e.location_id = c.location_id AND "
    "e.evse_uid = c.evse_uid"
)
_PUBLISHED_CONNECTORS = f"_ndw_connectors c WHERE {_EVSE_KEY} AND len(c.reasons) = 0"
_FACTS = (
    "_dx_evse_facts"  # per EVSE: its valid connectors' current types, ad hoc rates, inexpressible tariffs
)

# The rules DATEX II adds to the OCPI export's, per level: (condition, reason), SQL over the verdict
# row (`c` connector, `e` EVSE, `l` location), the EVSE's facts (`f`) or the chunk's location row
# (`m`). Applied level by level, each after the cascade from the level below.
CONNECTOR_RULES: tuple[tuple[str, str], ...] = (
    (
        f"c.standard IS NOT NULL AND c.standard NOT IN (SELECT k FROM {CONNECTOR_TYPES})",
        "'standard ' || c.standard || ' has no DATEX II connectorType rule'",
    ),
)
EVSE_RULES: tuple[tuple[str, str], ...] = (
    ("f.currents > 1", "'connectors of both AC and DC: a DATEX II charging point has one currentType'"),
    (
        "NOT f.has_rate",
        "coalesce('ad hoc tariff ' || f.rate_problems, "
        "'no ad hoc price: none of its tariffs is AD_HOC_PAYMENT or untyped (AFIR: ad hoc price)')",
    ),
)
LOCATION_RULES: tuple[tuple[str, str], ...] = (
    (
        f"NOT EXISTS (SELECT 1 FROM {ORGS} o WHERE o.country_code = l.country_code "
        "AND o.party_id = l.party_id)",
        "'no operator entry in the reference data for ' || l.country_code || '/' || l.party_id"
        " || ' (AFIR: operator id, legal name, helpdesk)'",
    ),
    ("m.nuts_code IS NULL", "'NUTS-1 region unknown (reference data: nuts_code)'"),
    (
        f"m.time_zone IS NOT NULL AND m.time_zone NOT IN (SELECT time_zone FROM {ZONES})",
        "'time_zone ' || m.time_zone || ' is not an IANA time zone'",
    ),
)


def _evse_facts(con: duckdb.DuckDBPyConnection) -> None:
    """Per EVSE with valid connectors: how many current types they have, whether any of their
    tariffs is an ad hoc rate DATEX II can express, and the ad hoc tariffs it cannot (with why)."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {_FACTS} AS
        WITH valid AS (
            SELECT c.country_code, c.party_id, c.location_id, c.evse_uid, p.power_type,
            CAST(c.tariff_ids AS VARCHAR[]) AS tariff_ids
            FROM _ndw_connectors c JOIN {CHUNK.connectors} p USING (country_code, party_id, location_id,
                evse_uid, connector_id)
            WHERE len(c.reasons) = 0),
        refs AS (SELECT DISTINCT country_code, party_id, location_id, evse_uid,
            unnest(coalesce(tariff_ids, [])) AS tariff_id FROM valid),
        rates AS (
            SELECT r.country_code, r.party_id, r.location_id, r.evse_uid,
                   bool_or(x.rate_id IS NOT NULL) AS has_rate,
                   string_agg(DISTINCT CASE WHEN q.reason IS NOT NULL
                       THEN r.tariff_id || ' has no DATEX II form: ' || q.reason END, '; ')
                       AS rate_problems
            FROM refs r
            LEFT JOIN {RATES} x ON x.country_code = r.country_code AND x.party_id = r.party_id
                AND x.tariff_id = r.tariff_id
            LEFT JOIN {RATE_PROBLEMS} q ON q.country_code = r.country_code AND q.party_id = r.party_id
                AND q.tariff_id = r.tariff_id
            GROUP BY ALL)
        SELECT v.country_code, v.party_id, v.location_id, v.evse_uid,
               count(DISTINCT CASE WHEN v.power_type = 'DC' THEN 'dc' WHEN starts_with(v.power_type, 'AC_')
               THEN 'ac' END) AS currents,
               coalesce(any_value(r.has_rate), false) AS has_rate, any_value(r.rate_problems) AS rate_problems
        FROM valid v LEFT JOIN rates r USING (country_code, party_id, location_id, evse_uid)
        GROUP BY ALL""")


def _apply_datex_rules(con: duckdb.DuckDBPyConnection) -> None:
    """Add DATEX II's own reasons to the OCPI selection's verdicts and cascade them upwards."""
    for condition, reason in CONNECTOR_RULES:
        con.execute(
            f"UPDATE _ndw_connectors c SET reasons = list_append(reasons, {reason}) WHERE len(reasons) = 0 "
            f"AND {condition}"
        )
    _cascade_to_evses(con)
    _evse_facts(con)
    for condition, reason in EVSE_RULES:
        con.execute(f"""UPDATE _ndw_evses e SET reasons = list_append(e.reasons, {reason}) FROM {_FACTS} f
                        WHERE f.country_code = e.country_code AND f.party_id = e.party_id
                          AND f.location_id = e.location_id
                          AND f.evse_uid = e.evse_uid AND len(e.reasons) = 0 AND {condition}""")
    for condition, reason in LOCATION_RULES:
        con.execute(f"""UPDATE _ndw_locations l SET reasons = list_append(l.reasons, {reason})
                        FROM {CHUNK.locations} m WHERE m.country_code = l.country_code
                          AND m.party_id = l.party_id
                          AND m.location_id = l.location_id AND len(l.reasons) = 0 AND {condition}""")
    con.execute(f"""
        DROP TABLE {_FACTS};
        UPDATE _ndw_locations l SET reasons = list_append(l.reasons, 'no valid EVSEs')
        WHERE len(l.reasons) = 0 AND NOT EXISTS (
            SELECT 1 FROM _ndw_evses e WHERE e.country_code = l.country_code AND e.party_id = l.party_id
              AND e.location_id = l.location_id AND len(e.reasons) = 0)""")


def _cascade_to_evses(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        UPDATE _ndw_evses e SET reasons = list_append(e.reasons, 'no valid connectors')
        WHERE len(e.reasons) = 0 AND NOT EXISTS (SELECT 1 FROM {_PUBLISHED_CONNECTORS})""")


def select_chunk(con: duckdb.DuckDBPyConnection, countries: list[str]) -> None:
    """The verdicts (`_ndw_*` temp tables) of the chunk's objects: the OCPI export's selection plus DATEX
    II's rules. Needs the lookup tables (`evpipeline.datex2.inputs.create_lookups`)."""
    select_objects(con, countries, model=CHUNK)
    _apply_datex_rules(con)


class Chunks:
    """The candidate locations (optionally only those in `scope`, a table of location keys) cut into
    chunks of `CHUNK_LOCATIONS` in key (= publication) order. Iterating selects each chunk in turn:
    its rows in `CHUNK`, its verdicts in the `_ndw_*` tables. `keep` holds a chunk's render input
    until the document is written (on disk when there are several chunks)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, countries: list[str], scope: str | None = None
    ) -> None:
        self.con, self.countries, self.scope = con, countries, scope
        self.directory = Path(tempfile.mkdtemp(prefix="evp-datex2-"))
        self.count = 0
        self.kept: list[str] = []

    @property
    def staged(self) -> bool:
        """The model rows are staged as Parquet (else read from the mart per chunk)."""
        return self.count > DIRECT_CHUNKS

    def __enter__(self) -> Chunks:
        try:
            self._cut()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _cut(self) -> None:
        scope = f"SEMI JOIN {self.scope} s USING ({KEYS})" if self.scope else ""
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _dx_chunk_of AS
            SELECT {KEYS}, (row_number() OVER (ORDER BY {KEYS}) - 1) // {int(CHUNK_LOCATIONS)} AS chunk
            FROM mart.locations l {scope} WHERE {candidate(self.countries)}
        """)
        self.count = scalar(self.con.execute("SELECT coalesce(max(chunk) + 1, 0) FROM _dx_chunk_of"))
        if not self.staged:
            return
        # A partitioned write buffers up to this many rows before it writes them out (DuckDB's
        # default, 524,288, is most of a 100,000-location fleet's connectors: memory would grow with it).
        flush = scalar(self.con.execute("SELECT current_setting('partitioned_write_flush_threshold')"))
        self.con.execute(f"SET partitioned_write_flush_threshold = {_FLUSH_ROWS}")
        try:
            for table in _STAGED:
                self.con.execute(f"""
                    COPY (SELECT t.* EXCLUDE ({", ".join(_BOOKKEEPING)}), k.chunk FROM mart.{table} t
                        JOIN _dx_chunk_of k USING ({KEYS}))
                    TO {sql_literal(str(self.directory / table))} (FORMAT parquet, PARTITION_BY (chunk))""")
        finally:
            self.con.execute(f"SET partitioned_write_flush_threshold = {int(flush)}")

    def __exit__(self, *_: object) -> None:
        rows = "VIEW" if self.count == 1 and not self.scope else "TABLE"
        self.con.execute(
            ";".join(
                [
                    *(f"DROP {rows} IF EXISTS _dx_{table}" for table in _STAGED),
                    *(f"DROP TABLE IF EXISTS {table}" for table in ("_dx_chunk_of", *self.kept)),
                ]
            )
        )
        shutil.rmtree(self.directory, ignore_errors=True)

    def __iter__(self) -> Iterator[int]:
        for chunk in range(self.count):
            for table in _STAGED:
                if self.count == 1 and not self.scope:  # the whole fleet is the chunk: read the mart itself
                    self.con.execute(f"CREATE OR REPLACE TEMP VIEW _dx_{table} AS SELECT * FROM mart.{table}")
                else:
                    self.con.execute(
                        f"CREATE OR REPLACE TEMP TABLE _dx_{table} AS {self._rows(table, chunk)}"
                    )
            select_chunk(self.con, self.countries)
            yield chunk

    def _rows(self, table: str, chunk: int) -> str:
        """The query of a chunk's rows of a mart table."""
        columns = f"* EXCLUDE ({', '.join(_BOOKKEEPING)})"
        if not self.staged:  # one pass over the mart table, probing only the chunk's keys
            return (
                f"SELECT {columns} FROM mart.{table} SEMI JOIN (SELECT {KEYS} FROM _dx_chunk_of "
                f"WHERE chunk = {chunk}) k USING ({KEYS})"
            )
        files = self.directory / table / f"chunk={chunk}"
        if not files.is_dir():  # no row of this table in the chunk (locations without EVSEs)
            return f"SELECT {columns} FROM mart.{table} LIMIT 0"
        return (
            f"SELECT * FROM read_parquet({sql_literal(str(files / '*.parquet'))}, hive_partitioning = false)"
        )

    def keep(self, table: str) -> str:
        """Hold a chunk's temp `table` until the document is written; returns what to read it from:
        the table itself with one chunk, else a Parquet file (small row groups, so a render query reads
        only its sites') and the table is dropped."""
        if self.count == 1:
            self.kept.append(table)
            return table
        path = sql_literal(str(self.directory / f"{table}.parquet"))
        self.con.execute(
            f"COPY (SELECT * FROM {table} ORDER BY site_no) TO {path} (FORMAT parquet, ROW_GROUP_SIZE 8192); "
            f"DROP TABLE {table}"
        )
        return f"read_parquet({path})"


def chunk_rejections(con: duckdb.DuckDBPyConnection) -> list[Rejection]:
    """The current chunk's rejections."""
    return [Rejection(**{**row, "reasons": tuple(row["reasons"])}) for row in rejection_rows(con)]


def merged(found: Iterable[Rejection]) -> list[Rejection]:
    """The chunks' rejections in the whole-fleet report's order; a tariff that connectors of several
    chunks reference is reported once."""
    return sorted(
        set(found),
        key=lambda r: (
            r.object,
            r.country_code,
            r.party_id,
            r.location_id or "",
            r.evse_uid or "",
            r.connector_id or "",
            r.tariff_id or "",
        ),
    )
