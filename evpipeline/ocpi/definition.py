"""The project's own machine-checkable OCPI 2.2.1 definition, plus NDW's DOT-NL profile.

Written from the rules text (`docs/ocpi.md` summarises it; where the third-party OpenAPI is laxer,
the text wins): closed enums, string lengths, printable-ASCII CiStrings, UTC `Z` DateTimes of at
most 25 characters, coordinates as strings with 5-7 decimals, cardinalities, unknown fields are
errors, and the cross-field rules (opening hours, energy-mix percentages, publish_allowed_to).

Two profiles:
- `ocpi`: plain OCPI 2.2.1 (also accepts the zone-less DateTime form the spec allows);
- `ndw`: OCPI 2.2.1 plus the five AFIR-mandatory fields NDW requires, and DateTimes must end in `Z`
  (NDW's connection schemas are OpenAPI, whose `date-time` format demands an offset, and OCPI says
  `+00:00` is not UTC, so `Z` is the only form both accept).

Plausibility rules the field tables leave open are part of the definition too: a connector's power
within physics (`power_problem`, both profiles) and, under `ndw`, AFIR's eMI3 `evse_id` on every EVSE
and an `operator` on every Location. The NDW selection applies the same rules in SQL, built from the
constants here (`PHASES`, `POWER_TOLERANCE_PERCENT`, `POWER_PROBLEM`, `EVSE_ID_PATTERN`).

Use `validate_location/evse/connector/tariff(obj, profile)` for a list of readable errors,
`validate_patch(kind, obj, profile)` for push PATCH bodies, `json_schema(kind, profile)` for the
same definition as JSON Schema (committed under evpipeline/ocpi/schemas/), and `ocpi_datetime` to format.
Optional fields may be absent but never `null` (the OpenAPI types them without null either).
"""

from __future__ import annotations

import argparse
import json
import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    model_validator,
)
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticCustomError, core_schema

Kind = Literal["location", "evse", "connector", "tariff"]
Profile = Literal["ndw", "ocpi"]
KINDS: tuple[Kind, ...] = ("location", "evse", "connector", "tariff")
PROFILES: tuple[Profile, ...] = ("ndw", "ocpi")

# The optional OCPI elements NDW made mandatory because of AFIR (seed 002 / rules §3.1).
AFIR_FIELDS: dict[Kind, tuple[str, ...]] = {
    "location": ("opening_times", "energy_mix"),
    "evse": ("parking_restrictions",),
    "connector": ("max_electric_power", "tariff_ids"),
    "tariff": (),
}

# --------------------------------------------------------------------------------------------
# Primitive types

PRINTABLE_ASCII = r"^[\x20-\x7E]*$"  # CiString: printable ASCII only (so no CR, LF or TAB either)
NO_CR_LF_TAB = r"^[^\r\n\t]*$"  # string: any UTF-8 but no CR, LF or TAB
LATITUDE = r"^-?[0-9]{1,2}\.[0-9]{5,7}$"
LONGITUDE = r"^-?[0-9]{1,3}\.[0-9]{5,7}$"
HOUR_MINUTE = r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$"  # so "24:00" is invalid
DATE = r"^([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
URL_PATTERN = r"^https?://[^\s]+$"
DATETIME_Z = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$"
DATETIME_OCPI = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?$"
_DATETIME = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z?)$"
)

# eMI3 EVSE ID (AFIR: the charging point's identifier; eMI3 v1.0 Part 2): country code, optional *,
# 3-character operator id, optional *, E, then 1-30 of A-Z, 0-9 and *; case-insensitive like a CiString.
EVSE_ID_PATTERN = r"^[A-Za-z]{2}\*?[A-Za-z0-9]{3}\*?[Ee][A-Za-z0-9*]{1,30}$"

