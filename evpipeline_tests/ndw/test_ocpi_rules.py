"""The project's OCPI 2.2.1 + NDW definition: realistic objects pass, every rule has a failing case."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from evpipeline.ocpi import definition as ocpi
from evpipeline_tests.ndw import ocpi_samples as samples

ROOT = Path(__file__).resolve().parents[2]
_DELETE = object()


def mutated(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`obj` with the dotted `path` set to `value` (or removed with _DELETE)."""
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return obj


def errors_of(kind: ocpi.Kind, obj: Any, profile: ocpi.Profile = "ndw") -> list[str]:
    return ocpi.validate(kind, obj, profile)


SAMPLE = {
    "location": samples.location,
    "evse": samples.evse,
    "connector": samples.connector,
    "tariff": samples.tariff,
}


# --------------------------------------------------------------------------------------------
# Positive objects


@pytest.mark.parametrize("profile", ocpi.PROFILES)
def test_realistic_nl_objects_pass(profile: ocpi.Profile) -> None:
    assert ocpi.validate_location(samples.location(), profile) == []
    assert ocpi.validate_evse(samples.evse("dc"), profile) == []
    assert ocpi.validate_connector(samples.connector("dc"), profile) == []
    for tariff in samples.tariffs():
        assert ocpi.validate_tariff(tariff, profile) == []


def test_valid_variants_pass() -> None:
    loc = samples.location(
        opening_times={
            "twentyfourseven": False,
            "regular_hours": [
                {"weekday": d, "period_begin": "07:00", "period_end": "23:59"} for d in range(1, 8)
            ],
        }
    )
    loc = mutated(
        loc, "evses.0.connectors.0.standard", "IEC_60309_2_single_16"
    )  # mixed case is the real value
    loc = mutated(loc, "last_updated", "2026-11-01T11:58:00.123Z")  # milliseconds: 24 characters
    loc = mutated(loc, "coordinates.latitude", "-1.2865000")  # 7 decimals, negative
    loc["publish"], loc["publish_allowed_to"] = (
        False,
        [{"uid": "04A1B2C3", "type": "RFID"}, {"visual_number": "NL-EVB-123", "issuer": "EVB"}],
    )
    assert errors_of("location", loc) == []


# --------------------------------------------------------------------------------------------
# One broken rule each: (kind, path, value, expected error path, expected words)

