"""Operator reference data: what a CPO supplies where its sources are silent.

AFIR and NDW want every public location to carry opening times, an energy mix, parking
restrictions and the ad-hoc tariff of each connector; Zaptec's API knows none of these and EVRoam
few. The charge point operator states them once, in a reference file (`seed_data/reference.yaml`,
or the file named by `EVPIPELINE_REFERENCE_FILE`):

- `tariffs`: OCPI 2.2.1 Tariff objects, validated with our OCPI definition; they become
  `mart.tariffs` rows with `source = 'reference'` (a tariff change is an ad-hoc price change and
  travels on the real-time lane like a status change).
- `rules`: values for mart fields, each rule matching rows by any of `source`, `country_code`,
  `party_id`, `location_id`, `evse_uid`. For each row and field the most specific matching rule
  applies (evse > location > party > country > source; among equals the one listed last). A source
  value always wins, unless the rule lists the field under `override`.

Every value that came from a rule is recorded on its mart row (`reference_fields`: field -> rule
id), so lineage says "operator-supplied". A file that does not validate is refused whole with one
line naming the entry and the problem; the warehouse keeps the last valid reference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import TypeAdapter, ValidationError

from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import Migration, register, source_table

RULES = "reference.rules"
TARIFFS = "reference.tariffs"
PARTIES = "reference.parties"
KEYS = {RULES: ("rule_id", "level", "field"), TARIFFS: ("country_code", "party_id", "tariff_id"), PARTIES: ("rule_id",)}
PARTY_MATCH = ("source", "location_id", "operator")  # operator: the location's operator name as the source gives it
MATCH_FIELDS = ("source", "country_code", "party_id", "location_id", "evse_uid")
# How much each match field narrows a rule: a rule naming an EVSE beats one naming its location, ...
SPECIFICITY = {"evse_uid": 16, "location_id": 8, "party_id": 4, "country_code": 2, "source": 1}


@dataclass(frozen=True)
class Field:
    """A mart field a rule may fill: its level, how it is validated, and its column type."""

    level: str  # location | evse | connector
    adapter: TypeAdapter[Any]
    sql_type: str  # the mart column type the JSON value is cast to


def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


FIELDS: dict[str, Field] = {
    "opening_times": Field("location", _adapter(ocpi.Hours), "JSON"),
    "energy_mix": Field("location", _adapter(ocpi.EnergyMix), "JSON"),
    "charging_when_closed": Field("location", _adapter(bool), "BOOLEAN"),
    "facilities": Field("location", _adapter(list[ocpi.Facility]), "JSON"),
    "parking_type": Field("location", _adapter(ocpi.ParkingType), "VARCHAR"),
    "time_zone": Field("location", _adapter(str), "VARCHAR"),
    "operator": Field("location", _adapter(ocpi.BusinessDetails), "JSON"),
    "owner": Field("location", _adapter(ocpi.BusinessDetails), "JSON"),
    "parking_restrictions": Field("evse", _adapter(list[ocpi.ParkingRestriction]), "JSON"),
    "capabilities": Field("evse", _adapter(list[ocpi.Capability]), "JSON"),
    "tariff_ids": Field("connector", _adapter(list[str]), "JSON"),
    "terms_and_conditions": Field("connector", _adapter(str), "VARCHAR"),
}
LEVELS = {"location": "mart.locations", "evse": "mart.evses", "connector": "mart.connectors"}

register(
    Migration(
        "reference",
        1,
        "operator reference rules and tariffs",
        "CREATE SCHEMA IF NOT EXISTS reference;\n"
        + source_table(
            RULES,
            """
            rule_id VARCHAR NOT NULL,
            level VARCHAR NOT NULL,             -- location | evse | connector
            field VARCHAR NOT NULL,             -- the mart column it fills
            position INTEGER NOT NULL,          -- order in the file (later wins among equals)
            source VARCHAR,                     -- match: NULL matches anything
            country_code VARCHAR,
            party_id VARCHAR,
            location_id VARCHAR,
            evse_uid VARCHAR,
            specificity INTEGER NOT NULL,
            value JSON NOT NULL,
            override BOOLEAN NOT NULL,          -- true: the rule beats the source's own value
            reference_file VARCHAR""",
        )
        + source_table(
            TARIFFS,
            """
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            tariff_id VARCHAR NOT NULL,
            currency VARCHAR NOT NULL,
            type VARCHAR,
            tariff_alt_text JSON,
            tariff_alt_url VARCHAR,
            min_price JSON,
            max_price JSON,
            elements JSON NOT NULL,
            start_date_time TIMESTAMPTZ,
            end_date_time TIMESTAMPTZ,
            energy_mix JSON,
            reference_file VARCHAR""",
        ),
    )
)


register(
    Migration(
        "reference",
        2,
        "CPO party assignments for locations whose source names none",
        source_table(
            PARTIES,
            """
            rule_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            source VARCHAR NOT NULL,
            location_id VARCHAR,                -- match: NULL matches any
            operator VARCHAR,
            specificity INTEGER NOT NULL,
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            reference_file VARCHAR""",
        ),
    )
)


# What each column means, for the Dagster catalog (`evpipeline.catalog`); keys of the reference file in backticks.
_FILE = "The reference file the row was loaded from (seed_data/reference.yaml or EVPIPELINE_REFERENCE_FILE)."
COLUMNS: dict[str, dict[str, str]] = {
    RULES: {
        "rule_id": "The rule's `id` in the file; one row per field the rule sets.",
        "country_code": "Match: the CPO's ISO 3166 alpha-2 country code (NULL matches any).",
        "party_id": "Match: the CPO's party id (NULL matches any).",
        "location_id": "Match: one mart location (NULL matches any).",
        "evse_uid": "Match: one mart EVSE (NULL matches any).",
        "specificity": "How narrow the match is: the sum of 16 (evse_uid), 8 (location_id), 4 (party_id), "
                       "2 (country_code) and 1 (source) over the fields it names; the most specific rule applies.",
        "value": "The value the rule gives the field (JSON, validated against the OCPI definition).",
        "reference_file": _FILE,
    },
    TARIFFS: {
        "country_code": "ISO 3166 alpha-2 country code of the CPO stating the tariff (OCPI `country_code`).",
        "party_id": "Party id of that CPO (OCPI `party_id`).",
        "tariff_id": "The tariff's OCPI `id`; rules' tariff_ids reference it.",
        "currency": "ISO 4217 currency code (OCPI `currency`).",
        "type": "OCPI TariffType: AD_HOC_PAYMENT, PROFILE_CHEAP, PROFILE_FAST, PROFILE_GREEN or REGULAR.",
        "tariff_alt_text": "Human-readable description (OCPI `tariff_alt_text`, JSON list of DisplayText).",
        "tariff_alt_url": "URL of a web page describing the tariff (OCPI `tariff_alt_url`).",
        "min_price": "Minimum price of a session (OCPI `min_price`, JSON Price: excl_vat, incl_vat).",
        "max_price": "Maximum price of a session (OCPI `max_price`, JSON Price).",
        "elements": "Price elements (OCPI `elements`, JSON list of TariffElement: price_components, restrictions).",
        "start_date_time": "When the tariff becomes valid (OCPI `start_date_time`, UTC).",
        "end_date_time": "When the tariff stops being valid (OCPI `end_date_time`, UTC).",
        "energy_mix": "Energy supplied under this tariff (OCPI `energy_mix`, JSON EnergyMix).",
        "reference_file": _FILE,
    },
    PARTIES: {
        "rule_id": "The assignment's `id` in the file's `parties`.",
        "position": "Order in the file (the later one wins among equally specific assignments).",
        "source": "Match: the source whose locations it assigns (e.g. greenflux); required.",
        "operator": "Match: the location's operator name as the source gives it (NULL matches any).",
        "specificity": "How narrow the match is: 2 for a location_id, plus 1 for an operator; the most "
                       "specific assignment applies.",
        "country_code": "ISO 3166 alpha-2 country code of the CPO assigned to the matching locations.",
        "party_id": "Party id of the CPO assigned to the matching locations.",
        "reference_file": _FILE,
    },
}


class ReferenceError(ValueError):
    """The reference file is unusable; the message is one line naming the entry and the problem."""


@dataclass
class ReferenceData:
    path: str
    digest: str
    rules: pd.DataFrame
    tariffs: pd.DataFrame
    parties: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        return {"rules": int(self.rules["rule_id"].nunique()) if len(self.rules) else 0, "rule_fields": len(self.rules),
                "tariffs": len(self.tariffs), "parties": len(self.parties)}


def default_file() -> str:
    return str(resources.files("evpipeline").joinpath("seed_data/reference.yaml"))


def _first_error(field: str, exc: ValidationError) -> str:
    """`opening_times.regular_hours[0].weekday: ...`: the field's own path, then pydantic's message."""
    error = exc.errors()[0]
    where = ocpi.error_path(tuple(error["loc"]))
    path = field if where == "(root)" else f"{field}{where}" if where.startswith("[") else f"{field}.{where}"
    return f"{path}: {error['msg']}"


def _rule_rows(index: int, rule: Any, position: int, path: str) -> list[dict[str, Any]]:
    if not isinstance(rule, Mapping):
        raise ReferenceError(f"{path}: rules[{index}]: expected a mapping with id, match and values")
    rule_id = rule.get("id")
    label = f"rules[{index}]" + (f" (id {rule_id!r})" if rule_id else "")
    if not isinstance(rule_id, str) or not rule_id.strip():
        raise ReferenceError(f"{path}: {label}: `id` (a non-empty string) is required")
    unknown = set(rule) - {"id", "match", "override", "note", *FIELDS}
    if unknown:
        raise ReferenceError(f"{path}: {label}: unknown key(s) {sorted(unknown)}; fields a rule can set: {sorted(FIELDS)}")
    match = rule.get("match") or {}
    if not isinstance(match, Mapping) or set(match) - set(MATCH_FIELDS):
        raise ReferenceError(f"{path}: {label}: `match` takes only {list(MATCH_FIELDS)}")
    if not match:
        raise ReferenceError(f"{path}: {label}: `match` is empty; name at least a source, party or location")
    for key, value in match.items():
        if not isinstance(value, str):  # YAML reads NO (Norway) as false: make the author quote it
            raise ReferenceError(f"{path}: {label}: match.{key} must be a string (quote values such as \"NO\")")
    override = rule.get("override") or []
    if not isinstance(override, list) or set(override) - set(rule):
        raise ReferenceError(f"{path}: {label}: `override` must list fields this rule sets")
    rows = []
    for name, spec in FIELDS.items():
        if name not in rule:
            continue
        value = rule[name]
        try:
            spec.adapter.validate_python(value, context={"profile": "ndw"})
        except ValidationError as exc:
            raise ReferenceError(f"{path}: {label}: {_first_error(name, exc)}") from None
        rows.append({
            "rule_id": rule_id, "level": spec.level, "field": name, "position": position,
            **{k: (str(match[k]) if match.get(k) is not None else None) for k in MATCH_FIELDS},
            "specificity": sum(weight for k, weight in SPECIFICITY.items() if match.get(k) is not None),
            "value": json.dumps(value, sort_keys=True), "override": name in override,
        })
    if not rows:
        raise ReferenceError(f"{path}: {label}: sets no field; fields a rule can set: {sorted(FIELDS)}")
    return rows


_TARIFF_COLUMNS = ("currency", "type", "tariff_alt_text", "tariff_alt_url", "min_price", "max_price", "elements",
                   "start_date_time", "end_date_time", "energy_mix")


def _tariff_row(index: int, tariff: Any, path: str) -> dict[str, Any]:
    label = f"tariffs[{index}]"
    if not isinstance(tariff, Mapping):
        raise ReferenceError(f"{path}: {label}: expected an OCPI Tariff object")
    label += f" (id {tariff.get('id')!r})" if tariff.get("id") else ""
    errors = ocpi.validate_tariff(dict(tariff), profile="ndw")
    if errors:
        raise ReferenceError(f"{path}: {label}: {errors[0]}")
    row: dict[str, Any] = {"country_code": tariff["country_code"], "party_id": tariff["party_id"], "tariff_id": tariff["id"]}
    for column in _TARIFF_COLUMNS:
        value = tariff.get(column)
        if column in ("currency", "type", "tariff_alt_url"):
            row[column] = value
        elif column in ("start_date_time", "end_date_time"):
            row[column] = ocpi.parse_datetime(value) if value else None
        else:
            row[column] = json.dumps(value, sort_keys=True) if value is not None else None
    row["last_updated"] = ocpi.parse_datetime(tariff["last_updated"])
    return row


def load_reference(path: str | Path | None = None) -> ReferenceData:
    """Read and validate a reference file; ReferenceError (one line) on the first problem."""
    path = str(path or default_file())
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReferenceError(f"{path}: cannot read the reference file ({exc.strerror or exc})") from None
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ReferenceError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(document, Mapping) or set(document) - {"rules", "tariffs", "parties"}:
        raise ReferenceError(f"{path}: expected a mapping with `rules`, `tariffs` and/or `parties`")
    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(document.get("rules") or []):
        rows = _rule_rows(i, rule, i, path)
        if any(r["rule_id"] == rows[0]["rule_id"] for r in rules):
            raise ReferenceError(f"{path}: rules[{i}]: id {rows[0]['rule_id']!r} is already used by an earlier rule")
        rules.extend(rows)
    tariffs = [_tariff_row(i, t, path) for i, t in enumerate(document.get("tariffs") or [])]
    keys = [(t["country_code"], t["party_id"], t["tariff_id"]) for t in tariffs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ReferenceError(f"{path}: tariff {'/'.join(dup)} is listed more than once")
    _check_tariff_refs(rules, set(keys), path)
    now = datetime.now(UTC)
    rule_frame = pd.DataFrame(rules, columns=[
        "rule_id", "level", "field", "position", *MATCH_FIELDS, "specificity", "value", "override"])
    rule_frame["reference_file"] = path
    rule_frame["last_updated"] = now
    tariff_frame = pd.DataFrame(tariffs, columns=["country_code", "party_id", "tariff_id", *_TARIFF_COLUMNS, "last_updated"])
    tariff_frame["reference_file"] = path
    parties = [_party_row(i, p, path) for i, p in enumerate(document.get("parties") or [])]
    party_ids = [p["rule_id"] for p in parties]
    if len(set(party_ids)) != len(party_ids):
        raise ReferenceError(f"{path}: party id {next(i for i in party_ids if party_ids.count(i) > 1)!r} is used twice")
    party_frame = pd.DataFrame(parties, columns=["rule_id", "position", *PARTY_MATCH, "specificity", "country_code", "party_id"])
    party_frame["reference_file"] = path
    party_frame["last_updated"] = now
    return ReferenceData(path, hashlib.sha256(text.encode()).hexdigest()[:16], rule_frame, tariff_frame, party_frame)


def _party_row(index: int, entry: Any, path: str) -> dict[str, Any]:
    """`parties`: the CPO of locations whose source names none (e.g. GreenFlux feeds shaped like OCPI 2.1.1)."""
    label = f"parties[{index}]" + (f" (id {entry.get('id')!r})" if isinstance(entry, Mapping) and entry.get("id") else "")
    if not isinstance(entry, Mapping) or set(entry) - {"id", "match", "country_code", "party_id", "note"}:
        raise ReferenceError(f"{path}: {label}: expected id, match, country_code and party_id")
    match = entry.get("match") or {}
    if not isinstance(entry.get("id"), str) or not isinstance(match, Mapping) or set(match) - set(PARTY_MATCH) or "source" not in match:
        raise ReferenceError(f"{path}: {label}: needs an `id` and a `match` with `source` (and optionally {list(PARTY_MATCH[1:])})")
    if any(not isinstance(v, str) for v in match.values()):
        raise ReferenceError(f"{path}: {label}: match values must be strings")
    country, party = entry.get("country_code"), entry.get("party_id")
    if not (isinstance(country, str) and len(country) == 2 and country.isalpha() and country.isupper()):
        raise ReferenceError(f"{path}: {label}: country_code must be ISO 3166 alpha-2 in capitals (quote \"NO\")")
    if not (isinstance(party, str) and len(party) == 3 and party.isalnum() and party.isupper()):
        raise ReferenceError(f"{path}: {label}: party_id must be 3 capital letters or digits")
    return {"rule_id": entry["id"], "position": index, **{k: match.get(k) for k in PARTY_MATCH},
            "specificity": (2 if match.get("location_id") else 0) + (1 if match.get("operator") else 0),
            "country_code": country, "party_id": party}


def assigned_party(source: str, location_id: str, operator: str) -> str:
    """SQL: the best `reference.parties` assignment for a location of `source` (a subquery yielding one row
    of country_code, party_id, rule_id; no row when none matches)."""
    return f"""(SELECT country_code, party_id, rule_id FROM {PARTIES} p
                WHERE NOT p.is_deleted AND p.source = '{source}'
                  AND (p.location_id IS NULL OR p.location_id = {location_id})
                  AND (p.operator IS NULL OR p.operator = {operator})
                ORDER BY p.specificity DESC, p.position DESC LIMIT 1)"""


def _check_tariff_refs(rules: list[dict[str, Any]], tariffs: set[tuple[str, str, str]], path: str) -> None:
    """A rule's tariff_ids must name this file's tariffs of the rule's own CPO (tariffs belong to one
    party; a dangling id would make NDW reject the connector)."""
    for row in rules:
        if row["field"] != "tariff_ids":
            continue
        if row["party_id"] is None or row["country_code"] is None:
            raise ReferenceError(f"{path}: rule {row['rule_id']!r} sets tariff_ids: its match must name country_code and party_id")
        missing = [t for t in json.loads(row["value"]) if (row["country_code"], row["party_id"], t) not in tariffs]
        if missing:
            raise ReferenceError(f"{path}: rule {row['rule_id']!r}: tariff_ids {missing} are not tariffs of "
                                 f"{row['country_code']}/{row['party_id']} in this file")


# --------------------------------------------------------------------------------------------
# Applying the rules inside the canonical build


def _cast(field: str, expr: str) -> str:
    kind = FIELDS[field].sql_type
    if kind == "JSON":
        return expr
    return f"CAST(json_extract_string({expr}, '$') AS {kind})"


def apply_rules(kind: str, rows_sql: str, columns: list[str]) -> str:
    """`rows_sql` (mapped rows of one mart table) with the reference rules applied to its fields.

    Adds `reference_fields` (JSON field -> rule id, NULL when no rule applied). The join against
    the rules is a small nested-loop join: there are tens of rules, not thousands.
    """
    level = {"locations": "location", "evses": "evse", "connectors": "connector"}[kind]
    fields = [f for f, spec in FIELDS.items() if spec.level == level and f in columns]
    match_columns = [m for m in MATCH_FIELDS if m in columns]
    conditions = " AND ".join(f"(r.{m} IS NULL OR r.{m} = u.{m})" for m in match_columns)
    # Rules that name a field the table lacks (evse_uid on locations) can never match it.
    unmatchable = " AND ".join(f"r.{m} IS NULL" for m in MATCH_FIELDS if m not in columns) or "true"
    keys = ["country_code", "party_id", "location_id", *(["evse_uid"] if level != "location" else []),
            *(["connector_id"] if level == "connector" else [])]
    key_list = ", ".join(f"u.{k}" for k in keys)
    picked = ", ".join(
        f"arg_max(r.value, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') AS \"v_{f}\", "
        f"arg_max(r.override, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') AS \"o_{f}\", "
        f"arg_max(r.rule_id, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') AS \"r_{f}\""
        for f in fields
    )
    value = {f: f'b."v_{f}"' for f in fields}
    use = {f: f'({value[f]} IS NOT NULL AND (u.{f} IS NULL OR b."o_{f}"))' for f in fields}
    replaced = ", ".join(f"CASE WHEN {use[f]} THEN {_cast(f, value[f])} ELSE u.{f} END AS {f}" for f in fields)
    # json_merge_patch drops the null members: only fields a rule actually filled are listed.
    lineage = ", ".join(f"'{f}', CASE WHEN {use[f]} THEN b.\"r_{f}\" END" for f in fields)
    return f"""
        WITH u AS ({rows_sql}),
        b AS (
            SELECT {key_list}, u.source, {picked}
            FROM u JOIN {RULES} r ON NOT r.is_deleted AND r.level = '{level}' AND {conditions} AND {unmatchable}
            GROUP BY ALL
        )
        SELECT u.* REPLACE ({replaced}),
               CAST(nullif(CAST(json_merge_patch('{{}}', json_object({lineage})) AS VARCHAR), '{{}}') AS JSON)
                   AS reference_fields
        FROM u LEFT JOIN b USING ({", ".join(keys)}, source)
    """ if fields else f"SELECT *, CAST(NULL AS JSON) AS reference_fields FROM ({rows_sql})"