PATTERN_HELP = {
    PRINTABLE_ASCII: "must be printable ASCII (CiString: no accents, CR, LF or TAB)",
    NO_CR_LF_TAB: "must not contain CR, LF or TAB",
    LATITUDE: r"latitude must be a string matching -?[0-9]{1,2}\.[0-9]{5,7} (5-7 decimals)",
    LONGITUDE: r"longitude must be a string matching -?[0-9]{1,3}\.[0-9]{5,7} (5-7 decimals)",
    HOUR_MINUTE: "must be HH:MM from 00:00 to 23:59 (24:00 is invalid)",
    DATE: "must be a date YYYY-MM-DD",
    URL_PATTERN: "must be an http(s) URL without spaces",
    EVSE_ID_PATTERN: "must be an eMI3 EVSE ID like NL*ABC*E12345 (country, operator id, E, 1-30 characters)",
}

T = TypeVar("T")


def _profile(info: ValidationInfo) -> str:
    return str((info.context or {}).get("profile", "ndw"))


def _rule(message: str) -> PydanticCustomError:
    return PydanticCustomError("ocpi_rule", message)


def _afir_required(what: str) -> Any:
    """A validator for a field OCPI leaves optional and AFIR does not: absent (or null) is an error."""

    def check(value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("afir_rule", f"required field is missing (mandatory for AFIR: {what})")
        return value

    return BeforeValidator(check)


def _no_null(value: Any) -> Any:
    if value is None:
        raise _rule("null is not allowed; omit the field instead")
    return value


# Optional: may be absent, never null.
Opt = Annotated[T | None, BeforeValidator(_no_null)]


def _check_datetime(value: str, info: ValidationInfo) -> str:
    if len(value) > 25:
        raise _rule(f"DateTime is {len(value)} characters, at most 25 allowed (use seconds or milliseconds)")
    match = _DATETIME.match(value)
    if not match:
        raise _rule("must be an RFC 3339 UTC DateTime like 2015-06-29T20:39:09Z (no +00:00 or other offset)")
    if not match.group(8) and _profile(info) != "ocpi":
        raise _rule("must end in Z (UTC); the zone-less form is OCPI-legal but not accepted by NDW's schemas")
    try:
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise _rule("is not a valid calendar date/time") from None
    return value


def _check_decimals(value: float) -> float:
    if abs(round(value, 4) - value) > 1e-9:
        raise _rule("OCPI numbers have at most 4 decimals")
    return value


def _check_latitude(value: str) -> str:
    if abs(float(value)) > 90:
        raise _rule("latitude must be between -90 and 90")
    return value


def _check_longitude(value: str) -> str:
    if abs(float(value)) > 180:
        raise _rule("longitude must be between -180 and 180")
    return value


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_time_zone(value: str) -> str:
    if value not in _time_zones():
        raise _rule(f"{value!r} is not an IANA time zone (e.g. Europe/Amsterdam)")
    return value


def _ci(max_length: int, min_length: int = 0) -> Any:
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=PRINTABLE_ASCII)


def _s(max_length: int, min_length: int = 0) -> Any:
    return StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_CR_LF_TAB)


DateTime = Annotated[
    str,
    AfterValidator(_check_datetime),
    WithJsonSchema({"type": "string", "maxLength": 25, "pattern": DATETIME_Z}),
]
Number = Annotated[float, AllowInfNan(False), AfterValidator(_check_decimals)]
NonNegativeInt = Annotated[int, Field(ge=0)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # CiString(2), ISO 3166 alpha-2
PartyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]  # CiString(3), ISO 15118
Id36 = Annotated[str, _ci(36, 1)]  # ids address URLs, so never empty
CiString4 = Annotated[str, _ci(4)]
CiString48 = Annotated[str, _ci(48)]
Alpha3 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]  # ISO 3166-1 alpha-3 / ISO 4217
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]  # ISO 639-1
Url = Annotated[str, StringConstraints(max_length=255, pattern=URL_PATTERN)]
Latitude = Annotated[str, StringConstraints(max_length=10, pattern=LATITUDE), AfterValidator(_check_latitude)]
Longitude = Annotated[
    str, StringConstraints(max_length=11, pattern=LONGITUDE), AfterValidator(_check_longitude)
]
HourMinute = Annotated[str, StringConstraints(max_length=5, pattern=HOUR_MINUTE)]
Date = Annotated[str, StringConstraints(max_length=10, pattern=DATE)]
TimeZone = Annotated[str, _s(255, 1), AfterValidator(_check_time_zone)]

