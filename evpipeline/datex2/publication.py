"""The AFIR DATEX II publications of the access point's objects, streamed from `mart`.

Two documents, each as the AFIR profile's JSON and as XML:

- **static** (`payload` / `aegiEnergyInfrastructureTablePublication`; XML: DATEX II 3.7
  `d2:payload` with the profile's additions in 3.7's extension elements): one table of sites
  (OCPI locations) -> stations (physical chargers) -> charging points (EVSEs) -> connectors, with the
  operator and helpdesk (defined once, then referenced), addresses with time zone and NUTS-1 region,
  the ad hoc energy rate of every point (defined once per tariff, then referenced), all versioned
  (`versions`);
- **status** (`messageContainer` with an `aegiEnergyInfrastructureStatusPublication` and
  `exchangeInformation`, `snapshotPush`): every published charging point's status and ad hoc price
  (`energyRateUpdate`), each site/station/point a versioned reference into the static table.

How: the candidate locations are selected chunk by chunk (`selection.Chunks`); a first pass over the
chunks (`Publisher.__enter__`) builds each chunk's render input (`inputs.chunk_input`: rows, hashes,
versions), decides which site defines each organisation and which point each energy rate, and
collects what a document's head needs and the reports (rejections, unmapped values); then any of
the four documents is written from that one pass: its head, then each chunk's sites rendered
`SITES_PER_QUERY` at a time by DuckDB from the declarations in `document`, one site per write.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Literal
from xml.sax.saxutils import escape, quoteattr

import duckdb
import pyarrow as pa

from evpipeline.datex2 import rules, versions
from evpipeline.datex2.document import Declarations
from evpipeline.datex2.encoding import XML_NAMESPACES, Format, render, separator
from evpipeline.datex2.inputs import HOURS, PUBLISHED, ChunkInput, Lookups, chunk_input, create_lookups
from evpipeline.datex2.selection import CHUNK, RATES, Chunks, Rejection, chunk_rejections, merged

Kind = Literal["static", "status"]
Protocol = Literal["snapshotPush", "deltaPush"]
BATCH_ROWS = 500
SITES_PER_QUERY = 5_000  # sites rendered by one query (their fragments are held until sorted: bounded)
TS = "%Y-%m-%dT%H:%M:%SZ"
EXCHANGE_SPECIFICATION = (
    "3.0"  # DATEX II exchange specification the message container follows (profile example)
)
# Language of the publication, from the first access-point country; countries with more than one
# official language have no rule and fall back to English.
LANGUAGES = {
    "NLD": "nl",
    "DEU": "de",
    "AUT": "de",
    "FRA": "fr",
    "DNK": "da",
    "SWE": "sv",
    "NOR": "no",
    "POL": "pl",
    "ITA": "it",
    "ESP": "es",
    "PRT": "pt",
    "NZL": "en",
    "GBR": "en",
    "IRL": "en",
}


@dataclass(frozen=True)
class Creator:
    """Who publishes (`publicationCreator`): the identifier the access point gave the data supplier."""

    country: str  # ISO 3166 alpha-2
    national_identifier: str

    @classmethod
    def parse(cls, text: str) -> Creator:
        """`CC:identifier` (e.g. `NL:evpipeline`)."""
        country, sep, identifier = text.partition(":")
        if not sep or len(country) != 2 or not identifier:
            raise ValueError(
                f"publication creator {text!r}: expected CC:identifier (ISO 3166 alpha-2, "
                "then the identifier)"
            )
        return cls(country.upper(), identifier)


@dataclass
class PublicationStats:
    kind: str
    fmt: str
    published_at: datetime
    sites: int = 0
    stations: int = 0
    points: int = 0
    connectors: int = 0
    bytes: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # (field, model value) -> rows: values with no DATEX II rule (left out) or a lossy one.
    unmapped: dict[tuple[str, str], int] = field(default_factory=dict)


class EmptyPublicationError(ValueError):
    """Nothing to publish: DATEX II requires at least one site in the table."""


# ------------------------------------------------------------------------------------------------
# Rendering queries


def _joined(value: str, key: str, sep: str) -> str:
    """An aggregate: the group's `value`s in `key` order joined by `sep` (`key` unique in the group).
    The values are picked in the order that sorts the keys (two lists of one aggregation are
    aligned): faster than DuckDB's ordered string_agg, which sorts the whole input, and than sorting
    {key, value} structs, which carries the rendered text through the sort."""
    return f"array_to_string(list_select(list({value}), list_grade_up(list({key}))), {literal_sep(sep)})"


def literal_sep(sep: str) -> str:
    return "'" + sep + "'"


def _static_sql(doc: Declarations, fmt: Format, data: ChunkInput, first: int, last: int) -> str:
    """A chunk's sites `first`..`last` (site_no) as (fragment, stations, points, connectors), in order."""
    sep = separator(fmt)
    point = render(doc.charging_point(), fmt, "egi:refillPoint")
    station = render(doc.station(), fmt, "egi:energyInfrastructureStation")
    site = render(doc.site(), fmt, "egi:energyInfrastructureSite")
    # The facility location, rendered here in the one format written (the site and its stations repeat it).
    facility = render(doc.facility_location(), fmt, "loc:_locationReferenceExtension")
    return f"""
        WITH site AS (
            SELECT s.*, o.op_definition_{fmt} AS op_definition, o.op_reference_{fmt} AS op_reference,
                   o.hd_definition_{fmt} AS hd_definition, o.hd_reference_{fmt} AS hd_reference,
                   h.valid_{fmt} AS hours_valid_rendered, h.exceptions_{fmt} AS hours_exceptions_rendered
            FROM (SELECT *, {facility} AS facility FROM {data.sites}
                WHERE site_no BETWEEN {first} AND {last}) s
            JOIN _dx_orgs o USING (country_code, party_id)
            LEFT JOIN {HOURS} h ON h.opening_times = s.hours_key),
        batch AS (SELECT * FROM {data.points} WHERE site_no BETWEEN {first} AND {last}),
        definitions AS (
            SELECT b.point_id, {_joined(f"r.def_{fmt}", "r.rate_id", sep)} AS rate_defs
            FROM batch b, unnest(b.rate_def_ids) u(rate_id) JOIN {RATES} r USING (rate_id)
                GROUP BY b.point_id),
        point AS (
            SELECT b.*, d.rate_defs,
                   list_filter(b.rate_ids, lambda _x: NOT list_contains(b.rate_def_ids, _x)) AS rate_refs
            FROM batch b LEFT JOIN definitions d USING (point_id)),
        points_f AS (
            SELECT site_no, station_id, {_joined(point, "point_id", sep)} AS points,
            sum(len(connectors)) AS n_connectors
            FROM point GROUP BY site_no, station_id),
        station AS (
            SELECT st.*, site.facility, pf.points, pf.n_connectors
            FROM {data.stations} st JOIN site USING (site_no) JOIN points_f pf USING (site_no, station_id)),
        stations_f AS (
            SELECT site_no, {_joined(station, "station_id", sep)} AS stations, count(*) AS n_stations,
                   sum(n_points) AS n_points, sum(n_connectors) AS n_connectors
            FROM station GROUP BY site_no)
        SELECT {site} AS fragment, n_stations, n_points, n_connectors
        FROM site JOIN stations_f USING (site_no) ORDER BY site_no"""


