"""GreenFlux's test-control API: edits, status changes, moves and new locations on demand, injected
OCPI errors, and what the API would serve now (copies)."""

from __future__ import annotations

from typing import Any

from evpipeline.simulators.greenflux.handlers import GreenFluxHandlers
from evpipeline.simulators.greenflux.records import iso
from evpipeline.simulators.toolkit import json_copy


class GreenFluxControl(GreenFluxHandlers):
    """What tests, the CLI and benchmarks call to steer the simulator (never the pipeline)."""

    TIME_FIELDS = frozenset({"created", "modified", "last_updated", "etag"})

    def inject_ocpi(self, code: int, message: str, count: int = 1, path: str | None = None) -> None:
        """Answer the next `count` API requests (whose path contains `path`) with HTTP 200 + this OCPI
        status."""
        self._ocpi_script.add((code, message), count, path)

    def set_evse_status(self, uid: str, status: str) -> None:
        """Change an EVSE's status now (as the charge station reports it)."""
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            evse["status"] = status
            self._touch_evse(g, evse, self._now())

    def edit_evse(self, uid: str, **fields: Any) -> None:
        """Edit an EVSE now (any field, `last_updated` included: tests send broken values this way)."""
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            self._touch_evse(g, evse, self._now())
            evse.update(fields)

    def edit_connector(self, uid: str, connector_id: str, **fields: Any) -> None:
        with self.lock:
            g = self._require(self.evse_index(uid), "EVSE", uid)
            evse = self._evse_mut(g)
            self._touch_evse(g, evse, self._now(), connectors=True)
            for connector in evse["connectors"]:
                if connector["id"] == connector_id:
                    connector.update(fields)

    def edit_location(self, location_id: str, **fields: Any) -> None:
        """Edit Location-level fields now (bumps `modified` and `last_updated`).

        Time fields given here (`created`, `modified`, `last_updated`, `etag`) are served as given
        from now on, whatever they contain; the filters keep using the real change time.
        """
        with self.lock:
            i = self._require(self.location_index(location_id), "location", location_id)
            pinned = {k: fields.pop(k) for k in list(fields) if k in self.TIME_FIELDS}
            self._loc_mut(i).update(fields)
            self._loc_pinned.setdefault(i, {}).update(pinned)
            self._loc_modified[i] = self._loc_updated[i] = self._now()

    def edit_charge_station(self, cs_id: str, **fields: Any) -> None:
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            self._cs_mut(j).update(fields)
            self._cs_modified[j] = self._now()

    def edit_tariff(self, tariff_id: str, **fields: Any) -> None:
        with self.lock:
            self.tariffs[tariff_id].update(fields, last_updated=iso(self._now()))

    def delete_tariff(self, tariff_id: str) -> None:
        with self.lock:
            self.tariffs.pop(tariff_id)

    def move_charge_station(self, cs_id: str, to_location_id: str) -> None:
        """Move a charge station: its EVSEs stay behind as REMOVED (timestamps untouched) and reappear
        live."""
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            to = self._require(self.location_index(to_location_id), "location", to_location_id)
            self._move(j, to, self._now())

    def add_location(self, cpo_id: str | None = None) -> str:
        """A new location (with new charge stations and EVSEs) created now; returns its id."""
        with self.lock:
            return self._add_location(self.rng, self._now(), cpo_id)

    def location(self, location_id: str) -> dict[str, Any]:
        """The location as the API would serve it now (a copy)."""
        with self.lock:
            i = self._require(self.location_index(location_id), "location", location_id)
            return json_copy(self._location(i))

    def charge_station(self, cs_id: str) -> dict[str, Any]:
        with self.lock:
            j = self._require(self.charge_station_index(cs_id), "charge station", cs_id)
            return json_copy(self._charge_station(j))

    def locations(self) -> list[dict[str, Any]]:
        """Every location as served now (tests and small fleets only)."""
        with self.lock:
            return [json_copy(self._location(i)) for i in range(self.n_locations)]

    def charge_stations(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json_copy(self._charge_station(j)) for j in range(self.n_charge_stations)]

    def location_updated(self) -> list[tuple[str, int]]:
        """(location id, last_updated epoch seconds) of every location, in API order."""
        with self.lock:
            return [(self.location_id(i), int(self._loc_updated[i])) for i in range(self.n_locations)]

    def mutated(self) -> int:
        """How many objects the simulator holds as dicts (the rest are generated on demand)."""
        return len(self._loc_over) + len(self._cs_over) + len(self._evse_over) + len(self._removed)
