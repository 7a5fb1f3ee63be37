"""Mapping mart locations to TomTom ids through Dagster: right matches, no guesses, few searches."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from evpipeline.run_config import op_config
from evpipeline.simulators.tomtom import TomTomSimulator, distance_m, offset
from evpipeline.simulators.toolkit import ChargingPark
from evpipeline.sources.tomtom.assets import tomtom_location_mapping
from evpipeline.sources.tomtom.client import TomTomResource
from evpipeline.sources.tomtom.matching import Location, MatchRules, decide, overlap, tomtom_type
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, metadata, query, scalar
from evpipeline_tests.sources.tomtom.conftest import NOW, fill_mart
from evpipeline_tests.typed import present

SEARCH = "/categorySearch/"


def map_locations(
    tomtom: TomTomResource, warehouse: WarehouseResource, **config: Any
) -> dg.ExecuteInProcessResult:
    run_config = op_config([tomtom_location_mapping], **config) if config else None
    return materialize(
        [tomtom_location_mapping], {"tomtom": tomtom, "warehouse": warehouse}, run_config=run_config
    )


def mapping(warehouse: WarehouseResource) -> dict[str, tuple[str, str | None]]:
    rows = query(
        warehouse,
        "SELECT location_id, match_status, availability_id FROM tomtom.location_mapping WHERE NOT is_deleted",
    )
    return {lid: (status, aid) for lid, status, aid in rows}


def test_every_location_maps_to_its_own_poi_or_is_reported(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    parks: list[ChargingPark],
) -> None:
    fill_mart(warehouse, parks)
    result = map_locations(tomtom, warehouse)
    meta = metadata(result, "tomtom/location_mapping")
    assert meta["locations"] == meta["searched"] == meta["requests"] == len(parks)  # one search per location
    found = mapping(warehouse)
    assert set(found) == {p.ref for p in parks}
    for park in parks:
        poi = tomtom_sim.poi_for(park.ref)
        assert poi is not None
        status, aid = found[park.ref]
        if status == "matched":
            assert aid == poi.availability_id  # never someone else's id
        elif status == "no_live_data":
            assert poi.availability_id is None and aid is None
        else:
            assert aid is None
    live = [p for p in parks if present(tomtom_sim.poi_for(p.ref)).availability_id]
    matched = [p for p in live if found[p.ref][0] == "matched"]
    assert len(matched) >= 0.9 * len(live)
    assert meta["matched"] == len(matched) and meta["no_live_data"] == len(parks) - len(live)
    # Decoys were really in the way: some searches returned more than the right POI.
    assert scalar(warehouse, "SELECT count(*) FROM tomtom.location_mapping WHERE candidates > 1") > 0
    assert (
        scalar(
            warehouse, "SELECT max(distance_m) FROM tomtom.location_mapping WHERE match_status = 'matched'"
        )
        <= 15
    )


def test_connector_types_beat_a_closer_decoy_and_twins_are_ambiguous(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    parks: list[ChargingPark],
) -> None:
    decoyed, twinned = parks[0], parks[1]
    true_poi = tomtom_sim.poi_for(decoyed.ref)
    assert true_poi is not None
    other_types = [
        t for t in ("Tesla", "StandardHouseholdCountrySpecific") if t not in true_poi.connector_types
    ]
    # A charging park right on the location's coordinates, but with other connectors.
    tomtom_sim.add_charging_poi(decoyed.latitude, decoyed.longitude, [(other_types[0], 150.0, 4)])
    # Another operator's park with the same connectors, as close as TomTom's own POI: no clear winner.
    twin_poi = tomtom_sim.poi_for(twinned.ref)
    assert twin_poi is not None
    here = distance_m(twinned.latitude, twinned.longitude, twin_poi.latitude, twin_poi.longitude)
    lat, lon = offset(twinned.latitude, twinned.longitude, here + 2, 90)
    tomtom_sim.add_charging_poi(
        lat, lon, [(lv.connector_type, lv.power_kw, len(lv.states)) for lv in twin_poi.levels]
    )
    fill_mart(warehouse, parks[:2])
    result = map_locations(tomtom, warehouse)
    found = mapping(warehouse)
    assert (
        found[decoyed.ref][0] in ("matched", "no_live_data")
        and found[decoyed.ref][1] == true_poi.availability_id
    )
    assert found[twinned.ref] == ("ambiguous", None)
    reported = query(
        warehouse,
        "SELECT location_id, match_status, reason, poi_id, runner_up_poi_id FROM tomtom.unmatched_locations",
    )
    assert [(r[0], r[1]) for r in reported] == [(twinned.ref, "ambiguous")]
    assert "fit almost equally well" in reported[0][2] and reported[0][3] and reported[0][4]
    meta = metadata(result, "tomtom/location_mapping")
    assert meta["ambiguous"] == 1 and twinned.ref in meta["unmatched_locations"]


def test_unmatched_locations_are_reported_not_guessed(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    parks: list[ChargingPark],
) -> None:
    park = parks[0]
    lat, lon = offset(
        park.latitude, park.longitude, 110, 0
    )  # inside the search radius, beyond the max distance
    nowhere = ChargingPark("in-a-field", "Nowhere", -44.5, 169.0, "NZL", (("IEC62196Type2CCS", 50.0, 1),))
    too_far = replace(park, ref="too-far", latitude=lat, longitude=lon)
    unknown_plug = replace(park, ref="no-known-connector")
    fill_mart(warehouse, [nowhere, too_far, unknown_plug])
    with warehouse.writer("test") as writer:  # a connector TomTom has no type for
        writer.con.execute(
            "UPDATE mart.connectors SET standard = 'PANTOGRAPH_TOP_DOWN' "
            "WHERE location_id = 'no-known-connector'"
        )
    result = map_locations(tomtom, warehouse)
    reasons = dict(query(warehouse, "SELECT location_id, reason FROM tomtom.unmatched_locations"))
    assert set(reasons) == {"in-a-field", "too-far", "no-known-connector"}
    assert "no charging POI within 150 m" in reasons["in-a-field"]
    assert "needs <= 100 m" in reasons["too-far"]
    assert "no connector type TomTom knows" in reasons["no-known-connector"]
    assert metadata(result, "tomtom/location_mapping")["searched"] == 2  # nothing to compare: not searched
    assert (
        scalar(warehouse, "SELECT count(*) FROM tomtom.location_mapping WHERE availability_id IS NOT NULL")
        == 0
    )


def test_only_new_moved_or_unmatched_locations_are_searched_again(
    tomtom: TomTomResource,
    tomtom_sim: TomTomSimulator,
    warehouse: WarehouseResource,
    parks: list[ChargingPark],
) -> None:
    some = parks[:12]
    fill_mart(warehouse, some)
    map_locations(tomtom, warehouse)
    assert len(tomtom_sim.requests_to(SEARCH)) == 12

    tomtom_sim.reset_log()
    result = map_locations(tomtom, warehouse)  # nothing changed: everything cached
    assert tomtom_sim.requests_to(SEARCH) == [] and metadata(result, "tomtom/location_mapping")["kept"] == 12

    # One location moves 300 m, one is new, one is deleted, one unpublished.
    later = NOW + pd.Timedelta(minutes=10)
    moved_lat, moved_lon = offset(some[0].latitude, some[0].longitude, 300, 45)
    fill_mart(warehouse, [replace(some[0], latitude=moved_lat, longitude=moved_lon), parks[12]], when=later)
    fill_mart(warehouse, [some[1]], when=later, is_deleted=True)
    fill_mart(warehouse, [some[2]], when=later, publish=False)
    tomtom_sim.reset_log()
    result = map_locations(tomtom, warehouse)
    assert len(tomtom_sim.requests_to(SEARCH)) == 2  # the moved and the new one
    meta = metadata(result, "tomtom/location_mapping")
    assert meta["searched"] == 2 and meta["deleted"] == 2
    assert (
        scalar(
            warehouse, "SELECT match_status FROM tomtom.location_mapping WHERE location_id = ?", [some[0].ref]
        )
        == "unmatched"
    )
    flagged = {
        r[0] for r in query(warehouse, "SELECT location_id FROM tomtom.location_mapping WHERE is_deleted")
    }
    assert flagged == {some[1].ref, some[2].ref}

    # Unmatched locations are searched again once their retry interval has passed (here: every run).
    tomtom_sim.reset_log()
    map_locations(tomtom, warehouse)
    assert tomtom_sim.requests_to(SEARCH) == []  # within the default 24 h
    map_locations(tomtom, warehouse, retry_unmatched_after_minutes=0)
    assert len(tomtom_sim.requests_to(SEARCH)) == 1


# -- the rules themselves (pure logic) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("standard", "fmt", "expected"),
    [
        ("IEC_62196_T2", "SOCKET", "IEC62196Type2Outlet"),
        ("IEC_62196_T2", "CABLE", "IEC62196Type2CableAttached"),
        ("IEC_62196_T1", "CABLE", "IEC62196Type1"),
        ("IEC_62196_T2_COMBO", "CABLE", "IEC62196Type2CCS"),
        ("CHADEMO", "CABLE", "Chademo"),
        ("TESLA_S", "CABLE", "Tesla"),
        ("DOMESTIC_F", "SOCKET", "StandardHouseholdCountrySpecific"),
        ("PANTOGRAPH_BOTTOM_UP", "CABLE", None),
        (None, None, None),
    ],
)
def test_ocpi_connector_to_tomtom_type(standard: str | None, fmt: str | None, expected: str | None) -> None:
    assert tomtom_type(standard, fmt) == expected


def _result(poi_id: str, lat: float, lon: float, types: list[str], live: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {
        "id": poi_id,
        "poi": {"name": poi_id, "categorySet": [{"id": 7309}]},
        "position": {"lat": lat, "lon": lon},
        "chargingPark": {"connectors": [{"connectorType": t} for t in types]},
    }
    if live:
        result["dataSources"] = {"chargingAvailability": {"id": f"aid-{poi_id}"}}
    return result


def test_decide_rules() -> None:
    loc = Location("NL", "ABC", "L1", "greenflux", "x", 52.0, 5.0, frozenset({"IEC62196Type2CCS", "Chademo"}))
    at = lambda metres: offset(52.0, 5.0, metres, 0)  # noqa: E731
    assert overlap({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert decide(loc, [_result("near", *at(5), ["IEC62196Type2CCS", "Chademo"])]).status == "matched"
    # Half the types in common is enough; a third is not.
    assert decide(loc, [_result("half", *at(5), ["IEC62196Type2CCS"])]).status == "matched"
    assert (
        decide(loc, [_result("third", *at(5), ["IEC62196Type2CCS", "Tesla", "IEC62196Type2Outlet"])]).status
        == "unmatched"
    )
    # A clearly better candidate wins; two similar ones are ambiguous.
    clear = decide(
        loc,
        [
            _result("a", *at(5), ["IEC62196Type2CCS", "Chademo"]),
            _result("b", *at(60), ["IEC62196Type2CCS", "Chademo"]),
        ],
    )
    assert (
        clear.status == "matched"
        and present(clear.best).poi_id == "a"
        and present(clear.runner_up).poi_id == "b"
    )
    tied = decide(
        loc,
        [
            _result("a", *at(5), ["IEC62196Type2CCS", "Chademo"]),
            _result("b", *at(15), ["IEC62196Type2CCS", "Chademo"]),
        ],
    )
    assert tied.status == "ambiguous"
    assert (
        decide(loc, [_result("a", *at(5), ["Chademo", "IEC62196Type2CCS"], live=False)]).status
        == "no_live_data"
    )
    assert decide(loc, [_result("far", *at(120), ["IEC62196Type2CCS", "Chademo"])]).status == "unmatched"
    shop = {
        "id": "s",
        "poi": {"name": "Shop", "categorySet": [{"id": 9361}]},
        "position": {"lat": 52.0, "lon": 5.0},
    }
    assert decide(loc, [shop]).candidates == 0
    assert (
        decide(loc, [_result("weak", *at(80), ["IEC62196Type2CCS", "Chademo"])]).status == "unmatched"
    )  # score 0.2
    strict = MatchRules(max_distance_m=100, min_overlap=0.5, min_score=0.3, min_margin=0.9)
    assert (
        decide(
            loc,
            clear_results := [
                _result("a", *at(5), ["IEC62196Type2CCS", "Chademo"]),
                _result("b", *at(60), ["IEC62196Type2CCS", "Chademo"]),
            ],
            strict,
        ).status
        == "ambiguous"
    )
    assert len(clear_results) == 2


def test_the_mart_tables_tomtom_reads_are_the_models() -> None:
    """TomTom names the mart tables it matches against instead of importing the model above it."""
    from evpipeline.model import tables
    from evpipeline.sources.tomtom import assets

    assert (assets.MART_LOCATIONS, assets.MART_CONNECTORS) == (tables.LOCATIONS, tables.CONNECTORS)
