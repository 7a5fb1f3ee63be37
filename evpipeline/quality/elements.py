"""The AFIR data elements the completeness report checks, derived from our OCPI/NDW definition.

- `NDW (AFIR)`: the optional OCPI fields NDW made mandatory for AFIR (`definition.AFIR_FIELDS`);
- `NDW (OCPI)`: every other field the NDW profile requires (`model_for(kind, "ndw")`), except keys,
  `publish`, `status` and `last_updated`, which every mart row has;
- `AFIR static`: further AFIR static data (Regulation (EU) 2023/1804 art. 20) OCPI can carry:
  postal code, operator, the charge point id (`evse_id`) and card payment (`capabilities`).

Each element has a SQL presence condition on the mart row (aliases `l`, `e`, `c`); it mirrors the
NDW export's rule for the field where there is one (`evpipeline.ndw.export`).
"""

from __future__ import annotations

from dataclasses import dataclass

from evpipeline.ocpi.definition import AFIR_FIELDS, Kind, model_for

OBJECTS: tuple[Kind, ...] = ("location", "evse", "connector")
ALIAS = {"location": "l", "evse": "e", "connector": "c"}
# Present on every mart row (keys, NOT NULL columns): nothing to measure.
ALWAYS = frozenset({"country_code", "party_id", "id", "uid", "publish", "status", "last_updated"})

PRESENCE: dict[tuple[Kind, str], str] = {
    ("location", "address"): "nullif(trim(l.address), '') IS NOT NULL",
    ("location", "city"): "nullif(trim(l.city), '') IS NOT NULL",
    ("location", "country"): "l.country IS NOT NULL",
    ("location", "coordinates"): "l.latitude IS NOT NULL AND l.longitude IS NOT NULL",
    ("location", "time_zone"): "l.time_zone IS NOT NULL",
    ("location", "opening_times"): "l.opening_times IS NOT NULL",
    ("location", "energy_mix"): "l.energy_mix IS NOT NULL",
    (
        "evse",
        "connectors",
    ): """EXISTS (SELECT 1 FROM mart.connectors x WHERE NOT x.is_deleted AND x.country_code = e.country_code
                               AND x.party_id = e.party_id AND x.location_id = e.location_id
                                   AND x.evse_uid = e.evse_uid)""",
    ("evse", "parking_restrictions"): "e.parking_restrictions IS NOT NULL",  # [] states "no restrictions"
    ("connector", "standard"): "c.standard IS NOT NULL",
    ("connector", "format"): "c.format IS NOT NULL",
    ("connector", "power_type"): "c.power_type IS NOT NULL",
    ("connector", "max_voltage"): "c.max_voltage IS NOT NULL",
    ("connector", "max_amperage"): "c.max_amperage IS NOT NULL",
    ("connector", "max_electric_power"): "c.max_electric_power > 0",  # NDW: 0 is not a rating
    ("connector", "tariff_ids"): "c.tariff_ids IS NOT NULL AND json_array_length(c.tariff_ids) > 0",
}

AFIR_STATIC: dict[tuple[Kind, str], str] = {
    ("location", "postal_code"): "nullif(trim(l.postal_code), '') IS NOT NULL",
    ("location", "operator"): "l.operator IS NOT NULL",
    ("evse", "evse_id"): "e.evse_id IS NOT NULL",
    ("evse", "payment_methods"): """list_has_any(CAST(e.capabilities AS VARCHAR[]),
                                    ['CREDIT_CARD_PAYABLE', 'DEBIT_CARD_PAYABLE',
                                        'CONTACTLESS_CARD_SUPPORT'])""",
}


@dataclass(frozen=True)
class Element:
    object: Kind
    name: str
    requirement: str
    present: str  # SQL condition on the object's alias


def elements() -> list[Element]:
    """Every element checked, NDW-required first (in the definition's field order), then AFIR static."""
    found: list[Element] = []
    for kind in OBJECTS:
        for name, info in model_for(kind, "ndw").model_fields.items():
            if not info.is_required() or name in ALWAYS:
                continue
            if (kind, name) not in PRESENCE:
                raise KeyError(
                    f"the NDW profile requires {kind}.{name}: give it a presence condition in PRESENCE"
                )
            requirement = "NDW (AFIR)" if name in AFIR_FIELDS[kind] else "NDW (OCPI)"
            found.append(Element(kind, name, requirement, PRESENCE[(kind, name)]))
    found += [Element(kind, name, "AFIR static", sql) for (kind, name), sql in AFIR_STATIC.items()]
    return found
