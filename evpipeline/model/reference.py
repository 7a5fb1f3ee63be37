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
- `operators`: one entry per CPO (country_code, party_id) with what AFIR asks of every operator and
  no source carries: the eMI3 operator id, commercial and legal name, helpdesk, on-site staff, ad hoc
  payment means, optionally the NUTS-1 region of all its locations (`reference.operators`, view
  `mart.operators`). Where nothing more specific did, the entry gives a location its `operator` and
  `nuts_code`, and an EVSE without an `evse_id` one derived from the operator id (`apply_operators`).

Every value that came from a rule is recorded on its mart row (`reference_fields`: field -> rule
id), so lineage says "operator-supplied". A file that does not validate is refused whole with one
line naming the entry and the problem; the warehouse keeps the last valid reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import yaml
from pydantic import StringConstraints, TypeAdapter, ValidationError

from evpipeline.model import nuts
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import Migration, describe_columns, register, source_table

RULES = "reference.rules"
TARIFFS = "reference.tariffs"
PARTIES = "reference.parties"
OPERATORS = "reference.operators"
IDENTITY_OVERRIDES = "reference.identity_overrides"  # read by the matching (model/identity.py)
KEYS = {
    RULES: ("rule_id", "level", "field"),
    TARIFFS: ("country_code", "party_id", "tariff_id"),
    PARTIES: ("rule_id",),
    OPERATORS: ("country_code", "party_id"),
}
PARTY_MATCH = (
    "source",
    "location_id",
    "operator",
)  # operator: the location's operator name as the source gives it
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
    "nuts_code": Field(
        "location", _adapter(Annotated[str, StringConstraints(pattern=nuts.NUTS1_PATTERN)]), "VARCHAR"
    ),
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


register(
    Migration(
        "reference",
        3,
        "the CPOs' operator entries (AFIR operator data), and their BI view mart.operators",
        source_table(
            OPERATORS,
            """
            country_code VARCHAR NOT NULL,
            party_id VARCHAR NOT NULL,
            operator_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            legal_name VARCHAR NOT NULL,
            website VARCHAR,
            helpdesk_phone VARCHAR NOT NULL,
            helpdesk_email VARCHAR,
            helpdesk_name VARCHAR,
            staffed BOOLEAN NOT NULL,
            payment_means JSON NOT NULL,
            nuts_code VARCHAR,
            position INTEGER NOT NULL,
            reference_file VARCHAR""",
        )
        + f"""
        CREATE SCHEMA IF NOT EXISTS mart;
        CREATE VIEW mart.operators AS
        SELECT country_code, party_id, operator_id, name, legal_name, website, helpdesk_phone, helpdesk_email,
               helpdesk_name, staffed, CAST(payment_means AS VARCHAR[]) AS payment_means, nuts_code,
               last_updated
        FROM {OPERATORS} WHERE NOT is_deleted;
        """,
    )
)


register(
    Migration(
        "reference",
        4,
        "operator overrides of the cross-source matching",
        f"""
        CREATE TABLE {IDENTITY_OVERRIDES} (
            a_country_code VARCHAR NOT NULL,
            a_party_id VARCHAR NOT NULL,
            a_location_id VARCHAR NOT NULL,
            b_country_code VARCHAR NOT NULL,
            b_party_id VARCHAR NOT NULL,
            b_location_id VARCHAR NOT NULL,
            decision VARCHAR NOT NULL,
            note VARCHAR,
            reference_file VARCHAR
        );
        """,
    )
)


