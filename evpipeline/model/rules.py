"""Mapping rules from each source's vocabulary into OCPI 2.2.1 terms: small tables, nothing guessed.

Each table maps a source value to OCPI values. A value with no rule maps to NULL and is listed in
`mart.unmapped_values` (and the mart asset's metadata) instead of being guessed. The mapping SQL in
`evpipeline/model/mappings/` joins these tables, registered as DuckDB relations by `register_rules`.
"""

from __future__ import annotations

import csv
import hashlib
import math
from importlib import resources
from typing import get_args

import duckdb
import pandas as pd

from evpipeline.model import nuts
from evpipeline.ocpi import definition as ocpi

# EVRoam connectorType -> (OCPI standard, OCPI format). Tethered = cable attached to the charger.
EVROAM_CONNECTORS: dict[str, tuple[str, str]] = {
    "Type 2 Socketed": ("IEC_62196_T2", "SOCKET"),
    "Type 2 Tethered": ("IEC_62196_T2", "CABLE"),
    "Type 1 Tethered": ("IEC_62196_T1", "CABLE"),
    "Type 2 CCS": ("IEC_62196_T2_COMBO", "CABLE"),
    "CHAdeMO": ("CHADEMO", "CABLE"),
}

# EVRoam availabilityStatus -> OCPI EVSE Status ("Occupied" = in use).
EVROAM_AVAILABILITY: dict[str, str] = {
    "Available": "AVAILABLE",
    "Occupied": "CHARGING",
    "Unavailable": "OUTOFORDER",
    "Unknown": "UNKNOWN",
}

# EVRoam installationStatus -> OCPI EVSE Status, when it decides the status on its own.
EVROAM_INSTALLATION: dict[str, str] = {
    "Proposed": "PLANNED",
    "Planned": "PLANNED",
    "Under Construction": "PLANNED",
    "Decommissioned": "REMOVED",
    "Abandoned": "REMOVED",
}

# EVRoam floorLevel (free text) -> OCPI floor_level string(4); values of <= 4 characters pass as they are.
EVROAM_FLOORS: dict[str, str] = {"Ground": "0", "UG": "-1", "Basement": "-1", "Rooftop": "R"}


# Zaptec ChargerOperationMode (state 710) -> OCPI EVSE Status. A connected vehicle occupies the EVSE
# whether it is requesting, charging or finished ("in use" = CHARGING in OCPI).
ZAPTEC_OPERATION_MODES: dict[str, str] = {
    "Unknown": "UNKNOWN",
    "Disconnected": "AVAILABLE",
    "Connected_Requesting": "CHARGING",
    "Connected_Charging": "CHARGING",
    "Connected_Finished": "CHARGING",
}

# Zaptec model (from the DeviceId prefix) -> (OCPI standard, format, rated amperage per phase).
# Pro, Go and Go 2 have a Type 2 socket rated 32 A; Sense is an energy meter, not a charger: no EVSE.
ZAPTEC_MODELS: dict[str, tuple[str, str, int]] = {
    "Pro": ("IEC_62196_T2", "SOCKET", 32),
    "Go": ("IEC_62196_T2", "SOCKET", 32),
    "Go2": ("IEC_62196_T2", "SOCKET", 32),
}
ZAPTEC_NOT_CHARGERS = {"Sense"}

# Zaptec NetworkType -> (phases the grid brings, volts across each phase's load when all are used).
# OCPI's max_voltage is line to neutral: 230 V on a TN grid (400 V between lines). An IT grid has
# 230 V between lines and no neutral, so its 3 phases carry 230 / sqrt(3) V each (Zaptec: 3-phase on
# IT is at most 12.7 kW at 32 A); a single phase, on either grid, is 230 V. 0 Unknown has no rule.
ZAPTEC_SINGLE_PHASE_VOLTS = 230.0
ZAPTEC_NETWORKS: dict[int, tuple[int, float]] = {
    1: (1, 230.0),  # IT 1-phase
    2: (3, round(230.0 / math.sqrt(3), 4)),  # IT 3-phase
    3: (1, 230.0),  # TN 1-phase
    4: (3, 230.0),  # TN 3-phase
}
# Phases a charger uses (the grid's, or fewer when its MaxPhases says so) -> OCPI power_type.
ZAPTEC_POWER_TYPES: dict[int, str] = {1: "AC_1_PHASE", 3: "AC_3_PHASE"}


