"""DATEX II 3.7 publications (AFIR "Afir Energy Infrastructure" 01-00-00) from `mart`, streamed.

Two publications, both `EnergyInfrastructureTablePublication` (the only payload the DATEX II 3.7
schema set defines), in XML (`DATEXII_3_D2Payload.xsd`) or JSON (the JSON Schema of the same model):

- **static**: energy infrastructure table: Location -> EnergyInfrastructureSite; each EVSE -> one
  EnergyInfrastructureStation holding one ElectricChargingPoint (OCPI has no station level between
  location and EVSE; AFIR's authentication/payment methods are per station, OCPI's capabilities per
  EVSE); Connector -> Connector (in connector_id order; DATEX II connectors have no id). Operator and
  owner, coordinates, address, opening hours, connector type/format/charging mode/power/voltage/current,
  authentication and payment methods, energy mix where the model has them.
- **status**: the same sites/stations/points with id, version and `lastUpdated` only, plus the refill
  point status (rules.REFILL_POINT_STATUSES) in the refill point's extension element
  `refillPointStatus` in namespace `STATUS_NS` (XML `_refillPointExtension`, JSON
  `egiRefillPointExtensionG`): the 3.7 schema set has no status publication, and its extension points
  are open, so the document still validates.

Which objects: exactly the OCPI export's (`evpipeline.ndw.export.select_objects`: public locations in
the access point's countries, not deleted, every AFIR-mandatory element present), plus DATEX II's own
mandatory elements (a connector standard with no connectorType rule). Objects left out are listed
as `Rejection`s with their reasons.

Ids: site `CC:PARTY:LOCATION`, station and charging point `CC:PARTY:LOCATION:EVSE_UID` (the OCPI keys:
an EVSE uid is only unique within its location), the eMI3 evse_id as the point's
`externalIdentifier`. `version` and `lastUpdated`: the object's `last_updated` bumped to its newest
child, as in the OCPI export. Timestamps UTC (`YYYY-MM-DDTHH:MM:SSZ`); coordinates as xs:float
(IEEE single precision, the schema's type), written as the shortest text that round-trips.

Rendering and streaming: DuckDB renders each site's whole XML or JSON fragment in SQL (string
concatenation, XML escaping with `replace`, JSON strings with `to_json`, the rules' tables as CASE
expressions evaluated once per distinct value; opening hours once per distinct OCPI Hours value).
Memory is bounded by a chunk, not by the fleet: the candidate locations are cut into chunks of
`CHUNK_LOCATIONS` in publication order (`_Chunks`). A first pass selects each chunk (the OCPI
export's selection on the chunk's rows), collects what a document's head needs (site count, newest
version, publishers) and the reports (rejections, unmapped values), and keeps the chunk's render
input (`_survey`); a `Publisher` then writes any of the four documents from that one pass: the
head, then each chunk's sites rendered `SITES_PER_QUERY` at a time, fetched `BATCH_ROWS` at a time
and written to `out` one site per write.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal
from xml.sax.saxutils import escape, quoteattr

import duckdb

from evpipeline.datex2 import rules
from evpipeline.ndw.export import Model, candidate, nap_countries, rejection_rows, select_objects, sql_literal
from evpipeline.warehouse.rows import one_row, scalar

BATCH_ROWS = 500
TS = "%Y-%m-%dT%H:%M:%SZ"
STATUS_NS = "urn:evpipeline:datex2:refill-point-status:1"

NS = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "egi": "http://datex2.eu/schema/3/energyInfrastructure",
    "fac": "http://datex2.eu/schema/3/facilities",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "locx": "http://datex2.eu/schema/3/locationExtension",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "st": STATUS_NS,
}
# Language of the publication (and of its names), from the first access-point country; countries
# with more than one official language have no rule and fall back to English.
LANGUAGES = {"NLD": "nl", "DEU": "de", "AUT": "de", "FRA": "fr", "DNK": "da", "SWE": "sv", "NOR": "no",
             "POL": "pl", "ITA": "it", "ESP": "es", "PRT": "pt", "NZL": "en", "GBR": "en", "IRL": "en"}


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
    # (field, model value) -> rows: values with no DATEX II rule (left out) or a lossy one (`other`).
    unmapped: dict[tuple[str, str], int] = field(default_factory=dict)


class EmptyPublicationError(ValueError):
    """Nothing to publish: DATEX II requires at least one site in the table."""


# ------------------------------------------------------------------------------------------------
# Selection


CHUNK_LOCATIONS = 25_000  # candidate locations selected together: memory is bounded by one chunk
DIRECT_CHUNKS = 6  # up to this many chunks each reads its rows from the mart (crossover measured at ~8, docs/datex2.md)
SITES_PER_QUERY = 5_000  # sites rendered by one query (its fragments are held until sorted: bounded)
_ROW_GROUP = 8_192  # rows per Parquet row group of the render input: a query reads only its sites' groups
_FLUSH_ROWS = 32_768  # rows a staging write buffers before writing them out
# One chunk's model rows (same columns as the mart's tables): what the selection and rendering read.
CHUNK = Model(locations="_dx_locations", evses="_dx_evses", connectors="_dx_connectors")
_STAGED = ("locations", "evses", "connectors")
_KEYS = "country_code, party_id, location_id"
# Columns neither the selection nor the publication reads: not staged (most of a row's bytes).
_BOOKKEEPING = ("source", "source_id", "source_last_updated", "deleted_at", "_observed_at", "_row_hash", "_ingested_at",
                "_run_id", "_lineage", "_change", "_prev_status", "_observed_seq", "reference_fields")


def _select(con: duckdb.DuckDBPyConnection, countries: list[str]) -> None:
    """The OCPI export's selection of the chunk plus DATEX II's own mandatory elements, cascaded the same way."""
    select_objects(con, countries, model=CHUNK)
    known = ", ".join("'" + k + "'" for k in rules.CONNECTOR_TYPES)
    # RETURNING: whether each connector so rejected was valid before (this is its only reason).
    was_valid = con.execute(f"""
        UPDATE _ndw_connectors SET reasons = list_append(reasons, 'standard ' || standard || ' has no DATEX II connectorType rule')
        WHERE standard IS NOT NULL AND standard NOT IN ({known})
        RETURNING len(reasons) = 1""").fetchall()
    if not any(valid for (valid,) in was_valid):  # no valid connector lost: the OCPI selection's cascade stands
        return
    con.execute("""
        UPDATE _ndw_evses e SET reasons = list_append(e.reasons, 'no valid connectors')
        WHERE len(e.reasons) = 0 AND NOT EXISTS (
            SELECT 1 FROM _ndw_connectors c WHERE c.country_code = e.country_code AND c.party_id = e.party_id
              AND c.location_id = e.location_id AND c.evse_uid = e.evse_uid AND len(c.reasons) = 0);
        UPDATE _ndw_locations l SET reasons = list_append(l.reasons, 'no valid EVSEs')
        WHERE len(l.reasons) = 0 AND NOT EXISTS (
            SELECT 1 FROM _ndw_evses e WHERE e.country_code = l.country_code AND e.party_id = l.party_id
              AND e.location_id = l.location_id AND len(e.reasons) = 0);
    """)


class _Chunks:
    """The candidate locations cut into chunks of `CHUNK_LOCATIONS` in key (= publication) order.

    A location's verdict depends only on it, its EVSEs, connectors and their tariffs, so selecting
    chunk by chunk gives the whole fleet's verdicts while holding one chunk. Iterating selects each
    chunk in turn: its rows in `CHUNK` (the mart itself when the fleet is one chunk, else copies of
    the chunk's rows), its verdicts in the `_ndw_*` tables. Copies are read from the mart, one pass
    per chunk, while there are at most `DIRECT_CHUNKS`; beyond that, passes would grow with chunks x
    fleet, so the rows are staged once as Parquet partitions in a temporary directory and each chunk
    reads its own. `keep` holds a chunk's render input until the document is written (on disk when
    there are several chunks).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, countries: list[str]) -> None:
        self.con, self.countries = con, countries
        self.directory = Path(tempfile.mkdtemp(prefix="evp-datex2-"))
        self.count = 0
        self.kept: list[str] = []

    @property
    def staged(self) -> bool:
        """The model rows are staged as Parquet (else read from the mart per chunk)."""
        return self.count > DIRECT_CHUNKS

    def __enter__(self) -> _Chunks:
        try:
            self._cut()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _cut(self) -> None:
        # Each candidate location's chunk (keys only: small next to the rows).
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _dx_chunk_of AS
            SELECT {_KEYS}, (row_number() OVER (ORDER BY {_KEYS}) - 1) // {int(CHUNK_LOCATIONS)} AS chunk
            FROM mart.locations l WHERE {candidate(self.countries)}
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
                    COPY (SELECT t.* EXCLUDE ({", ".join(_BOOKKEEPING)}), k.chunk FROM mart.{table} t JOIN _dx_chunk_of k USING ({_KEYS}))
                    TO {sql_literal(str(self.directory / table))} (FORMAT parquet, PARTITION_BY (chunk))""")
        finally:
            self.con.execute(f"SET partitioned_write_flush_threshold = {int(flush)}")

    def __exit__(self, *_: object) -> None:
        rows = "VIEW" if self.count == 1 else "TABLE"
        self.con.execute(";".join([*(f"DROP {rows} IF EXISTS _dx_{table}" for table in _STAGED),
                                   *(f"DROP TABLE IF EXISTS {table}" for table in ("_dx_chunk_of", *self.kept))]))
        shutil.rmtree(self.directory, ignore_errors=True)

    def __iter__(self) -> Iterator[int]:
        for chunk in range(self.count):
            for table in _STAGED:
                if self.count == 1:  # the whole fleet is the chunk: read the mart itself
                    self.con.execute(f"CREATE OR REPLACE TEMP VIEW _dx_{table} AS SELECT * FROM mart.{table}")
                else:
                    self.con.execute(f"CREATE OR REPLACE TEMP TABLE _dx_{table} AS {self._rows(table, chunk)}")
            _select(self.con, self.countries)
            yield chunk

    def _rows(self, table: str, chunk: int) -> str:
        """The query of a chunk's rows of a mart table."""
        columns = f"* EXCLUDE ({', '.join(_BOOKKEEPING)})"
        if not self.staged:  # one pass over the mart table, probing only the chunk's keys
            return (f"SELECT {columns} FROM mart.{table} SEMI JOIN (SELECT {_KEYS} FROM _dx_chunk_of WHERE chunk = {chunk}) k "
                    f"USING ({_KEYS})")
        files = self.directory / table / f"chunk={chunk}"
        if not files.is_dir():  # no row of this table in the chunk (locations without EVSEs)
            return f"SELECT {columns} FROM mart.{table} LIMIT 0"
        return f"SELECT * FROM read_parquet({sql_literal(str(files / '*.parquet'))}, hive_partitioning = false)"

    def keep(self, name: str, chunk: int, query: str) -> str:
        """Hold `query`'s rows (ordered by site_no) until the document is written; returns what to read
        them from: with several chunks a Parquet file with small row groups (a render query reads only
        its sites' groups), with one a temp table (one chunk is bounded)."""
        if self.count == 1:
            table = f"_dx_{name}_{chunk}"
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")
            self.kept.append(table)
            return table
        path = sql_literal(str(self.directory / f"{name}-{chunk}.parquet"))
        self.con.execute(f"COPY ({query}) TO {path} (FORMAT parquet, ROW_GROUP_SIZE {_ROW_GROUP})")
        return f"read_parquet({path})"


