"""Realistic NL OCPI 2.2.1 objects that satisfy the NDW profile (fresh copies on every call).

A Utrecht P+R location with an AC EVSE (Type 2 socket, 22 kW) and a DC EVSE (CCS, 150 kW), the
tariffs their connectors reference, and a free tariff. Tests mutate copies to break one rule each.
"""

from __future__ import annotations

import copy
from typing import Any

UPDATED = "2026-11-01T11:58:00Z"

_AC_CONNECTOR: dict[str, Any] = {
    "id": "1",
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 32,
    "max_electric_power": 22080,
    "tariff_ids": ["AC-STANDARD"],
    "terms_and_conditions": "https://laadpunt.example.nl/voorwaarden",
    "last_updated": UPDATED,
}

_DC_CONNECTOR: dict[str, Any] = {
    "id": "1",
    "standard": "IEC_62196_T2_COMBO",
    "format": "CABLE",
    "power_type": "DC",
    "max_voltage": 920,
    "max_amperage": 200,
    "max_electric_power": 150000,  # lower than 920 V x 200 A: the cabinet limits it
    "tariff_ids": ["DC-FAST"],
    "last_updated": UPDATED,
}

_AC_EVSE: dict[str, Any] = {
    "uid": "UTR-WESTRAVEN-1",
    "evse_id": "NL*EVB*E000123001",
    "status": "AVAILABLE",
    "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE", "CONTACTLESS_CARD_SUPPORT"],
    "connectors": [_AC_CONNECTOR],
    "physical_reference": "1",
    "parking_restrictions": ["EV_ONLY"],
    "last_updated": UPDATED,
}

_DC_EVSE: dict[str, Any] = {
    "uid": "UTR-WESTRAVEN-2",
    "evse_id": "NL*EVB*E000123002",
    "status": "CHARGING",
    "status_schedule": [
        {
            "period_begin": "2026-11-20T06:00:00Z",
            "period_end": "2026-11-20T10:00:00Z",
            "status": "INOPERATIVE",
        }
    ],
    "capabilities": ["CREDIT_CARD_PAYABLE", "DEBIT_CARD_PAYABLE", "PED_TERMINAL", "RFID_READER"],
    "connectors": [_DC_CONNECTOR],
    "floor_level": "0",
    "coordinates": {"latitude": "52.066951", "longitude": "5.104512"},
    "physical_reference": "2",
    "directions": [{"language": "nl", "text": "Snellader naast de fietsenstalling"}],
    "parking_restrictions": [],  # present and empty: no restrictions on this bay
    "last_updated": UPDATED,
}

_LOCATION: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "EVB",
    "id": "LOC-UTR-000123",
    "publish": True,
    "name": "P+R Westraven",
    "address": "Europalaan 2",
    "city": "Utrecht",
    "postal_code": "3526 KS",
    "state": "Utrecht",
    "country": "NLD",
    "coordinates": {"latitude": "52.066910", "longitude": "5.104430"},
    "related_locations": [
        {"latitude": "52.067300", "longitude": "5.105100", "name": {"language": "nl", "text": "Ingang P+R"}}
    ],
    "parking_type": "PARKING_LOT",
    "evses": [_AC_EVSE, _DC_EVSE],
    "directions": [{"language": "nl", "text": "Volg de borden P+R Westraven"}],
    "operator": {
        "name": "EV-Box Laadnetwerk",
        "website": "https://laadpunt.example.nl",
        "logo": {
            "url": "https://laadpunt.example.nl/logo.png",
            "category": "OPERATOR",
            "type": "png",
            "width": 512,
            "height": 512,
        },
    },
    "owner": {"name": "Gemeente Utrecht"},
    "facilities": ["PARKING_LOT", "BUS_STOP", "TRAM_STOP"],
    "time_zone": "Europe/Amsterdam",
    "opening_times": {
        "twentyfourseven": True,
        "exceptional_closings": [
            {"period_begin": "2026-12-31T20:00:00Z", "period_end": "2027-01-01T06:00:00Z"}
        ],
    },
    "charging_when_closed": True,
    "images": [
        {
            "url": "https://laadpunt.example.nl/westraven.jpg",
            "thumbnail": "https://laadpunt.example.nl/westraven-t.jpg",
            "category": "LOCATION",
            "type": "jpeg",
            "width": 1600,
            "height": 900,
        }
    ],
    "energy_mix": {
        "is_green_energy": True,
        "energy_sources": [{"source": "WIND", "percentage": 62.5}, {"source": "SOLAR", "percentage": 37.5}],
        "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": 0}],
        "supplier_name": "Vandebron",
        "energy_product_name": "Hollandse Wind",
    },
    "last_updated": UPDATED,
}

_TARIFFS: dict[str, dict[str, Any]] = {
    "AC-STANDARD": {
        "country_code": "NL",
        "party_id": "EVB",
        "id": "AC-STANDARD",
        "currency": "EUR",
        "type": "AD_HOC_PAYMENT",
        "tariff_alt_text": [
            {"language": "nl", "text": "€ 0,39 per kWh incl. btw; 's nachts parkeren € 1,21 per uur"}
        ],
        "tariff_alt_url": "https://laadpunt.example.nl/tarieven",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": 0.3223, "vat": 21.0, "step_size": 1}]},
            {
                "price_components": [{"type": "PARKING_TIME", "price": 1.0, "vat": 21.0, "step_size": 60}],
                "restrictions": {
                    "start_time": "22:00",
                    "end_time": "07:00",
                    "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
                },
            },
        ],
        "last_updated": UPDATED,
    },
    "DC-FAST": {
        "country_code": "NL",
        "party_id": "EVB",
        "id": "DC-FAST",
        "currency": "EUR",
        "type": "AD_HOC_PAYMENT",
        "min_price": {"excl_vat": 0.5, "incl_vat": 0.605},
        "elements": [
            {"price_components": [{"type": "FLAT", "price": 0.5, "vat": 21.0, "step_size": 1}]},
            {
                "price_components": [{"type": "ENERGY", "price": 0.4876, "vat": 21.0, "step_size": 1}],
                "restrictions": {"max_power": 150.0, "start_date": "2026-01-01"},
            },
        ],
        "start_date_time": "2026-01-01T00:00:00Z",
        "last_updated": UPDATED,
    },
    "FREE": {
        "country_code": "NL",
        "party_id": "EVB",
        "id": "FREE",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "FLAT", "price": 0.0, "step_size": 1}]}],
        "last_updated": UPDATED,
    },
}


def location(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_LOCATION), **overrides}


def evse(kind: str = "ac", **overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_AC_EVSE if kind == "ac" else _DC_EVSE), **overrides}


def connector(kind: str = "ac", **overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_AC_CONNECTOR if kind == "ac" else _DC_CONNECTOR), **overrides}


def tariff(tariff_id: str = "AC-STANDARD", **overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(_TARIFFS[tariff_id]), **overrides}


def tariffs() -> list[dict[str, Any]]:
    return [tariff(t) for t in _TARIFFS]
