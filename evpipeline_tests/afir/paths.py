"""Resolving the annex map's paths for its guarding test: OCPI field paths in our definition (and what
NDW's profile makes of them), DATEX II paths in the vendored AFIR profile schema sets."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from evpipeline.afir.annex import NDW_RULES, NdwRule
from evpipeline.ocpi.definition import AFIR_FIELDS, Kind, model_for

PROFILE = Path(__file__).resolve().parents[2] / "evpipeline" / "simulators" / "datex2" / "profile"
ROOTS: dict[str, Kind] = {
    "Location": "location",
    "EVSE": "evse",
    "Connector": "connector",
    "Tariff": "tariff",
}


# -- OCPI ---------------------------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models inside a field's annotation (through Optional, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def ocpi_fields(path: str, profile: typing.Literal["ndw", "ocpi"] = "ndw") -> list[bool]:
    """Whether each field along `Location.coordinates.latitude` is required in `profile`; KeyError if a
    field does not exist."""
    root, *names = path.split(".")
    model: type[BaseModel] | None = model_for(ROOTS[root], profile)
    required = []
    for name in names:
        if model is None or name not in model.model_fields:
            raise KeyError(f"{path}: no field {name!r} in {model.__name__ if model else 'a plain value'}")
        info = model.model_fields[name]
        required.append(info.is_required())
        model = next(_models_in(info.annotation), None)
    return required


def ndw_rule(paths: tuple[str, ...]) -> NdwRule | None:
    """What NDW's OCPI profile makes of the fields: afir-mandatory (one of NDW's AFIR fields), required
    (required all along the path) or optional; the strongest over the paths."""
    rules: list[NdwRule] = []
    for path in paths:
        root, first = path.split(".")[:2]
        if first in AFIR_FIELDS[ROOTS[root]]:
            rules.append("afir-mandatory")
        else:
            rules.append("required" if all(ocpi_fields(path)) else "optional")
    for strongest in NDW_RULES:  # afir-mandatory, required, optional
        if strongest in rules:
            return strongest
    return None


# -- DATEX II ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A schema definition of one profile set: (file, definition name)."""

    file: str
    name: str


class ProfileSchemas:
    """One vendored schema set (static or status): its definitions, walked by property names."""

    def __init__(self, directory: Path) -> None:
        self.files = {
            p.name: json.loads(p.read_text()).get("definitions", {}) for p in sorted(directory.glob("*.json"))
        }

    def types(self, name: str) -> list[Node]:
        return [Node(f, name) for f, defs in self.files.items() if name in defs]

    def _schema(self, node: Node) -> dict[str, Any]:
        return dict(self.files[node.file][node.name])

    def _target(self, node: Node, prop: dict[str, Any]) -> Node | None:
        """The definition a property refers to (itself or its items); None for an inline value."""
        ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
        if not ref:
            return None
        file, _, pointer = str(ref).partition("#")
        return Node(file or node.file, pointer.rsplit("/", 1)[-1])

    def _properties(self, node: Node) -> dict[str, Any]:
        return dict(self._schema(node).get("properties", {}))

    def _through(self, node: Node) -> list[Node]:
        """Definitions a path steps through without naming them: the alternatives of a ...G wrapper
        (e.g. OrganisationG -> AnOrganisation) and the content of ...ExtensionG extensions."""
        found = []
        for name, prop in self._properties(node).items():
            if node.name.endswith("G") or name.endswith("ExtensionG"):
                target = self._target(node, prop)
                if target is not None:
                    found.append(target)
        return found

    def step(self, node: Node, name: str) -> list[Node | None]:
        """Where property `name` of `node` (or of what it steps through) leads; empty if nowhere."""
        seen: set[Node] = set()
        frontier, found = [node], []
        for _ in range(
            4
        ):  # wrappers nest at most a few deep (LocationReferenceG -> PointLocation -> extension)
            nxt = []
            for current in frontier:
                if current in seen:
                    continue
                seen.add(current)
                props = self._properties(current)
                if name in props:
                    found.append(self._target(current, props[name]))
                nxt += self._through(current)
            if found:
                return found
            frontier = nxt
        return found

    def resolves(self, path: str) -> bool:
        first, *names = path.split("/")
        frontier: list[Node | None] = list(self.types(first))
        for name in names:
            frontier = [n for node in frontier if node is not None for n in self.step(node, name)]
            if not frontier:
                return False
        return bool(frontier)


def profile_sets() -> list[ProfileSchemas]:
    return [ProfileSchemas(PROFILE / "static"), ProfileSchemas(PROFILE / "status")]


def datex2_exists(path: str, sets: list[ProfileSchemas] | None = None) -> bool:
    """The path resolves in the static or the status schema set."""
    return any(s.resolves(path) for s in (sets or profile_sets()))