def _rejections(con: duckdb.DuckDBPyConnection) -> list[Rejection]:
    return [Rejection(**{**row, "reasons": tuple(row["reasons"])}) for row in rejection_rows(con)]


def _merged(found: Iterable[Rejection]) -> list[Rejection]:
    """The chunks' rejections in the whole-fleet report's order; a tariff that connectors of several
    chunks reference is reported once."""
    return sorted(set(found), key=lambda r: (r.object, r.country_code, r.party_id, r.location_id or "",
                                             r.evse_uid or "", r.connector_id or "", r.tariff_id or ""))


def rejections(con: duckdb.DuckDBPyConnection, countries: list[str] | None = None) -> list[Rejection]:
    """Objects that cannot be published (missing mandatory element, invalid reference...), with reasons."""
    with _Chunks(con, nap_countries() if countries is None else countries) as chunks:
        return _merged(rejection for _ in chunks for rejection in _rejections(con))


# ------------------------------------------------------------------------------------------------
# Rendering, in DuckDB: one finished XML or JSON fragment per site.
#
# Every fragment is built in SQL (string concatenation; XML escaping with `replace`, JSON strings
# with `to_json`); Python only streams the finished fragments to `out`. The SQL helpers below
# return SQL expressions; the mapping tables become CASE expressions generated from `rules`.

def _case(expr: str, table: Mapping[Any, str | None]) -> str:
    """`table[expr]` in SQL (NULL where the table has no value, or None)."""
    whens = " ".join(f"WHEN {sql_literal(str(k))} THEN {sql_literal(v)}" for k, v in table.items() if v is not None)
    return f"(CASE {expr} {whens} END)"


