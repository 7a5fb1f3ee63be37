"""The AFIR annex map: one typed row per data element of the Annex to Implementing Regulation (EU)
2025/655, with where our model, our OCPI 2.2.1 definition, NDW and the AFIR DATEX II profile carry it
(`annex.yaml`, beside this module).

`load()` validates the file's shape and the rule every row obeys: it is carried (a `model` column
plus an `ocpi` or `datex2` path) or it says why not (`not_carried`). Whether the named columns,
fields and profile elements exist is checked by evpipeline_tests/afir/test_annex.py against the
warehouse, the OCPI definition and the vendored profile schemas.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

Level = Literal["operator", "location", "station", "evse", "connector", "tariff"]
DataLevel = Literal["station", "point"]
NdwRule = Literal["afir-mandatory", "required", "optional"]

LEVELS: tuple[Level, ...] = get_args(Level)
NDW_RULES: tuple[NdwRule, ...] = get_args(NdwRule)
# The mart table holding each level's objects (a station is a group of EVSEs: mart.evses.station_id).
TABLES: dict[str, Level] = {
    "mart.operators": "operator",
    "mart.locations": "location",
    "mart.evses": "evse",
    "mart.connectors": "connector",
    "mart.tariffs": "tariff",
}
# Tables a row at a level may read its value from: the level's own, the objects above it (one value
# each), the objects below it (every one must carry it) and, for a connector, the tariffs it names.
REACHABLE: dict[Level, frozenset[str]] = {
    "operator": frozenset({"mart.operators", "mart.locations", "mart.evses", "mart.connectors"}),
    "location": frozenset({"mart.operators", "mart.locations", "mart.evses", "mart.connectors"}),
    "station": frozenset({"mart.operators", "mart.locations", "mart.evses", "mart.connectors"}),
    "evse": frozenset({"mart.operators", "mart.locations", "mart.evses", "mart.connectors"}),
    "connector": frozenset(
        {"mart.operators", "mart.locations", "mart.evses", "mart.connectors", "mart.tariffs"}
    ),
    "tariff": frozenset({"mart.operators", "mart.tariffs"}),
}
STATION_KEY = "mart.evses.station_id"  # what makes a station of EVSEs; every station-level row needs it

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_NUMBER = re.compile(r"^[A-Z][0-9]+$")
_COLUMN = re.compile(r"^mart\.[a-z_]+\.[a-z_][a-z0-9_]*$")
_OCPI = re.compile(r"^(Location|EVSE|Connector|Tariff)(\.[a-z_]+)+$")
_DATEX2 = re.compile(r"^[A-Z][A-Za-z0-9]*(/[A-Za-z][A-Za-z0-9]*)+$")
_ROW_KEYS = {
    "id",
    "number",
    "group",
    "category",
    "element",
    "description",
    "data_level",
    "wording",
    "level",
    "mandatory",
    "model",
    "present",
    "ocpi",
    "ndw",
    "datex2",
    "not_carried",
    "datex2_gap",
    "note",
}
_REQUIRED = {"id", "number", "group", "element", "data_level", "wording", "level", "mandatory"}


class AnnexError(ValueError):
    """The annex map does not validate; the message lists every problem, one per line."""


@dataclass(frozen=True)
class Source:
    """Where the wording of rows comes from (the `wording` of a row names these keys)."""

    key: str
    title: str
    where: str
    gives: str


@dataclass(frozen=True)
class Group:
    """One table of the Annex (its own grouping): static general, static recharging, dynamic recharging."""

    key: str
    table: str  # the Annex's table letter
    title: str


@dataclass(frozen=True)
class Row:
    """One data element of the Annex and where we carry it."""

    id: str  # stable short key
    number: str  # the Annex's number, e.g. A1
    group: str
    category: str | None  # the Annex's data category, where a source gives it
    element: str  # the Annex's data type, in its own wording
    description: str | None
    data_level: DataLevel  # the Annex's level: recharging station or recharging point
    wording: tuple[str, ...]  # source keys the wording comes from
    level: Level  # where our model holds the value (the objects completeness counts)
    mandatory: bool
    model: tuple[str, ...] = ()  # mart columns, schema.table.column
    present: Mapping[str, str] = field(
        default_factory=dict
    )  # column -> SQL presence condition (overrides the type's)
    ocpi: tuple[str, ...] = ()  # OCPI 2.2.1 field paths
    ndw: NdwRule | None = None  # what NDW's OCPI profile makes of the field
    datex2: tuple[str, ...] = ()  # AFIR DATEX II profile paths, Type/property/property
    not_carried: str | None = None
    datex2_gap: str | None = None  # why the DATEX II publication does not write the datex2 path(s) yet
    note: str | None = None

    @property
    def mapped(self) -> bool:
        """Carried end to end: a model column and an OCPI field or a DATEX II element."""
        return bool(self.model) and bool(self.ocpi or self.datex2)

    def columns(self) -> list[tuple[str, str]]:
        """(table, column) of every model column, plus the station key for a station-level row."""
        named = list(self.model)
        if self.level == "station" and STATION_KEY not in named:
            named.append(STATION_KEY)
        return [(c.rsplit(".", 1)[0], c.rsplit(".", 1)[1]) for c in named]


@dataclass(frozen=True)
class Annex:
    regulation: str
    sources: Mapping[str, Source]
    groups: tuple[Group, ...]
    rows: tuple[Row, ...]

    def row(self, row_id: str) -> Row:
        return next(r for r in self.rows if r.id == row_id)

    def in_group(self, key: str) -> list[Row]:
        return [r for r in self.rows if r.group == key]


PATH = Path(str(resources.files("evpipeline.afir").joinpath("annex.yaml")))


def _paths(value: Any) -> tuple[str, ...]:
    """A YAML string, list of strings or null as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"expected a string or a list of strings, got {value!r}")