# --------------------------------------------------------------------------------------------
# Enums (closed, exactly as OCPI 2.2.1 spells them; values are case-sensitive)

ConnectorType = Literal[
    "CHADEMO", "CHAOJI", "DOMESTIC_A", "DOMESTIC_B", "DOMESTIC_C", "DOMESTIC_D", "DOMESTIC_E",
    "DOMESTIC_F", "DOMESTIC_G", "DOMESTIC_H", "DOMESTIC_I", "DOMESTIC_J", "DOMESTIC_K", "DOMESTIC_L",
    "DOMESTIC_M", "DOMESTIC_N", "DOMESTIC_O", "GBT_AC", "GBT_DC", "IEC_60309_2_single_16",
    "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64", "IEC_62196_T1",
    "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A", "IEC_62196_T3C",
    "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30", "NEMA_14_50",
    "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S",
]  # fmt: skip
ConnectorFormat = Literal["SOCKET", "CABLE"]
PowerType = Literal["AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"]
Status = Literal[
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
]
Capability = Literal[
    "CHARGING_PROFILE_CAPABLE", "CHARGING_PREFERENCES_CAPABLE", "CHIP_CARD_SUPPORT",
    "CONTACTLESS_CARD_SUPPORT", "CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL",
    "REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER", "START_SESSION_CONNECTOR_REQUIRED",
    "TOKEN_GROUP_CAPABLE", "UNLOCK_CAPABLE",
]  # fmt: skip
ParkingRestriction = Literal["EV_ONLY", "PLUGGED", "DISABLED", "CUSTOMERS", "MOTORCYCLES"]
ParkingType = Literal[
    "ALONG_MOTORWAY", "PARKING_GARAGE", "PARKING_LOT", "ON_DRIVEWAY", "ON_STREET", "UNDERGROUND_GARAGE"
]
Facility = Literal[
    "HOTEL", "RESTAURANT", "CAFE", "MALL", "SUPERMARKET", "SPORT", "RECREATION_AREA", "NATURE", "MUSEUM",
    "BIKE_SHARING", "BUS_STOP", "TAXI_STAND", "TRAM_STOP", "METRO_STATION", "TRAIN_STATION", "AIRPORT",
    "PARKING_LOT", "CARPOOL_PARKING", "FUEL_STATION", "WIFI",
]  # fmt: skip
EnergySourceCategory = Literal[
    "NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER"
]
EnvironmentalImpactCategory = Literal["NUCLEAR_WASTE", "CARBON_DIOXIDE"]
ImageCategory = Literal["CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER"]
TokenType = Literal["AD_HOC_USER", "APP_USER", "OTHER", "RFID"]
TariffDimensionType = Literal["ENERGY", "FLAT", "PARKING_TIME", "TIME"]
TariffType = Literal["AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR"]
DayOfWeek = Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
ReservationRestrictionType = Literal["RESERVATION", "RESERVATION_EXPIRES"]

# --------------------------------------------------------------------------------------------
# Plausibility: a connector's power within physics

# Conductors carrying the power of each PowerType. OCPI's max_voltage is line to neutral for AC, so a
# connector cannot deliver more than max_voltage x max_amperage x phases.
PHASES: dict[str, int] = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3, "DC": 1}
# Nominal ratings are rounded (7,400 W stated for 230 V x 32 A = 7,360 W): that much, never more.
POWER_TOLERANCE_PERCENT = 1
POWER_PROBLEM = (
    "max_electric_power {power} W exceeds max_voltage {voltage} V x max_amperage {amperage} A x "
    "{phases} phase(s) ({power_type}) = {limit} W"
)


