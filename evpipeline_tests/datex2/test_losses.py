"""The mapping document's machine-readable half (evpipeline/datex2/losses.json) is complete and true:
every field of our OCPI definition is mapped or listed as lost, and every DATEX II path it names
exists in the vendored 3.7 schemas (evpipeline_tests/datex2/schemas/), the value-level losses are
those of the builder's rules (evpipeline/datex2/rules.py), and what is listed as mapped is what the
builder writes."""

from __future__ import annotations

import json
import re
import types
import typing
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from evpipeline.ocpi import definition as ocpi

LOSSES = Path(ocpi.__file__).resolve().parents[1] / "datex2" / "losses.json"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DOCS = Path(ocpi.__file__).resolve().parents[2] / "docs" / "datex2.md"
XS = "{http://www.w3.org/2001/XMLSchema}"
ROOTS: dict[str, type[BaseModel]] = {"Location": ocpi.Location, "EVSE": ocpi.EVSE, "Connector": ocpi.Connector, "Tariff": ocpi.Tariff}


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


# -- the schemas ------------------------------------------------------------------------------


@cache
def schema_types() -> dict[str, ET.Element]:
    files = sorted(SCHEMAS.rglob("*.xsd"))
    assert files, f"no vendored DATEX II XML schemas under {SCHEMAS}"
    found: dict[str, ET.Element] = {}
    for path in files:
        for node in ET.parse(path).getroot():
            if node.tag in (f"{XS}complexType", f"{XS}simpleType") and node.get("name"):
                found[str(node.get("name"))] = node
    return found


def _local(qname: str | None) -> str:
    return (qname or "").split(":")[-1]


def _children(type_name: str) -> dict[str, str]:
    """Element and attribute names of a complex type (its extension bases included) -> type name."""
    node = schema_types()[type_name]
    out: dict[str, str] = {}
    extension = node.find(f"./{XS}complexContent/{XS}extension")
    if extension is not None:
        out.update(_children(_local(extension.get("base"))))
    for element in node.iter(f"{XS}element"):
        out[str(element.get("name"))] = _local(element.get("type")) or "(anonymous)"
    for attribute in node.iter(f"{XS}attribute"):
        out["@" + str(attribute.get("name"))] = _local(attribute.get("type")) or "string"
    return out


def _extends(sub: str, base: str) -> bool:
    while True:
        if sub == base:
            return True
        node = schema_types().get(sub)
        extension = node.find(f"./{XS}complexContent/{XS}extension") if node is not None else None
        if extension is None:
            return False
        sub = _local(extension.get("base"))


def _anonymous_children(type_name: str, element: str) -> dict[str, str]:
    node = schema_types()[type_name]
    for candidate in node.iter(f"{XS}element"):
        if candidate.get("name") == element:
            return {str(e.get("name")): _local(e.get("type")) for e in candidate.iter(f"{XS}element") if e is not candidate}
    return {}


SEGMENT = re.compile(r"^(@?[A-Za-z_][A-Za-z0-9_]*)(?:\[([A-Za-z][A-Za-z0-9]*)\])?$")


def resolve(path: str) -> str:
    """The type at the end of a losses.json DATEX II path; AssertionError naming the broken step."""
    first, *steps = path.split("/")
    match = SEGMENT.match(first)
    assert match, f"{path}: bad root {first!r}"
    current = match.group(1)
    if match.group(2):
        assert _extends(match.group(2), current), f"{path}: {match.group(2)} does not extend {current}"
        current = match.group(2)
    assert current in schema_types(), f"{path}: no type {current!r} in the schemas"
    after_extension, parent, anonymous = False, current, ""
    for step in steps:
        match = SEGMENT.match(step)
        assert match, f"{path}: bad step {step!r}"
        name, subtype = match.group(1), match.group(2)
        if after_extension:  # lax wildcard: the element of an extension schema type
            target = name[0].upper() + name[1:]
            assert target in schema_types(), f"{path}: no extension type {target!r} for {name!r}"
            after_extension = False
        elif anonymous:
            children = _anonymous_children(parent, anonymous)
            assert name in children, f"{path}: {name!r} is not an element of {anonymous!r}"
            target = children[name]
            anonymous = ""
        else:
            children = _children(current)
            assert name in children, f"{path}: {name!r} is not an element of {current}"
            target = children[name]
            if target == "(anonymous)":
                parent, anonymous = current, name
                continue
            if name.startswith("_") and target == "_ExtensionType":
                after_extension = True
                continue
        if subtype:
            assert _extends(subtype, target), f"{path}: {subtype} does not extend {target}"
            target = subtype
        current = target
    return current