NEGATIVE = [
    ("datetime +00:00", "location", "last_updated", "2026-11-01T11:58:00+00:00", "last_updated", "no +00:00"),
    (
        "datetime 26 chars",
        "location",
        "last_updated",
        "2026-11-01T11:58:00.12345Z",
        "last_updated",
        "at most 25",
    ),
    (
        "datetime microseconds",
        "connector",
        "last_updated",
        "2026-11-01T11:58:00.123456Z",
        "last_updated",
        "at most 25",
    ),
    (
        "datetime not a date",
        "location",
        "last_updated",
        "2026-02-30T10:00:00Z",
        "last_updated",
        "not a valid calendar",
    ),
    ("datetime date only", "tariff", "last_updated", "2026-11-01", "last_updated", "RFC 3339"),
    (
        "datetime in exceptional period",
        "location",
        "opening_times.exceptional_closings.0.period_end",
        "2027-01-01 06:00:00Z",
        "opening_times.exceptional_closings[0].period_end",
        "RFC 3339",
    ),
    (
        "latitude 4 decimals",
        "location",
        "coordinates.latitude",
        "52.0669",
        "coordinates.latitude",
        "5-7 decimals",
    ),
    (
        "longitude 8 decimals",
        "location",
        "coordinates.longitude",
        "5.10443012",
        "coordinates.longitude",
        "5-7 decimals",
    ),
    (
        "latitude numeric",
        "location",
        "coordinates.latitude",
        52.06691,
        "coordinates.latitude",
        "valid string",
    ),
    (
        "longitude numeric in EVSE",
        "location",
        "evses.1.coordinates.longitude",
        5.104512,
        "evses[1].coordinates.longitude",
        "valid string",
    ),
    (
        "latitude out of range",
        "location",
        "coordinates.latitude",
        "95.000000",
        "coordinates.latitude",
        "between -90 and 90",
    ),
    (
        "negative 2-digit latitude, 7 decimals = 11 chars",
        "location",
        "coordinates.latitude",
        "-41.2865000",
        "coordinates.latitude",
        "at most 10",
    ),
    ("address 46 chars", "location", "address", "Europalaan " + "2" * 35, "address", "at most 45"),
    ("city 46 chars", "location", "city", "U" * 46, "city", "at most 45"),
    ("state 21 chars", "location", "state", "S" * 21, "state", "at most 20"),
    ("postal_code 11 chars", "location", "postal_code", "3526 KS 123", "postal_code", "at most 10"),
    ("name 256 chars", "location", "name", "N" * 256, "name", "at most 255"),
    ("empty address", "location", "address", "", "address", "at least 1"),
    ("location id 37 chars", "location", "id", "L" * 37, "id", "at most 36"),
    ("country alpha-2", "location", "country", "NL", "country", "got 'NL'"),
    ("country_code 3 letters", "location", "country_code", "NLD", "country_code", "got 'NLD'"),
    ("party_id 4 chars", "tariff", "party_id", "EVBX", "party_id", "got 'EVBX'"),
    ("unknown time zone", "location", "time_zone", "Amsterdam", "time_zone", "IANA"),
    ("unknown connector standard", "connector", "standard", "TYPE2", "standard", "not an allowed value"),
    ("lower-case enum", "connector", "standard", "iec_62196_t2", "standard", "did you mean 'IEC_62196_T2'"),
    (
        "upper-cased mixed-case enum",
        "connector",
        "standard",
        "IEC_60309_2_SINGLE_16",
        "standard",
        "did you mean 'IEC_60309_2_single_16'",
    ),
    ("unknown format", "connector", "format", "PLUG", "format", "allowed: SOCKET, CABLE"),
    ("unknown power type", "connector", "power_type", "AC", "power_type", "not an allowed value"),
    ("unknown EVSE status", "evse", "status", "OCCUPIED", "status", "not an allowed value"),
    ("unknown capability", "evse", "capabilities.0", "APP", "capabilities[0]", "not an allowed value"),
    (
        "unknown parking restriction",
        "evse",
        "parking_restrictions",
        ["TAXI"],
        "parking_restrictions[0]",
        "not an allowed value",
    ),
    ("unknown facility", "location", "facilities.0", "TOILET", "facilities[0]", "not an allowed value"),
    ("unknown parking type", "location", "parking_type", "ON_ROOF", "parking_type", "not an allowed value"),
    (
        "unknown image category",
        "location",
        "images.0.category",
        "PHOTO",
        "images[0].category",
        "not an allowed value",
    ),
    (
        "unknown energy source",
        "location",
        "energy_mix.energy_sources.0.source",
        "BIOMASS",
        "energy_mix.energy_sources[0].source",
        "not an allowed value",
    ),
    (
        "unknown tariff dimension",
        "tariff",
        "elements.0.price_components.0.type",
        "MAX_POWER",
        "elements[0].price_components[0].type",
        "not an allowed value",
    ),
    ("unknown tariff type", "tariff", "type", "AD_HOC", "type", "not an allowed value"),
    (
        "unknown day of week",
        "tariff",
        "elements.1.restrictions.day_of_week.0",
        "monday",
        "elements[1].restrictions.day_of_week[0]",
        "did you mean 'MONDAY'",
    ),
    ("empty connectors", "evse", "connectors", [], "connectors", "at least 1 item"),
    ("empty tariff elements", "tariff", "elements", [], "elements", "at least 1 item"),
    (
        "empty price components",
        "tariff",
        "elements.0.price_components",
        [],
        "elements[0].price_components",
        "at least 1 item",
    ),
    ("unknown top-level field", "location", "opening_hours", "24/7", "opening_hours", "unknown field"),
    (
        "unknown nested field",
        "location",
        "evses.0.connectors.0.max_power",
        22,
        "evses[0].connectors[0].max_power",
        "unknown field",
    ),
    (
        "percentages not 100",
        "location",
        "energy_mix.energy_sources.1.percentage",
        30,
        "energy_mix",
        "add up to 92.5",
    ),
    (
        "percentage above 100",
        "location",
        "energy_mix.energy_sources",
        [{"source": "WIND", "percentage": 120}],
        "energy_mix.energy_sources[0].percentage",
        "less than or equal to 100",
    ),
    (
        "period 24:00",
        "location",
        "opening_times",
        {
            "twentyfourseven": False,
            "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "24:00"}],
        },
        "opening_times.regular_hours[0].period_end",
        "24:00 is invalid",
    ),
    (
        "period end before begin",
        "location",
        "opening_times",
        {
            "twentyfourseven": False,
            "regular_hours": [{"weekday": 1, "period_begin": "18:00", "period_end": "08:00"}],
        },
        "opening_times.regular_hours[0]",
        "later than period_begin",
    ),
    (
        "weekday 0",
        "location",
        "opening_times",
        {
            "twentyfourseven": False,
            "regular_hours": [{"weekday": 0, "period_begin": "08:00", "period_end": "18:00"}],
        },
        "opening_times.regular_hours[0].weekday",
        "greater than or equal to 1",
    ),
    (
        "weekday 8",
        "location",
        "opening_times",
        {
            "twentyfourseven": False,
            "regular_hours": [{"weekday": 8, "period_begin": "08:00", "period_end": "18:00"}],
        },
        "opening_times.regular_hours[0].weekday",
        "less than or equal to 7",
    ),
    (
        "not 24/7 without regular hours",
        "location",
        "opening_times",
        {"twentyfourseven": False},
        "opening_times",
        "at least one entry",
    ),
    (
        "24/7 with regular hours",
        "location",
        "opening_times",
        {
            "twentyfourseven": True,
            "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "18:00"}],
        },
        "opening_times",
        "only be used when twentyfourseven is false",
    ),
    (
        "publish_allowed_to with publish true",
        "location",
        "publish_allowed_to",
        [{"uid": "04A1B2C3", "type": "RFID"}],
        "(root)",
        "only be given when publish is false",
    ),
    ("non-ASCII CiString", "location", "id", "LOC-UTR-Ü", "id", "printable ASCII"),
    ("line feed in a string", "location", "name", "P+R\nWestraven", "name", "CR, LF or TAB"),
    ("tab in a CiString", "connector", "id", "1\t", "id", "printable ASCII"),
    ("null optional field", "location", "name", None, "name", "null is not allowed"),
    ("null required field", "location", "publish", None, "publish", "null is not allowed"),
    ("integer as string", "connector", "max_voltage", "230", "max_voltage", "valid integer"),
    ("float for integer", "connector", "max_amperage", 32.5, "max_amperage", "valid integer"),
    ("boolean as string", "location", "publish", "true", "publish", "valid boolean"),
    (
        "price with 5 decimals",
        "tariff",
        "elements.0.price_components.0.price",
        0.32231,
        "elements[0].price_components[0].price",
        "at most 4 decimals",
    ),
    (
        "price as string",
        "tariff",
        "elements.0.price_components.0.price",
        "0.32",
        "elements[0].price_components[0].price",
        "valid number",
    ),
    ("lower-case currency", "tariff", "currency", "eur", "currency", "got 'eur'"),
    (
        "restriction start_time 24:00",
        "tariff",
        "elements.1.restrictions.start_time",
        "24:00",
        "elements[1].restrictions.start_time",
        "24:00",
    ),
    (
        "restriction start_date month 13",
        "tariff",
        "elements.0.restrictions",
        {"start_date": "2026-13-01"},
        "elements[0].restrictions.start_date",
        "YYYY-MM-DD",
    ),
    (
        "URL without scheme",
        "tariff",
        "tariff_alt_url",
        "laadpunt.example.nl/tarieven",
        "tariff_alt_url",
        "http(s) URL",
    ),
    (
        "DisplayText text too long",
        "tariff",
        "tariff_alt_text.0.text",
        "x" * 513,
        "tariff_alt_text[0].text",
        "at most 512",
    ),
    ("image type 5 chars", "location", "images.0.type", "jpeg2", "images[0].type", "at most 4"),
    ("floor_level 5 chars", "evse", "floor_level", "-1-2a", "floor_level", "at most 4"),
    (
        "physical_reference 17 chars",
        "evse",
        "physical_reference",
        "P" * 17,
        "physical_reference",
        "at most 16",
    ),
    (
        "duplicate EVSE uid (case-insensitive)",
        "location",
        "evses.1.uid",
        "utr-westraven-1",
        "(root)",
        "duplicate EVSE uid",
    ),
    (
        "duplicate connector id",
        "evse",
        "connectors",
        [samples.connector(), samples.connector()],
        "(root)",
        "duplicate connector id",
    ),
    ("empty tariff_ids (NDW)", "connector", "tariff_ids", [], "tariff_ids", "at least 1 item"),
    (
        "zero max_electric_power (NDW)",
        "connector",
        "max_electric_power",
        0,
        "max_electric_power",
        "greater than 0",
    ),
    (
        "zone-less DateTime (NDW)",
        "location",
        "last_updated",
        "2026-11-01T11:58:00",
        "last_updated",
        "must end in Z",
    ),
]


