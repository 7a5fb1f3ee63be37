"""The mapping document's machine-readable half (evpipeline/datex2/losses.json) is complete and true:
every field of our OCPI definition is mapped or listed as lost, every profile path it names exists in
the vendored AFIR profile schema sets, every mapped path actually occurs in the generated fleet's
publications, the value losses are the builder's rules, and docs/datex2.md names every loss."""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from evpipeline.afir import annex as afir_annex
from evpipeline.datex2 import rates, rules
from evpipeline.ocpi import definition as ocpi
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.afir.paths import datex2_exists, profile_sets
from evpipeline_tests.datex2.fleet import generated_mart, point_statuses, points, publish, sites, stations

LOSSES = Path(ocpi.__file__).resolve().parents[1] / "datex2" / "losses.json"
DOCS = Path(ocpi.__file__).resolve().parents[2] / "docs" / "datex2.md"
ROOTS: dict[str, type[BaseModel]] = {
    "Location": ocpi.Location,
    "EVSE": ocpi.EVSE,
    "Connector": ocpi.Connector,
    "Tariff": ocpi.Tariff,
}


def losses() -> dict[str, Any]:
    return dict(json.loads(LOSSES.read_text()))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside Opt[...], list[...], Annotated[...] (None for a plain value)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    if isinstance(annotation, types.UnionType):
        return next((m for a in annotation.__args__ if (m := _model_of(a)) is not None), None)
    return None


def ocpi_fields() -> dict[str, type[BaseModel] | None]:
    """Every field path of Location/EVSE/Connector/Tariff (nested models expanded, the four roots not
    re-entered: Location.evses is one field, EVSE.* are the EVSE's own), with its model if nested."""
    found: dict[str, type[BaseModel] | None] = {}

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            nested = _model_of(info.annotation)
            path = f"{prefix}.{name}"
            if nested is not None and any(issubclass(nested, root) for root in ROOTS.values()):
                found[path] = None
                continue
            found[path] = nested
            if nested is not None:
                walk(path, nested)

    for root, model in ROOTS.items():
        walk(root, model)
    return found


def profile_paths(data: dict[str, Any]) -> list[str]:
    return [e["datex2"] for key in ("mapped", "reference_data", "datex2_without_ocpi") for e in data[key]]


# -- the document against our OCPI definition and the profile ------------------------------------------


def test_every_ocpi_field_is_mapped_or_listed_as_a_loss() -> None:
    data = losses()
    mapped = {m["ocpi"] for m in data["mapped"]}
    lost = {m["ocpi"] for m in data["ocpi_without_datex2"]}
    assert not mapped & lost, f"both mapped and lost: {sorted(mapped & lost)}"
    fields = ocpi_fields()
    unknown = sorted((mapped | lost) - set(fields) - set(ROOTS))
    assert not unknown, f"not fields of our OCPI definition: {unknown}"

    def covered(path: str) -> bool:
        parts = path.split(".")
        return path in mapped or any(".".join(parts[:i]) in lost for i in range(1, len(parts) + 1))

    missing = sorted(p for p in fields if not covered(p))
    assert not missing, f"neither mapped nor listed as lost in losses.json: {missing}"
    for entry in data["ocpi_without_datex2"] + data["datex2_without_ocpi"]:
        assert entry["reason"].strip(), entry


def test_every_profile_path_exists_in_the_vendored_profile() -> None:
    sets = profile_sets()
    missing = [path for path in profile_paths(losses()) if not datex2_exists(path, sets)]
    assert not missing, f"not in the vendored profile schemas: {missing}"


@pytest.mark.parametrize(
    "bad",
    [
        "EnergyInfrastructureSite/nonsense",
        "EnergyInfrastructureSite/operator/rateTable",
        "Connector/connectorType/deeper",
        "NoSuchType/name",
    ],
)
def test_the_path_check_rejects_paths_the_profile_does_not_have(bad: str) -> None:
    assert not datex2_exists(bad)


def test_value_losses_are_the_rules_losses() -> None:
    values = {v["ocpi"]: set(v["values"]) for v in losses()["value_losses"]}
    assert values["Connector.power_type"] == {k for k, v in rules.CHARGING_MODES.items() if v is None}
    assert values["EVSE.capabilities"] == {k for k, v in rules.AUTHENTICATION_METHODS.items() if v is None}
    assert values["Connector.standard"] == set(rules.LOSSY_CONNECTOR_TYPES)
    assert values["Connector.format"] == {
        f"{f} with {c}" for (f, c), v in rules.CONNECTOR_FORMATS.items() if v == "otherCable"
    }
    assert values["Tariff.type"] == set(typing.get_args(ocpi.TariffType)) - {
        t for t in rates.AD_HOC_TYPES if t
    }
    assert values["Tariff.elements.price_components.type"] == set(
        typing.get_args(ocpi.TariffDimensionType)
    ) - set(rates.PRICE_TYPES)
    assert values["EVSE.status"] == set(typing.get_args(ocpi.Status)) - set(
        rules.REFILL_POINT_STATUSES
    )  # none: every status carries
    assert values["Location.facilities"] == {
        k for k, v in {**rules.SERVICE_FACILITIES, **rules.EQUIPMENT_FACILITIES}.items() if v is None
    }
    assert values["EVSE.parking_restrictions"] == set(typing.get_args(ocpi.ParkingRestriction)) - set(
        rules.VEHICLE_FUEL_TYPES
    ) - set(rules.VEHICLE_TYPES) - set(rules.PARKING_USERS)