def _status_sql(doc: Declarations, fmt: Format, data: ChunkInput, first: int, last: int) -> str:
    """A chunk's sites `first`..`last` as site status fragments (every point's status and prices)."""
    sep = separator(fmt)
    tag = "afir:refillPointStatus"
    point = doc.point_status().xml(tag, True) if fmt == "xml" else doc.point_status().json()
    station = (
        doc.station_status().xml("afir:energyInfrastructureStationStatus", True)
        if fmt == "xml"
        else doc.station_status().json()
    )
    site = (
        doc.site_status().xml("afir:energyInfrastructureSiteStatus", True)
        if fmt == "xml"
        else doc.site_status().json()
    )
    return f"""
        WITH batch AS (SELECT * FROM {data.points} WHERE site_no BETWEEN {first} AND {last}),
        updates AS (
            SELECT b.point_id, {_joined(f"r.upd_{fmt}", "r.rate_id", sep)} AS rate_updates
            FROM batch b, unnest(b.rate_ids) u(rate_id) JOIN {RATES} r USING (rate_id) GROUP BY b.point_id),
        point AS (
            SELECT b.*, u.rate_updates, strftime(timezone('UTC', b.status_time), '{TS}') AS status_updated
            FROM batch b LEFT JOIN updates u USING (point_id)),
        points_f AS (
            SELECT site_no, station_id, {_joined(point, "point_id", sep)} AS points,
            max(status_time) AS newest, count(*) AS n_points
            FROM point GROUP BY site_no, station_id),
        station AS (
            SELECT st.site_no, st.station_id, st.station_version, pf.points, pf.n_points, pf.newest,
                   strftime(timezone('UTC', pf.newest), '{TS}') AS station_status_updated
            FROM {data.stations} st JOIN points_f pf USING (site_no, station_id)),
        stations_f AS (
            SELECT site_no, {_joined(station, "station_id", sep)} AS stations, count(*) AS n_stations,
                   sum(n_points) AS n_points,
                   strftime(timezone('UTC', max(newest)), '{TS}') AS site_status_updated
            FROM station GROUP BY site_no)
        SELECT {site} AS fragment, n_stations, n_points, 0 AS n_connectors
        FROM (SELECT * FROM {data.sites} WHERE site_no BETWEEN {first} AND {last}) JOIN stations_f
            USING (site_no)
        ORDER BY site_no"""


