"""GreenFlux's fleet as it is now: numpy columns of the structure (which charge station stands at
which location, how many EVSEs it has), the objects that changed since they were generated, and the
change process (status flips, moved stations, new locations, edits)."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np

from evpipeline.simulators.greenflux.records import (
    CPOS,
    STATUSES,
    TOMTOM_TYPES,
    GreenFluxRecords,
    _Column,
    _Ctx,
    etag,
    iso,
)
from evpipeline.simulators.toolkit import ChargingPark, park_connectors, weighted


class GreenFluxFleet(GreenFluxRecords):
    """Current state (overrides over the generated base), its mutation and its evolution."""

    _loc_ncs: _Column
    _loc_modified: _Column
    _loc_updated: _Column
    _cs_nevse: _Column
    _cs_first_evse: _Column
    _cs_modified: _Column
    _loc_over: dict[int, dict[str, Any]]
    _cs_over: dict[int, dict[str, Any]]
    _evse_over: dict[int, dict[str, Any]]
    _moved_in: dict[int, list[int]]
    _removed: dict[int, dict[str, dict[str, Any]]]
    _loc_pinned: dict[int, dict[str, Any]]

    # -- fleet structure (numpy, per index) ----------------------------------------------------
    def _build_fleet(self, n: int) -> None:
        rng = np.random.default_rng([self.seed, 2])
        now = self._now()
        weights = np.array([c.weight for c in CPOS], dtype=float)
        cpo = rng.choice(len(CPOS), size=n, p=weights / weights.sum()).astype(np.int16)
        n_cs = rng.choice([1, 2, 3, 4], size=n, p=[0.45, 0.35, 0.12, 0.08]).astype(np.int64)
        created = now - rng.integers(60, 2200, size=n) * 86400 - rng.integers(0, 86400, size=n)
        # Last edited somewhere between creation and an hour ago.
        modified = created + (rng.random(n) * (now - 3600 - created)).astype(np.int64)
        self._loc_cpo = _Column(cpo)
        self._loc_ncs = _Column(n_cs)
        self._loc_first_cs = _Column(np.concatenate([[0], np.cumsum(n_cs)[:-1]]).astype(np.int64))
        self._loc_created = _Column(created.astype(np.int64))
        self._loc_modified = _Column(modified.astype(np.int64))  # the Location object's own edits
        self._loc_updated = _Column(modified.astype(np.int64))  # incl. its EVSEs (date_from filters on this)
        self._loc_base_ts = _Column(modified.astype(np.int64))  # when the generated state was last edited
        total_cs = int(n_cs.sum())
        base_loc = np.repeat(np.arange(n, dtype=np.int64), n_cs)
        dc = rng.random(total_cs) < 0.2
        n_evse = np.where(dc, 1, rng.choice([1, 2], size=total_cs, p=[0.3, 0.7])).astype(np.int64)
        self._cs_base_loc = _Column(base_loc)
        self._cs_loc = _Column(base_loc.copy())  # where each charge station is now
        self._cs_dc = _Column(dc)
        self._cs_nevse = _Column(n_evse)
        self._cs_first_evse = _Column(np.concatenate([[0], np.cumsum(n_evse)[:-1]]).astype(np.int64))
        self._cs_modified = _Column(modified[base_loc].astype(np.int64))
        self._evse_cs = _Column(np.repeat(np.arange(total_cs, dtype=np.int64), n_evse))

    # -- current state: overrides over the generated base ---------------------------------------
    def _ctx(self, i: int) -> _Ctx:
        return self._loc_base(i)[1]

    def _cs_fields(self, j: int, ctx: _Ctx | None = None) -> dict[str, Any]:
        """Charge station j's own fields; `ctx` is its original location's (regenerated when not given)."""
        if j in self._cs_over:
            return self._cs_over[j]
        i = int(self._cs_base_loc[j])
        return self._cs_base(j, ctx or self._ctx(i), i)

    def _evse(self, g: int, ctx: _Ctx | None = None, cs: dict[str, Any] | None = None) -> dict[str, Any]:
        if g in self._evse_over:
            return self._evse_over[g]
        j = int(self._evse_cs[g])
        if ctx is None:
            ctx = self._ctx(int(self._cs_base_loc[j]))
        if cs is None:
            cs = self._cs_fields(j, ctx)
        return self._evse_base(g, j, g - int(self._cs_first_evse[j]) + 1, cs, ctx)

    def _evses_of_cs(self, j: int, ctx: _Ctx | None = None) -> list[dict[str, Any]]:
        """The EVSEs of charge station j; `ctx`: its original location's, when the caller has it."""
        first, count = int(self._cs_first_evse[j]), int(self._cs_nevse[j])
        if all(g in self._evse_over for g in range(first, first + count)):
            return [self._evse_over[g] for g in range(first, first + count)]
        if ctx is None:
            ctx = self._ctx(int(self._cs_base_loc[j]))
        cs = self._cs_fields(j, ctx)
        return [self._evse(g, ctx, cs) for g in range(first, first + count)]

    def _members(self, i: int) -> list[int]:
        """Charge stations at location i now: its own that stayed, plus those moved in."""
        first, count = int(self._loc_first_cs[i]), int(self._loc_ncs[i])
        own = [j for j in range(first, first + count) if int(self._cs_loc[j]) == i]
        return own + [j for j in self._moved_in.get(i, []) if int(self._cs_loc[j]) == i]

    def _location(self, i: int, evses: bool = True) -> dict[str, Any]:
        base, ctx = self._loc_base(i)
        body = dict(self._loc_over.get(i, base))
        modified = int(self._loc_modified[i])
        body.update(
            created=iso(int(self._loc_created[i])),
            modified=iso(modified),
            last_updated=iso(int(self._loc_updated[i])),
            etag=etag(modified),
        )
        body.update(self._loc_pinned.get(i, {}))
        if not evses:
            body.pop("evses", None)
            return body
        live = [
            e
            for j in self._members(i)
            for e in self._evses_of_cs(j, ctx if int(self._cs_base_loc[j]) == i else None)
        ]
        body["evses"] = live + list(self._removed.get(i, {}).values())
        return body

    def _charge_station(self, j: int) -> dict[str, Any]:
        body = {k: v for k, v in self._cs_fields(j).items() if not k.startswith("_")}
        modified = int(self._cs_modified[j])
        evses = self._evses_of_cs(j)
        live = [e["status"] for e in evses if e["status"] != "REMOVED"]
        body.update(
            location_id=self.location_id(int(self._cs_loc[j])),
            evses=evses,
            etag=etag(modified),
            created=iso(int(self._loc_created[int(self._cs_base_loc[j])])),
            modified=iso(modified),
            status=("CHARGING" if "CHARGING" in live else live[0]) if live else "REMOVED",
        )
        return body

    # -- mutation helpers (evolve and tests) -------------------------------------------------------
    def _loc_mut(self, i: int) -> dict[str, Any]:
        if i not in self._loc_over:
            self._loc_over[i] = copy.deepcopy(self._loc_base(i)[0])
        return self._loc_over[i]

    def _cs_mut(self, j: int) -> dict[str, Any]:
        if j not in self._cs_over:
            self._cs_over[j] = copy.deepcopy(self._cs_fields(j))
        return self._cs_over[j]

    def _evse_mut(self, g: int) -> dict[str, Any]:
        if g not in self._evse_over:
            self._evse_over[g] = copy.deepcopy(self._evse(g))
        return self._evse_over[g]

    def _touch_evse(self, g: int, evse: dict[str, Any], now: int, connectors: bool = False) -> None:
        """An EVSE changed: its last_updated and its Location's (not the Location's `modified`)."""
        evse["last_updated"] = iso(now)
        if connectors:
            for connector in evse["connectors"]:
                connector["last_updated"] = iso(now)
        i = int(self._cs_loc[int(self._evse_cs[g])])
        self._loc_updated[i] = now

    def _require(self, found: int | None, what: str, key: str) -> int:
        if found is None:
            raise KeyError(f"unknown {what} {key!r}")
        return found

    def _move(self, j: int, to: int, now: int) -> None:
        origin = int(self._cs_loc[j])
        if origin == to:
            return
        target = self._ctx(to)
        first, count = int(self._cs_first_evse[j]), int(self._cs_nevse[j])
        self._cs_loc[j] = to  # first: touching the EVSEs below bumps the new location, never the old
        for g in range(first, first + count):
            evse = self._evse_mut(g)
            left = copy.deepcopy(evse)
            left["status"] = "REMOVED"  # and, as GreenFlux does, no timestamp change
            self._removed.setdefault(origin, {})[evse["uid"]] = left
            self._removed.get(to, {}).pop(evse["uid"], None)  # moving back revives the old copy
            evse["coordinates"] = {"latitude": f"{target.lat:.6f}", "longitude": f"{target.lon:.6f}"}
            if evse["status"] == "REMOVED":
                evse["status"] = "AVAILABLE"
            self._touch_evse(g, evse, now, connectors=True)
        if int(self._cs_base_loc[j]) != to and j not in self._moved_in.get(to, []):
            self._moved_in.setdefault(to, []).append(j)
        self._cs_modified[j] = now
        self._loc_updated[to] = now

    def _add_location(self, rng: random.Random, now: int, cpo_id: str | None = None) -> str:
        i = self.n_locations
        cpo = (
            [c.cpo_id for c in CPOS].index(cpo_id)
            if cpo_id
            else CPOS.index(weighted(rng, [(c, c.weight) for c in CPOS]))
        )
        n_cs = weighted(rng, [(1, 60), (2, 40)])
        first_cs, first_evse = self.n_charge_stations, self.n_evses
        self._loc_cpo.append([cpo])
        self._loc_ncs.append([n_cs])
        self._loc_first_cs.append([first_cs])
        for column in (self._loc_created, self._loc_modified, self._loc_updated, self._loc_base_ts):
            column.append([now])
        dc = [rng.random() < 0.2 for _ in range(n_cs)]
        n_evse = [1 if d else 2 for d in dc]
        self._cs_base_loc.append([i] * n_cs)
        self._cs_loc.append([i] * n_cs)
        self._cs_dc.append(dc)
        self._cs_nevse.append(n_evse)
        self._cs_first_evse.append(
            list(first_evse + np.concatenate([[0], np.cumsum(n_evse)[:-1]]).astype(np.int64))
        )
        self._cs_modified.append([now] * n_cs)
        self._evse_cs.append(np.repeat(np.arange(first_cs, first_cs + n_cs), n_evse))
        return self.location_id(i)

    # -- change process ----------------------------------------------------------------------------
    def evolve(self, seconds: float) -> None:
        """Per simulated minute: EVSE statuses change; now and then a station moves, a location
        appears, a location, a station or a tariff is edited."""
        rng, now = self.rng, self._now()
        for _ in range(max(1, int(seconds // 60))):
            for _ in range(max(1, self.n_evses // 150)):
                g = rng.randrange(self.n_evses)
                evse = self._evse_mut(g)
                if evse["status"] == "REMOVED":  # a deprecated station's EVSE: nothing reports on it
                    continue
                evse["status"] = weighted(
                    rng, [(s, w) for s, w in STATUSES if s not in (evse["status"], "PLANNED")]
                )
                self._touch_evse(g, evse, now)
            if rng.random() < 0.05:
                j = rng.randrange(self.n_charge_stations)
                cpo = int(self._loc_cpo[int(self._cs_loc[j])])
                same_cpo = np.flatnonzero(self._loc_cpo.view == cpo)
                self._move(j, int(same_cpo[rng.randrange(len(same_cpo))]), now)
            if rng.random() < 0.05:
                self._add_location(rng, now)
            if rng.random() < 0.1:
                i = rng.randrange(self.n_locations)
                self._loc_mut(i)["remarks"] = rng.choice(
                    [
                        "Laadpaal verplaatst",
                        "Nieuwe belijning",
                        "Tijdelijk afgezet wegens werkzaamheden",
                        None,
                    ]
                )
                self._loc_modified[i] = self._loc_updated[i] = now
            if rng.random() < 0.3:
                j = rng.randrange(self.n_charge_stations)
                cs = self._cs_mut(j)
                cs["connectivity_status"] = "Offline" if cs["connectivity_status"] == "Online" else "Online"
                self._cs_modified[j] = now
            if rng.random() < 0.01:
                tariff = self.tariffs[rng.choice(sorted(self.tariffs))]
                component = tariff["elements"][0]["price_components"][0]
                if component["price"]:
                    component["price"] = round(component["price"] + 0.02, 2)
                    tariff["last_updated"] = iso(now)

    def charging_parks(self) -> list[ChargingPark]:
        """Every public location with its live connectors, as TomTom would list it."""
        parks = []
        with self.lock:
            for i in range(self.n_locations):
                location = self._location(i)
                if not location["publish"] or location["access_type"] != "PUBLIC":
                    continue
                pairs = []
                for evse in location["evses"]:
                    if evse["status"] == "REMOVED":
                        continue
                    for connector in evse["connectors"]:
                        kind = TOMTOM_TYPES.get((connector["standard"], connector["format"]))
                        if kind:
                            pairs.append((kind, round(float(connector["max_electric_power"] or 0) / 1000, 1)))
                if pairs:
                    parks.append(
                        ChargingPark(
                            location["id"],
                            location["name"],
                            float(location["coordinates"]["latitude"]),
                            float(location["coordinates"]["longitude"]),
                            location["country"],
                            park_connectors(pairs),
                        )
                    )
        return parks