def test_the_mapping_document_names_every_loss() -> None:
    """docs/datex2.md names every lost OCPI field, every profile element we cannot fill and every value
    loss."""
    text = DOCS.read_text()
    data = losses()
    absent = [e["ocpi"] for e in data["ocpi_without_datex2"] if f"`{e['ocpi']}`" not in text]
    absent += [e["datex2"] for e in data["datex2_without_ocpi"] if f"`{e['datex2']}`" not in text]
    absent += [f"{e['ocpi']}: {v}" for e in data["value_losses"] for v in e["values"] if v not in text]
    absent += [e["mart"] for e in data["reference_data"] if f"`{e['mart']}`" not in text]
    assert not absent, f"in losses.json but not in docs/datex2.md: {absent}"


# -- what is listed as mapped is what the builder writes ----------------------------------------------

WRAPPER = re.compile(r"^(afac|aegi|loc|com)[A-Z]\w*$|ExtensionG$|^FacilityLocation$")


def instances(static: dict[str, Any], status: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The objects of each profile type a path may start from, as a receiver finds them in the documents."""
    site_list = sites(static)
    station_list = [st for _, st in stations(static)]
    point_list = [p for _, _, p in points(static)]
    energy = [e for p in point_list for e in p.get("electricEnergy", [])]
    rate_list = [r for e in energy for r in e.get("energyRate", [])]
    point_status = [p for _, _, p in point_statuses(status)]
    return {
        "EnergyInfrastructureSite": site_list,
        "EnergyInfrastructureStation": station_list,
        "ElectricChargingPoint": point_list,
        "Connector": [c for p in point_list for c in p.get("connector", [])],
        "ElectricEnergy": energy,
        "EnergyRate": rate_list,
        "EnergyPrice": [x for r in rate_list for x in r.get("energyPrice", [])],
        "DedicatedParkingSpaces": [d for st in station_list for d in st.get("dedicatedParkingSpaces", [])],
        "FacilityLocation": [
            o["locationReference"]["locPointLocation"]["locLocationExtensionG"]["FacilityLocation"]
            for o in site_list + station_list
        ],
        "ElectricChargingPointStatus": point_status,
        "EnergyRateUpdate": [u for p in point_status for u in p.get("energyRateUpdate", [])],
    }


def _values(obj: Any, name: str, depth: int = 0) -> Iterator[Any]:
    """Property `name` of `obj`, stepping through subtype wrappers and extension keys."""
    if not isinstance(obj, dict) or depth > 4:
        return
    if name in obj:
        value = obj[name]
        yield from value if isinstance(value, list) else [value]
        return
    for key, value in obj.items():
        if WRAPPER.search(key):
            for inner in value if isinstance(value, list) else [value]:
                yield from _values(inner, name, depth + 1)


def occurs(path: str, found: dict[str, list[dict[str, Any]]]) -> bool:
    root, *names = path.split("/")
    frontier: list[Any] = list(found.get(root, []))
    for name in names:
        frontier = [value for obj in frontier for value in _values(obj, name)]
    return bool(frontier)


@pytest.fixture(scope="module")
def fleet_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    warehouse = WarehouseResource(database=str(tmp_path_factory.mktemp("losses") / "warehouse.duckdb"))
    generated_mart().write(warehouse)
    published = publish(warehouse, documents_=(("static", "json"), ("status", "json")))
    return instances(published.json("static"), published.json("status"))


def test_every_mapped_path_occurs_in_the_generated_fleets_publications(
    fleet_objects: dict[str, list[dict[str, Any]]],
) -> None:
    data = losses()
    missing = [
        f"{e.get('ocpi', e.get('mart'))} -> {e['datex2']}"
        for e in data["mapped"] + data["reference_data"]
        if not occurs(e["datex2"], fleet_objects)
    ]
    assert not missing, "listed as mapped but not in the fleet's publications:\n" + "\n".join(missing)


def test_the_occurrence_check_finds_a_path_the_builder_does_not_write(
    fleet_objects: dict[str, list[dict[str, Any]]],
) -> None:
    for path in (
        "EnergyInfrastructureSite/brand",
        "ElectricChargingPoint/smartRechargingServices",
        "EnergyPrice/priceCap",
        "EnergyInfrastructureSite/typeOfSite",
    ):
        assert not occurs(path, fleet_objects), path
    assert occurs("FacilityLocation/nutsArea/nutsCode", fleet_objects)
    assert occurs(
        "EnergyInfrastructureSite/operatingHours/overallPeriod/validPeriod/recurringDayWeekMonthPeriod/applicableDay",
        fleet_objects,
    )


# -- the AFIR annex map's DATEX II paths are what the builder writes ----------------------------------


def test_every_annex_row_carried_in_datex2_occurs_in_the_generated_fleets_publications(
    fleet_objects: dict[str, list[dict[str, Any]]],
) -> None:
    """A row of evpipeline/afir/annex.yaml that the model carries (not `not_carried`) and whose DATEX II
    path the publication does not write says why (`datex2_gap`); every other path occurs in the fleet."""
    missing = [
        f"{row.number} {row.id}: {path}"
        for row in afir_annex.load().rows
        if row.model and not row.not_carried and not row.datex2_gap
        for path in row.datex2
        if not occurs(path, fleet_objects)
    ]
    assert not missing, (
        "the annex says DATEX II carries these, the fleet's publications do not:\n" + "\n".join(missing)
    )