def _batches(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql`, fetched `BATCH_ROWS` at a time; a row is let go as soon as it is handed out."""
    cur = con.execute(sql)
    while True:
        batch = cur.fetchmany(BATCH_ROWS)
        if not batch:
            return
        batch.reverse()
        while batch:
            yield batch.pop()
        del batch


# ------------------------------------------------------------------------------------------------
# The first pass


@dataclass
class _Survey:
    """What a document's head needs before its first site is written, and the reports."""

    sites: int = 0
    site_ids: list[str] = field(default_factory=list)  # the table's content (its sites by id)
    newest: str = ""
    rejected: list[Rejection] = field(default_factory=list)
    unmapped: dict[str, Counter[tuple[str, str]]] = field(
        default_factory=lambda: {"static": Counter(), "status": Counter()}
    )
    kept: list[tuple[int, ChunkInput]] = field(default_factory=list)  # (sites, render input) per chunk
    bumped: list[pa.Table] = field(
        default_factory=list
    )  # versions this publication gives that the ledger lacks
    table_version: str = "1"
    table_hash: str = ""
    digest: Any = field(default_factory=hashlib.md5)  # every object's id and version, and the rates' content


_BUMPS = {  # (table attribute, kind, id column, prefix)
    "points": ("point", "point_id", "point"),
    "stations": ("station", "station_id", "station"),
    "sites": ("site", "site_id", "site"),
}


def _bumps(con: duckdb.DuckDBPyConnection, data: ChunkInput) -> pa.Table:
    """The chunk's objects whose version this publication raises (kind, object_id, hash, version,
    changed_at)."""
    parts = [
        f"SELECT '{kind}' AS kind, {column} AS object_id, {prefix}_hash AS content_hash, "
        f"CAST({prefix}_version AS INTEGER) AS version, {prefix}_changed AS changed_at "
        f"FROM {getattr(data, attr)} WHERE {prefix}_bumped"
        for attr, (kind, column, prefix) in _BUMPS.items()
    ]
    parts.append(
        "SELECT 'hours', hours_id, hours_hash, CAST(hours_version AS INTEGER), hours_changed "
        f"FROM {data.sites} WHERE hours_id IS NOT NULL AND hours_bumped"
    )
    return con.execute(" UNION ALL ".join(parts)).fetch_arrow_table()


def _define_once(
    con: duckdb.DuckDBPyConnection, data: ChunkInput, parties: set[str], rate_ids: set[str]
) -> None:
    """Which site of the chunk defines each organisation (the first of its party in the document) and
    which point each energy rate (the first that has it); every other one references them."""
    con.execute(
        f"UPDATE {data.sites} SET defines_orgs = site_no IN (SELECT min(site_no) FROM {data.sites} "
        "WHERE NOT list_contains(CAST($defined AS VARCHAR[]), party) GROUP BY party)",
        {"defined": sorted(parties)},
    )
    parties.update(p for (p,) in con.execute(f"SELECT DISTINCT party FROM {data.sites}").fetchall())
    con.execute(
        f"""
        UPDATE {data.points} p SET rate_def_ids = f.ids
        FROM (SELECT point_id, list(rate_id ORDER BY rate_id) AS ids FROM (
                  SELECT rate_id, arg_min(point_id, (site_no, station_id, point_id)) AS point_id
                  FROM (SELECT site_no, station_id, point_id, unnest(rate_ids) AS rate_id FROM {data.points})
                  WHERE NOT list_contains(CAST($defined AS VARCHAR[]), rate_id) GROUP BY rate_id)
                      GROUP BY point_id) f
        WHERE f.point_id = p.point_id""",
        {"defined": sorted(rate_ids)},
    )
    rate_ids.update(
        r for (r,) in con.execute(f"SELECT DISTINCT unnest(rate_ids) FROM {data.points}").fetchall()
    )


def _versions_text(con: duckdb.DuckDBPyConnection, data: ChunkInput) -> str:
    """Every object of the chunk as `kind:id@version`, one per line, in a fixed order."""
    row = con.execute(f"""
        SELECT coalesce(array_to_string(list_sort(list(x)), '\n'), '') FROM (  -- a sorted list: an ordered
                                                                               -- string_agg is slower
            SELECT 'point:' || point_id || '@' || point_version AS x FROM {data.points}
            UNION ALL SELECT 'station:' || station_id || '@' || station_version FROM {data.stations}
            UNION ALL SELECT 'site:' || site_id || '@' || site_version FROM {data.sites}
            UNION ALL SELECT 'hours:' || hours_id || '@' || hours_version FROM {data.sites}
                WHERE hours_id IS NOT NULL)""").fetchone()
    return str(row[0]) if row else ""


def _unmapped(con: duckdb.DuckDBPyConnection, data: ChunkInput) -> dict[str, Counter[tuple[str, str]]]:
    """(field, model value) -> rows of the chunk's published objects with no rule or a lossy one."""
    lossy = ", ".join(f"'{k}'" for k in sorted(rules.LOSSY_CONNECTOR_TYPES))
    no_mode = ", ".join(f"'{k}'" for k, v in rules.CHARGING_MODES.items() if v is None)
    silent = ", ".join(f"'{k}'" for k, v in rules.AUTHENTICATION_METHODS.items() if v is None)
    no_facility = ", ".join(
        f"'{k}'" for k, v in {**rules.SERVICE_FACILITIES, **rules.EQUIPMENT_FACILITIES}.items() if v is None
    )
    no_parking = ", ".join(f"'{k}'" for k in sorted(rules.PARKING_WITHOUT_ELEMENT))
    static = con.execute(f"""
        SELECT 'connector.standard', standard, count(*) FROM {PUBLISHED} WHERE standard IN ({lossy})
            GROUP BY ALL
        UNION ALL SELECT 'connector.power_type', power_type, count(*) FROM {PUBLISHED}
            WHERE power_type IN ({no_mode}) GROUP BY ALL
        UNION ALL SELECT 'evse.capabilities', cap, count(*) FROM (
            SELECT unnest(CAST(capabilities AS VARCHAR[])) AS cap FROM {data.points}) WHERE cap IN ({silent})
            GROUP BY ALL
        UNION ALL SELECT 'evse.parking_restrictions', r, count(*) FROM (
            SELECT unnest(parking_restrictions) AS r FROM {data.points}) WHERE r IN ({no_parking})
            GROUP BY ALL
        UNION ALL SELECT 'location.facilities', f, count(*) FROM (
            SELECT unnest(CAST(l.facilities AS VARCHAR[])) AS f FROM {CHUNK.locations} l
            SEMI JOIN {data.sites} s USING (country_code, party_id, location_id)) WHERE f IN ({no_facility})
                GROUP BY ALL
        UNION ALL SELECT 'energy_mix.energy_sources', 'not in the profile', count(*) FROM {CHUNK.locations} l
            SEMI JOIN {data.sites} s USING (country_code, party_id, location_id)
            WHERE json_array_length(json_extract(l.energy_mix, '$.energy_sources')) > 0
                HAVING count(*) > 0""").fetchall()
    known = ", ".join(f"'{k}'" for k in rules.REFILL_POINT_STATUSES)
    status = con.execute(f"""
        SELECT 'evse.status', status, count(*) FROM {CHUNK.evses} e
        SEMI JOIN {data.points} p USING (country_code, party_id, location_id, evse_uid)
        WHERE status NOT IN ({known}) AND NOT e.is_deleted GROUP BY ALL""").fetchall()
    return {
        "static": Counter({(str(f), str(v)): int(n) for f, v, n in static}),
        "status": Counter({(str(f), str(v)): int(n) for f, v, n in status}),
    }


# ------------------------------------------------------------------------------------------------
# Publisher


class _Counting:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.bytes = 0

    def write(self, text: str) -> None:
        data = text.encode()
        self.out.write(data)
        self.bytes += len(data)


class Publisher:
    """The access point's objects selected and versioned once (chunk by chunk), from which any of the
    four documents is written; use as a context manager (the kept render input is removed on exit).

    `rejections`: what cannot be published and why; `version_changes`: the versions this publication
    gives that the ledger does not hold yet (a writer records them with `versions.record`)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        countries: list[str],
        creator: Creator,
        *,
        scope: str | None = None,
        pushed_status_only: bool = False,
    ) -> None:
        """`scope`: only the locations in this table (keys); `pushed_status_only`: only what a pushed
        status publication needs (`select_held`, `write_held` in JSON):
        the lane's and the snapshot push's case."""
        self.con, self.countries, self.creator = con, countries, creator
        self.pushed_status_only = pushed_status_only
        self.lang = LANGUAGES.get(countries[0], "en") if countries else "en"
        self.doc = Declarations(self.lang)
        self._chunks = Chunks(con, countries, scope)
        self._survey = _Survey()
        self.lookups: Lookups | None = None

    def __enter__(self) -> Publisher:
        self.lookups = create_lookups(
            self.con, self.countries, self.doc, status_json_only=self.pushed_status_only
        )
        self._chunks.__enter__()
        try:
            self._survey = self._first_pass()
        except BaseException:
            self._chunks.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._chunks.__exit__()

    def _first_pass(self) -> _Survey:
        assert self.lookups is not None
        survey, parties, rate_ids = _Survey(), set[str](), set[str]()
        for loss, count in self.lookups.rate_losses.items():
            survey.unmapped["static"][("tariff.price_component", loss)] += count
        for chunk in self._chunks:
            survey.rejected += chunk_rejections(self.con)
            data = chunk_input(self.con, chunk, self.lookups.ledger)
            sites = int(self.con.execute(f"SELECT count(*) FROM {data.sites}").fetchone()[0])  # type: ignore[index]
            if not sites:
                self.con.execute(
                    f"DROP TABLE {data.points}; DROP TABLE {data.stations}; DROP TABLE {data.sites}"
                )
                continue
            _define_once(self.con, data, parties, rate_ids)
            if not self.pushed_status_only:
                for kind, counts in _unmapped(self.con, data).items():
                    survey.unmapped[kind].update(counts)
            survey.sites += sites
            survey.site_ids += [
                s
                for (s,) in self.con.execute(f"SELECT site_id FROM {data.sites} ORDER BY site_no").fetchall()
            ]
            survey.bumped.append(_bumps(self.con, data))
            survey.digest.update(_versions_text(self.con, data).encode())
            survey.kept.append(
                (sites, ChunkInput(*(self._chunks.keep(t) for t in (data.points, data.stations, data.sites))))
            )
        survey.rejected = merged(survey.rejected)
        survey.bumped.append(
            self.con.execute(
                "SELECT 'operator' AS kind, op_id AS object_id, op_hash AS content_hash, "
                "CAST(op_version AS INTEGER) AS version, op_changed AS changed_at FROM _dx_orgs "
                "WHERE op_bumped UNION ALL SELECT 'helpdesk', hd_id, hd_hash, CAST(hd_version AS INTEGER), "
                "hd_changed FROM _dx_orgs WHERE hd_bumped"
            ).fetch_arrow_table()
        )
        self._version_table(survey)
        if self.pushed_status_only:
            return survey
        survey.digest.update(
            self.con.execute(
                "SELECT coalesce(string_agg(op_id || '@' || op_version || ',' || hd_id || '@' || hd_version, "
                "'\n' ORDER BY op_id), '') || coalesce((SELECT string_agg(def_json, '\n' ORDER BY rate_id) "
                "FROM _dx_rates), '') FROM _dx_orgs"
            )
            .fetchone()[0]  # type: ignore[index]  # an aggregate always returns a row
            .encode()
        )
        survey.digest.update(f"table:{self.table_id}@{survey.table_version}".encode())
        return survey

    @property
    def table_id(self) -> str:
        """The static table's id: the publisher's identifier and the access point's countries."""
        return f"{self.creator.country}:{self.creator.national_identifier}:table:{'-'.join(self.countries)}"

    def _version_table(self, survey: _Survey) -> None:
        """The table's version: its content is the set of its sites."""
        survey.table_hash = hashlib.md5("\n".join(sorted(survey.site_ids)).encode()).hexdigest()
        held = None
        if self.lookups and self.lookups.ledger:
            held = self.con.execute(
                f"SELECT content_hash, version FROM {versions.LEDGER} WHERE kind = 'table' AND object_id = ?",
                [self.table_id],
            ).fetchone()
        version = (held[1] if held else 0) + (0 if held and held[0] == survey.table_hash else 1)
        survey.table_version = str(version)
        if not held or held[0] != survey.table_hash:
            survey.bumped.append(
                pa.table(
                    {
                        "kind": ["table"],
                        "object_id": [self.table_id],
                        "content_hash": [survey.table_hash],
                        "version": pa.array([version], pa.int32()),
                        "changed_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
                    }
                )
            )

    @property
    def rejections(self) -> list[Rejection]:
        return list(self._survey.rejected)

    @property
    def table_version(self) -> str:
        return self._survey.table_version

    def version_changes(self) -> pa.Table:
        """The versions this publication gave that the ledger lacks (for `versions.record`)."""
        schema = pa.schema(
            [
                ("kind", pa.string()),
                ("object_id", pa.string()),
                ("content_hash", pa.string()),
                ("version", pa.int32()),
                ("changed_at", pa.timestamp("us", tz="UTC")),
            ]
        )
        return pa.concat_tables(
            [t.select(schema.names).cast(schema) for t in self._survey.bumped if t.num_rows]
            or [schema.empty_table()]
        )

    @property
    def sites(self) -> int:
        return self._survey.sites

    def static_digest(self) -> str:
        """What the static table says, in short: every object's id and version and the rates' content
        (the same digest: nothing new to push)."""
        return str(self._survey.digest.hexdigest())

    def held_rows(self) -> pa.Table:
        """Each published charging point with the versions of it, its station and site, and its rates:
        what a receiver holds once it accepted this static publication."""
        parts = [
            f"""SELECT p.point_id, p.country_code, p.party_id, p.location_id, p.site_id, s.site_version,
                                p.station_id,
                            st.station_version, p.point_version, p.rate_ids
                     FROM {data.points} p JOIN {data.stations} st USING (station_id) JOIN {data.sites} s
                         ON s.site_id = p.site_id"""
            for _, data in self._survey.kept
        ]
        if not parts:
            return pa.table({"point_id": pa.array([], pa.string())})
        return self.con.execute(" UNION ALL ".join(parts)).fetch_arrow_table()

    def select_held(self, held: str, *, changed_only: bool) -> int:
        """Choose the charging points a status push carries: those the receiver holds (`held`: a table
        like `ops.datex2_held`), all of them or (`changed_only`) those whose status or ad hoc price
        differs from what it holds; returns how many. `write_held` writes them."""
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _dx_send (point_id VARCHAR, site_id VARCHAR, site_version VARCHAR, "
            "station_id VARCHAR, station_version VARCHAR, point_version VARCHAR, table_version VARCHAR, "
            "status VARCHAR, price_hash VARCHAR, status_time TIMESTAMPTZ, rate_ids VARCHAR[])"
        )
        diff = (
            "WHERE p.status IS DISTINCT FROM h.status OR ph.price_hash IS DISTINCT FROM h.price_hash"
            if changed_only
            else ""
        )
        for _, data in self._survey.kept:
            self.con.execute(f"""
                INSERT INTO _dx_send
                WITH ph AS (
                    SELECT p.point_id, md5(string_agg(r.upd_json, '|' ORDER BY r.rate_id)) AS price_hash
                    FROM {data.points} p, unnest(p.rate_ids) u(rate_id) JOIN {RATES} r USING (rate_id)
                        GROUP BY p.point_id)
                SELECT p.point_id, h.site_id, h.site_version, h.station_id, h.station_version,
                       h.point_version, h.table_version,
                       p.status, ph.price_hash,
                       greatest(p.status_time, h.status_time),  -- a status's lastUpdated never goes back on
                                                                -- the receiver
                       p.rate_ids
                FROM {data.points} p JOIN {held} h USING (point_id) LEFT JOIN ph USING (point_id) {diff}""")
        return int(self.con.execute("SELECT count(*) FROM _dx_send").fetchone()[0])  # type: ignore[index]

    def sent(self) -> pa.Table:
        """The points `select_held` chose: (point_id, status, price_hash, status_time)."""
        return self.con.execute(
            "SELECT point_id, status, price_hash, status_time FROM _dx_send"
        ).fetch_arrow_table()

    def write_held(
        self, fmt: Format, out: BinaryIO, *, protocol: Protocol, published_at: datetime | None = None
    ) -> PublicationStats:
        """A status publication (`protocol`) of the points `select_held` chose, nested and versioned as
        the receiver holds them (its static table may be older than ours)."""
        when = (published_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        stats = PublicationStats(kind="status", fmt=fmt, published_at=when)
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _dx_held_points AS
            SELECT dense_rank() OVER (ORDER BY site_id) AS site_no, * FROM _dx_send;
            CREATE OR REPLACE TEMP TABLE _dx_held_stations AS
            SELECT DISTINCT site_no, station_id, station_version FROM _dx_held_points;
            CREATE OR REPLACE TEMP TABLE _dx_held_sites AS
            SELECT DISTINCT site_no, site_id, site_version FROM _dx_held_points""")
        versions_held = self.con.execute("SELECT DISTINCT table_version FROM _dx_send").fetchall()
        table_version = versions_held[0][0] if len(versions_held) == 1 else self.table_version
        sites = int(self.con.execute("SELECT count(*) FROM _dx_held_sites").fetchone()[0])  # type: ignore[index]
        sink = _Counting(out)
        head, tail = self._status_frame(fmt, when, protocol, table_version)
        sink.write(head)
        data = ChunkInput("_dx_held_points", "_dx_held_stations", "_dx_held_sites")
        for first in range(1, sites + 1, SITES_PER_QUERY):
            for fragment, stations, points, _ in _batches(
                self.con, _status_sql(self.doc, fmt, data, first, first + SITES_PER_QUERY - 1)
            ):
                stats.stations += stations
                stats.points += int(points)
                sink.write((fragment if fmt == "xml" or not stats.sites else "," + fragment) + "\n")
                stats.sites += 1
        sink.write(tail)
        stats.bytes = sink.bytes
        return stats

    def write(
        self, kind: Kind, fmt: Format, out: BinaryIO, *, published_at: datetime | None = None
    ) -> PublicationStats:
        """Stream one document into `out`; `published_at` (publicationTime: when it was created)
        defaults to now. Raises EmptyPublicationError when nothing can be published (the table
        needs at least one site); `rejections` says why."""
        if kind not in ("static", "status") or fmt not in ("xml", "json"):
            raise ValueError(f"unknown publication {kind}/{fmt}")
        survey = self._survey
        if not survey.sites:
            raise EmptyPublicationError(f"no publishable location in {self.countries}")
        when = (published_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        stats = PublicationStats(
            kind=kind,
            fmt=fmt,
            published_at=when,
            rejected=self.rejections,
            unmapped=dict(sorted(survey.unmapped[kind].items())),
        )
        sink = _Counting(out)
        head, tail = (self._static_frame if kind == "static" else self._status_frame)(fmt, when)
        sink.write(head)
        render_sql = _static_sql if kind == "static" else _status_sql
        for sites, data in survey.kept:
            for first in range(1, sites + 1, SITES_PER_QUERY):
                for fragment, stations, points, connectors in _batches(
                    self.con, render_sql(self.doc, fmt, data, first, first + SITES_PER_QUERY - 1)
                ):
                    stats.stations += stations
                    stats.points += int(points)
                    stats.connectors += int(connectors)
                    sink.write((fragment if fmt == "xml" or not stats.sites else "," + fragment) + "\n")
                    stats.sites += 1
        sink.write(tail)
        stats.bytes = sink.bytes
        return stats

    # -- heads and tails ----------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        return {"confidentiality": {"value": "noRestriction"}, "informationStatus": {"value": "real"}}

    def _creator(self) -> dict[str, str]:
        return {"country": self.creator.country, "nationalIdentifier": self.creator.national_identifier}

    def _static_frame(self, fmt: Format, when: datetime) -> tuple[str, str]:
        stamp = when.strftime(TS)
        if fmt == "json":
            publication = {
                "lang": self.lang,
                "publicationTime": stamp,
                "publicationCreator": self._creator(),
                "headerInformation": self._header(),
            }
            head = (
                '{"payload":'
                + json.dumps(_payload_g())[:-1]
                + ',"aegiEnergyInfrastructureTablePublication":'
                + json.dumps(publication)[:-1]
                + ',"energyInfrastructureTable":[{"idG":'
                + json.dumps(self.table_id)
                + ',"versionG":'
                + json.dumps(self.table_version)
                + ',"energyInfrastructureSite":[\n'
            )
            return head, "]}]}}}\n"
        declarations = " ".join(f'xmlns:{p}="{u}"' for p, u in XML_NAMESPACES.items())
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<d2:payload {declarations} xsi:type="egi:EnergyInfrastructureTablePublication"'
            f' lang="{self.lang}"'
            f' modelBaseVersion="{rules.MODEL_BASE_VERSION}" profileName="{rules.PROFILE_NAME}"'
            f' profileVersion="{rules.PROFILE_VERSION}">'
            f"<com:publicationTime>{stamp}</com:publicationTime>{_xml_creator('com', self._creator())}"
            f"<com:_payloadPublicationExtension>{_xml_header(self._header())}</com:_payloadPublicationExtension>"
            f"<egi:energyInfrastructureTable id={quoteattr(self.table_id)} "
            f"version={quoteattr(self.table_version)}>\n"
        )
        return head, "</egi:energyInfrastructureTable></d2:payload>\n"

    def _status_frame(
        self,
        fmt: Format,
        when: datetime,
        protocol: Protocol = "snapshotPush",
        table_version: str | None = None,
    ) -> tuple[str, str]:
        stamp = when.strftime(TS)
        table_version = table_version or self.table_version
        reference = {
            "targetClass": "EnergyInfrastructureTable",
            "idG": self.table_id,
            "versionG": table_version,
        }
        exchange = {
            "exchangeContext": {
                "codedExchangeProtocol": {"value": protocol},
                "exchangeSpecificationVersion": EXCHANGE_SPECIFICATION,
                "supplierOrCisRequester": {"name": self.creator.national_identifier},
            },
            "dynamicInformation": {
                "exchangeStatus": {"value": "online"},
                "messageGenerationTimestamp": stamp,
            },
        }
        if fmt == "json":
            publication = {
                "lang": self.lang,
                "publicationTime": stamp,
                "tableReference": [reference],
                "publicationCreator": self._creator(),
                "headerInformation": self._header(),
            }
            head = (
                '{"messageContainer":{"payload":['
                + json.dumps(_payload_g())[:-1]
                + ',"aegiEnergyInfrastructureStatusPublication":'
                + json.dumps(publication)[:-1]
                + ',"energyInfrastructureSiteStatus":[\n'
            )
            return head, ']}}],"exchangeInformation":' + json.dumps(exchange) + "}}\n"
        # No XSD exists for the status publication: its XML mirrors the profile's JSON (encoding.py).
        declarations = " ".join(f'xmlns:{p}="{u}"' for p, u in XML_NAMESPACES.items() if p in ("com", "afir"))
        head = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<afir:messageContainer {declarations}><afir:payload>"
            f"<afir:modelBaseVersionG>{rules.MODEL_BASE_VERSION}</afir:modelBaseVersionG>"
            f"<afir:profileNameG>{rules.PROFILE_NAME}</afir:profileNameG>"
            f"<afir:profileVersionG>{rules.PROFILE_VERSION}</afir:profileVersionG>"
            f"<afir:aegiEnergyInfrastructureStatusPublication><afir:lang>{self.lang}</afir:lang>"
            f"<afir:publicationTime>{stamp}</afir:publicationTime>"
            f'<afir:tableReference targetClass="EnergyInfrastructureTable" id={quoteattr(self.table_id)} '
            f"version={quoteattr(table_version)}/>"
            f"{_xml_creator('afir', self._creator())}{_xml_header(self._header())}\n"
        )
        tail = (
            "</afir:aegiEnergyInfrastructureStatusPublication></afir:payload><afir:exchangeInformation><afir:exchangeContext>"
            f"<afir:codedExchangeProtocol>{protocol}</afir:codedExchangeProtocol>"
            f"<afir:exchangeSpecificationVersion>{EXCHANGE_SPECIFICATION}</afir:exchangeSpecificationVersion>"
            f"<afir:supplierOrCisRequester><afir:name>{escape(self.creator.national_identifier)}</afir:name></afir:supplierOrCisRequester>"
            "</afir:exchangeContext><afir:dynamicInformation><afir:exchangeStatus>online</afir:exchangeStatus>"
            f"<afir:messageGenerationTimestamp>{stamp}</afir:messageGenerationTimestamp></afir:dynamicInformation>"
            "</afir:exchangeInformation></afir:messageContainer>\n"
        )
        return head, tail


def _payload_g() -> dict[str, str]:
    return {
        "modelBaseVersionG": rules.MODEL_BASE_VERSION,
        "profileNameG": rules.PROFILE_NAME,
        "profileVersionG": rules.PROFILE_VERSION,
    }


def _xml_creator(prefix: str, creator: dict[str, str]) -> str:
    return (
        f"<{prefix}:publicationCreator><{prefix}:country>{escape(creator['country'])}</{prefix}:country>"
        f"<{prefix}:nationalIdentifier>{escape(creator['nationalIdentifier'])}</{prefix}:nationalIdentifier></{prefix}:publicationCreator>"
    )


def _xml_header(header: dict[str, Any]) -> str:
    return (
        "<afir:headerInformation>"
        f"<afir:confidentiality>{header['confidentiality']['value']}</afir:confidentiality>"
        f"<afir:informationStatus>{header['informationStatus']['value']}</afir:informationStatus>"
        "</afir:headerInformation>"
    )


def rejections(con: duckdb.DuckDBPyConnection, countries: list[str], creator: Creator) -> list[Rejection]:
    """Objects that cannot be published (missing mandatory element, invalid reference...), with reasons."""
    with Publisher(con, countries, creator) as publisher:
        return publisher.rejections


def write_publication(
    con: duckdb.DuckDBPyConnection,
    kind: Kind,
    fmt: Format,
    out: BinaryIO,
    *,
    countries: list[str],
    creator: Creator,
    published_at: datetime | None = None,
) -> PublicationStats:
    """Stream one DATEX II publication into `out` (a Publisher writes several from one selection)."""
    if kind not in ("static", "status") or fmt not in ("xml", "json"):
        raise ValueError(f"unknown publication {kind}/{fmt}")
    with Publisher(con, countries, creator) as publisher:
        return publisher.write(kind, fmt, out, published_at=published_at)
