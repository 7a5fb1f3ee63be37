"""NDW's side of the contract, judged independently of our OCPI definition (`evpipeline.ocpi`).

A receiver that shared our rule module would accept whatever we got wrong, and the push tests
would prove nothing. So this module never imports it. It checks:
1. the published JSON Schemas (`evpipeline/ocpi/schemas/{kind}.{profile}.schema.json`, the
   contract we hand NDW), read as plain files and applied with the generic `jsonschema`
   validator (Draft 2020-12);
2. receiver rules written out here from NDW's supplier page and the OCPI 2.2.1 text (the
   AFIR-mandatory fields, and the cross-field rules JSON Schema cannot express, physics among them:
   no connector delivers more than its voltage x current x conductors).
"""

from __future__ import annotations

import json
import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema

Kind = Literal["location", "evse", "connector", "tariff"]
Profile = Literal["ndw", "ocpi"]

# OCPI DateTime as NDW takes it: UTC with `Z` (its OpenAPI `date-time` needs an offset, and
# OCPI says `+00:00` is not UTC), at most 25 characters.
DATETIME_Z = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$")

# The optional OCPI fields NDW made mandatory because of AFIR (NDW supplier page, seed 002).
AFIR_REQUIRED: dict[str, tuple[str, ...]] = {
    "location": ("opening_times", "energy_mix"),
    "evse": ("parking_restrictions",),
    "connector": ("max_electric_power", "tariff_ids"),
    "tariff": (),
}


