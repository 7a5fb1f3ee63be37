"""A canonical model filled through the shared merge: realistic Dutch rows plus known defects.

Besides the mart's own tables it writes the CPOs' operator entries (`reference.operators`, read through
the view `mart.operators`), as the reference loader stores them: with them, each Dutch location's NUTS-1
region and an ad hoc tariff, the standard mart is publishable in DATEX II (the AFIR profile asks for the
operator data, the region and the ad hoc price)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd

import evpipeline.model  # noqa: F401  (registers the mart migrations)
from evpipeline.model.reference import KEYS as REFERENCE_KEYS
from evpipeline.model.reference import OPERATORS
from evpipeline.model.tables import CONNECTORS, EVSES, KEYS, LOCATIONS, TARIFFS
from evpipeline.warehouse import WarehouseResource

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ENERGY_MIX = {
    "is_green_energy": True,
    "energy_sources": [{"source": "WIND", "percentage": 60}, {"source": "SOLAR", "percentage": 40}],
    "supplier_name": "Eneco",
    "energy_product_name": "HollandseWind",
}
HOURS_247 = {"twentyfourseven": True}
TARIFF_ELEMENTS = [{"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21.0, "step_size": 1}]}]


@dataclass
class MartRows:
    locations: list[dict] = field(default_factory=list)
    evses: list[dict] = field(default_factory=list)
    connectors: list[dict] = field(default_factory=list)
    tariffs: list[dict] = field(default_factory=list)
    operators: list[dict] = field(default_factory=list)

    def location(
        self,
        n: int,
        *,
        party: str = "ALF",
        country: str = "NLD",
        publish: bool = True,
        deleted: bool = False,
        updated: datetime = T0,
        **overrides: object,
    ) -> dict:
        row = {
            "country_code": "NL" if country == "NLD" else country[:2],
            "party_id": party,
            "location_id": f"LOC-{n:04d}",
            "publish": publish,
            "name": f"Laadplein {n}",
            "address": f"Kerkstraat {n}",
            "city": "Utrecht",
            "postal_code": "3511 AB",
            "state": None,
            "country": country,
            "latitude": 52.0907 + n / 10000,
            "longitude": 5.1214 + n / 10000,
            "parking_type": "ON_STREET",
            "time_zone": "Europe/Amsterdam",
            "opening_times": json.dumps(HOURS_247),
            "charging_when_closed": True,
            "energy_mix": json.dumps(ENERGY_MIX),
            "facilities": json.dumps(["SUPERMARKET"]),
            "directions": None,
            "operator": json.dumps({"name": "Allego"}),
            "suboperator": None,
            "owner": None,
            "images": None,
            "nuts_code": "NL3" if country == "NLD" else None,
            "source": "test",
            "source_id": f"LOC-{n:04d}",
            "source_last_updated": updated,
            "last_updated": updated,
            "is_deleted": deleted,
        }
        row.update(overrides)
        self.locations.append(row)
        return row

    def evse(
        self,
        location: dict,
        n: int,
        *,
        status: str = "AVAILABLE",
        updated: datetime = T0,
        **overrides: object,
    ) -> dict:
        uid = f"{location['location_id']}-E{n}"
        row = {
            "country_code": location["country_code"],
            "party_id": location["party_id"],
            "location_id": location["location_id"],
            "evse_uid": uid,
            "evse_id": f"NL*{location['party_id']}*E{location['location_id'][-4:]}{n}",
            "status": status,
            "capabilities": json.dumps(["RFID_READER", "REMOTE_START_STOP_CAPABLE"]),
            "floor_level": "0",
            "latitude": location["latitude"],
            "longitude": location["longitude"],
            "physical_reference": str(n),
            "parking_restrictions": json.dumps(["EV_ONLY"]),
            "directions": None,
            "images": None,
            "station_id": None,
            "source": "test",
            "source_id": uid,
            "source_last_updated": updated,
            "last_updated": updated,
            "is_deleted": False,
        }
        row.update(overrides)
        self.evses.append(row)
        return row

    def connector(
        self,
        evse: dict,
        n: int,
        *,
        tariffs: list[str] | None = None,
        updated: datetime = T0,
        **overrides: object,
    ) -> dict:
        row = {
            "country_code": evse["country_code"],
            "party_id": evse["party_id"],
            "location_id": evse["location_id"],
            "evse_uid": evse["evse_uid"],
            "connector_id": str(n),
            "standard": "IEC_62196_T2",
            "format": "SOCKET",
            "power_type": "AC_3_PHASE",
            "max_voltage": 230,
            "max_amperage": 32,
            "max_electric_power": 22000,
            "tariff_ids": json.dumps(tariffs if tariffs is not None else ["T-STD"]),
            "terms_and_conditions": None,
            "source": "test",
            "source_id": f"{evse['evse_uid']}/{n}",
            "source_last_updated": updated,
            "last_updated": updated,
            "is_deleted": False,
        }
        row.update(overrides)
        self.connectors.append(row)
        return row

    def tariff(
        self, tariff_id: str, *, party: str = "ALF", updated: datetime = T0, **overrides: object
    ) -> dict:
        row: dict[str, object] = {
            "country_code": "NL",
            "party_id": party,
            "tariff_id": tariff_id,
            "currency": "EUR",
            "type": "AD_HOC_PAYMENT",
            "tariff_alt_text": json.dumps([{"language": "nl", "text": "0,35 EUR per kWh"}]),
            "tariff_alt_url": None,
            "min_price": None,
            "max_price": None,
            "elements": json.dumps(TARIFF_ELEMENTS),
            "start_date_time": None,
            "end_date_time": None,
            "energy_mix": None,
            "source": "test",
            "source_id": tariff_id,
            "source_last_updated": updated,
            "last_updated": updated,
            "is_deleted": False,
        }
        row.update(overrides)
        self.tariffs.append(row)
        return row

    def operator(
        self, party: str = "ALF", *, country_code: str = "NL", updated: datetime = T0, **overrides: object
    ) -> dict:
        """A CPO's operator entry (AFIR operator data), as the reference loader stores the file's
        `operators`."""
        row: dict[str, object] = {
            "country_code": country_code,
            "party_id": party,
            "operator_id": f"{country_code}*{party}",
            "name": "Allego" if party == "ALF" else f"Operator {party}",
            "legal_name": "Allego B.V." if party == "ALF" else f"Operator {party} B.V.",
            "website": "https://www.allego.eu",
            "helpdesk_phone": "+31 88 033 3033",
            "helpdesk_email": "service@allego.eu",
            "helpdesk_name": None,
            "staffed": False,
            "payment_means": json.dumps(["emv", "website"]),
            "nuts_code": None,
            "position": len(self.operators),
            "reference_file": "mart_fixture",
            "last_updated": updated,
        }
        row.update(overrides)
        self.operators.append(row)
        return row

    def write(self, warehouse: WarehouseResource, run_id: str = "fixture") -> None:
        with warehouse.writer("mart", run_id) as w:
            for table, rows in (
                (LOCATIONS, self.locations),
                (EVSES, self.evses),
                (CONNECTORS, self.connectors),
                (TARIFFS, self.tariffs),
            ):
                if rows:
                    frame = pd.DataFrame(rows)
                    for col in ("source_last_updated", "last_updated"):
                        frame[col] = pd.to_datetime(frame[col], utc=True)
                    w.merge(frame, table, KEYS[table], status_column="status" if table == EVSES else None)
            if self.operators:
                frame = pd.DataFrame(self.operators)
                frame["last_updated"] = pd.to_datetime(frame["last_updated"], utc=True)
                w.merge(frame, OPERATORS, REFERENCE_KEYS[OPERATORS])


def standard_mart(n_good: int = 5) -> MartRows:
    """`n_good` exportable locations (2 EVSEs x 2 connectors) plus one of each defect; NL/ALF's operator
    entry (BE/BEC, never exported, has none)."""
    m = MartRows()
    m.operator("ALF")
    for tid in ("T-STD", "T-FAST"):
        m.tariff(tid)
    m.tariff("T-BROKEN", elements=json.dumps([]))
    for n in range(1, n_good + 1):
        loc = m.location(n)
        for e in (1, 2):
            evse = m.evse(loc, e, status="CHARGING" if e == 2 else "AVAILABLE")
            for c in (1, 2):
                m.connector(evse, c, tariffs=["T-STD"] if c == 1 else ["T-STD", "T-FAST"])
    # Defects -----------------------------------------------------------------------------------
    no_mix = m.location(101, energy_mix=None)  # Location rejected
    m.connector(m.evse(no_mix, 1), 1)
    partial = m.location(102)  # keeps 1 of 2 EVSEs
    m.connector(m.evse(partial, 1), 1)
    m.connector(m.evse(partial, 2, parking_restrictions=None), 1)  # EVSE rejected
    mixed = m.location(103)  # keeps 1 of 3 connectors
    evse = m.evse(mixed, 1)
    m.connector(evse, 1)
    m.connector(evse, 2, standard=None)  # unmapped standard
    m.connector(evse, 3, tariffs=["T-GHOST"])  # dangling tariff
    m.connector(m.evse(m.location(104), 1), 1, tariffs=["T-BROKEN"])  # tariff invalid -> cascades
    long_address = m.location(105, address="Burgemeester van Roijensingel tegenover het station 1")
    m.connector(m.evse(long_address, 1), 1)
    removed = m.location(106)  # REMOVED EVSE still exported
    m.connector(m.evse(removed, 1, status="REMOVED"), 1)
    m.connector(m.evse(removed, 2), 1)
    # Never exported ----------------------------------------------------------------------------
    m.connector(m.evse(m.location(201, publish=False), 1), 1)  # private
    m.connector(m.evse(m.location(202, country="BEL", party="BEC"), 1), 1)  # Belgium
    m.connector(m.evse(m.location(203, deleted=True), 1), 1)  # deleted
    return m


def later(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)