@pytest.mark.parametrize(
    ("kind", "path", "value", "where", "words"), [c[1:] for c in NEGATIVE], ids=[c[0] for c in NEGATIVE]
)
def test_each_rule_rejects(kind: ocpi.Kind, path: str, value: Any, where: str, words: str) -> None:
    obj = mutated(SAMPLE[kind](), path, value)
    errors = errors_of(kind, obj)
    assert any(e.startswith(f"{where}: ") and words in e for e in errors), errors


@pytest.mark.parametrize(
    ("kind", "field"), [(k, f) for k, fields in ocpi.AFIR_FIELDS.items() for f in fields]
)
def test_afir_fields_are_mandatory_for_ndw_only(kind: ocpi.Kind, field: str) -> None:
    obj = mutated(SAMPLE[kind](), field, _DELETE)
    assert errors_of(kind, obj, "ndw") == [f"{field}: required field is missing (mandatory for NDW/AFIR)"]
    assert errors_of(kind, obj, "ocpi") == []


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ({"uid": "04A1B2C3"}, "type is required when uid is given"),
        ({"visual_number": "NL-EVB-123"}, "issuer is required when visual_number is given"),
        ({"issuer": "EVB"}, "at least one of uid, visual_number or group_id is required"),
    ],
)
def test_publish_token_rules(token: dict[str, str], words: str) -> None:
    loc = samples.location(publish=False, publish_allowed_to=[token])
    assert errors_of("location", loc) == [f"publish_allowed_to[0]: {words}"]