# -- the tests --------------------------------------------------------------------------------


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
    for entry in data["ocpi_without_datex2"]:
        assert entry["reason"].strip(), entry


def test_every_datex2_path_exists_in_the_vendored_schemas() -> None:
    data = losses()
    paths = [m["datex2"] for m in data["mapped"]]
    paths += [m["datex2"] for m in data["datex2_without_ocpi"]]
    problems = []
    for path in paths:
        try:
            resolve(path)
        except AssertionError as exc:
            problems.append(str(exc).split("\n")[0])
    assert not problems, "\n".join(problems)
    for entry in data["datex2_without_ocpi"]:
        assert entry["reason"].strip(), entry


@pytest.mark.parametrize("bad", [
    "EnergyInfrastructureSite/nonsense",
    "EnergyInfrastructureSite/operator[RateTable]",
    "ElectricChargingPoint/connector/connectorType/deeper",
    "NoSuchType/name",
])
def test_the_path_check_rejects_paths_the_schemas_do_not_have(bad: str) -> None:
    with pytest.raises(AssertionError):
        resolve(bad)


def test_the_mapping_document_lists_every_loss() -> None:
    """docs/datex2.md names every lost OCPI field and every unfilled DATEX II element of losses.json."""
    text = DOCS.read_text()
    data = losses()
    absent = [e["ocpi"] for e in data["ocpi_without_datex2"] if f"`{e['ocpi']}`" not in text]
    absent += [e["datex2"] for e in data["datex2_without_ocpi"] if f"`{e['datex2']}`" not in text]
    assert not absent, f"in losses.json but not in docs/datex2.md: {absent}"


def test_value_losses_are_the_rules_losses() -> None:
    from evpipeline.datex2 import rules

    values = {v["ocpi"]: set(v["values"]) for v in losses()["value_losses"]}
    assert values["Connector.power_type"] == {k for k, v in rules.CHARGING_MODES.items() if v is None}
    assert values["EVSE.capabilities"] == {k for k, v in rules.AUTHENTICATION_METHODS.items() if v is None}
    assert values["Connector.standard"] == set(rules.LOSSY_CONNECTOR_TYPES)
    assert set(rules.REFILL_POINT_STATUSES) == set(typing.get_args(ocpi.Status))  # every status carries over


def _leaf(path: str) -> str:
    last = path.split("/")[-1]
    match = SEGMENT.match(last)
    assert match
    return match.group(2) or match.group(1)


def test_what_is_listed_as_mapped_is_what_the_builder_writes(tmp_path: Path) -> None:
    """Every mapped element appears in a static (or, for the status, a status) publication of a mart
    that has every mapped field filled."""
    import io

    from evpipeline.datex2 import write_publication
    from evpipeline.warehouse import WarehouseResource
    from evpipeline_tests.mart_fixture import standard_mart

    m = standard_mart(n_good=2)
    hours = {"twentyfourseven": False, "regular_hours": [{"weekday": 1, "period_begin": "07:00", "period_end": "22:00"}],
             "exceptional_openings": [{"period_begin": "2026-12-26T08:00:00Z", "period_end": "2026-12-26T12:00:00Z"}],
             "exceptional_closings": [{"period_begin": "2026-12-25T00:00:00Z", "period_end": "2026-12-26T00:00:00Z"}]}
    full = m.location(7, opening_times=json.dumps(hours), owner=json.dumps({"name": "Gemeente Utrecht", "website": "https://utrecht.nl"}),
                      operator=json.dumps({"name": "Allego", "website": "https://allego.eu"}))
    for e in (1, 2):
        m.connector(m.evse(full, e, capabilities=json.dumps(["RFID_READER", "CREDIT_CARD_PAYABLE"])), 1)
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    m.write(warehouse)
    documents = {}
    with warehouse.get_connection() as con:
        for kind in ("static", "status"):
            out = io.BytesIO()
            write_publication(con, kind, "xml", out)
            documents[kind] = out.getvalue().decode()
    missing = []
    for entry in losses()["mapped"]:
        document = documents["status" if "_refillPointExtension" in entry["datex2"] else "static"]
        leaf = _leaf(entry["datex2"])
        if leaf.startswith("@"):
            found = f' {leaf[1:]}="' in document
        elif "[" in entry["datex2"].split("/")[-1]:
            found = f':{leaf}"' in document  # xsi:type="prefix:Subtype"
        else:
            found = re.search(rf"<[a-z0-9]+:{re.escape(leaf)}[ />]", document) is not None
        if not found:
            missing.append(f"{entry['ocpi']} -> {entry['datex2']}")
    assert not missing, "listed as mapped but not in the builder's output:\n" + "\n".join(missing)