def power_problem(
    power_type: str, max_voltage: int, max_amperage: int, max_electric_power: int
) -> str | None:
    """Why a connector's power is physically impossible, naming the figures; None when it is possible."""
    phases = PHASES[power_type]
    limit = max_voltage * max_amperage * phases
    if max_electric_power * 100 <= limit * (100 + POWER_TOLERANCE_PERCENT):
        return None
    return POWER_PROBLEM.format(
        power=max_electric_power,
        voltage=max_voltage,
        amperage=max_amperage,
        phases=phases,
        power_type=power_type,
        limit=limit,
    )


# --------------------------------------------------------------------------------------------
# Objects


class OcpiModel(BaseModel):
    """Strict JSON types (no "1" for 1, no 1 for "1"), and unknown fields are errors."""

    model_config = ConfigDict(strict=True, extra="forbid")


class DisplayText(OcpiModel):
    language: Language
    text: Annotated[str, _s(512, 1)]


class GeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    latitude: Latitude
    longitude: Longitude
    name: Opt[DisplayText] = None


class Image(OcpiModel):
    url: Url
    thumbnail: Opt[Url] = None
    category: ImageCategory
    type: CiString4
    width: Opt[Annotated[int, Field(ge=0, le=99999)]] = None
    height: Opt[Annotated[int, Field(ge=0, le=99999)]] = None


class BusinessDetails(OcpiModel):
    name: Annotated[str, _s(100, 1)]
    website: Opt[Url] = None
    logo: Opt[Image] = None


class PublishTokenType(OcpiModel):
    uid: Opt[Id36] = None
    type: Opt[TokenType] = None
    visual_number: Opt[Annotated[str, _s(64)]] = None
    issuer: Opt[Annotated[str, _s(64)]] = None
    group_id: Opt[Id36] = None

    @model_validator(mode="after")
    def _identifies_a_token(self) -> Self:
        if self.uid is None and self.visual_number is None and self.group_id is None:
            raise _rule("at least one of uid, visual_number or group_id is required")
        if self.uid is not None and self.type is None:
            raise _rule("type is required when uid is given")
        if self.visual_number is not None and self.issuer is None:
            raise _rule("issuer is required when visual_number is given")
        return self


class RegularHours(OcpiModel):
    weekday: Annotated[int, Field(ge=1, le=7)]  # 1 = Monday ... 7 = Sunday
    period_begin: HourMinute
    period_end: HourMinute

    @model_validator(mode="after")
    def _end_after_begin(self) -> Self:
        if self.period_end <= self.period_begin:  # HH:MM strings order like times
            raise _rule(f"period_end {self.period_end} must be later than period_begin {self.period_begin}")
        return self


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime


class Hours(OcpiModel):
    twentyfourseven: bool
    regular_hours: Opt[list[RegularHours]] = None
    exceptional_openings: Opt[list[ExceptionalPeriod]] = None
    exceptional_closings: Opt[list[ExceptionalPeriod]] = None

    @model_validator(mode="after")
    def _regular_hours_iff_not_247(self) -> Self:
        if not self.twentyfourseven and not self.regular_hours:
            raise _rule("regular_hours must contain at least one entry when twentyfourseven is false")
        if self.twentyfourseven and self.regular_hours:
            raise _rule("regular_hours may only be used when twentyfourseven is false")
        return self


class EnergySource(OcpiModel):
    source: EnergySourceCategory
    percentage: Annotated[Number, Field(ge=0, le=100)]


class EnvironmentalImpact(OcpiModel):
    category: EnvironmentalImpactCategory
    amount: Annotated[Number, Field(ge=0)]  # g/kWh


