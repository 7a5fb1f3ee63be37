"""TomTom availability on the wire, shared by the client and the normalizer (neither imports the other).

`Poll` is one availability request as the client made it; `parse_availability_xml` turns the
documented XML form into the very dict the JSON form decodes to, so both formats go through one
normalizer and produce identical frames.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

WireFormat = Literal["json", "xml"]
STATES = ("available", "occupied", "reserved", "unknown", "outOfService")


@dataclass
class Poll:
    """One availability request: what we sent (Tracking-ID), when the server answered, what it said."""

    availability_id: str
    tracking_id: str
    polled_at: datetime
    wire_format: str
    http_status: int | None
    body: dict[str, Any] | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        if self.body is None:
            return "error"
        return "data" if self.body.get("connectors") else "no_data"


def _number(text: str | None, cast: type) -> Any:
    if text is None or not text.strip():
        return None
    return cast(float(text)) if cast is int and "." in text else cast(text)


def _counts(element: ET.Element | None) -> dict[str, Any]:
    return {state: _number(element.findtext(state) if element is not None else None, int) for state in STATES}


def parse_availability_xml(content: bytes | str) -> dict[str, Any]:
    """The XML availability response as the dict its JSON form decodes to (same keys, types and order)."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None
    if root.tag != "response":
        raise ValueError(f"unexpected XML root <{root.tag}>")
    connectors = []
    for item in root.iterfind("connectors/item"):
        availability = item.find("availability")
        levels = []
        # The documented form repeats <perPowerLevel> with one <power> each; accept several per element too.
        for power in availability.iterfind("perPowerLevel/power") if availability is not None else []:
            levels.append({"powerKW": _number(power.findtext("powerKW"), float), **_counts(power)})
        connectors.append(
            {
                "type": item.findtext("type"),
                "total": _number(item.findtext("total"), int),
                "availability": {
                    "current": _counts(availability.find("current") if availability is not None else None),
                    "perPowerLevel": levels,
                },
            }
        )
    return {"connectors": connectors, "chargingAvailability": root.findtext("chargingAvailability")}
