"""One physical charger, published once, over real HTTP to the NDW simulator: a duplicate a second
source reports a day later joins the location NDW already holds (no new object), and a status flip
of the duplicate's source does not reach NDW as a second location."""

from __future__ import annotations

from datetime import UTC, datetime

from evpipeline.model.identity import update_identity
from evpipeline.ndw.export import build_export
from evpipeline.ndw.push import NdwPushResource
from evpipeline.simulators.ndw import NdwSimulator
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.mart_fixture import MartRows, later
from evpipeline_tests.ndw.test_push import push

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def site(
    rows: MartRows, source: str, location_id: str, address: str, metres_north: float, minutes: int
) -> dict:
    """A publishable location of CPO ZPT with two EVSEs whose eMI3 ids both sources report."""
    loc = rows.location(
        1,
        party="ZPT",
        location_id=location_id,
        source_id=location_id,
        source=source,
        latitude=52.0907 + metres_north / 111_320,
        longitude=5.1214,
        address=address,
        updated=later(minutes),
    )
    for n in (1, 2):
        evse = rows.evse(
            loc, n, source=source, evse_id=f"NL*ZPT*E00001{n}", updated=later(minutes), status="AVAILABLE"
        )
        rows.connector(evse, 1, source=source, tariffs=["T-ZPT"], updated=later(minutes))
    return loc


def match(warehouse: WarehouseResource, now: datetime) -> None:
    with warehouse.writer("mart", "identity") as w:
        update_identity(w.con, now)


def test_a_duplicate_arriving_a_day_later_joins_the_published_location_and_ndw_gets_no_new_object(
    sim: NdwSimulator, ndw: NdwPushResource, warehouse: WarehouseResource
) -> None:
    first = MartRows()
    first.operator("ZPT")
    first.tariff("T-ZPT", party="ZPT")
    site(first, "zaptec", "ZAP-1", "Kerkstraat 12", 0, 0)
    first.write(warehouse)
    match(warehouse, NOW)
    push(warehouse, ndw)
    assert {o["id"] for o in sim.locations.values()} == {"ZAP-1"}
    pushes_before = len(sim.pushes)

    # A day later GreenFlux, the charger's OCPP back office, reports it too: its own id, 9 m away,
    # the address written its way. By source priority GreenFlux would win; NDW holds Zaptec's.
    second = MartRows()
    site(second, "greenflux", "GFX-1", "KERKSTR. 12", 9, 24 * 60)
    second.write(warehouse, "a-day-later")
    match(warehouse, NOW.replace(day=2))

    assert query(
        warehouse, "SELECT location_id, identity_id, canonical, rule FROM mart.identity ORDER BY 1"
    ) == [
        ("GFX-1", "NL:ZPT:ZAP-1", False, "evse_id"),
        ("ZAP-1", "NL:ZPT:ZAP-1", True, "evse_id"),
    ]
    push(warehouse, ndw)
    assert {o["id"] for o in sim.locations.values()} == {"ZAP-1"}  # no second object
    assert len(sim.pushes) == pushes_before  # and nothing to send: ZAP-1 did not change
    with warehouse.get_connection() as con:
        export = build_export(con)
    # The duplicate is not a candidate at all: not a rejection (nothing is wrong with it).
    assert [k[2] for k in export.location_keys] == ["ZAP-1"] and export.candidates == 1
    assert not [r for r in export.rejections if r["location_id"] == "GFX-1"]

    # Both sources see the same status flip: NDW gets it once, on the published location.
    flip = MartRows()
    for source, location_id in (("zaptec", "ZAP-1"), ("greenflux", "GFX-1")):
        loc = flip.location(1, party="ZPT", location_id=location_id)
        flip.evse(
            loc, 1, source=source, evse_id="NL*ZPT*E000011", status="CHARGING", updated=later(24 * 60 + 5)
        )
    flip.locations.clear()
    flip.write(warehouse, "flip")
    push(warehouse, ndw, static=False)
    sent = sim.pushes[pushes_before:]
    assert [(p.method, p.path.split("/")[-2:]) for p in sent] == [("PATCH", ["ZAP-1", "ZAP-1-E1"])]