# GreenFlux location `type` -> OCPI ParkingType (OTHER/UNKNOWN have no OCPI equivalent: omitted).
GREENFLUX_PARKING_TYPES: dict[str, str] = {
    "ON_STREET": "ON_STREET",
    "PARKING_GARAGE": "PARKING_GARAGE",
    "UNDERGROUND_GARAGE": "UNDERGROUND_GARAGE",
    "PARKING_LOT": "PARKING_LOT",
}

# Closed OCPI 2.2.1 vocabularies, for values a source passes through (GreenFlux is OCPI-like): a value
# outside them is reported and left out of a list, or leaves the field empty; never guessed.
OCPI_VALUES: dict[str, tuple[str, ...]] = {
    "standard": get_args(ocpi.ConnectorType),
    "format": get_args(ocpi.ConnectorFormat),
    "power_type": get_args(ocpi.PowerType),
    "status": get_args(ocpi.Status),
    "capability": get_args(ocpi.Capability),
    "facility": get_args(ocpi.Facility),
    "parking_restriction": get_args(ocpi.ParkingRestriction),
}


def sql_values(kind: str) -> str:
    """An OCPI vocabulary as a SQL list literal (for list_contains/list_filter in mapping SQL)."""
    return "[" + ", ".join(f"'{v}'" for v in OCPI_VALUES[kind]) + "]"


def _frame(rows: list[tuple[object, ...]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def operators() -> pd.DataFrame:
    """The documented operator -> CPO party mapping (`operators.csv`): the charging point owner's party."""
    text = resources.files("evpipeline.model").joinpath("operators.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return pd.DataFrame(rows, columns=["source", "operator", "country_code", "party_id", "cpo_name", "note"])


def rule_frames() -> dict[str, pd.DataFrame]:
    """Every rule table, by the relation name the mapping SQL uses."""
    return {
        "rules_operators": operators(),
        "rules_evroam_connectors": _frame(
            [(k, *v) for k, v in EVROAM_CONNECTORS.items()], ["value", "standard", "format"]
        ),
        "rules_evroam_availability": _frame(list(EVROAM_AVAILABILITY.items()), ["value", "status"]),
        "rules_evroam_installation": _frame(list(EVROAM_INSTALLATION.items()), ["value", "status"]),
        "rules_evroam_floors": _frame(list(EVROAM_FLOORS.items()), ["value", "floor_level"]),
        "rules_zaptec_modes": _frame(list(ZAPTEC_OPERATION_MODES.items()), ["value", "status"]),
        "rules_zaptec_models": _frame(
            [(k, *v, False) for k, v in ZAPTEC_MODELS.items()]
            + [(k, None, None, None, True) for k in ZAPTEC_NOT_CHARGERS],
            ["value", "standard", "format", "amperage", "not_a_charger"],
        ),
        "rules_zaptec_networks": _frame(
            [(k, *v, ZAPTEC_SINGLE_PHASE_VOLTS) for k, v in ZAPTEC_NETWORKS.items()],
            ["value", "phases", "phase_volts", "single_phase_volts"],
        ),
        "rules_zaptec_power_types": _frame(list(ZAPTEC_POWER_TYPES.items()), ["phases", "power_type"]),
        "rules_greenflux_parking": _frame(list(GREENFLUX_PARKING_TYPES.items()), ["value", "parking_type"]),
        "rules_nuts_countries": nuts.frame(),
    }


def rules_digest() -> str:
    """A fingerprint of every rule table: when a deployment changes a rule, the model is rebuilt in full."""
    text = "\n".join(f"{name}\n{frame.to_csv(index=False)}" for name, frame in sorted(rule_frames().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def register_rules(con: duckdb.DuckDBPyConnection, extra: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """Register the rule tables on a connection (temporary views over the frames)."""
    frames = {**rule_frames(), **(extra or {})}
    for name, frame in frames.items():
        con.register(name, frame)
    return list(frames)