def test_afir_fields_are_checked_in_nested_objects() -> None:
    loc = mutated(samples.location(), "evses.1.connectors.0.tariff_ids", _DELETE)
    loc = mutated(loc, "evses.0.parking_restrictions", _DELETE)
    assert sorted(errors_of("location", loc)) == [
        "evses[0].parking_restrictions: required field is missing (mandatory for NDW/AFIR)",
        "evses[1].connectors[0].tariff_ids: required field is missing (mandatory for NDW/AFIR)",
    ]
    assert errors_of("location", loc, "ocpi") == []


def test_empty_lists_for_ndw_fields() -> None:
    """Our choice: [] parking_restrictions is present ("no restrictions"); [] tariff_ids is not."""
    assert errors_of("evse", samples.evse(parking_restrictions=[])) == []
    assert errors_of("connector", samples.connector(tariff_ids=[])) != []
    assert errors_of("connector", samples.connector(tariff_ids=[]), "ocpi") == []


def test_zone_less_datetime_is_legal_ocpi_but_not_ndw() -> None:
    loc = samples.location(last_updated="2026-11-01T11:58:00")
    assert errors_of("location", loc, "ocpi") == []
    assert errors_of("location", loc, "ndw") == [
        "last_updated: must end in Z (UTC); the zone-less form is OCPI-legal but not accepted by NDW's "
        "schemas"
    ]
    assert errors_of("location", samples.location(last_updated="2026-11-01T11:58:00+00:00"), "ocpi") != []


def test_several_errors_are_all_reported_with_paths() -> None:
    loc = samples.location(address="A" * 46)
    loc = mutated(loc, "evses.1.connectors.0.standard", "ccs")
    del loc["energy_mix"]
    assert errors_of("location", loc) == [
        "address: String should have at most 45 characters",
        "evses[1].connectors[0].standard: 'ccs' is not an allowed value",
        "energy_mix: required field is missing (mandatory for NDW/AFIR)",
    ]


def test_non_object_input() -> None:
    assert errors_of("location", [samples.location()]) != []
    assert errors_of("tariff", "not an object") != []


# --------------------------------------------------------------------------------------------
# PATCH bodies


def test_patch_needs_only_last_updated() -> None:
    assert ocpi.validate_patch("evse", {"status": "CHARGING", "last_updated": "2026-11-01T12:00:00Z"}) == []
    assert (
        ocpi.validate_patch(
            "location", {"name": "P+R Westraven Utrecht", "last_updated": "2026-11-01T12:00:00Z"}
        )
        == []
    )
    assert (
        ocpi.validate_patch("connector", {"tariff_ids": ["FREE"], "last_updated": "2026-11-01T12:00:00Z"})
        == []
    )


def test_patch_without_last_updated_is_rejected() -> None:
    assert ocpi.validate_patch("evse", {"status": "CHARGING"}) == ["last_updated: required field is missing"]