class EnergyMix(OcpiModel):
    is_green_energy: bool
    energy_sources: Opt[list[EnergySource]] = None
    environ_impact: Opt[list[EnvironmentalImpact]] = None
    supplier_name: Opt[Annotated[str, _s(64)]] = None
    energy_product_name: Opt[Annotated[str, _s(64)]] = None

    @model_validator(mode="after")
    def _sources_add_up(self) -> Self:
        if self.energy_sources:
            total = sum(s.percentage for s in self.energy_sources)
            if abs(total - 100) > 0.01:
                raise _rule(f"energy_sources percentages add up to {total:g}, not 100")
        return self


class StatusSchedule(OcpiModel):
    period_begin: DateTime
    period_end: Opt[DateTime] = None
    status: Status


class Connector(OcpiModel):
    id: Id36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: NonNegativeInt  # V, line to neutral for AC_3_PHASE
    max_amperage: NonNegativeInt  # A
    max_electric_power: Opt[NonNegativeInt] = None  # W
    tariff_ids: Opt[list[Id36]] = None
    terms_and_conditions: Opt[Url] = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _power_within_physics(self) -> Self:
        if self.max_electric_power is not None:
            problem = power_problem(
                self.power_type, self.max_voltage, self.max_amperage, self.max_electric_power
            )
            if problem:
                raise _rule(problem)
        return self


class EVSE(OcpiModel):
    uid: Id36
    evse_id: Opt[CiString48] = None
    status: Status
    status_schedule: Opt[list[StatusSchedule]] = None
    capabilities: Opt[list[Capability]] = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: Opt[Annotated[str, _s(4)]] = None
    coordinates: Opt[GeoLocation] = None
    physical_reference: Opt[Annotated[str, _s(16)]] = None
    directions: Opt[list[DisplayText]] = None
    parking_restrictions: Opt[list[ParkingRestriction]] = None
    images: Opt[list[Image]] = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _connector_ids_unique(self) -> Self:
        _unique([c.id for c in self.connectors], "connector id")
        return self


