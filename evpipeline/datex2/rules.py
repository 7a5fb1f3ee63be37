"""Mapping rules from our OCPI-shaped model (`mart`) into the AFIR DATEX II profile's terms: small
tables, nothing guessed.

Every DATEX II value written comes from one of these tables, and every table's right-hand side is a
value of the profile's own enumeration, which is also DATEX II 3.7's where 3.7 has the element
(both checked against the schemas in the tests). A model value with no rule is never invented: for a
mandatory element (connectorType) the object is rejected; for an optional one the element is left
out and the value is counted in `PublicationStats.unmapped` (field, value, rows). `None` on the
right-hand side is an explicit rule: "there is no DATEX II equivalent; omit it" (still reported).

Profile: "AFIR Energy Infrastructure" 01-00-00 (Mobilithek, revision 2 of April 2026), on DATEX II
3 (CEN/TS 16157-10:2022).
"""

from __future__ import annotations

PROFILE_NAME = "AFIR Energy Infrastructure"
PROFILE_VERSION = "01-00-00"
MODEL_BASE_VERSION = "3"

# OCPI ConnectorType -> DATEX II ConnectorTypeEnum. OCPI types DATEX II 3.7 has no value for (China's
# GB/T and ChaoJi, North-American NEMA sockets) map to the schema's own `other`: the connector is
# still published (with its power), and the loss is reported.
CONNECTOR_TYPES: dict[str, str] = {
    "CHADEMO": "chademo",
    **{f"DOMESTIC_{x}": f"domestic{x}" for x in "ABCDEFGHIJKLMNO"},
    "IEC_60309_2_single_16": "iec60309x2single16",
    "IEC_60309_2_three_16": "iec60309x2three16",
    "IEC_60309_2_three_32": "iec60309x2three32",
    "IEC_60309_2_three_64": "iec60309x2three64",
    "IEC_62196_T1": "iec62196T1",
    "IEC_62196_T1_COMBO": "iec62196T1COMBO",
    "IEC_62196_T2": "iec62196T2",
    "IEC_62196_T2_COMBO": "iec62196T2COMBO",
    "IEC_62196_T3A": "iec62196T3A",
    "IEC_62196_T3C": "iec62196T3C",
    "PANTOGRAPH_BOTTOM_UP": "pantographBottomUp",
    "PANTOGRAPH_TOP_DOWN": "pantographTopDown",
    "TESLA_R": "teslaR",
    "TESLA_S": "teslaS",
    # No DATEX II 3.7 value: published as `other` (reported as lossy).
    "CHAOJI": "other",
    "GBT_AC": "other",
    "GBT_DC": "other",
    "NEMA_5_20": "other",
    "NEMA_6_30": "other",
    "NEMA_6_50": "other",
    "NEMA_10_30": "other",
    "NEMA_10_50": "other",
    "NEMA_14_30": "other",
    "NEMA_14_50": "other",
}
# OCPI standards whose rule above loses information (reported in PublicationStats.unmapped).
LOSSY_CONNECTOR_TYPES = frozenset(k for k, v in CONNECTOR_TYPES.items() if v == "other")

# OCPI power_type -> DATEX II ChargingModeEnum (IEC 61851-1 modes). Public AC charging stations are
# mode 3, DC is mode 4. DATEX II 3.7 has mode 3 only as three-phase (`mode3AC3p`): single- and
# two-phase AC have no value and are omitted (optional element; reported).
CHARGING_MODES: dict[str, str | None] = {
    "AC_3_PHASE": "mode3AC3p",
    "DC": "mode4DC",
    "AC_1_PHASE": None,
    "AC_2_PHASE": None,
    "AC_2_PHASE_SPLIT": None,
}

# (OCPI format, current) -> DATEX II ConnectorFormatTypeEnum. A cable attached to an AC station is a
# mode-3 cable; DATEX II has no DC cable value, so a DC cable is `otherCable`.
CONNECTOR_FORMATS: dict[tuple[str, str], str] = {
    ("SOCKET", "AC"): "socket",
    ("SOCKET", "DC"): "socket",
    ("CABLE", "AC"): "cableMode3",
    ("CABLE", "DC"): "otherCable",
}


def current(power_type: str | None) -> str | None:
    """AC or DC from an OCPI power_type (the key of CONNECTOR_FORMATS)."""
    if power_type is None:
        return None
    return "DC" if power_type == "DC" else "AC" if power_type.startswith("AC_") else None


# OCPI EVSE Status -> the profile's RefillPointStatusEnum (ElectricChargingPointStatus.status).
REFILL_POINT_STATUS_VALUES = (
    "available", "blocked", "charging", "faulted", "inoperative", "occupied", "outOfOrder",
    "outOfStock", "planned", "removed", "reserved", "unavailable", "unknown",
)  # fmt: skip
REFILL_POINT_STATUSES: dict[str, str] = {
    "AVAILABLE": "available",
    "BLOCKED": "blocked",
    "CHARGING": "charging",
    "INOPERATIVE": "inoperative",
    "OUTOFORDER": "outOfOrder",
    "PLANNED": "planned",
    "REMOVED": "removed",
    "RESERVED": "reserved",
    "UNKNOWN": "unknown",
}