# What each column means, for the Dagster catalog (`evpipeline.catalog`);
# keys of the reference file in backticks.
_FILE = "The reference file the row was loaded from (seed_data/reference.yaml or EVPIPELINE_REFERENCE_FILE)."
# The file's `operators` entries, in the table and in its BI view (one row per CPO).
_OPERATOR = {
    "country_code": "ISO 3166 alpha-2 country code of the CPO (OCPI `country_code`; with party_id, the key).",
    "party_id": "Party id of the CPO (OCPI `party_id`).",
    "operator_id": "`operator_id`: the CPO's eMI3 operator id (e.g. NL*ALF): country code, optional *, "
    "3 capitals or digits; the prefix of the EVSE ids derived where a source has none.",
    "name": "`name`: the operator's commercial name (AFIR), given as the OCPI `operator` of its locations "
    "whose source names none.",
    "legal_name": "`legal_name`: the operator's legal (registered) name (AFIR).",
    "website": "`website`: the operator's website (http(s) URL); NULL when not given.",
    "helpdesk_phone": "`helpdesk.phone`: the helpdesk telephone number in international form (+ and digits), "
    "AFIR's required contact.",
    "helpdesk_email": "`helpdesk.email`: the helpdesk e-mail address; NULL when not given.",
    "helpdesk_name": "`helpdesk.name`: the helpdesk's name (e.g. the customer service's); "
    "NULL when not given.",
    "staffed": "`staffed`: true when personnel is on site at the operator's points (AFIR service support).",
    "nuts_code": "`nuts_code`: the NUTS-1 region of all the CPO's locations (e.g. NL3); NULL when not given.",
}
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
        "elements": "Price elements (OCPI `elements`, JSON list of TariffElement: price_components, "
        "restrictions).",
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
    OPERATORS: {
        **_OPERATOR,
        "position": "Order of the entry in the file's `operators`.",
        "payment_means": "`payment_means`: the ad hoc payment means accepted at its points, "
        "as a JSON list of DATEX II MeansOfPaymentEnum values (paymentCreditCard, paymentDebitCard, nfc, "
        "emv, qrCode, website, mobileAccount, prepay, paymentValueCard, cashCoinsAndBills).",
        "reference_file": _FILE,
    },
    "mart.operators": {
        **_OPERATOR,
        "payment_means": "The ad hoc payment means accepted at its points (`payment_means`, DATEX II "
        "MeansOfPaymentEnum values: paymentCreditCard, paymentDebitCard, nfc, emv, qrCode, website, "
        "mobileAccount, prepay, paymentValueCard, cashCoinsAndBills).",
        "last_updated": "When the entry last changed (UTC): the load of the reference file that changed it.",
    },
    IDENTITY_OVERRIDES: {
        "a_country_code": "`a`: the first location's CPO country code.",
        "a_party_id": "`a`: the first location's CPO party id.",
        "a_location_id": "`a`: the first location's OCPI id.",
        "b_country_code": "`b`: the second location's CPO country code.",
        "b_party_id": "`b`: the second location's CPO party id.",
        "b_location_id": "`b`: the second location's OCPI id.",
        "decision": "`decision`: same or not_same; wins over the matching's score (and over different CPOs).",
        "note": "`note`: why the operator says so.",
        "reference_file": _FILE,
    },
}
describe_columns(__name__, COLUMNS)


class ReferenceError(ValueError):
    """The reference file is unusable; the message is one line naming the entry and the problem."""


@dataclass
class ReferenceData:
    path: str
    digest: str
    rules: pd.DataFrame
    tariffs: pd.DataFrame
    parties: pd.DataFrame
    operators: pd.DataFrame
    identity: pd.DataFrame

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rules": int(self.rules["rule_id"].nunique()) if len(self.rules) else 0,
            "rule_fields": len(self.rules),
            "tariffs": len(self.tariffs),
            "parties": len(self.parties),
            "operators": len(self.operators),
            "identity_overrides": len(self.identity),
        }


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
        raise ReferenceError(
            f"{path}: {label}: unknown key(s) {sorted(unknown)}; fields a rule can set: {sorted(FIELDS)}"
        )
    match = rule.get("match") or {}
    if not isinstance(match, Mapping) or set(match) - set(MATCH_FIELDS):
        raise ReferenceError(f"{path}: {label}: `match` takes only {list(MATCH_FIELDS)}")
    if not match:
        raise ReferenceError(f"{path}: {label}: `match` is empty; name at least a source, party or location")
    for key, value in match.items():
        if not isinstance(value, str):  # YAML reads NO (Norway) as false: make the author quote it
            raise ReferenceError(f'{path}: {label}: match.{key} must be a string (quote values such as "NO")')
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
        rows.append(
            {
                "rule_id": rule_id,
                "level": spec.level,
                "field": name,
                "position": position,
                **{k: (str(match[k]) if match.get(k) is not None else None) for k in MATCH_FIELDS},
                "specificity": sum(weight for k, weight in SPECIFICITY.items() if match.get(k) is not None),
                "value": json.dumps(value, sort_keys=True),
                "override": name in override,
            }
        )
    if not rows:
        raise ReferenceError(f"{path}: {label}: sets no field; fields a rule can set: {sorted(FIELDS)}")
    return rows