def _in(expr: str, values: Iterable[str]) -> str:
    return f"{expr} IN ({', '.join(sql_literal(v) for v in values)})"


def _x(expr: str) -> str:
    """xml.sax.saxutils.escape."""
    return f"replace(replace(replace({expr}, '&', '&amp;'), '>', '&gt;'), '<', '&lt;')"


def _a(expr: str) -> str:
    """xml.sax.saxutils.quoteattr: the quoted attribute value."""
    body = f"replace(replace(replace({_x(expr)}, chr(10), '&#10;'), chr(13), '&#13;'), chr(9), '&#9;')"
    return (f"""(CASE WHEN NOT contains({expr}, '"') THEN '"' || {body} || '"' """
            f"""WHEN contains({expr}, '''') THEN '"' || replace({body}, '"', '&quot;') || '"' """
            f"""ELSE '''' || {body} || '''' END)""")


# DuckDB's to_json writes the \\u escapes of control characters with upper-case hex digits, Python's
# json.dumps with lower-case ones: only these differ.
_UPPER_ESCAPES = [f"\\u00{n:02X}" for n in (0x0B, 0x0E, 0x0F, *range(0x1A, 0x20))]


def _j(expr: str) -> str:
    """json.dumps(text, ensure_ascii=False): the JSON string literal."""
    plain = f"CAST(to_json({expr}) AS VARCHAR)"
    fixed = plain
    for upper in _UPPER_ESCAPES:
        fixed = f"replace({fixed}, {sql_literal(upper)}, {sql_literal(upper.lower())})"
    return f"(CASE WHEN regexp_matches({expr}, '[\\x0b\\x0e\\x0f\\x1a-\\x1f]') THEN {fixed} ELSE {plain} END)"


def _num(expr: str) -> str:
    """A DATEX II number in JSON: float(text), as json.dumps writes it (DuckDB's DOUBLE text is the same
    shortest round-trip repr as Python's)."""
    return f"CAST(CAST({expr} AS DOUBLE) AS VARCHAR)"


def _if(cond: str, then: str) -> str:
    return f"(CASE WHEN {cond} THEN {then} END)"


def _cat(*parts: str) -> str:
    """Concatenation that skips NULL (absent) parts."""
    return f"concat({', '.join(parts)})"


def _obj(*items: str) -> str:
    """A JSON object from optional `,"key":value` items."""
    return f"('{{' || substr({_cat(*items)}, 2) || '}}')"