def _row_problems(
    raw: Mapping[str, Any], groups: Mapping[str, Group], sources: Mapping[str, Source]
) -> list[str]:
    """What is wrong with one raw row (empty when it is fine)."""
    label = f"row {raw.get('id', '?')}"
    found = [f"{label}: unknown key(s) {sorted(set(raw) - _ROW_KEYS)}"] if set(raw) - _ROW_KEYS else []
    found += [f"{label}: missing {key}" for key in sorted(_REQUIRED - set(raw))]
    if found:
        return found
    try:
        model, ocpi, datex2 = _paths(raw.get("model")), _paths(raw.get("ocpi")), _paths(raw.get("datex2"))
    except TypeError as error:
        return [f"{label}: {error}"]
    checks = [
        (_ID.match(str(raw["id"])), "id must be lower_snake_case"),
        (_NUMBER.match(str(raw["number"])), "number must be the Annex's, e.g. A1"),
        (raw["group"] in groups, f"group {raw['group']!r} is not one of {sorted(groups)}"),
        (raw["level"] in LEVELS, f"level {raw['level']!r} is not one of {list(LEVELS)}"),
        (
            raw["data_level"] in get_args(DataLevel),
            f"data_level {raw['data_level']!r} is not station or point",
        ),
        (isinstance(raw["mandatory"], bool), "mandatory must be true or false"),
        (
            set(_paths(raw["wording"])) <= set(sources),
            f"wording names unknown sources {_paths(raw['wording'])}",
        ),
        (raw.get("ndw") in (None, *NDW_RULES), f"ndw {raw.get('ndw')!r} is not one of {list(NDW_RULES)}"),
        ((raw.get("ndw") is None) == (not ocpi), "ndw is given exactly when an ocpi path is"),
    ]
    found += [f"{label}: {message}" for ok, message in checks if not ok]
    for column in model:
        table = column.rsplit(".", 1)[0]
        if not _COLUMN.match(column) or table not in TABLES:
            found.append(f"{label}: model {column!r} is not mart.<table>.<column> of {sorted(TABLES)}")
        elif raw["level"] in LEVELS and table not in REACHABLE[raw["level"]]:
            found.append(f"{label}: a {raw['level']}-level row cannot read {table}")
    present = raw.get("present") or {}
    if not isinstance(present, Mapping) or set(present) - set(model):
        found.append(f"{label}: present must map model columns to SQL conditions")
    found += [
        f"{label}: ocpi {p!r} is not Location|EVSE|Connector|Tariff.field[.field]"
        for p in ocpi
        if not _OCPI.match(p)
    ]
    found += [
        f"{label}: datex2 {p!r} is not Type/property[/property]" for p in datex2 if not _DATEX2.match(p)
    ]
    reason = str(raw.get("not_carried") or "").strip()
    carried = bool(model) and bool(ocpi or datex2)
    if not carried and not reason:
        found.append(
            f"{label}: neither mapped (a model column plus an ocpi or datex2 path) nor explained "
            "(not_carried)"
        )
    if carried and reason:
        found.append(f"{label}: mapped and not_carried at once; say what a mapped row lacks in `note`")
    if raw.get("datex2_gap") is not None and not (datex2 and carried and str(raw["datex2_gap"]).strip()):
        found.append(f"{label}: datex2_gap explains a datex2 path the publication lacks on a mapped row")
    return found


