"""Real validators for what we publish: the AFIR profile's JSON Schema sets (jsonschema) for the JSON
documents, the DATEX II 3.7 XSD set (xmlschema) for the static XML, an XML parser for the status XML
(no XSD exists for it).

The profile's sets are vendored at evpipeline/simulators/datex2/profile/ and wired by the receiver
simulator's `schemas` module (one `referencing` Registry per set, Draft 2020-12, no network), which
these helpers reuse: the wiring itself is tested against the profile's official examples. The 3.7 XSD
set is vendored for these tests in `schemas/` (see schemas/SOURCE.txt); the product reads neither.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import xmlschema

from evpipeline.simulators.datex2 import schemas as profile

SCHEMAS = Path(__file__).parent / "schemas"
PROFILE = Path(profile.__file__).parent / "profile"


@cache
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / "xml" / "DATEXII_3_D2Payload.xsd"))


def xml_errors(document: bytes) -> list[str]:
    """The static XML against DATEX II 3.7."""
    return [f"{e.path}: {e.reason}" for e in xsd().iter_errors(document.decode())]


def json_errors(kind: str, document: bytes | dict[str, Any]) -> list[str]:
    """A JSON document against the profile's set: static, the whole body (`{"payload": ...}`); status,
    the body's only member `messageContainer` (root MessageContainer)."""
    body = json.loads(document) if isinstance(document, bytes) else document
    if kind == "static":
        return profile.schema_errors("static", body)
    if set(body) != {"messageContainer"}:
        return [f'$: the status body is {{"messageContainer": ...}}, not {sorted(body)}']
    return profile.schema_errors("status", body["messageContainer"], "$.messageContainer")


def status_xml_errors(document: bytes) -> list[str]:
    """The status XML: well-formed, UTF-8, the profile-native root `afir:messageContainer`."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        return [f"not well-formed: {exc}"]
    if root.tag != "{urn:evpipeline:datex2:afir:01-00-00}messageContainer":
        return [f"root is {root.tag}, not afir:messageContainer"]
    return []


def errors(kind: str, fmt: str, document: bytes) -> list[str]:
    if fmt == "json":
        return json_errors(kind, document)
    return xml_errors(document) if kind == "static" else status_xml_errors(document)


def assert_valid(kind: str, fmt: str, document: bytes) -> None:
    found = errors(kind, fmt, document)
    assert not found, f"{kind}.{fmt}:\n" + "\n".join(found[:10])


def enumeration(namespace: str, name: str) -> list[str]:
    """The values of one of the 3.7 XSD's enumerations (without the `_extended` sentinel)."""
    uri = f"http://datex2.eu/schema/3/{namespace}"
    values = xsd().maps.types[f"{{{uri}}}{name}"].enumeration  # type: ignore[union-attr]
    return [str(v) for v in values or [] if v != "_extended"]


@cache
def profile_definitions() -> dict[str, dict[str, Any]]:
    """Every definition of the profile's two sets by name (the sets agree where both have one)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(PROFILE.glob("*/*.json")):
        found.update(json.loads(path.read_text()).get("definitions", {}))
    return found


def profile_enumeration(name: str) -> list[str]:
    """The values of one of the profile's enumerations (without `extendedG`,
    the escape to an extended value)."""
    return [str(v) for v in profile_definitions()[name]["enum"] if v != "extendedG"]
