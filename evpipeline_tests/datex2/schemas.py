"""Real validators for DATEX II 3.7 documents: xmlschema for the XSD set, jsonschema for the JSON Schema.

The schema files in `schemas/` are vendored verbatim for these tests (see schemas/SOURCE.txt); the
product does not need them at run time.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / "xml" / "DATEXII_3_D2Payload.xsd"))


@cache
def json_validator() -> Draft202012Validator:
    resources = [(p.name, Resource.from_contents(json.loads(p.read_text()))) for p in (SCHEMAS / "json").glob("*.json")]
    root = json.loads((SCHEMAS / "json" / "DATEXII_3_D2Payload.json").read_text())
    return Draft202012Validator(root, registry=Registry().with_resources(resources),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def xml_errors(document: bytes) -> list[str]:
    return [f"{e.path}: {e.reason}" for e in xsd().iter_errors(document.decode())]


def json_errors(document: bytes) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in json_validator().iter_errors(json.loads(document))]


def enumeration(namespace: str, name: str) -> list[str]:
    """The values of one of the XSD's enumerations (without the `_extended` sentinel)."""
    uri = f"http://datex2.eu/schema/3/{namespace}"
    values = xsd().maps.types[f"{{{uri}}}{name}"].enumeration  # type: ignore[union-attr]
    return [str(v) for v in values or [] if v != "_extended"]


def assert_valid(fmt: str, document: bytes) -> Any:
    errors = xml_errors(document) if fmt == "xml" else json_errors(document)
    assert not errors, "\n".join(errors[:10])