def ocpi_datetime(when: datetime) -> str:
    """`2026-11-01T12:00:00Z` (whole seconds, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str) -> datetime:
    """An OCPI DateTime (zone-less means UTC) as an aware datetime."""
    text = value[:-1] if value.endswith("Z") else value
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --------------------------------------------------------------------------------------------
# 1. The published JSON Schemas


@cache
def _schema(kind: Kind, profile: Profile) -> dict[str, Any]:
    # Read as data from the package directory: importing `evpipeline.ocpi` is what we must not do.
    path = resources.files("evpipeline").joinpath("ocpi", "schemas", f"{kind}.{profile}.schema.json")
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _validator(kind: Kind, profile: Profile, patch: bool) -> jsonschema.Draft202012Validator:
    schema = dict(_schema(kind, profile))
    if patch:
        # A PATCH carries any subset of the top-level fields; what it carries is checked in full
        # (nested objects keep their required fields). last_updated is the receiver's own rule.
        schema.pop("required", None)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


_REQUIRED = re.compile(r"^'(.+)' is a required property$")


def _describe(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and (missing := _REQUIRED.match(error.message)):
        # Name the missing field itself, as a supplier reading the answer looks for it.
        return f"{'.'.join([*path, missing.group(1)])}: required field is missing"
    return f"{'.'.join(path) or '(object)'}: {error.message}"


def schema_errors(kind: Kind, obj: Any, profile: Profile = "ndw", *, patch: bool = False) -> list[str]:
    """`path: message` for every place the object breaks the published schema."""
    return sorted(_describe(e) for e in _validator(kind, profile, patch).iter_errors(obj))


# --------------------------------------------------------------------------------------------
# 2. Receiver rules (written here, not derived from our definition)


def _missing_afir(kind: str, obj: dict[str, Any], where: str) -> Iterator[str]:
    for name in AFIR_REQUIRED[kind]:
        if name not in obj:
            yield f"{where}{name}: required by NDW (AFIR)"
    if kind == "connector" and obj.get("tariff_ids") == []:
        yield f"{where}tariff_ids: NDW needs at least one tariff (AFIR price transparency)"
    if (
        kind == "connector"
        and isinstance(obj.get("max_electric_power"), int | float)
        and obj["max_electric_power"] <= 0
    ):
        yield f"{where}max_electric_power: must be greater than 0"


# How many conductors carry each OCPI power type's power: NDW's own reading of the physics (voltage is
# line to neutral for AC), written here, not taken from our definition.
CONDUCTORS = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3, "DC": 1}
ROUNDING = 1.01  # a nominal rating may be rounded up by 1 %; more is a connector that cannot exist


def _physics(connector: dict[str, Any], where: str) -> Iterator[str]:
    """A connector cannot deliver more power than voltage x current x conductors."""
    watts, volts, amps = (connector.get(k) for k in ("max_electric_power", "max_voltage", "max_amperage"))
    conductors = CONDUCTORS.get(str(connector.get("power_type")))
    numbers = [v for v in (watts, volts, amps) if isinstance(v, int) and not isinstance(v, bool)]
    if conductors and len(numbers) == 3:  # the schema has judged anything else
        watts, volts, amps = numbers
        possible = volts * amps * conductors
        if watts > possible * ROUNDING:
            yield (
                f"{where}max_electric_power: {watts} W is physically impossible at {volts} V x {amps} A x "
                f"{conductors} ({connector['power_type']}) = {possible} W"
            )


def _unique(items: list[Any], name: str, where: str) -> Iterator[str]:
    seen: set[str] = set()
    for item in items:
        value = item.get(name) if isinstance(item, dict) else None
        if isinstance(value, str):
            if value.casefold() in seen:  # CiString ids compare case-insensitively
                yield f"{where}{name} {value!r} is not unique"
            seen.add(value.casefold())


def _opening_times(hours: Any, where: str) -> Iterator[str]:
    if not isinstance(hours, dict):
        return
    regular = hours.get("regular_hours") or []
    if hours.get("twentyfourseven") is True and regular:
        yield f"{where}opening_times: regular_hours must be empty when twentyfourseven is true"
    if hours.get("twentyfourseven") is False and not regular:
        yield f"{where}opening_times: regular_hours needs an entry when twentyfourseven is false"
    for i, period in enumerate(regular):
        if isinstance(period, dict) and str(period.get("period_end", "")) <= str(
            period.get("period_begin", "")
        ):
            yield f"{where}opening_times.regular_hours.{i}: period_end must be later than period_begin"


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _place(location: dict[str, Any]) -> Iterator[str]:
    """Coordinates on the globe and an IANA time zone (both only shape-checked by the schema)."""
    coordinates = location.get("coordinates")
    if isinstance(coordinates, dict):
        for name, bound in (("latitude", 90), ("longitude", 180)):
            try:
                if abs(float(coordinates.get(name, 0))) > bound:
                    yield f"coordinates.{name}: outside +-{bound}"
            except (TypeError, ValueError):
                pass  # the schema's pattern has said so
    zone = location.get("time_zone")
    if isinstance(zone, str) and zone not in _zones():
        yield f"time_zone: {zone!r} is not an IANA time zone"
    stamp = location.get("last_updated")
    if isinstance(stamp, str) and DATETIME_Z.match(stamp):
        try:
            parse_datetime(stamp)
        except ValueError:
            yield f"last_updated: {stamp!r} is not a calendar date and time"


def _energy_mix(mix: Any, where: str) -> Iterator[str]:
    sources = mix.get("energy_sources") if isinstance(mix, dict) else None
    if sources:
        total = sum(
            s.get("percentage", 0)
            for s in sources
            if isinstance(s, dict) and isinstance(s.get("percentage"), int | float)
        )
        if abs(total - 100) > 0.01:
            yield f"{where}energy_mix.energy_sources: percentages add up to {total:g}, not 100"


def receiver_errors(kind: Kind, obj: Any, profile: Profile = "ndw", *, patch: bool = False) -> list[str]:
    """NDW's own checks on a (merged) object; PATCH bodies get only those on the fields they carry."""
    if not isinstance(obj, dict):
        return []
    errors: list[str] = []
    if profile == "ndw" and not patch:
        errors += _missing_afir(kind, obj, "")
    if kind == "location":
        if "publish_allowed_to" in obj and obj.get("publish") is not False:
            errors.append("publish_allowed_to: only allowed when publish is false")
        errors += _place(obj)
        errors += _opening_times(obj.get("opening_times"), "")
        errors += _energy_mix(obj.get("energy_mix"), "")
        evses = [e for e in obj.get("evses") or [] if isinstance(e, dict)]
        errors += _unique(evses, "uid", "evses: ")
        for i, evse in enumerate(evses):
            errors += _evse_errors(evse, f"evses.{i}.", profile)
    elif kind == "evse":
        errors += _evse_errors(obj, "", profile, afir=False)
    elif kind == "connector":
        errors += _physics(obj, "")
    return errors


def _evse_errors(evse: dict[str, Any], where: str, profile: Profile, *, afir: bool = True) -> list[str]:
    errors: list[str] = []
    connectors = [c for c in evse.get("connectors") or [] if isinstance(c, dict)]
    if profile == "ndw" and afir:
        errors += _missing_afir("evse", evse, where)
    errors += _unique(connectors, "id", f"{where}connectors: ")
    for j, connector in enumerate(connectors):
        if profile == "ndw":
            errors += _missing_afir("connector", connector, f"{where}connectors.{j}.")
        errors += _physics(connector, f"{where}connectors.{j}.")
    return errors


def check(kind: Kind, obj: Any, profile: Profile = "ndw", *, patch: bool = False) -> list[str]:
    """Every reason NDW would refuse the object: the published schema first, then its own rules
    (a field the schema already named is not named twice)."""
    errors = schema_errors(kind, obj, profile, patch=patch)
    named = {e.partition(":")[0] for e in errors}
    return errors + [
        e for e in receiver_errors(kind, obj, profile, patch=patch) if e.partition(":")[0] not in named
    ]