# OCPI EVSE capability -> DATEX II AuthenticationAndIdentificationEnum (the station's
# authenticationAndIdentificationMethods, which also carries the payment methods: creditCard,
# debitCard, ...). `None`: the capability is not an authentication or payment method, or has no
# DATEX II equivalent (CHIP_CARD_SUPPORT does not say which card), so it is omitted.
AUTHENTICATION_METHODS: dict[str, str | None] = {
    "RFID_READER": "rfid",
    "CREDIT_CARD_PAYABLE": "creditCard",
    "DEBIT_CARD_PAYABLE": "debitCard",
    "CONTACTLESS_CARD_SUPPORT": "nfc",
    "PED_TERMINAL": "pinpad",
    "REMOTE_START_STOP_CAPABLE": "apps",
    "CHIP_CARD_SUPPORT": None,
    "CHARGING_PROFILE_CAPABLE": None,
    "CHARGING_PREFERENCES_CAPABLE": None,
    "RESERVABLE": None,
    "START_SESSION_CONNECTOR_REQUIRED": None,
    "TOKEN_GROUP_CAPABLE": None,
    "UNLOCK_CAPABLE": None,
}

# OCPI RegularHours.weekday (1 = Monday) -> DATEX II DayEnum.
WEEKDAYS: dict[int, str] = {
    1: "monday", 2: "tuesday", 3: "wednesday", 4: "thursday", 5: "friday", 6: "saturday", 7: "sunday",
}  # fmt: skip

# Opening hours (OCPI Hours -> DATEX II OperatingHours, `inputs.opening_hours`):
#   twentyfourseven, no exceptional closings      -> OpenAllHours
#   twentyfourseven with exceptional closings     -> OperatingHoursSpecification, no validPeriod
#                                                    (open throughout), closings as exceptionPeriod
#   regular_hours (+ exceptional openings/closings) -> OperatingHoursSpecification: one validPeriod
#                                                    per (period_begin, period_end) with its weekdays;
#                                                    openings as extra validPeriods, closings as
#                                                    exceptionPeriods
# Regular hours are local time at the location (OCPI), written with the profile's technical `Z`
# ("no semantic significance", its annotated example). The time zone is the FacilityLocation's
# `timeZone`: the zone's standard UTC offset (ISO 8601 takes a fixed offset).

# ISO 3166 alpha-3 (mart.locations.country) -> alpha-2 (DATEX II CountryCode): EU/EEA, the UK,
# Switzerland and the other countries our sources cover. A country without a rule leaves the
# address's (optional) countryCode out and is reported.
COUNTRIES: dict[str, str] = {
    "AUT": "AT", "BEL": "BE", "BGR": "BG", "HRV": "HR", "CYP": "CY", "CZE": "CZ", "DNK": "DK",
    "EST": "EE", "FIN": "FI", "FRA": "FR", "DEU": "DE", "GRC": "GR", "HUN": "HU", "IRL": "IE",
    "ITA": "IT", "LVA": "LV", "LTU": "LT", "LUX": "LU", "MLT": "MT", "NLD": "NL", "POL": "PL",
    "PRT": "PT", "ROU": "RO", "SVK": "SK", "SVN": "SI", "ESP": "ES", "SWE": "SE", "ISL": "IS",
    "LIE": "LI", "NOR": "NO", "CHE": "CH", "GBR": "GB", "NZL": "NZ", "AUS": "AU", "USA": "US",
    "CAN": "CA",
}  # fmt: skip

# OCPI Facility (what the location belongs to or offers) -> the site's supplementalFacility: a service
# facility (ServiceFacilityTypeEnum, usually manned) or a piece of equipment (EquipmentTypeEnum).
# `None`: no facility type says it (a public-transport stop, a car park, nature): omitted, reported.
SERVICE_FACILITIES: dict[str, str | None] = {
    "HOTEL": "hotel",
    "RESTAURANT": "restaurant",
    "CAFE": "cafe",
    "MALL": "shop",
    "SUPERMARKET": "foodShopping",
    "SPORT": "leisureActivities",
    "RECREATION_AREA": "leisureActivities",
    "MUSEUM": "leisureActivities",
    "BIKE_SHARING": "bikeSharing",
    "FUEL_STATION": "petrolStation",
    "NATURE": None,
    "BUS_STOP": None,
    "TAXI_STAND": None,
    "TRAM_STOP": None,
    "METRO_STATION": None,
    "TRAIN_STATION": None,
    "AIRPORT": None,
    "PARKING_LOT": None,
    "CARPOOL_PARKING": None,
}
EQUIPMENT_FACILITIES: dict[str, str | None] = {"WIFI": "internetWireless"}

# OCPI ParkingRestriction (of an EVSE's bay) -> the station's accessibility:
#   a vehicle restriction every charging point of the station has -> applicableForVehicles
#     (EV_ONLY: fuelType battery; MOTORCYCLES: vehicleType motorcycle); one unrestricted bay makes
#     the station usable by any vehicle, so nothing is written then;
#   a user restriction -> dedicatedParkingSpaces for that user type (UserTypeEnum), one space per
#     charging point whose bay has it (OCPI describes the bay in front of an EVSE);
#   PLUGGED (park only while charging) has no element: omitted, reported.
VEHICLE_FUEL_TYPES: dict[str, str] = {"EV_ONLY": "battery"}
VEHICLE_TYPES: dict[str, str] = {"MOTORCYCLES": "motorcycle"}
PARKING_USERS: dict[str, str] = {"DISABLED": "personsWithDisabilities", "CUSTOMERS": "customers"}
PARKING_WITHOUT_ELEMENT = frozenset({"PLUGGED"})

# A charging point's floor (OCPI floor_level, as the garage numbers it) as the station's
# supplementaryPositionalDescription: "<label> <floor>" in the document's language (English where
# the language has no label here).
FLOOR_LABELS: dict[str, str] = {"nl": "Verdieping", "en": "Level", "de": "Etage", "fr": "Niveau"}