class _Sql:
    """The SQL expressions of one publication's format and language."""

    def __init__(self, fmt: str, lang: str) -> None:
        self.xml = fmt == "xml"
        self.lang = lang

    def ml(self, tag: str, expr: str) -> str:
        """A MultilingualString: XML element `tag`, or the JSON value of key `tag`."""
        if self.xml:
            return (f"'<{tag}><com:values><com:value lang=\"{self.lang}\">' || {_x(expr)} || "
                    f"'</com:value></com:values></{tag}>'")
        return f"""'{{"values":[{{"lang":"{self.lang}","value":' || {_j(expr)} || '}}]}}'"""

    def leaf(self, tag: str, key: str, expr: str, *, text: bool = True) -> str:
        """A string element (`text`: escaped) or its `,"key":value` JSON item."""
        if self.xml:
            return f"'<{tag}>' || {_x(expr) if text else expr} || '</{tag}>'"
        value = _j(expr) if text else f"""'"' || {expr} || '"'"""
        return f"""',"{key}":' || {value}"""

    def coordinates(self, lat: str, lon: str, extension: str | None = None) -> str:
        if self.xml:
            return _if(f"{lat} IS NOT NULL AND {lon} IS NOT NULL",
                       "'<fac:locationReference xsi:type=\"loc:PointLocation\">' || "
                       + (f"{extension} || " if extension else "")
                       + f"'<loc:pointByCoordinates><loc:pointCoordinates><loc:latitude>' || {lat} || '</loc:latitude>"
                       f"<loc:longitude>' || {lon} || '</loc:longitude></loc:pointCoordinates></loc:pointByCoordinates>"
                       "</fac:locationReference>'")
        return _if(f"{lat} IS NOT NULL AND {lon} IS NOT NULL",
                   """',"locationReference":{"locPointLocation":{' || """
                   + (f"{extension} || ',' || " if extension else "")
                   + f"""'"pointByCoordinates":{{"pointCoordinates":{{"latitude":' || {_num(lat)} || ',"longitude":' || {_num(lon)} || '}}}}}}}}'""")

    def address(self) -> str:
        """The site's facilityLocation extension (columns of `site`)."""
        country = "dx_country"  # rules.COUNTRIES, looked up once per distinct country (`_render_sql`)
        if self.xml:
            parts = _cat(_if("postal_code IS NOT NULL", self.leaf("locx:postcode", "", "postal_code")),
                         _if("city IS NOT NULL", self.ml("locx:city", "city")),
                         _if(f"{country} IS NOT NULL", self.leaf("locx:countryCode", "", country, text=False)),
                         _if("address IS NOT NULL AND address <> ''",
                             "'<locx:addressLine order=\"1\"><locx:type>street</locx:type>' || "
                             + self.ml("locx:text", "address") + " || '</locx:addressLine>'"))
            return ("'<loc:_locationReferenceExtension><loc:facilityLocation>' || "
                    f"(CASE WHEN {parts} = '' THEN '<locx:address/>' ELSE '<locx:address>' || {parts} || '</locx:address>' END)"
                    " || '</loc:facilityLocation></loc:_locationReferenceExtension>'")
        address = _obj(_if("postal_code IS NOT NULL", self.leaf("", "postcode", "postal_code")),
                       _if("city IS NOT NULL", """',"city":' || """ + self.ml("", "city")),
                       _if(f"{country} IS NOT NULL", self.leaf("", "countryCode", country, text=False)),
                       _if("address IS NOT NULL AND address <> ''",
                           """',"addressLine":[{"order":1,"type":{"value":"street"},"text":' || """
                           + self.ml("", "address") + " || '}]'"))
        return f"""'"locLocationReferenceExtensionG":{{"FacilityLocation":{{"address":' || {address} || '}}}}'"""

    def organisation(self, role: str) -> str:
        name, website = f"({role} ->> 'name')", f"({role} ->> 'website')"
        org_id = f"(party || ':{role}')"
        if self.xml:
            body = (f"'<fac:{role} id=' || {_a(org_id)} || ' version=\"' || v || '\" xsi:type=\"fac:OrganisationSpecification\">' || "
                    + self.ml("fac:name", name) + " || "
                    + _cat(_if(f"{website} IS NOT NULL", self.leaf("fac:linkToGeneralInformation", "", website)))
                    + f" || '<fac:organisationUnit/></fac:{role}>'")
        else:
            body = (f"""',"{role}":{{"facOrganisationSpecification":{{"idG":' || {_j(org_id)} || ',"versionG":"' || v || '","name":' || """
                    + self.ml("", name) + " || "
                    + _cat(_if(f"{website} IS NOT NULL", self.leaf("", "linkToGeneralInformation", website)))
                    + """ || ',"organisationUnit":[{}]}}'""")
        return _if(f"{name} IS NOT NULL AND {name} <> ''", body)

    def period(self, name: str, var: str) -> str:
        begin, end = _utc(f"({var} ->> 'period_begin')"), _utc(f"({var} ->> 'period_end')")
        if self.xml:
            return (f"'<com:{name}><com:startOfPeriod>' || {begin} || '</com:startOfPeriod><com:endOfPeriod>' || {end}"
                    f" || '</com:endOfPeriod></com:{name}>'")
        return f"""'{{"startOfPeriod":"' || {begin} || '","endOfPeriod":"' || {end} || '"}}'"""

    def hours_ctes(self) -> str:
        """Opening hours, rendered once per distinct OCPI Hours value of the batch: `hours(h, open_all, inner)`."""
        sep = "''" if self.xml else "','"
        days = "['" + "', '".join(rules.WEEKDAYS[d] for d in sorted(rules.WEEKDAYS)) + "']"
        if self.xml:
            regular = ("'<com:validPeriod><com:recurringTimePeriodOfDay><com:startTimeOfPeriod>' || " + _x("(b || ':00')")
                       + " || '</com:startTimeOfPeriod><com:endTimeOfPeriod>' || " + _x("(e || ':00')")
                       + " || '</com:endTimeOfPeriod></com:recurringTimePeriodOfDay><com:recurringDayWeekMonthPeriod>' || "
                       f"array_to_string(list_transform(days, lambda d: '<com:applicableDay>' || {days}[d] || '</com:applicableDay>'), '')"
                       " || '</com:recurringDayWeekMonthPeriod></com:validPeriod>'")
            hinner = _cat("reg", "openings", "closings")
        else:
            regular = ("""'{"recurringTimePeriodOfDay":[{"startTimeOfPeriod":' || """ + _j("(b || ':00')")
                       + """ || ',"endTimeOfPeriod":' || """ + _j("(e || ':00')")
                       + """ || '}],"recurringDayWeekMonthPeriod":[{"comDayWeekMonth":{"applicableDay":[' || """
                       f"""array_to_string(list_transform(days, lambda d: '{{"value":"' || {days}[d] || '"}}'), ',')"""
                       """ || ']}}]}'""")
            valid = "concat_ws(',', reg, nullif(openings, ''))"
            hinner = _cat(_if(f"{valid} <> ''", f"""',"validPeriod":[' || {valid} || ']'"""),
                         _if("closings <> ''", """',"exceptionPeriod":[' || closings || ']'"""))
        return f"""
        hd AS (SELECT DISTINCT opening_times AS h FROM site WHERE opening_times IS NOT NULL),
        hp AS (
            SELECT h, coalesce(json_extract_string(h, '$.twentyfourseven') = 'true', false) AS tf,
                   coalesce(CAST(json_extract(h, '$.exceptional_closings') AS JSON[]), []) AS cl,
                   coalesce(CAST(json_extract(h, '$.exceptional_openings') AS JSON[]), []) AS op
            FROM hd),
        hr AS (
            SELECT h, string_agg({regular}, {sep} ORDER BY b, e) AS reg
            FROM (SELECT h, b, e, list_sort(list_distinct(list(wd))) AS days
                  FROM (SELECT h, r ->> 'period_begin' AS b, r ->> 'period_end' AS e, CAST(r ->> 'weekday' AS INTEGER) AS wd
                        FROM (SELECT h, unnest(coalesce(CAST(json_extract(h, '$.regular_hours') AS JSON[]), [])) AS r FROM hp WHERE NOT tf))
                  GROUP BY h, b, e)
            GROUP BY h),
        hours AS (
            SELECT h, tf AND len(cl) = 0 AS open_all, {hinner} AS hinner
            FROM (SELECT hp.h, tf, cl, hr.reg,
                         array_to_string(list_transform(op, lambda p: {self.period("validPeriod", "p")}), {sep}) AS openings,
                         array_to_string(list_transform(cl, lambda p: {self.period("exceptionPeriod", "p")}), {sep}) AS closings
                  FROM hp LEFT JOIN hr USING (h))),"""

    def hours(self) -> str:
        if self.xml:
            spec = ("'<fac:operatingHours id=' || " + _a("(site_id || ':hours')") + " || ' version=\"' || v || "
                    "'\" xsi:type=\"fac:OperatingHoursSpecification\"><fac:lastUpdated>' || v || "
                    "'</fac:lastUpdated><fac:overallPeriod><com:overallStartTime>' || v || '</com:overallStartTime>' || "
                    "hinner || '</fac:overallPeriod></fac:operatingHours>'")
            open_all = "'<fac:operatingHours xsi:type=\"fac:OpenAllHours\"/>'"
        else:
            spec = ("""',"operatingHours":{"facOperatingHoursSpecification":{"idG":' || """ + _j("(site_id || ':hours')")
                    + """ || ',"versionG":"' || v || '","lastUpdated":"' || v || '","overallPeriod":{"overallStartTime":"' || v || '"' || """
                    "hinner || '}}}'")
            open_all = """',"operatingHours":{"facOpenAllHours":{}}'"""
        return f"(CASE WHEN opening_times IS NULL THEN NULL WHEN open_all THEN {open_all} ELSE {spec} END)"

    def energy_mix(self) -> str:
        source = _case("(src ->> 'source')", rules.ENERGY_SOURCES)
        mapped = f"list_filter(coalesce(CAST(json_extract(energy_mix, '$.energy_sources') AS JSON[]), []), lambda src: {source} IS NOT NULL)"
        green = "(energy_mix ->> 'is_green_energy')"
        percentage = "(src ->> 'percentage')"
        if self.xml:
            ratio = (f"'<egi:electricEnergySourceRatio><egi:energySource>' || {source} || '</egi:energySource>' || "
                     f"(CASE WHEN {percentage} IS NULL THEN '<egi:sourceRatioValue/>' ELSE '<egi:sourceRatioValue><com:percentage>' || "
                     f"{_x(percentage)} || '</com:percentage></egi:sourceRatioValue>' END) || '</egi:electricEnergySourceRatio>'")
            body = _cat(_if(f"{green} IS NOT NULL", self.leaf("egi:isGreenEnergy", "", green, text=False)),
                        f"array_to_string(list_transform({mapped}, lambda src: {ratio}), '')")
            return (f"(CASE WHEN energy_mix IS NULL THEN NULL WHEN {body} = '' THEN '<egi:electricEnergyMix energyMixIndex=\"1\"/>' "
                    f"ELSE '<egi:electricEnergyMix energyMixIndex=\"1\">' || {body} || '</egi:electricEnergyMix>' END)")
        ratio = (f"""'{{"energySource":{{"value":"' || {source} || '"}},"sourceRatioValue":' || """
                 f"""(CASE WHEN {percentage} IS NULL THEN '{{}}' ELSE '{{"percentage":' || {_num(percentage)} || '}}' END) || '}}'""")
        ratios = f"array_to_string(list_transform({mapped}, lambda src: {ratio}), ',')"
        body = _cat(_if(f"{green} IS NOT NULL", f"""',"isGreenEnergy":' || (CASE WHEN {green} = 'true' THEN 'true' ELSE 'false' END)"""),
                    _if(f"{ratios} <> ''", f"""',"electricEnergySourceRatio":[' || {ratios} || ']'"""))
        return _if("energy_mix IS NOT NULL", f"""',"electricEnergyMix":[{{"energyMixIndex":1' || {body} || '}}]'""")

    def connector(self) -> str:
        # rules.CONNECTOR_TYPES, CHARGING_MODES and CONNECTOR_FORMATS, looked up once per distinct
        # (standard, format, power_type) (`_render_sql`): a CASE of 40 strings per connector costs.
        kind, mode, fmt = "dx_connector_type", "dx_charging_mode", "dx_connector_format"
        if self.xml:
            def leaf(tag: str, expr: str) -> str:
                return _if(f"{expr} IS NOT NULL", f"'<egi:{tag}>' || {expr} || '</egi:{tag}>'")
            return (f"'<egi:connector><egi:connectorType>' || {kind} || '</egi:connectorType>' || "
                    + _cat(leaf("chargingMode", mode), leaf("connectorFormat", fmt),
                           leaf("maxPowerAtSocket", "CAST(max_electric_power AS VARCHAR)"),
                           leaf("voltage", "CAST(max_voltage AS VARCHAR)"), leaf("maximumCurrent", "CAST(max_amperage AS VARCHAR)"))
                    + " || '</egi:connector>'")

        def enum(key: str, expr: str) -> str:
            return _if(f"{expr} IS NOT NULL", f"""',"{key}":{{"value":"' || {expr} || '"}}'""")

        def num(key: str, expr: str) -> str:
            return _if(f"{expr} IS NOT NULL", f"""',"{key}":' || {_num(expr)}""")
        return _obj(enum("connectorType", kind), enum("chargingMode", mode), enum("connectorFormat", fmt),
                    num("maxPowerAtSocket", "max_electric_power"), num("voltage", "max_voltage"), num("maximumCurrent", "max_amperage"))

    def station(self, kind: str) -> str:
        pid, version = "(site_id || ':' || evse_uid)", "evse_version"
        if self.xml:
            open_station = f"'<egi:energyInfrastructureStation id=' || {_a(pid)} || ' version=\"' || {version} || '\">' || "
            open_point = f"'<egi:refillPoint id=' || {_a(pid)} || ' version=\"' || {version} || '\" xsi:type=\"egi:ElectricChargingPoint\">' || "
            if kind == "status":
                return (open_station + f"'<fac:lastUpdated>' || {version} || '</fac:lastUpdated>' || " + open_point
                        + "'<fac:lastUpdated>' || evse_updated || '</fac:lastUpdated><egi:_refillPointExtension><st:refillPointStatus><st:status>' || "
                        "refill_status || '</st:status><st:lastUpdated>' || evse_updated || "
                        "'</st:lastUpdated></st:refillPointStatus></egi:_refillPointExtension></egi:refillPoint></egi:energyInfrastructureStation>'")
            coordinates = self.coordinates("evse_lat", "evse_lon")
            auth = ("array_to_string(list_transform(methods, lambda m: '<egi:authenticationAndIdentificationMethods>' || m || "
                    "'</egi:authenticationAndIdentificationMethods>'), '')")
            closed = _if("status = 'REMOVED'", "'<fac:operatingHours xsi:type=\"fac:UnknownOperatingHours\"><fac:closureInformation>"
                         "<fac:permananentlyClosed>true</fac:permananentlyClosed></fac:closureInformation></fac:operatingHours>'")
            return (open_station + f"'<fac:externalIdentifier>' || {_x('evse_uid')} || '</fac:externalIdentifier><fac:lastUpdated>' || {version} || "
                    f"'</fac:lastUpdated>' || {_cat(coordinates, auth)} || " + open_point
                    + _cat(_if("evse_id IS NOT NULL", self.leaf("fac:externalIdentifier", "", "evse_id")),
                           f"'<fac:lastUpdated>' || {version} || '</fac:lastUpdated>'", closed, coordinates, "connectors", "mix")
                    + " || '</egi:refillPoint></egi:energyInfrastructureStation>'")
        ids = f"""'"idG":' || {_j(pid)} || ',"versionG":"' || {version} || '"'"""
        if kind == "status":
            return (f"""'{{' || {ids} || ',"lastUpdated":"' || {version} || '","refillPoint":[{{"egiElectricChargingPoint":{{' || {ids} || """
                    """',"lastUpdated":"' || evse_updated || '","egiRefillPointExtensionG":{"refillPointStatus":{"status":{"value":"' || """
                    """refill_status || '"},"lastUpdated":"' || evse_updated || '"}}}}]}'""")
        coordinates = self.coordinates("evse_lat", "evse_lon")
        auth = _if("len(methods) > 0", """',"authenticationAndIdentificationMethods":[' || """
                   """array_to_string(list_transform(methods, lambda m: '{"value":"' || m || '"}'), ',') || ']'""")
        closed = _if("status = 'REMOVED'", """',"operatingHours":{"facUnknownOperatingHours":{"closureInformation":{"permananentlyClosed":true}}}'""")
        return (f"""'{{' || {ids} || ',"externalIdentifier":' || {_j('evse_uid')} || ',"lastUpdated":"' || {version} || '"' || """
                + _cat(coordinates, auth)
                + f""" || ',"refillPoint":[{{"egiElectricChargingPoint":{{' || {ids} || """
                + _cat(_if("evse_id IS NOT NULL", self.leaf("", "externalIdentifier", "evse_id")),
                       f"""',"lastUpdated":"' || {version} || '"'""", closed, coordinates,
                       """',"connector":[' || connectors || ']'""", "mix")
                + " || '}}]}'")

    def site(self, kind: str) -> str:
        if self.xml:
            head = "'<egi:energyInfrastructureSite id=' || " + _a("site_id") + " || ' version=\"' || v || '\">' || "
            tail = " || '</egi:energyInfrastructureSite>'"
            if kind == "status":
                return head + "'<fac:lastUpdated>' || v || '</fac:lastUpdated>' || stations" + tail
            return head + _cat(_if("name IS NOT NULL", self.ml("fac:name", "name")),
                               self.leaf("fac:externalIdentifier", "", "location_id"),
                               "'<fac:lastUpdated>' || v || '</fac:lastUpdated>'", self.hours(),
                               self.coordinates("lat", "lon", self.address()),
                               self.organisation("owner"), self.organisation("operator"), "stations") + tail
        head = """'{"idG":' || """ + _j("site_id") + """ || ',"versionG":"' || v || '"' || """
        stations = """',"energyInfrastructureStation":[' || stations || ']}'"""
        if kind == "status":
            return head + """',"lastUpdated":"' || v || '"' || """ + stations
        return head + _cat(_if("name IS NOT NULL", """',"name":' || """ + self.ml("", "name")),
                           self.leaf("", "externalIdentifier", "location_id"), """',"lastUpdated":"' || v || '"'""",
                           self.hours(), self.coordinates("lat", "lon", self.address()),
                           self.organisation("owner"), self.organisation("operator")) + " || " + stations