def _row(raw: Mapping[str, Any]) -> Row:
    return Row(
        id=str(raw["id"]),
        number=str(raw["number"]),
        group=str(raw["group"]),
        category=raw.get("category"),
        element=" ".join(str(raw["element"]).split()),
        description=raw.get("description"),
        data_level=cast(DataLevel, raw["data_level"]),
        wording=_paths(raw["wording"]),
        level=cast(Level, raw["level"]),
        mandatory=bool(raw["mandatory"]),
        model=_paths(raw.get("model")),
        present=dict(raw.get("present") or {}),
        ocpi=_paths(raw.get("ocpi")),
        ndw=cast(NdwRule | None, raw.get("ndw")),
        datex2=_paths(raw.get("datex2")),
        not_carried=" ".join(str(raw["not_carried"]).split()) if raw.get("not_carried") else None,
        datex2_gap=" ".join(str(raw["datex2_gap"]).split()) if raw.get("datex2_gap") else None,
        note=" ".join(str(raw["note"]).split()) if raw.get("note") else None,
    )


def parse(document: Mapping[str, Any]) -> Annex:
    """The annex map from its parsed YAML; AnnexError lists every problem."""
    sources = {
        key: Source(key, str(s["title"]), str(s["where"]), str(s["gives"]))
        for key, s in (document.get("sources") or {}).items()
    }
    groups = {
        key: Group(key, str(g["table"]), str(g["title"])) for key, g in (document.get("groups") or {}).items()
    }
    raw_rows = document.get("rows") or []
    problems = [p for raw in raw_rows for p in _row_problems(raw, groups, sources)]
    for what in ("id", "number"):
        seen = [str(raw.get(what)) for raw in raw_rows]
        problems += [
            f"{what} {value!r} is used by more than one row"
            for value in sorted({v for v in seen if seen.count(v) > 1})
        ]
    if not raw_rows:
        problems.append("no rows")
    if problems:
        raise AnnexError("\n".join(problems))
    return Annex(
        str(document.get("regulation", "")),
        sources,
        tuple(groups.values()),
        tuple(_row(raw) for raw in raw_rows),
    )


def load(path: Path | None = None) -> Annex:
    """The annex map (default: the packaged annex.yaml, read once)."""
    return _load(str(path or PATH))


@functools.cache
def _load(path: str) -> Annex:
    return parse(yaml.safe_load(Path(path).read_text()) or {})