class Location(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: Id36
    publish: bool
    publish_allowed_to: Opt[list[PublishTokenType]] = None
    name: Opt[Annotated[str, _s(255)]] = None
    address: Annotated[str, _s(45, 1)]  # 255 after the 2026 erratum; 45 is what every schema checks
    city: Annotated[str, _s(45, 1)]
    postal_code: Opt[Annotated[str, _s(10)]] = None
    state: Opt[Annotated[str, _s(20)]] = None  # 45 after the erratum; 20 to be safe
    country: Alpha3
    coordinates: GeoLocation
    related_locations: Opt[list[AdditionalGeoLocation]] = None
    parking_type: Opt[ParkingType] = None
    evses: Opt[list[EVSE]] = None
    directions: Opt[list[DisplayText]] = None
    operator: Opt[BusinessDetails] = None
    suboperator: Opt[BusinessDetails] = None
    owner: Opt[BusinessDetails] = None
    facilities: Opt[list[Facility]] = None
    time_zone: TimeZone
    opening_times: Opt[Hours] = None
    charging_when_closed: Opt[bool] = None
    images: Opt[list[Image]] = None
    energy_mix: Opt[EnergyMix] = None
    last_updated: DateTime

    @model_validator(mode="after")
    def _publish_rules(self) -> Self:
        if self.publish and self.publish_allowed_to:
            raise _rule("publish_allowed_to may only be given when publish is false")
        _unique([e.uid for e in self.evses or []], "EVSE uid")
        return self


class Price(OcpiModel):
    excl_vat: Number
    incl_vat: Opt[Number] = None


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number  # excl. VAT
    vat: Opt[Number] = None  # absent means no VAT applies, which differs from 0 %
    step_size: NonNegativeInt


class TariffRestrictions(OcpiModel):
    start_time: Opt[HourMinute] = None
    end_time: Opt[HourMinute] = None  # earlier than start_time wraps to the next day
    start_date: Opt[Date] = None
    end_date: Opt[Date] = None
    min_kwh: Opt[Number] = None
    max_kwh: Opt[Number] = None
    min_current: Opt[Number] = None
    max_current: Opt[Number] = None
    min_power: Opt[Number] = None
    max_power: Opt[Number] = None
    min_duration: Opt[NonNegativeInt] = None
    max_duration: Opt[NonNegativeInt] = None
    day_of_week: Opt[list[DayOfWeek]] = None
    reservation: Opt[ReservationRestrictionType] = None


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: Opt[TariffRestrictions] = None


class Tariff(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: Id36
    currency: Alpha3
    type: Opt[TariffType] = None
    tariff_alt_text: Opt[list[DisplayText]] = None
    tariff_alt_url: Opt[Url] = None
    min_price: Opt[Price] = None
    max_price: Opt[Price] = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    start_date_time: Opt[DateTime] = None
    end_date_time: Opt[DateTime] = None
    energy_mix: Opt[EnergyMix] = None
    last_updated: DateTime


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in ids:
        key = value.casefold()  # CiStrings compare case-insensitively
        if key in seen:
            raise _rule(f"duplicate {what} {value!r}")
        seen.add(key)


# --------------------------------------------------------------------------------------------
# NDW profile: the same objects with the AFIR-mandatory fields required.


class NdwConnector(Connector):
    max_electric_power: Annotated[int, Field(gt=0)]  # W; 0 is not a rating
    # Non-empty: AFIR wants the ad-hoc price, and a free connector points to a free tariff.
    tariff_ids: Annotated[list[Id36], Field(min_length=1)]


EvseId = Annotated[str, StringConstraints(max_length=48, pattern=EVSE_ID_PATTERN)]


class NdwEVSE(EVSE):
    connectors: Annotated[list[NdwConnector], Field(min_length=1)]  # type: ignore[assignment]  # list is invariant; pydantic re-validates the narrower item model
    # Required but may be empty: [] states "no restrictions" (there is no NONE value to send).
    parking_restrictions: list[ParkingRestriction]
    # AFIR identifies every charging point by its eMI3 EVSE ID. Required by a validator, not as a
    # field: NDW's OCPI schema keeps it optional, so the published schema does too (with its pattern).
    evse_id: Annotated[EvseId | None, _afir_required("the eMI3 EVSE ID")] = Field(
        default=None, validate_default=True
    )


class NdwLocation(Location):
    evses: Opt[list[NdwEVSE]] = None  # type: ignore[assignment]  # list is invariant; pydantic re-validates the narrower item model
    opening_times: Hours
    energy_mix: EnergyMix
    # AFIR names the operator of every location (OCPI leaves it optional); required the same way.
    operator: Annotated[BusinessDetails | None, _afir_required("the operator")] = Field(
        default=None, validate_default=True
    )


MODELS: dict[tuple[Kind, Profile], type[OcpiModel]] = {
    ("location", "ocpi"): Location,
    ("location", "ndw"): NdwLocation,
    ("evse", "ocpi"): EVSE,
    ("evse", "ndw"): NdwEVSE,
    ("connector", "ocpi"): Connector,
    ("connector", "ndw"): NdwConnector,
    ("tariff", "ocpi"): Tariff,
    ("tariff", "ndw"): Tariff,  # NDW adds nothing to Tariff
}


@cache
def _patch_model(kind: Kind, profile: Profile) -> type[OcpiModel]:
    """A PATCH body: every field optional except last_updated; whatever is included must be complete."""
    full = MODELS[(kind, profile)]
    fields: dict[str, Any] = {}
    for name, info in full.model_fields.items():
        annotated = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        if name == "last_updated":
            fields[name] = (annotated, ...)
        else:
            # Not Optional: absent leaves the stored value alone, an explicit null is an error.
            fields[name] = (annotated, Field(default=None))
    return create_model(f"{full.__name__}Patch", __base__=OcpiModel, __doc__=_patch_model.__doc__, **fields)


def model_for(kind: Kind, profile: Profile = "ndw", *, patch: bool = False) -> type[OcpiModel]:
    """The pydantic model of `kind` under `profile` (the PATCH variant with `patch=True`)."""
    if (kind, profile) not in MODELS:
        raise ValueError(f"unknown kind/profile {kind!r}/{profile!r}; kinds {KINDS}, profiles {PROFILES}")
    return _patch_model(kind, profile) if patch else MODELS[(kind, profile)]


# --------------------------------------------------------------------------------------------
# Validation API


def validate(kind: Kind, obj: Any, profile: Profile = "ndw", *, patch: bool = False) -> list[str]:
    """Human-readable errors (`path: problem`) of `obj` as a `kind`; empty when it is valid."""
    model = model_for(kind, profile, patch=patch)
    try:
        model.model_validate(obj, context={"profile": profile})
    except ValidationError as exc:
        return [_describe(error, kind, profile) for error in exc.errors()]
    return []


def validate_location(obj: Any, profile: Profile = "ndw") -> list[str]:
    return validate("location", obj, profile)


def validate_evse(obj: Any, profile: Profile = "ndw") -> list[str]:
    return validate("evse", obj, profile)


def validate_connector(obj: Any, profile: Profile = "ndw") -> list[str]:
    return validate("connector", obj, profile)


def validate_tariff(obj: Any, profile: Profile = "ndw") -> list[str]:
    return validate("tariff", obj, profile)


def validate_patch(kind: Kind, obj: Any, profile: Profile = "ndw") -> list[str]:
    """A push PATCH body: only `last_updated` is mandatory; every included sub-object must be complete.

    Tariffs have no PATCH in OCPI (NDW: PUT/DELETE only), so `kind` is location, evse or connector.
    """
    if kind == "tariff":
        return ["(root): Tariffs cannot be PATCHed (OCPI and NDW allow only PUT and DELETE)"]
    return validate(kind, obj, profile, patch=True)


def error_path(loc: tuple[int | str, ...]) -> str:
    """('evses', 0, 'connectors', 1, 'standard') -> 'evses[0].connectors[1].standard'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def _describe(error: Mapping[str, Any], kind: Kind, profile: Profile) -> str:
    loc, kind_of_error = tuple(error["loc"]), error["type"]
    ctx = error.get("ctx") or {}
    if kind_of_error == "afir_rule":
        message = str(error["msg"])
    elif kind_of_error != "missing" and "input" in error and error["input"] is None:
        message = "null is not allowed (omit an optional field instead)"
    elif kind_of_error == "missing":
        field = str(loc[-1]) if loc else ""
        afir = any(field in names for names in AFIR_FIELDS.values())
        message = "required field is missing" + (
            " (mandatory for NDW/AFIR)" if profile == "ndw" and afir else ""
        )
    elif kind_of_error == "extra_forbidden":
        message = "unknown field (not in OCPI 2.2.1)"
    elif kind_of_error == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        value = error.get("input")
        message = f"{value!r} is not an allowed value"
        hint = [a for a in allowed if isinstance(value, str) and a.casefold() == value.casefold()]
        if hint:
            message += f"; did you mean {hint[0]!r}? (enum values are case-sensitive)"
        elif len(allowed) <= 10:
            message += f" (allowed: {', '.join(allowed)})"
    elif kind_of_error == "string_pattern_mismatch":
        message = PATTERN_HELP.get(str(ctx.get("pattern")), str(error["msg"]))
        if str(loc[-1] if loc else "") in ("country_code", "party_id", "currency", "country", "language"):
            message = f"{error['msg']} (got {error.get('input')!r})"
    else:
        message = str(error["msg"])
    return f"{error_path(loc)}: {message}"


# --------------------------------------------------------------------------------------------
# Formatting


def ocpi_datetime(when: datetime, *, millis: bool = False) -> str:
    """An OCPI DateTime: UTC with `Z`, never `+00:00`, at most 25 characters."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: attach a time zone before formatting it for OCPI")
    when = when.astimezone(UTC)
    fraction = f".{when.microsecond // 1000:03d}" if millis else ""
    return when.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def parse_datetime(value: str) -> datetime:
    """An OCPI DateTime (with or without `Z`; zone-less means UTC) as an aware UTC datetime."""
    match = _DATETIME.match(value)
    if not match or len(value) > 25:
        raise ValueError(f"not an OCPI DateTime: {value!r}")
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    return datetime(year, month, day, hour, minute, second, int(fraction or 0), tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# JSON Schema export

CROSS_FIELD_RULES = (
    "Hours: regular_hours has at least one entry when twentyfourseven is false, and none when it is true.",
    "RegularHours: period_end is later than period_begin.",
    "EnergyMix: energy_sources percentages add up to 100 when given.",
    "Location: publish_allowed_to only when publish is false; EVSE uids unique (case-insensitive).",
    "EVSE: connector ids unique within the EVSE (case-insensitive).",
    "PublishTokenType: one of uid/visual_number/group_id; uid needs type; visual_number needs issuer.",
    "Numbers have at most 4 decimals; time_zone is an IANA zone; coordinates within +-90/+-180.",
    "Connector: max_electric_power <= max_voltage x max_amperage x phases (AC_1_PHASE 1, AC_2_PHASE and "
    "AC_2_PHASE_SPLIT 2, AC_3_PHASE 3, DC 1) plus 1 % for rounded ratings.",
)
# Required by the ndw profile although the schema (like NDW's) keeps them optional.
AFIR_RULES = "AFIR (ndw profile): every EVSE has an eMI3 evse_id; every Location has an operator."


class _SchemaGenerator(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> Any:
        # Optional fields may be absent, never null: describe only the non-null type.
        return self.generate_inner(schema["schema"])


def _tidy(node: Any, profile: Profile) -> Any:
    if isinstance(node, dict):
        out = {k: _tidy(v, profile) for k, v in node.items() if not (k == "default" and v is None)}
        if profile == "ocpi" and out.get("pattern") == DATETIME_Z:
            out["pattern"] = DATETIME_OCPI  # the spec's zone-less form is legal OCPI
        return out
    if isinstance(node, list):
        return [_tidy(v, profile) for v in node]
    return node


def json_schema(kind: Kind, profile: Profile = "ndw", *, patch: bool = False) -> dict[str, Any]:
    """The definition as JSON Schema (2020-12). Cross-field rules are listed in the description."""
    model = model_for(kind, profile, patch=patch)
    schema = _tidy(model.model_json_schema(schema_generator=_SchemaGenerator), profile)
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"Generated by evpipeline.ocpi.definition (profile {profile!r}); do not edit by hand.",
        "description": f"OCPI 2.2.1 {kind}{' PATCH' if patch else ''}, profile {profile!r}. Also checked "
        "(not expressible here): "
        + " ".join((*CROSS_FIELD_RULES, *((AFIR_RULES,) if profile == "ndw" else ()))),
    }
    return {**head, **{k: v for k, v in schema.items() if k != "description"}}


def schema_files() -> dict[str, str]:
    """File name -> content of every committed schema (evpipeline/ocpi/schemas/)."""
    return {
        f"{kind}.{profile}.schema.json": json.dumps(json_schema(kind, profile), indent=2, sort_keys=True)
        + "\n"
        for kind in KINDS
        for profile in PROFILES
    }


# Shipped with the package (package-data), so the published schemas are readable from an install.
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write the OCPI/NDW JSON Schemas (evpipeline/ocpi/schemas/)."
    )
    parser.add_argument("--write-schemas", type=Path, default=SCHEMA_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    for path in write_schemas(args.write_schemas):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