def _utc(expr: str) -> str:
    """An OCPI DateTime (UTC, maybe with fractions or an offset) as DATEX II UTC seconds; without an
    offset it is UTC (whatever the session's TimeZone)."""
    return (f"(CASE WHEN regexp_matches({expr}, '(Z|[+-]\\d\\d(:?\\d\\d)?)$') "
            f"THEN strftime(timezone('UTC', CAST({expr} AS TIMESTAMPTZ)), '{TS}') "
            f"ELSE strftime(CAST({expr} AS TIMESTAMP), '{TS}') END)")


def _current(power_type: str) -> str:
    """rules.current in SQL."""
    return f"(CASE WHEN {power_type} = 'DC' THEN 'DC' WHEN starts_with({power_type}, 'AC_') THEN 'AC' END)"


def _connector_format() -> str:
    whens = " ".join(f"WHEN format = {sql_literal(f)} AND {_current('power_type')} = {sql_literal(cur)} THEN {sql_literal(v)}"
                     for (f, cur), v in rules.CONNECTOR_FORMATS.items())
    return f"(CASE {whens} END)"


def _keep_render_input(chunks: _Chunks, chunk: int) -> tuple[str, str]:
    """The chunk's render input, kept until the document is written (returns what to read each
    from): "rows", its published connectors with their EVSE's columns, and "sites", its sites'
    location columns and versions (the location's `last_updated` bumped to its newest child), both
    numbered by site in publication order (`site_no`)."""
    rows = chunks.keep("rows", chunk, f"""
        SELECT dense_rank() OVER (ORDER BY country_code, party_id, location_id) AS site_no,
               country_code, party_id, location_id, country_code || ':' || party_id || ':' || location_id AS site_id,
               e.evse_uid, e.evse_id, CASE WHEN e.is_deleted THEN 'REMOVED' ELSE e.status END AS status,
               e.capabilities, CAST(CAST(e.latitude AS FLOAT) AS VARCHAR) AS evse_lat, CAST(CAST(e.longitude AS FLOAT) AS VARCHAR) AS evse_lon,
               e.last_updated AS e_updated, c.last_updated AS c_updated,
               c.connector_id, c.standard, c.format, c.power_type, c.max_voltage, c.max_amperage, c.max_electric_power
        FROM {CHUNK.connectors} c
        JOIN _ndw_connectors vc USING (country_code, party_id, location_id, evse_uid, connector_id)
        JOIN {CHUNK.evses} e USING (country_code, party_id, location_id, evse_uid)
        JOIN _ndw_evses ve USING (country_code, party_id, location_id, evse_uid)
        JOIN _ndw_locations vl USING (country_code, party_id, location_id)
        WHERE len(vc.reasons) = 0 AND len(ve.reasons) = 0 AND len(vl.reasons) = 0
        ORDER BY site_no""")
    sites = chunks.keep("sites", chunk, f"""
        SELECT r.site_no, r.site_id, strftime(greatest(l.last_updated, r.newest), '{TS}') AS v,
               l.country_code || ':' || l.party_id AS party, l.location_id,
               l.name, l.address, l.city, l.postal_code, l.country,
               CAST(CAST(l.latitude AS FLOAT) AS VARCHAR) AS lat, CAST(CAST(l.longitude AS FLOAT) AS VARCHAR) AS lon,
               CAST(l.opening_times AS VARCHAR) AS opening_times, l.energy_mix, l.operator, l.owner
        FROM (SELECT site_no, country_code, party_id, location_id, any_value(site_id) AS site_id,
                     max(greatest(e_updated, c_updated)) AS newest
              FROM {rows} GROUP BY site_no, country_code, party_id, location_id) r
        JOIN {CHUNK.locations} l USING (country_code, party_id, location_id)
        ORDER BY r.site_no""")
    return rows, sites


