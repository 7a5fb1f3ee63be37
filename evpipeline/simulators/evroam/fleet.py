"""EVRoam's fleet: sites, charging stations and availabilities, seeded from real rows and changing
over simulated time (status flips, new stations, soft deletes that turn into hard deletes)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from evpipeline.simulators.toolkit import (
    ChargingPark,
    SimServer,
    det_uuid,
    iso_z,
    park_connectors,
    random_place,
    weighted,
)

OPERATORS = ["ChargeNet NZ", "Vector", "Z Energy", "Meridian Energy", "BP pulse", "Contact Energy", "Jolt"]
# DC stations carry CCS/CHAdeMO; a few carry an AC plug (real provider data has such noise too).
DC_CONNECTORS = [("Type 2 CCS", 60), ("CHAdeMO", 35), ("Type 2 Tethered", 5)]
AC_CONNECTORS = [("Type 2 Socketed", 60), ("Type 2 Tethered", 30), ("Type 1 Tethered", 10)]
KW_BY_CURRENT = {"AC": [7, 11, 22], "DC": [25, 50, 75, 150, 300]}
AVAILABILITY = [("Available", 60), ("Occupied", 30), ("Unknown", 7), ("Unavailable", 3)]
STREAMS = {"sites": "sites", "chargingstations": "chargingStations", "availabilities": "availabilities"}


def load_seed(name: str) -> list[dict[str, Any]]:
    return json.loads(resources.files("evpipeline.seed_data.evroam").joinpath(name).read_text())


@dataclass
class Record:
    body: dict[str, Any]
    modified: datetime
    soft_deleted_at: datetime | None = None


class EVRoamFleet(SimServer):
    """Fleet generation and its change process (the state handlers serve and tests steer)."""

    sites: dict[str, Record]
    stations: dict[str, Record]
    availabilities: dict[str, Record]
    hard_delete_after: float

    def _build_fleet(self, scale: float, rng: random.Random) -> None:
        start = self.clock.now() - timedelta(days=30)
        for site in load_seed("sites.json"):
            self.sites[site["siteId"]] = Record(site, start)
        for station in load_seed("chargingStations.json"):
            self.stations[station["chargingStationId"]] = Record(station, start)
        for availability in load_seed("availabilities.json"):
            self.availabilities[availability["chargingStationId"]] = Record(availability, start)
        for _ in range(int(round(120 * scale))):
            site = self._new_site(rng)
            self.sites[site["siteId"]] = Record(site, start)
            for _ in range(weighted(rng, [(1, 40), (2, 35), (3, 15), (4, 10)])):
                station = self._new_station(rng, site)
                self.stations[station["chargingStationId"]] = Record(station, start)

    def _new_site(self, rng: random.Random) -> dict[str, Any]:
        place = random_place(rng, "NZL", spread_km=25)
        operator = rng.choice(OPERATORS)
        return {
            "siteId": det_uuid(rng),
            "name": f"{place.city} {place.street}" + rng.choice(["", "", " Carpark", " HPC", " Mall"]),
            "operator": operator,
            "address": f"{place.house_number} {place.street}, {place.city} {place.postal_code}, New Zealand",
            "is24Hours": rng.random() < 0.8,
            "carParkCount": rng.randint(1, 12),
            "hasCarparkCost": rng.random() < 0.2,
            "maxTimeLimit": rng.choice(["Unlimited", "Unlimited", "60 minutes", "2 hours"]),
            "hasTouristAttraction": rng.random() < 0.15,
            "accessLocations": [{"lat": place.latitude, "lon": place.longitude}],
            "providerDeleted": False,
        }

    def _new_station(self, rng: random.Random, site: dict[str, Any]) -> dict[str, Any]:
        current = "DC" if rng.random() < 0.55 else "AC"
        loc = site["accessLocations"][0]
        station = {
            "chargingStationId": det_uuid(rng),
            "siteId": site["siteId"],
            "operator": site["operator"],
            "owner": site["operator"],
            "assetId": det_uuid(rng),
            "current": current,
            "hasChargingCost": rng.random() < 0.85,
            "kwRated": rng.choice(KW_BY_CURRENT[current]),
            "dateFirstOperational": (self.clock.now() - timedelta(days=rng.randint(30, 2500))).strftime(
                "%Y-%m-%dT00:00:00Z"
            ),
            "nextPlannedOutage": None,
            "installationStatus": weighted(
                rng, [("Commissioned", 92), ("Planned", 3), ("Under Construction", 3), ("Decommissioned", 2)]
            ),
            "floorLevel": rng.choice(["Ground", "Ground", "Ground", "1", "UG"]),
            "manufacturer": rng.choice(["ABB", "Tritium", "Kempower", "Delta", "Schneider", None]),
            "model": rng.choice(["MD_TERRA_53", "RT50", "T-Series", None]),
            "images": [],
            "connectors": [
                {
                    "connectorId": det_uuid(rng),
                    "connectorType": weighted(rng, DC_CONNECTORS if current == "DC" else AC_CONNECTORS),
                    "operationStatus": weighted(
                        rng, [("Operative", 85), ("Inoperative", 5), ("Unknown", 10)]
                    ),
                    "providerDeleted": False,
                }
                for _ in range(weighted(rng, [(1, 35), (2, 55), (3, 10)]))
            ],
            "providerDeleted": False,
            "location": {
                "lat": round(loc["lat"] + rng.uniform(-2e-4, 2e-4), 6),
                "lon": round(loc["lon"] + rng.uniform(-2e-4, 2e-4), 6),
            },
        }
        if site["operator"] in ("ChargeNet NZ", "Z Energy"):
            # Some providers send live availability inside the station record.
            station.update(self._availability_fields(rng, station))
        return station

    def _availability_fields(self, rng: random.Random, station: dict[str, Any]) -> dict[str, Any]:
        status = weighted(rng, AVAILABILITY)
        return {
            "availabilityStatus": status,
            "kwAvailable": station["kwRated"] if status == "Available" else 0,
            "availabilityTime": iso_z(self.clock.now()),
        }

    # -- change process ----------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Per simulated minute: statuses flip, connectors change, stations appear and get deleted
        (the push layer above publishes the changes)."""
        rng, now = self.rng, self.clock.now()
        minutes = max(1, int(seconds // 60))
        live = [r for r in self.stations.values() if not r.body["providerDeleted"]]
        for _ in range(minutes):
            for record in rng.sample(live, k=min(len(live), max(1, len(live) // 40))):
                body = record.body
                if "availabilityStatus" in body:
                    body.update(self._availability_fields(rng, body))
                    self._touch_availability(body, now)
                elif body["operator"] == "Vector" or rng.random() < 0.3:
                    self._touch_availability(
                        {**body, **self._availability_fields(rng, body)}, now, standalone=True
                    )
                    continue
                connector = rng.choice(body["connectors"])
                connector["operationStatus"] = weighted(
                    rng, [("Operative", 80), ("Inoperative", 12), ("Unknown", 8)]
                )
                record.modified = now
            if rng.random() < 0.15:
                self._add_station(rng, now)
            if rng.random() < 0.08 and live:
                self._soft_delete(rng.choice(live), now)
            if rng.random() < 0.05:
                site = self.sites[rng.choice(list(self.sites))]
                site.body["carParkCount"] = max(1, site.body["carParkCount"] + rng.choice([-1, 1]))
                site.modified = now
        self._hard_delete(now)

    def _touch_availability(self, station: dict[str, Any], now: datetime, standalone: bool = False) -> None:
        record = {
            "operator": station["operator"],
            "chargingStationId": station["chargingStationId"],
            "availabilityStatus": station["availabilityStatus"],
            "kwAvailable": station["kwAvailable"],
            "availabilityTime": station["availabilityTime"],
        }
        self.availabilities[station["chargingStationId"]] = Record(record, now)
        if not standalone:
            self.stations[station["chargingStationId"]].modified = now

    def _add_station(self, rng: random.Random, now: datetime) -> None:
        site = rng.choice([s.body for s in self.sites.values() if not s.body["providerDeleted"]])
        station = self._new_station(rng, site)
        self.stations[station["chargingStationId"]] = Record(station, now)

    def _soft_delete(self, record: Record, now: datetime) -> None:
        record.body["providerDeleted"] = True
        for connector in record.body["connectors"]:
            connector["providerDeleted"] = True
        record.modified = record.soft_deleted_at = now

    def _hard_delete(self, now: datetime) -> None:
        horizon = now - timedelta(seconds=self.hard_delete_after)
        for table in (self.sites, self.stations):
            for key in [k for k, r in table.items() if r.soft_deleted_at and r.soft_deleted_at <= horizon]:
                del table[key]

    TOMTOM_TYPES = {
        "Type 2 Socketed": "IEC62196Type2Outlet",
        "Type 2 Tethered": "IEC62196Type2CableAttached",
        "Type 1 Tethered": "IEC62196Type1",
        "Type 2 CCS": "IEC62196Type2CCS",
        "CHAdeMO": "Chademo",
    }

    def charging_parks(self) -> list[ChargingPark]:
        """Every live site with its stations' connectors, as TomTom would list it."""
        with self.lock:
            by_site: dict[str, list[tuple[str, float]]] = {}
            for record in self.stations.values():
                body = record.body
                if body["providerDeleted"]:
                    continue
                for connector in body["connectors"]:
                    kind = self.TOMTOM_TYPES.get(connector["connectorType"])
                    if kind:
                        by_site.setdefault(body["siteId"], []).append((kind, float(body["kwRated"] or 0)))
            parks = []
            for site_id, record in self.sites.items():
                site = record.body
                location = (site.get("accessLocations") or [{}])[0]
                if site["providerDeleted"] or site_id not in by_site or "lat" not in location:
                    continue
                parks.append(
                    ChargingPark(
                        site_id,
                        site["name"],
                        location["lat"],
                        location["lon"],
                        "NZL",
                        park_connectors(by_site[site_id]),
                    )
                )
            return parks
