"""Developer cross-check of our OCPI definition (`evpipeline.ocpi.definition`) against outside references.

    python -m evpipeline.ocpi.crosscheck /work/shared/reference [--locations FILE] [--tariffs FILE]

1. Validates the OCPI spec's own example Locations and Tariffs (`ocpi-2.2.1-examples/`) with our
   "ocpi" profile: every one is valid OCPI 2.2.1, so every one must pass.
2. Validates objects you feed it (a JSON array, an OCPI envelope `{"data": [...]}`, one object or
   JSON lines, e.g. an export file) with our profile (`--profile`, default ndw) AND with the
   third-party OpenAPI 3.1 schemas (`ocpi-2.2.1/`), and lists where the two disagree.
3. Runs probes: small mutations of the spec examples that each break one rule, through both, so
   the places where the OpenAPI is laxer (or stricter) than the rules text are visible.

The OpenAPI comparison needs `jsonschema` (a project dependency: the NDW simulator uses it) and,
for `format: date-time`, `rfc3339-validator`, which is not; for this tool only:
    pip install --target /tmp/ndw-crosscheck-site rfc3339-validator
    PYTHONPATH=/tmp/ndw-crosscheck-site python -m evpipeline.ocpi.crosscheck /work/shared/reference
Not part of the test suite: the reference directory is not in the repository.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from evpipeline.ocpi import definition as ocpi

EXAMPLES: dict[ocpi.Kind, str] = {
    "location": "ocpi-2.2.1-examples/locations_from_spec_v2.2.1-d2.json",
    "tariff": "ocpi-2.2.1-examples/tariffs_from_spec_v2.2.1-d2.json",
}
OPENAPI_SCHEMAS = {
    "location": "locations.yaml#/components/schemas/Location",
    "tariff": "tariffs.yaml#/components/schemas/Tariff",
}
MISSING_JSONSCHEMA = (
    "jsonschema is not installed, so the OpenAPI comparison is skipped. It is a project dependency:\n"
    "reinstall (make install), or for this tool only:\n"
    "  pip install --target /tmp/ndw-crosscheck-site jsonschema rfc3339-validator\n"
    "  PYTHONPATH=/tmp/ndw-crosscheck-site python -m evpipeline.ocpi.crosscheck <reference dir>"
)


class OpenApi:
    """The third-party OCPI 2.2.1 OpenAPI component schemas as JSON-Schema validators."""

    def __init__(self, root: Path) -> None:
        import jsonschema  # optional: see MISSING_JSONSCHEMA
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        self.root = root.resolve()

        def retrieve(uri: str) -> Resource[Any]:
            path = Path(uri.removeprefix("file://"))
            return DRAFT202012.create_resource(yaml.safe_load(path.read_text()))

        self._registry: Registry[Any] = Registry(retrieve=retrieve)  # type: ignore[call-arg]  # attrs field alias="retrieve" (of _retrieve) is not seen by mypy
        self._validator_cls = jsonschema.Draft202012Validator
        self._format_checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
        self.formats_checked = sorted(f for f in ("date-time", "uri") if f in self._format_checker.checkers)

    def errors(self, kind: str, obj: Any) -> list[str]:
        ref = f"{self.root.as_uri()}/{OPENAPI_SCHEMAS[kind]}"
        validator = self._validator_cls(
            {"$ref": ref}, registry=self._registry, format_checker=self._format_checker
        )
        found = []
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            found.append(f"{ocpi.error_path(tuple(error.absolute_path))}: {error.message[:160]}")
        return found


def load_objects(path: Path) -> list[Any]:
    """A JSON array, an OCPI envelope with a `data` array, one object, or JSON lines."""
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return list(data["data"])
    return data if isinstance(data, list) else [data]


def _label(obj: Any, index: int) -> str:
    if isinstance(obj, dict):
        return f"#{index} {obj.get('country_code', '?')}/{obj.get('party_id', '?')}/{obj.get('id', '?')}"
    return f"#{index}"


# --------------------------------------------------------------------------------------------
# Probes: one broken rule each, applied to a copy of a spec example.


@dataclass(frozen=True)
class Probe:
    kind: ocpi.Kind
    name: str
    mutate: Callable[[dict[str, Any]], None]
    why: str  # the rule (rules text) the probe breaks, or why it is fine


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _do(*steps: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        for step in steps:
            step(obj)

    return mutate


CONNECTOR = "evses.0.connectors.0"
PROBES: tuple[Probe, ...] = (
    Probe(
        "location",
        "DateTime with +00:00",
        _set("last_updated", "2015-06-29T20:39:09+00:00"),
        "DateTime: 'NOTE: +00:00 is not the same as UTC'; OpenAPI format date-time accepts any RFC 3339 "
        "offset",
    ),
    Probe(
        "location",
        "DateTime of 27 chars (microseconds)",
        _set("last_updated", "2015-06-29T20:39:09.123456Z"),
        "DateTime is string(25); OpenAPI has no maxLength",
    ),
    Probe(
        "location",
        "zone-less DateTime (spec-legal)",
        _set("last_updated", "2015-06-29T20:39:09"),
        "rules text allows it ('absence of the timezone designator implies UTC'); "
        "RFC 3339 date-time needs an offset; NDW profile rejects",
    ),
    Probe(
        "location",
        "latitude with 4 decimals",
        _set("coordinates.latitude", "51.0475"),
        r"latitude regex -?[0-9]{1,2}\.[0-9]{5,7}; OpenAPI allows 1-8 decimals",
    ),
    Probe(
        "location",
        "longitude with 8 decimals",
        _set("coordinates.longitude", "3.72994412"),
        "5-7 decimals; OpenAPI allows 1-8",
    ),
    Probe(
        "location", "numeric coordinates", _set("coordinates.latitude", 51.047599), "coordinates are strings"
    ),
    Probe("location", "address of 46 chars", _set("address", "A" * 46), "address string(45)"),
    Probe(
        "location",
        "unknown connector standard",
        _set(f"{CONNECTOR}.standard", "IEC_62196_T2_TYPO"),
        "ConnectorType is a closed enum; OpenAPI makes it anyOf(enum, string) = open",
    ),
    Probe(
        "location",
        "lower-case connector standard",
        _set(f"{CONNECTOR}.standard", "iec_62196_t2"),
        "enum values are exact; OpenAPI's open enum accepts any string",
    ),
    Probe(
        "location",
        "IEC_60309_2_SINGLE_16 upper-cased",
        _set(f"{CONNECTOR}.standard", "IEC_60309_2_SINGLE_16"),
        "the spec spells it IEC_60309_2_single_16",
    ),
    Probe(
        "location", "lower-case EVSE status", _set("evses.0.status", "available"), "Status is closed in both"
    ),
    Probe(
        "location",
        "unknown extra field",
        _set("color", "red"),
        "unknown fields are errors for us; OpenAPI has additionalProperties: true",
    ),
    Probe("location", "empty connectors", _set("evses.0.connectors", []), "EVSE.connectors is 1..n"),
    Probe(
        "location",
        "energy mix not adding up to 100",
        _set(
            "energy_mix",
            {"is_green_energy": False, "energy_sources": [{"source": "SOLAR", "percentage": 60}]},
        ),
        "'All given values of all categories should add up to 100 percent'",
    ),
    Probe(
        "location",
        "opening hours ending 24:00",
        _set(
            "opening_times",
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 1, "period_begin": "08:00", "period_end": "24:00"}],
            },
        ),
        "regex ([0-1][0-9]|2[0-3]):[0-5][0-9]; OpenAPI allows [0-2][0-9]",
    ),
    Probe(
        "location",
        "period_end before period_begin",
        _set(
            "opening_times",
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 1, "period_begin": "18:00", "period_end": "08:00"}],
            },
        ),
        "period_end must be later than period_begin",
    ),
    Probe(
        "location",
        "not 24/7 and no regular_hours",
        _set("opening_times", {"twentyfourseven": False}),
        "regular_hours needs at least one entry when twentyfourseven is false",
    ),
    Probe(
        "location",
        "weekday 8",
        _set(
            "opening_times",
            {
                "twentyfourseven": False,
                "regular_hours": [{"weekday": 8, "period_begin": "08:00", "period_end": "18:00"}],
            },
        ),
        "weekday 1..7 in both",
    ),
    Probe(
        "location",
        "publish_allowed_to while publish=true",
        _set("publish_allowed_to", [{"uid": "12345678", "type": "RFID"}]),
        "publish_allowed_to only when publish=false",
    ),
    Probe("location", "non-ASCII location id", _set("id", "LOC\u00e91"), "CiString is printable ASCII"),
    Probe(
        "location",
        "address with a line feed",
        _set("address", "F.Rooseveltlaan\n3A"),
        "strings contain no CR/LF/TAB",
    ),
    Probe(
        "location",
        "unknown parking_type",
        _set("parking_type", "ON_ROOF"),
        "ParkingType is closed; OpenAPI open",
    ),
    Probe(
        "location",
        "country as alpha-2",
        _set("country", "BE"),
        "country is ISO 3166-1 alpha-3; OpenAPI only maxLength 3",
    ),
    Probe(
        "location", "null optional field", _set("name", None), "optional means absent; neither accepts null"
    ),
    Probe(
        "location",
        "duplicate EVSE uid",
        _set("evses.1.uid", "3256"),
        "uids identify EVSEs; OpenAPI has no uniqueness",
    ),
    Probe("tariff", "empty elements", _set("elements", []), "Tariff.elements is 1..n"),
    Probe(
        "tariff",
        "empty price_components",
        _set("elements.0.price_components", []),
        "price_components is 1..n",
    ),
    Probe(
        "tariff",
        "CDR-only dimension MAX_POWER",
        _set("elements.0.price_components.0.type", "MAX_POWER"),
        "TariffDimensionType has no MAX_POWER; closed in both",
    ),
    Probe(
        "tariff",
        "restriction start_time 24:00",
        _do(_set("elements.0.restrictions", {"start_time": "24:00"})),
        "HH:MM up to 23:59",
    ),
    Probe(
        "tariff",
        "restriction start_date 2019-13-01",
        _set("elements.0.restrictions", {"start_date": "2019-13-01"}),
        "date regex has months 01-12; OpenAPI \\d{2}",
    ),
    Probe(
        "tariff",
        "price with 5 decimals",
        _set("elements.0.price_components.0.price", 0.12345),
        "numbers have 4 decimals unless stated",
    ),
    Probe("tariff", "lower-case currency", _set("currency", "eur"), "ISO 4217 codes are upper-case"),
)


def run_probes(
    examples: dict[ocpi.Kind, list[Any]], openapi: OpenApi | None, verbose: bool = False
) -> Iterator[str]:
    base = {"location": examples["location"][0], "tariff": examples["tariff"][0]}
    yield f"{'probe':40} {'ours':6} {'OpenAPI':8} rule"
    for probe in PROBES:
        obj = copy.deepcopy(base[probe.kind])
        probe.mutate(obj)
        ours = ocpi.validate(probe.kind, obj, "ocpi")
        theirs = openapi.errors(probe.kind, obj) if openapi else None
        verdict = "reject" if ours else "accept"
        other = "-" if theirs is None else ("reject" if theirs else "accept")
        flag = "  <- differs" if theirs is not None and bool(ours) != bool(theirs) else ""
        yield f"{probe.kind + ': ' + probe.name:40} {verdict:6} {other:8} {probe.why}{flag}"
        if verbose:
            yield from (f"      ours: {e}" for e in ours)
            yield from (f"      OpenAPI: {e}" for e in theirs or [])


# --------------------------------------------------------------------------------------------


def check_objects(
    kind: ocpi.Kind, objects: list[Any], profile: ocpi.Profile, openapi: OpenApi | None
) -> tuple[int, list[str]]:
    """(number rejected by our profile, report lines) for `objects`, compared with the OpenAPI."""
    lines, rejected = [], 0
    for index, obj in enumerate(objects):
        ours = ocpi.validate(kind, obj, profile)
        theirs = openapi.errors(kind, obj) if openapi else None
        rejected += bool(ours)
        status = "ok" if not ours else "REJECTED"
        note = (
            ""
            if theirs is None
            else (" (OpenAPI: ok)" if not theirs else f" (OpenAPI: {len(theirs)} error(s))")
        )
        lines.append(f"  {_label(obj, index)}: {status}{note}")
        lines.extend(f"      ours: {e}" for e in ours)
        lines.extend(f"      OpenAPI: {e}" for e in theirs or [])
    return rejected, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="directory with ocpi-2.2.1/ and ocpi-2.2.1-examples/")
    parser.add_argument(
        "--locations", type=Path, action="append", default=[], help="JSON file of Locations to check"
    )
    parser.add_argument(
        "--tariffs", type=Path, action="append", default=[], help="JSON file of Tariffs to check"
    )
    parser.add_argument(
        "--profile", choices=ocpi.PROFILES, default="ndw", help="profile for --locations/--tariffs"
    )
    parser.add_argument("--no-probes", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="show each probe's errors")
    args = parser.parse_args(argv)

    openapi: OpenApi | None = None
    try:
        openapi = OpenApi(args.reference / "ocpi-2.2.1")
        print(
            f"OpenAPI schemas: {openapi.root} (formats checked: "
            f"{', '.join(openapi.formats_checked) or 'none'})"
        )
    except ImportError:
        print(MISSING_JSONSCHEMA)

    failures = 0
    examples = {kind: load_objects(args.reference / rel) for kind, rel in EXAMPLES.items()}
    for kind, objects in examples.items():
        rejected, lines = check_objects(kind, objects, "ocpi", openapi)
        ndw = sum(bool(ocpi.validate(kind, o, "ndw")) for o in objects)
        print(
            f"\nSpec examples, {kind}s: {len(objects) - rejected}/{len(objects)} pass our 'ocpi' profile "
            f"({ndw} would fail the 'ndw' profile, which adds the AFIR fields)"
        )
        print("\n".join(lines))
        failures += rejected

    given: tuple[tuple[ocpi.Kind, list[Path]], ...] = (("location", args.locations), ("tariff", args.tariffs))
    for kind, paths in given:
        for path in paths:
            objects = load_objects(path)
            rejected, lines = check_objects(kind, objects, args.profile, openapi)
            print(
                f"\n{path}: {len(objects) - rejected}/{len(objects)} {kind}s pass our {args.profile!r} "
                "profile"
            )
            print("\n".join(lines))
            failures += rejected

    if not args.no_probes:
        print("\nProbes (each breaks one rule of the rules text; 'ocpi' profile vs the OpenAPI):")
        print("\n".join(run_probes(examples, openapi, args.verbose)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