def _joined(value: str, key: str, sep: str) -> str:
    """An aggregate: the group's `value`s in `key` order, joined by `sep` (`string_agg(value, sep ORDER BY
    key)`, written as a plain list sorted per group: ~10% faster here than DuckDB's ordered aggregate,
    which sorts the whole input; keys are unique within a group)."""
    return f"array_to_string(list_transform(list_sort(list({{'k': {key}, 'v': {value}}})), lambda s: s.v), {sep})"


def _render_sql(kind: str, sql: _Sql, rows: str, sites: str, first: int, last: int) -> str:
    """A chunk's sites `first`..`last` (site_no) as (fragment, stations, connectors), in publication
    order, from its render input (`rows`, `sites`: what to read them from)."""
    sep = "''" if sql.xml else "','"
    static = kind == "static"
    auth = _case("cap", rules.AUTHENTICATION_METHODS)
    connectors = _joined(sql.connector(), "connector_id", sep) if static else "NULL"
    # The energy mix (the location's, on each of its points) rendered once per distinct value.
    mixes = (f"SELECT site_no, m.mix FROM site LEFT JOIN (SELECT energy_mix, {sql.energy_mix()} AS mix "
             "FROM (SELECT DISTINCT energy_mix FROM site)) m USING (energy_mix)") if static else "SELECT site_no, NULL AS mix FROM site"
    return f"""
        WITH batch AS (SELECT * FROM {rows} WHERE site_no BETWEEN {first} AND {last}),
        kinds AS (
            SELECT standard, format, power_type, {_case("standard", rules.CONNECTOR_TYPES)} AS dx_connector_type,
                   {_case("power_type", rules.CHARGING_MODES)} AS dx_charging_mode, {_connector_format()} AS dx_connector_format
            FROM (SELECT DISTINCT standard, format, power_type FROM batch)),
        rows AS (SELECT batch.*, dx_connector_type, dx_charging_mode, dx_connector_format FROM batch JOIN kinds
                 ON batch.standard IS NOT DISTINCT FROM kinds.standard AND batch.format IS NOT DISTINCT FROM kinds.format
                    AND batch.power_type IS NOT DISTINCT FROM kinds.power_type),
        site AS (
            SELECT * FROM (SELECT * FROM {sites} WHERE site_no BETWEEN {first} AND {last})
            LEFT JOIN (SELECT country, {_case("country", rules.COUNTRIES)} AS dx_country
                       FROM (SELECT DISTINCT country FROM {sites} WHERE site_no BETWEEN {first} AND {last})) USING (country)),
        {sql.hours_ctes() if static else ""}
        mixes AS ({mixes}),
        ev AS (
            SELECT site_no, evse_uid, any_value(site_id) AS site_id, any_value(evse_id) AS evse_id, any_value(status) AS status,
                   any_value(evse_lat) AS evse_lat, any_value(evse_lon) AS evse_lon,
                   list_filter(list_transform(CAST(any_value(capabilities) AS VARCHAR[]), lambda cap: {auth}), lambda m: m IS NOT NULL) AS methods0,
                   strftime(max(greatest(e_updated, c_updated)), '{TS}') AS evse_version,
                   strftime(any_value(e_updated), '{TS}') AS evse_updated,
                   coalesce({_case("any_value(status)", rules.REFILL_POINT_STATUSES)}, 'unknown') AS refill_status,
                   {connectors} AS connectors, count(*) AS n_connectors
            FROM rows GROUP BY site_no, evse_uid),
        st AS (
            SELECT site_no, {_joined("fragment", "evse_uid", sep)} AS stations, count(*) AS n_stations,
                   sum(n_connectors) AS n_connectors
            FROM (SELECT site_no, evse_uid, n_connectors, {sql.station(kind)} AS fragment
                  FROM (SELECT ev.*, mixes.mix, list_filter(methods0, lambda m, i: list_position(methods0, m) = i) AS methods
                        FROM ev JOIN mixes USING (site_no)))
            GROUP BY site_no)
        SELECT {sql.site(kind)} AS fragment, n_stations, n_connectors
        FROM site JOIN st USING (site_no) {"LEFT JOIN hours ON hours.h = site.opening_times" if static else ""}
        ORDER BY site_no
    """