_TARIFF_COLUMNS = (
    "currency",
    "type",
    "tariff_alt_text",
    "tariff_alt_url",
    "min_price",
    "max_price",
    "elements",
    "start_date_time",
    "end_date_time",
    "energy_mix",
)


def _tariff_row(index: int, tariff: Any, path: str) -> dict[str, Any]:
    label = f"tariffs[{index}]"
    if not isinstance(tariff, Mapping):
        raise ReferenceError(f"{path}: {label}: expected an OCPI Tariff object")
    label += f" (id {tariff.get('id')!r})" if tariff.get("id") else ""
    errors = ocpi.validate_tariff(dict(tariff), profile="ndw")
    if errors:
        raise ReferenceError(f"{path}: {label}: {errors[0]}")
    row: dict[str, Any] = {
        "country_code": tariff["country_code"],
        "party_id": tariff["party_id"],
        "tariff_id": tariff["id"],
    }
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
        raise ReferenceError(
            f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    if not isinstance(document, Mapping) or set(document) - {
        "rules",
        "tariffs",
        "parties",
        "operators",
        "identity",
    }:
        raise ReferenceError(
            f"{path}: expected a mapping with `rules`, `tariffs`, `parties`, `operators` and/or `identity`"
        )
    rules: list[dict[str, Any]] = []
    for i, rule in enumerate(document.get("rules") or []):
        rows = _rule_rows(i, rule, i, path)
        if any(r["rule_id"] == rows[0]["rule_id"] for r in rules):
            raise ReferenceError(
                f"{path}: rules[{i}]: id {rows[0]['rule_id']!r} is already used by an earlier rule"
            )
        rules.extend(rows)
    tariffs = [_tariff_row(i, t, path) for i, t in enumerate(document.get("tariffs") or [])]
    keys = [(t["country_code"], t["party_id"], t["tariff_id"]) for t in tariffs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ReferenceError(f"{path}: tariff {'/'.join(dup)} is listed more than once")
    _check_tariff_refs(rules, set(keys), path)
    now = datetime.now(UTC)
    rule_frame = pd.DataFrame(
        rules,
        columns=["rule_id", "level", "field", "position", *MATCH_FIELDS, "specificity", "value", "override"],
    )
    rule_frame["reference_file"] = path
    rule_frame["last_updated"] = now
    tariff_frame = pd.DataFrame(
        tariffs, columns=["country_code", "party_id", "tariff_id", *_TARIFF_COLUMNS, "last_updated"]
    )
    tariff_frame["reference_file"] = path
    parties = [_party_row(i, p, path) for i, p in enumerate(document.get("parties") or [])]
    party_ids = [p["rule_id"] for p in parties]
    if len(set(party_ids)) != len(party_ids):
        raise ReferenceError(
            f"{path}: party id {next(i for i in party_ids if party_ids.count(i) > 1)!r} is used twice"
        )
    party_frame = pd.DataFrame(
        parties, columns=["rule_id", "position", *PARTY_MATCH, "specificity", "country_code", "party_id"]
    )
    party_frame["reference_file"] = path
    party_frame["last_updated"] = now
    operators = [_operator_row(i, entry, path) for i, entry in enumerate(document.get("operators") or [])]
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(operators):
        cpo = (row["country_code"], row["party_id"])
        if cpo in first:
            raise ReferenceError(
                f"{path}: operators[{i}]: {'/'.join(cpo)} already has an entry (operators[{first[cpo]}])"
            )
        first[cpo] = i
    operator_frame = pd.DataFrame(operators, columns=list(OPERATOR_COLUMNS))
    operator_frame["reference_file"] = path
    operator_frame["last_updated"] = now
    overrides = [_identity_row(i, entry, path) for i, entry in enumerate(document.get("identity") or [])]
    pairs = [frozenset((r[:3], r[3:6])) for r in overrides]
    if len(set(pairs)) != len(pairs):
        i = next(i for i, p in enumerate(pairs) if pairs.count(p) > 1)
        raise ReferenceError(f"{path}: identity[{i}]: this pair is already listed")
    identity_frame = pd.DataFrame(overrides, columns=[*IDENTITY_COLUMNS, "decision", "note"])
    identity_frame["reference_file"] = path
    return ReferenceData(
        path,
        hashlib.sha256(text.encode()).hexdigest()[:16],
        rule_frame,
        tariff_frame,
        party_frame,
        operator_frame,
        identity_frame,
    )


IDENTITY_COLUMNS = (
    "a_country_code",
    "a_party_id",
    "a_location_id",
    "b_country_code",
    "b_party_id",
    "b_location_id",
)
LOCATION_KEY = re.compile(r"^([A-Z]{2}):([A-Z0-9]{3}):([^:\s][^\s]{0,35})$")


def _identity_row(index: int, entry: Any, path: str) -> tuple[Any, ...]:
    """An `identity` entry: `{a: CC:PID:location_id, b: ..., decision: same | not_same, note: ...}`."""
    where = f"{path}: identity[{index}]"
    if not isinstance(entry, Mapping) or set(entry) - {"a", "b", "decision", "note"}:
        raise ReferenceError(f"{where}: expected `a`, `b`, `decision` and optionally `note`")
    keys: list[str] = []
    for side in ("a", "b"):
        match = LOCATION_KEY.match(str(entry.get(side) or ""))
        if not match:
            raise ReferenceError(
                f"{where}: `{side}` must be a location as country_code:party_id:location_id (e.g. "
                "NL:ZPT:1234)"
            )
        keys.extend(match.groups())
    if keys[:3] == keys[3:]:
        raise ReferenceError(f"{where}: `a` and `b` are the same location")
    decision = entry.get("decision")
    if decision not in ("same", "not_same"):
        raise ReferenceError(f"{where}: `decision` must be same or not_same, not {decision!r}")
    note = entry.get("note")
    return (*keys, decision, None if note is None else str(note))


def _party_row(index: int, entry: Any, path: str) -> dict[str, Any]:
    """`parties`: the CPO of locations whose source names none (e.g. GreenFlux feeds shaped like OCPI
    2.1.1)."""
    label = f"parties[{index}]" + (
        f" (id {entry.get('id')!r})" if isinstance(entry, Mapping) and entry.get("id") else ""
    )
    if not isinstance(entry, Mapping) or set(entry) - {"id", "match", "country_code", "party_id", "note"}:
        raise ReferenceError(f"{path}: {label}: expected id, match, country_code and party_id")
    match = entry.get("match") or {}
    if (
        not isinstance(entry.get("id"), str)
        or not isinstance(match, Mapping)
        or set(match) - set(PARTY_MATCH)
        or "source" not in match
    ):
        raise ReferenceError(
            f"{path}: {label}: needs an `id` and a `match` with `source` (and optionally "
            f"{list(PARTY_MATCH[1:])})"
        )
    if any(not isinstance(v, str) for v in match.values()):
        raise ReferenceError(f"{path}: {label}: match values must be strings")
    country, party = _cpo(entry, f"{path}: {label}")
    return {
        "rule_id": entry["id"],
        "position": index,
        **{k: match.get(k) for k in PARTY_MATCH},
        "specificity": (2 if match.get("location_id") else 0) + (1 if match.get("operator") else 0),
        "country_code": country,
        "party_id": party,
    }


def _cpo(entry: Mapping[str, Any], where: str) -> tuple[str, str]:
    """An entry's (country_code, party_id), checked as OCPI spells them."""
    country, party = entry.get("country_code"), entry.get("party_id")
    if not (isinstance(country, str) and len(country) == 2 and country.isalpha() and country.isupper()):
        raise ReferenceError(f'{where}: country_code must be ISO 3166 alpha-2 in capitals (quote "NO")')
    if not (isinstance(party, str) and len(party) == 3 and party.isalnum() and party.isupper()):
        raise ReferenceError(f"{where}: party_id must be 3 capital letters or digits")
    return country, party


OPERATOR_COLUMNS = (
    "country_code",
    "party_id",
    "operator_id",
    "name",
    "legal_name",
    "website",
    "helpdesk_phone",
    "helpdesk_email",
    "helpdesk_name",
    "staffed",
    "payment_means",
    "nuts_code",
    "position",
)
_OPERATOR_KEYS = (
    "country_code",
    "party_id",
    "operator_id",
    "name",
    "legal_name",
    "website",
    "helpdesk",
    "staffed",
    "payment_means",
    "nuts_code",
    "note",
)
_OPERATOR_REQUIRED = (
    "country_code",
    "party_id",
    "operator_id",
    "name",
    "legal_name",
    "helpdesk",
    "staffed",
    "payment_means",
)
# Ad hoc payment means an operator may state: the values of the AFIR profile's MeansOfPaymentEnum (3.7's lacks
# nfc, emv, qrCode and website; the rates that carry them sit in the profile-only part of the XML).
PAYMENT_MEANS = (
    "paymentCreditCard",
    "paymentDebitCard",
    "nfc",
    "emv",
    "qrCode",
    "website",
    "mobileAccount",
    "prepay",
    "paymentValueCard",
    "cashCoinsAndBills",
)
OPERATOR_ID = re.compile(
    r"^[A-Z]{2}\*?[A-Z0-9]{3}$"
)  # eMI3 operator id: country, optional *, 3 capitals or digits
PHONE = re.compile(r"^\+[0-9][0-9 ]*$")  # international: + and digits (spaces allowed between groups)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TEXT = re.compile(r"^[^\r\n\t]+$")


def _operator_row(index: int, entry: Any, path: str) -> dict[str, Any]:
    """One `operators` entry (AFIR's operator data for one CPO), checked field by field."""
    if not isinstance(entry, Mapping):
        raise ReferenceError(
            f"{path}: operators[{index}]: expected a mapping with {list(_OPERATOR_REQUIRED)}"
        )
    label = f"operators[{index}]"
    if isinstance(entry.get("country_code"), str) and isinstance(entry.get("party_id"), str):
        label += f" ({entry['country_code']}/{entry['party_id']})"
    where = f"{path}: {label}"

    def refuse(field: str, problem: str) -> ReferenceError:
        return ReferenceError(f"{where}: {field}: {problem}")

    unknown = set(entry) - set(_OPERATOR_KEYS)
    if unknown:
        raise ReferenceError(
            f"{where}: unknown key(s) {sorted(unknown)}; an entry takes {list(_OPERATOR_KEYS)}"
        )
    missing = [k for k in _OPERATOR_REQUIRED if entry.get(k) is None]
    if missing:
        raise refuse(missing[0], "required")
    country, party = _cpo(entry, where)
    operator_id = entry["operator_id"]
    if not isinstance(operator_id, str) or not OPERATOR_ID.match(operator_id):
        raise refuse(
            "operator_id",
            f"{operator_id!r} is not an eMI3 operator id (country code, optional *, "
            "3 capitals or digits, e.g. NL*ALF)",
        )
    if operator_id[:2] != country:
        raise refuse(
            "operator_id", f"{operator_id!r} is of country {operator_id[:2]}, not of the entry's {country}"
        )
    business = {
        "name": entry["name"],
        **({"website": entry["website"]} if entry.get("website") is not None else {}),
    }
    try:  # name and website become the OCPI `operator` (BusinessDetails) of the CPO's locations
        ocpi.BusinessDetails.model_validate(business, context={"profile": "ndw"})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise refuse(ocpi.error_path(tuple(error["loc"])), str(error["msg"])) from None
    if (
        not isinstance(entry["legal_name"], str)
        or not _TEXT.match(entry["legal_name"])
        or len(entry["legal_name"]) > 255
    ):
        raise refuse("legal_name", "must be the registered name: text of 1-255 characters on one line")
    phone, email, desk = _helpdesk(entry["helpdesk"], refuse)
    if not isinstance(entry["staffed"], bool):
        raise refuse("staffed", "must be true or false (on-site personnel at the operator's points)")
    means = entry["payment_means"]
    if (
        not isinstance(means, list)
        or not means
        or any(m not in PAYMENT_MEANS for m in means)
        or len(set(means)) < len(means)
    ):
        raise refuse(
            "payment_means", f"must list ad hoc payment means, each once, from {list(PAYMENT_MEANS)}"
        )
    nuts_code = entry.get("nuts_code")
    if nuts_code is not None:
        _check_nuts(nuts_code, country, refuse)
    return {
        "country_code": country,
        "party_id": party,
        "operator_id": operator_id,
        "name": entry["name"],
        "legal_name": entry["legal_name"],
        "website": entry.get("website"),
        "helpdesk_phone": phone,
        "helpdesk_email": email,
        "helpdesk_name": desk,
        "staffed": entry["staffed"],
        "payment_means": json.dumps(means),
        "nuts_code": nuts_code,
        "position": index,
    }


def _helpdesk(
    helpdesk: Any, refuse: Callable[[str, str], ReferenceError]
) -> tuple[str, str | None, str | None]:
    """`helpdesk`: phone (required, international), email and name (optional)."""
    if not isinstance(helpdesk, Mapping) or set(helpdesk) - {"phone", "email", "name"}:
        raise refuse("helpdesk", "must be a mapping of phone (required), email and name")
    phone, email, name = helpdesk.get("phone"), helpdesk.get("email"), helpdesk.get("name")
    digits = sum(c.isdigit() for c in phone) if isinstance(phone, str) else 0
    if not isinstance(phone, str) or not PHONE.match(phone) or not 7 <= digits <= 15:
        raise refuse(
            "helpdesk.phone",
            f'{phone!r} is not an international number: + and 7-15 digits, e.g. "+31 20 123 4567"',
        )
    if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
        raise refuse("helpdesk.email", f"{email!r} is not an e-mail address")
    if name is not None and (not isinstance(name, str) or not _TEXT.match(name)):
        raise refuse("helpdesk.name", "must be text on one line")
    return phone, email, name


def _check_nuts(code: Any, country: str, refuse: Callable[[str, str], ReferenceError]) -> None:
    """A NUTS-1 code of the entry's own country (EL for Greece); the only region of a one-region country."""
    prefix = nuts.nuts_country(country)
    if not isinstance(code, str) or not re.match(nuts.NUTS1_PATTERN, code):
        raise refuse(
            "nuts_code", f"{code!r} is not a NUTS-1 code (2 capitals and a capital or digit, e.g. NL3)"
        )
    if prefix not in nuts.NUTS_COUNTRIES.values():
        raise refuse("nuts_code", f"{country} has no NUTS regions (NUTS covers the EU and EFTA countries)")
    if code[:2] != prefix:
        raise refuse("nuts_code", f"{code} is not a region of {country} (its NUTS codes start with {prefix})")
    only = nuts.SINGLE_REGION.get(prefix)
    if only is not None and code != only:
        raise refuse("nuts_code", f"{country} is a single NUTS-1 region, {only}")


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
            raise ReferenceError(
                f"{path}: rule {row['rule_id']!r} sets tariff_ids: its match must name country_code and "
                "party_id"
            )
        missing = [
            t for t in json.loads(row["value"]) if (row["country_code"], row["party_id"], t) not in tariffs
        ]
        if missing:
            raise ReferenceError(
                f"{path}: rule {row['rule_id']!r}: tariff_ids {missing} are not tariffs of "
                f"{row['country_code']}/{row['party_id']} in this file"
            )


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
    keys = [
        "country_code",
        "party_id",
        "location_id",
        *(["evse_uid"] if level != "location" else []),
        *(["connector_id"] if level == "connector" else []),
    ]
    key_list = ", ".join(f"u.{k}" for k in keys)
    picked = ", ".join(
        f"arg_max(r.value, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') AS \"v_{f}\", "
        f"arg_max(r.override, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') AS "
        f"\"o_{f}\", arg_max(r.rule_id, r.specificity * 100000 + r.position) FILTER (WHERE r.field = '{f}') "
        f'AS "r_{f}"'
        for f in fields
    )
    value = {f: f'b."v_{f}"' for f in fields}
    use = {f: f'({value[f]} IS NOT NULL AND (u.{f} IS NULL OR b."o_{f}"))' for f in fields}
    replaced = ", ".join(
        f"CASE WHEN {use[f]} THEN {_cast(f, value[f])} ELSE u.{f} END AS {f}" for f in fields
    )
    # json_merge_patch drops the null members: only fields a rule actually filled are listed.
    lineage = ", ".join(f"'{f}', CASE WHEN {use[f]} THEN b.\"r_{f}\" END" for f in fields)
    return (
        f"""
        WITH u AS ({rows_sql}),
        b AS (
            SELECT {key_list}, u.source, {picked}
            FROM u JOIN {RULES} r ON NOT r.is_deleted AND r.level = '{level}' AND {conditions}
                AND {unmatchable}
            GROUP BY ALL
        )
        SELECT u.* REPLACE ({replaced}),
               CAST(nullif(CAST(json_merge_patch('{{}}', json_object({lineage})) AS VARCHAR), '{{}}') AS JSON)
                   AS reference_fields
        FROM u LEFT JOIN b USING ({", ".join(keys)}, source)
    """
        if fields
        else f"SELECT *, CAST(NULL AS JSON) AS reference_fields FROM ({rows_sql})"
    )


# Lineage of values an `operators` entry or the NUTS table supplied (`reference_fields`, beside rule ids).
OPERATOR_ENTRY = "'operators/' || o.country_code || '/' || o.party_id"
SINGLE_REGION_ENTRY = "'nuts-single-region/' || n.country"
EVSE_ID_PART = 30  # eMI3: at most 30 characters after the operator id and `*E`
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_POWERS_OF_36 = "[" + ", ".join(str(36**i) for i in reversed(range(13))) + "]::UBIGINT[]"


def _base36(hex16: str) -> str:
    """SQL: 16 hex digits (64 bits) written as 13 base-36 digits."""
    digit = f"substr('{_BASE36}', CAST((('0x' || {hex16})::UBIGINT // p) % 36 AS INTEGER) + 1, 1)"
    return f"array_to_string(list_transform({_POWERS_OF_36}, p -> {digit}), '')"


def id_part(ref: str) -> str:
    """SQL: the id part of a derived eMI3 EVSE id from a point's own identifier `ref`: in capitals, only
    A-Z and 0-9. A GUID (32 hex digits, two more than eMI3 allows) is the same 128 bits in base 36:
    26 characters, as unique and as stable as the GUID itself."""
    clean = f"regexp_replace(upper({ref}), '[^A-Z0-9]', '', 'g')"
    guid = f"{_base36(f'substr({clean}, 1, 16)')} || {_base36(f'substr({clean}, 17, 16)')}"
    return f"CASE WHEN regexp_full_match({clean}, '[0-9A-F]{{32}}') THEN {guid} ELSE {clean} END"


def _add_lineage(existing: str, fields: dict[str, str]) -> str:
    """`existing` reference_fields plus field -> entry for each non-NULL entry (the rules' names stay)."""
    pairs = ", ".join(f"'{field}', {entry}" for field, entry in fields.items())
    added = (
        f"json_merge_patch('{{}}', json_object({pairs}))"  # drops the NULL members: only fields supplied here
    )
    return (
        f"CAST(nullif(CAST(json_merge_patch(coalesce({existing}, '{{}}'), {added}) AS VARCHAR), "
        "'{}') AS JSON)"
    )


def apply_operators(kind: str, rows_sql: str) -> str:
    """`rows_sql` (reference rules applied) plus what the CPO's `operators` entry states where nothing
    more specific did, each named in `reference_fields`:

    - locations: `operator` ({name, website}) where neither the source nor a rule gives one;
      `nuts_code`: a rule's, else the entry's when the location is in the entry's NUTS country, else
      the region of a country that is a single NUTS-1 region (`evpipeline.model.nuts`), else NULL;
    - EVSEs: without an `evse_id` from the source, the eMI3 id `<operator_id>*E<id part>`, the id
      part being the source's stable identifier of the point (`point_ref`: Zaptec's DeviceId,
      EVRoam's station GUID, ...) as `id_part` writes it; none when that is not 1-30 characters.
      `point_ref` is dropped here: it is no mart column.
    """
    operator = f"""LEFT JOIN {OPERATORS} o ON NOT o.is_deleted AND o.country_code = r.country_code
        AND o.party_id = r.party_id"""
    if kind == "locations":
        entry_nuts = "CASE WHEN left(o.nuts_code, 2) = n.nuts_country THEN o.nuts_code END"
        fill_operator = "r.operator IS NULL AND o.name IS NOT NULL"
        nuts_from = f"""CASE WHEN r.nuts_code IS NULL THEN CASE WHEN {entry_nuts} IS NOT NULL
                                                                    THEN {OPERATOR_ENTRY}
                                                                WHEN n.single_region IS NOT NULL
                                                                    THEN {SINGLE_REGION_ENTRY} END END"""
        return f"""
            WITH r AS ({rows_sql})
            SELECT r.* REPLACE (
                CASE WHEN {
            fill_operator
        } THEN json_object('name', o.name, 'website', o.website) ELSE r.operator END AS operator,
                coalesce(r.nuts_code, {entry_nuts}, n.single_region) AS nuts_code,
                {
            _add_lineage(
                "r.reference_fields",
                {"operator": f"CASE WHEN {fill_operator} THEN {OPERATOR_ENTRY} END", "nuts_code": nuts_from},
            )
        } AS reference_fields)
            FROM r {operator}
            LEFT JOIN rules_nuts_countries n ON n.country = r.country
        """
    if kind == "evses":
        derive = (
            "r.evse_id IS NULL AND o.operator_id IS NOT NULL AND length(r._id_part) BETWEEN 1 AND "
            f"{EVSE_ID_PART}"
        )
        return f"""
            WITH r AS (SELECT *, {id_part("point_ref")} AS _id_part FROM ({rows_sql}))
            SELECT r.* EXCLUDE (point_ref, _id_part) REPLACE (
                CASE WHEN {derive} THEN o.operator_id || '*E' || r._id_part ELSE r.evse_id END AS evse_id,
                {
            _add_lineage("r.reference_fields", {"evse_id": f"CASE WHEN {derive} THEN {OPERATOR_ENTRY} END"})
        }
                    AS reference_fields)
            FROM r {operator}
        """
    return rows_sql
