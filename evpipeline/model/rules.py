"""Mapping rules from each source's vocabulary into OCPI 2.2.1 terms: small tables, nothing guessed.

Each table maps a source value to OCPI values. A value with no rule maps to NULL and is listed in
`mart.unmapped_values` (and the mart asset's metadata) instead of being guessed. The mapping SQL in
`evpipeline/model/mappings/` joins these tables, registered as DuckDB relations by `register_rules`.
"""

from __future__ import annotations

import csv
from importlib import resources

import duckdb
import pandas as pd

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
        "rules_evroam_connectors": _frame([(k, *v) for k, v in EVROAM_CONNECTORS.items()], ["value", "standard", "format"]),
        "rules_evroam_availability": _frame(list(EVROAM_AVAILABILITY.items()), ["value", "status"]),
        "rules_evroam_installation": _frame(list(EVROAM_INSTALLATION.items()), ["value", "status"]),
        "rules_evroam_floors": _frame(list(EVROAM_FLOORS.items()), ["value", "floor_level"]),
    }


def register_rules(con: duckdb.DuckDBPyConnection, extra: dict[str, pd.DataFrame] | None = None) -> list[str]:
    """Register the rule tables on a connection (temporary views over the frames)."""
    frames = {**rule_frames(), **(extra or {})}
    for name, frame in frames.items():
        con.register(name, frame)
    return list(frames)