def _unmapped(con: duckdb.DuckDBPyConnection, kind: str, rows: str, sites: str) -> dict[tuple[str, str], int]:
    """(field, model value) -> rows (sites, stations or connectors) with no rule or a lossy one, in a
    chunk's render input (`rows`, `sites`: what to read them from)."""
    if kind == "status":
        sql = f"""
            SELECT 'evse.status', status, count(*) FROM (SELECT DISTINCT site_no, evse_uid, status FROM {rows})
            WHERE status IS NULL OR NOT {_in("status", rules.REFILL_POINT_STATUSES)} GROUP BY ALL"""
    else:
        sql = f"""
            WITH r AS (SELECT site_no, evse_uid, capabilities, standard, format, power_type FROM {rows}),
                 site AS (SELECT site_no, country, energy_mix FROM {sites}),
                 ev AS (SELECT any_value(capabilities) AS capabilities, any_value(energy_mix) AS energy_mix
                        FROM r JOIN site USING (site_no) GROUP BY site_no, evse_uid)
            SELECT 'location.country', country, count(*) FROM site
            WHERE country IS NOT NULL AND country <> '' AND {_case("country", rules.COUNTRIES)} IS NULL GROUP BY ALL
            UNION ALL SELECT 'connector.standard', standard, count(*) FROM r WHERE {_in("standard", rules.LOSSY_CONNECTOR_TYPES)} GROUP BY ALL
            UNION ALL SELECT 'connector.power_type', coalesce(power_type, 'None'), count(*) FROM r
            WHERE {_case("power_type", rules.CHARGING_MODES)} IS NULL GROUP BY ALL
            UNION ALL SELECT 'connector.format', coalesce(format, 'None') || '/' || coalesce(power_type, 'None'), count(*) FROM r
            WHERE {_connector_format()} IS NULL GROUP BY ALL
            UNION ALL SELECT 'evse.capabilities', coalesce(cap, 'None'), count(*)
            FROM (SELECT unnest(CAST(capabilities AS VARCHAR[])) AS cap FROM ev)
            WHERE cap IS NULL OR NOT {_in("cap", rules.AUTHENTICATION_METHODS)} GROUP BY ALL
            UNION ALL SELECT 'energy_mix.source', coalesce(source, 'None'), count(*)
            FROM (SELECT src ->> 'source' AS source
                  FROM (SELECT unnest(coalesce(CAST(json_extract(energy_mix, '$.energy_sources') AS JSON[]), [])) AS src FROM ev))
            WHERE {_case("source", rules.ENERGY_SOURCES)} IS NULL GROUP BY ALL"""
    return {(str(f), str(v)): int(n) for f, v, n in con.execute(sql).fetchall()}