def test_patch_sub_objects_must_be_complete() -> None:
    stamp = "2026-11-01T12:00:00Z"
    assert ocpi.validate_patch(
        "location", {"coordinates": {"latitude": "52.066910"}, "last_updated": stamp}
    ) == ["coordinates.longitude: required field is missing"]
    assert ocpi.validate_patch(
        "location", {"opening_times": {"twentyfourseven": False}, "last_updated": stamp}
    ) == ["opening_times: regular_hours must contain at least one entry when twentyfourseven is false"]
    incomplete = samples.connector()
    del incomplete["max_electric_power"]
    assert ocpi.validate_patch("evse", {"connectors": [incomplete], "last_updated": stamp}) == [
        "connectors[0].max_electric_power: required field is missing (mandatory for NDW/AFIR)"
    ]
    assert ocpi.validate_patch("evse", {"connectors": [incomplete], "last_updated": stamp}, "ocpi") == []


def test_patch_field_rules_still_apply() -> None:
    stamp = "2026-11-01T12:00:00Z"
    assert ocpi.validate_patch("evse", {"status": "available", "last_updated": stamp}) != []
    assert ocpi.validate_patch("evse", {"status": None, "last_updated": stamp}) == [
        "status: null is not allowed (omit an optional field instead)"
    ]
    assert ocpi.validate_patch("connector", {"tariff_ids": [], "last_updated": stamp}) != []
    assert ocpi.validate_patch("evse", {"colour": "red", "last_updated": stamp}) == [
        "colour: unknown field (not in OCPI 2.2.1)"
    ]
    assert (
        ocpi.validate_patch("evse", {"status": "REMOVED", "last_updated": "2026-11-01T12:00:00+00:00"}) != []
    )
    assert ocpi.validate_patch("tariff", samples.tariff()) != []  # tariffs have no PATCH


# --------------------------------------------------------------------------------------------
# DateTime helpers


def test_ocpi_datetime_formats_utc_z() -> None:
    amsterdam = timezone(timedelta(hours=1))
    when = datetime(2026, 11, 1, 13, 58, 0, 123456, tzinfo=amsterdam)
    assert ocpi.ocpi_datetime(when) == "2026-11-01T12:58:00Z"
    assert ocpi.ocpi_datetime(when, millis=True) == "2026-11-01T12:58:00.123Z"
    with pytest.raises(ValueError):
        ocpi.ocpi_datetime(datetime(2026, 11, 1))
    assert errors_of("connector", samples.connector(last_updated=ocpi.ocpi_datetime(when, millis=True))) == []


def test_parse_datetime() -> None:
    assert ocpi.parse_datetime("2016-12-29T17:45:09.2Z") == datetime(
        2016, 12, 29, 17, 45, 9, 200000, tzinfo=UTC
    )
    assert ocpi.parse_datetime("2015-06-29T20:39:09") == datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)
    with pytest.raises(ValueError):
        ocpi.parse_datetime("2015-06-29T20:39:09+00:00")


# --------------------------------------------------------------------------------------------
# JSON Schema export


def test_json_schema_reflects_the_profiles() -> None:
    ndw, plain = ocpi.json_schema("connector", "ndw"), ocpi.json_schema("connector", "ocpi")
    assert {"max_electric_power", "tariff_ids"} <= set(ndw["required"])
    assert not {"max_electric_power", "tariff_ids"} & set(plain["required"])
    assert ndw["properties"]["tariff_ids"]["minItems"] == 1
    assert ndw["additionalProperties"] is False
    assert ndw["properties"]["last_updated"]["pattern"].endswith("Z$")
    assert plain["properties"]["last_updated"]["pattern"].endswith("Z?$")
    location = ocpi.json_schema("location", "ndw")
    assert {"opening_times", "energy_mix"} <= set(location["required"])
    assert location["properties"]["address"]["maxLength"] == 45
    assert "null" not in json.dumps(location)  # optional never means nullable
    assert "last_updated" in ocpi.json_schema("evse", "ndw", patch=True)["required"]
    assert ocpi.json_schema("evse", "ndw", patch=True)["required"] == ["last_updated"]


def test_committed_schema_files_are_up_to_date() -> None:
    directory = ROOT / "evpipeline" / "ocpi" / "schemas"
    expected = ocpi.schema_files()
    committed = {p.name: p.read_text() for p in directory.glob("*.schema.json")}
    assert committed == expected, "regenerate with: python -m evpipeline.ocpi.definition "
