"""Checks on the canonical model: unique keys, references that resolve,
exported objects that pass our definition.

Each is an ERROR when it fails, and blocking: a run that builds `mart` and goes on to deliver
(export, push) stops before delivering a model with duplicate keys, orphans or invalid objects.
The queries are plain functions (`mart_problems`; the NDW selection's `invalid_exported` lives with the
delivery, in `evpipeline.ndw.assets`) so tests and tools can ask the same questions of any warehouse.
The check is built by `mart_integrity_check` with the delivery's question passed in, so the model does
not import the delivery above it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import duckdb

from evpipeline.model.keys import MART_KEYS
from evpipeline.model.tables import CONNECTORS, EVSES, KEYS, LOCATIONS, TARIFFS
from evpipeline.warehouse import WarehouseResource

UNIQUE = "unique_keys"
LOCATION_EXISTS = "location_exists"
EVSE_EXISTS = "evse_exists"
TARIFFS_EXIST = "tariffs_exist"
OCPI_DEFINITION = "ocpi_definition"


def _duplicates(table: str) -> str:
    keys = ", ".join(KEYS[table])
    return f"SELECT {keys}, count(*) AS n FROM {table} GROUP BY ALL HAVING count(*) > 1"


def _orphans(child: str, parent: str, keys: tuple[str, ...]) -> str:
    match = " AND ".join(f"p.{k} = c.{k}" for k in keys)
    cols = ", ".join(f"c.{k}" for k in KEYS[child])
    return (
        f"SELECT {cols} FROM {child} c WHERE NOT c.is_deleted "
        f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"
    )


# connector tariff_ids -> mart.tariffs of the same CPO
_MISSING_TARIFFS = f"""
    SELECT c.country_code, c.party_id, c.location_id, c.evse_uid, c.connector_id, t.tariff_id
    FROM {CONNECTORS} c, unnest(CAST(c.tariff_ids AS VARCHAR[])) AS t(tariff_id)
    WHERE NOT c.is_deleted AND c.tariff_ids IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {TARIFFS} x WHERE x.country_code = c.country_code
                      AND x.party_id = c.party_id
                      AND x.tariff_id = t.tariff_id AND NOT x.is_deleted)
"""

# (check name, table, SQL returning the offending rows)
QUERIES: list[tuple[str, str, str]] = [
    *((UNIQUE, table, _duplicates(table)) for table in (LOCATIONS, EVSES, CONNECTORS, TARIFFS)),
    (LOCATION_EXISTS, EVSES, _orphans(EVSES, LOCATIONS, KEYS[LOCATIONS])),
    (EVSE_EXISTS, CONNECTORS, _orphans(CONNECTORS, EVSES, KEYS[EVSES])),
    (TARIFFS_EXIST, CONNECTORS, _MISSING_TARIFFS),
]
DESCRIPTIONS = {
    UNIQUE: "No two rows share the table's OCPI key.",
    LOCATION_EXISTS: "Every live EVSE belongs to an existing location (no orphan EVSEs).",
    EVSE_EXISTS: "Every live connector belongs to an existing EVSE.",
    TARIFFS_EXIST: "Every tariff id a live connector names is a live tariff of the same CPO.",
    OCPI_DEFINITION: "Every object selected for NDW (export and push) passes our OCPI 2.2.1 + AFIR "
    "definition (evpipeline.ocpi.definition); failing objects would otherwise be sent.",
}


def mart_problems(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, int, list[dict[str, Any]]]]:
    """(check, table, offending rows, sample) for every key/reference check."""
    for name, table, sql in QUERIES:
        frame = con.execute(f"SELECT * FROM ({sql}) LIMIT 1000").df()
        yield name, table, len(frame), frame.head(10).astype(str).to_dict("records")


def _sample(rows: list[dict[str, Any]]) -> dg.MetadataValue:
    return dg.MetadataValue.json(rows[:10])


# How many objects the NDW selection would send, and those that fail the definition.
ExportedInvalid = Callable[[duckdb.DuckDBPyConnection], tuple[int, list[dict[str, Any]]]]


def mart_integrity_check(invalid_exported: ExportedInvalid) -> dg.AssetChecksDefinition:
    """The blocking `mart_integrity` check: the key/reference queries here, and the delivery's own
    question (`invalid_exported`, from `evpipeline.ndw.assets`) for the exported objects."""

    @dg.multi_asset_check(
        specs=[
            *(
                dg.AssetCheckSpec(name, asset=MART_KEYS[table], description=DESCRIPTIONS[name], blocking=True)
                for name, table, _sql in QUERIES
            ),
            dg.AssetCheckSpec(
                OCPI_DEFINITION,
                asset=MART_KEYS[LOCATIONS],
                description=DESCRIPTIONS[OCPI_DEFINITION],
                blocking=True,
                additional_deps=[MART_KEYS[t] for t in (EVSES, CONNECTORS, TARIFFS)],
            ),
        ],
        name="mart_integrity",
        description="Keys, references and the NDW definition of the canonical model.",
    )
    def mart_integrity(warehouse: WarehouseResource) -> Iterator[dg.AssetCheckResult]:
        with warehouse.get_connection() as con:
            for name, table, count, sample in mart_problems(con):
                yield dg.AssetCheckResult(
                    asset_key=MART_KEYS[table],
                    check_name=name,
                    passed=count == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"offending_rows": count, "sample": _sample(sample)},
                )
            selected, failing = invalid_exported(con)
        yield dg.AssetCheckResult(
            asset_key=MART_KEYS[LOCATIONS],
            check_name=OCPI_DEFINITION,
            passed=not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "objects_selected": selected,
                "objects_failing": len(failing),
                "sample": _sample(failing),
            },
        )

    return mart_integrity