def _batches(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql`, fetched `BATCH_ROWS` at a time; a row is let go as soon as it is handed out,
    so no more than one batch of finished fragments is held."""
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
# Writer


class _Counting:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.bytes = 0

    def write(self, text: str) -> None:
        data = text.encode()
        self.out.write(data)
        self.bytes += len(data)


@dataclass
class _Survey:
    """What a document's head needs before its first site is written, and the reports."""

    sites: int = 0
    newest: str = ""  # the newest site version (TS text: orders like the time)
    parties: set[str] = field(default_factory=set)
    rejected: list[Rejection] = field(default_factory=list)
    unmapped: dict[str, Counter[tuple[str, str]]] = field(default_factory=lambda: {"static": Counter(), "status": Counter()})
    kept: list[tuple[int, str, str]] = field(default_factory=list)  # (sites, rows, site rows): each chunk's render input


def _survey(con: duckdb.DuckDBPyConnection, chunks: _Chunks) -> _Survey:
    """Select every chunk once: count its sites, their newest version and publishers (the head
    comes before the sites), collect rejections and unmapped values, and keep its render input."""
    survey = _Survey()
    for chunk in chunks:
        survey.rejected += _rejections(con)
        rows, site_rows = _keep_render_input(chunks, chunk)
        sites, newest, parties = one_row(con.execute(f"SELECT count(*), coalesce(max(v), ''), list(DISTINCT party) FROM {site_rows}"))
        if not sites:
            continue
        survey.sites += sites
        survey.newest = max(survey.newest, newest)
        survey.parties.update(parties)
        for kind, counts in survey.unmapped.items():
            counts.update(_unmapped(con, kind, rows, site_rows))
        survey.kept.append((sites, rows, site_rows))
    survey.rejected = _merged(survey.rejected)
    return survey


class Publisher:
    """The access point's objects selected once (chunk by chunk, see `_Chunks`), from which any of
    the four documents is written; use as a context manager (the kept render input is removed on exit).

    `rejections`: the objects that cannot be published, with reasons."""

    def __init__(self, con: duckdb.DuckDBPyConnection, countries: list[str] | None = None) -> None:
        self.con = con
        self.countries = nap_countries() if countries is None else countries
        self._chunks = _Chunks(con, self.countries)
        self._survey = _Survey()

    def __enter__(self) -> Publisher:
        self._chunks.__enter__()
        try:
            self._survey = _survey(self.con, self._chunks)
        except BaseException:
            self._chunks.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self._chunks.__exit__()

    @property
    def rejections(self) -> list[Rejection]:
        return list(self._survey.rejected)

    def write(self, kind: Literal["static", "status"], fmt: Literal["xml", "json"], out: BinaryIO, *,
              published_at: datetime | None = None) -> PublicationStats:
        """Stream one document into `out`.

        `published_at` (publicationTime) defaults to the newest `lastUpdated` among the published
        objects, so the same warehouse state writes the same bytes. Raises EmptyPublicationError
        when no object can be published (the schema requires at least one site); `rejections` says why.
        """
        if kind not in ("static", "status") or fmt not in ("xml", "json"):
            raise ValueError(f"unknown publication {kind}/{fmt}")
        survey = self._survey
        if not survey.sites:
            raise EmptyPublicationError(f"no publishable location in {self.countries}")
        when = (published_at.astimezone(UTC) if published_at else datetime.fromisoformat(survey.newest.replace("Z", "+00:00")))
        stats = PublicationStats(kind=kind, fmt=fmt, published_at=when.replace(microsecond=0), rejected=self.rejections,
                                 unmapped=dict(sorted(survey.unmapped[kind].items())))
        lang = LANGUAGES.get(self.countries[0], "en") if self.countries else "en"
        sink = _Counting(out)
        sink.write(_head(kind, fmt, stats.published_at, survey, self.countries, lang))
        sql = _Sql(fmt, lang)
        for sites, rows, site_rows in survey.kept:
            for first in range(1, sites + 1, SITES_PER_QUERY):
                render = _render_sql(kind, sql, rows, site_rows, first, first + SITES_PER_QUERY - 1)
                for fragment, stations, connectors in _batches(self.con, render):
                    stats.stations += stations
                    stats.points += stations
                    stats.connectors += int(connectors) if kind == "static" else 0
                    sink.write((fragment if fmt == "xml" or not stats.sites else "," + fragment) + "\n")
                    stats.sites += 1
        sink.write("</egi:energyInfrastructureTable></d2:payload>\n" if fmt == "xml" else "]}]}}}\n")
        stats.bytes = sink.bytes
        return stats


def write_publication(
    con: duckdb.DuckDBPyConnection,
    kind: Literal["static", "status"],
    fmt: Literal["xml", "json"],
    out: BinaryIO,
    *,
    countries: list[str] | None = None,
    published_at: datetime | None = None,
) -> PublicationStats:
    """Stream one DATEX II publication of the access point's objects into `out` (see `Publisher.write`;
    a Publisher writes several documents from one selection)."""
    if kind not in ("static", "status") or fmt not in ("xml", "json"):
        raise ValueError(f"unknown publication {kind}/{fmt}")
    with Publisher(con, countries) as publisher:
        return publisher.write(kind, fmt, out, published_at=published_at)


def _head(kind: str, fmt: str, published_at: datetime, survey: _Survey, countries: list[str], lang: str) -> str:
    """The document up to its first site: payload, publication time and creator, table."""
    stamp = published_at.strftime(TS)
    # The publisher: the CPO (country, party id), or every party's `CC:PARTY` when several.
    parties = sorted(survey.parties)
    creator_country = parties[0].split(":")[0]
    creator_id = parties[0].split(":")[1] if len(parties) == 1 else ",".join(parties)
    table_id = "evpipeline:" + "-".join(countries) + ":" + kind
    if fmt == "xml":
        declarations = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<d2:payload {declarations} xsi:type="egi:EnergyInfrastructureTablePublication"'
                f' lang="{lang}" modelBaseVersion="{rules.MODEL_BASE_VERSION}" profileName="{rules.PROFILE_NAME}" profileVersion="{rules.PROFILE_VERSION}">'
                f"<com:publicationTime>{stamp}</com:publicationTime>"
                f"<com:publicationCreator><com:country>{escape(creator_country)}</com:country>"
                f"<com:nationalIdentifier>{escape(creator_id)}</com:nationalIdentifier></com:publicationCreator>"
                f"<egi:energyInfrastructureTable id={quoteattr(table_id)} version={quoteattr(survey.newest)}>\n")
    header = {"lang": lang, "publicationTime": stamp, "publicationCreator": {"country": creator_country, "nationalIdentifier": creator_id}}
    prefix = json.dumps({"versionG": rules.SCHEMA_VERSION, "modelBaseVersionG": rules.MODEL_BASE_VERSION,
                         "profileNameG": rules.PROFILE_NAME, "profileVersionG": rules.PROFILE_VERSION})[:-1]
    return ('{"payload":' + prefix + ',"egiEnergyInfrastructureTablePublication":' + json.dumps(header)[:-1]
            + ',"energyInfrastructureTable":[{"idG":' + json.dumps(table_id) + ',"versionG":' + json.dumps(survey.newest)
            + ',"energyInfrastructureSite":[\n')
