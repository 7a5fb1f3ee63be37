"""Check 1: the profile's own JSON Schema sets (vendored under `profile/`, see SOURCE.txt there).

Each set (static, status) is loaded file by file into a `referencing` Registry under its file name,
so the sets' relative `$ref`s ("DATEXII_3_Common.json#/definitions/...") resolve inside the set and
nowhere else (no network, no other set). Draft 2020-12, as the files declare.

Roots, as the profile publishes them:
- static: `DATEXII_3_D2Payload.json` (the whole body `{"payload": {...}}`);
- status: `DATEXII_3_MessageContainer.json#/definitions/MessageContainer`, applied to the body's
  `messageContainer` member (the envelope `{"messageContainer": ...}` is the receiver's API).

The files are read as data with importlib.resources; nothing of our publication code is involved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

Publication = Literal["static", "status"]

ROOTS: dict[Publication, str] = {
    "static": "DATEXII_3_D2Payload.json",
    "status": "DATEXII_3_MessageContainer.json#/definitions/MessageContainer",
}


def json_path(prefix: str, parts: Iterable[str | int]) -> str:
    """`$.a.b[0].c` (JSONPath, as in the receiver's error lines)."""
    text = prefix
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


@cache
def registry(publication: Publication) -> Registry[Any]:
    """Every file of the set, by its file name."""
    folder = resources.files("evpipeline.simulators.datex2").joinpath("profile", publication)
    pairs = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            pairs.append((entry.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    if not pairs:
        raise RuntimeError(f"the DATEX II {publication} schema set is missing from the package")
    return Registry().with_resources(pairs)


@cache
def validator(publication: Publication) -> jsonschema.Draft202012Validator:
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": ROOTS[publication]}
    return jsonschema.Draft202012Validator(root, registry=registry(publication))


def _describe(error: jsonschema.ValidationError, prefix: str) -> str:
    parts = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.validator_value, list):
        # Name the missing member itself (the message says "'x' is a required property").
        missing = next(
            (
                name
                for name in error.validator_value
                if isinstance(error.instance, dict) and name not in error.instance
            ),
            None,
        )
        if missing is not None:
            return f"{json_path(prefix, [*parts, missing])}: required property is missing"
    return f"{json_path(prefix, parts)}: {error.message}"


def schema_errors(publication: Publication, instance: Any, prefix: str = "$") -> list[str]:
    """`<json path>: <reason>` for every place `instance` breaks the set's schema (document order).

    `prefix` is the JSON path of `instance` inside the body (status: `$.messageContainer`)."""
    return [_describe(e, prefix) for e in validator(publication).iter_errors(instance)]
