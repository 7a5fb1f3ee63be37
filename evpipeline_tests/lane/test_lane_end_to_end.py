"""Every source's changes reach NDW through the lane the supervisor starts: status PATCHes from a
Zaptec message, an EVRoam push file and a GreenFlux poll, and ad-hoc price changes (tariff PUTs,
a connector's new tariff_ids as a location PUT) from GreenFlux and the operator reference file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from evpipeline.lane.assets import realtime_lane_sensor
from evpipeline.model.assets import reference_file, reference_operator_data
from evpipeline.model.reference import default_file
from evpipeline.ndw.push_assets import ndw_push
from evpipeline_tests.conftest import materialize, query
from evpipeline_tests.lane.conftest import WEBHOOK_KEY, Deployment
from evpipeline_tests.typed import run_requests


def held_evse(deployment: Deployment, source: str, **where: str) -> tuple[str, str, str, str]:
    """(location_id, evse_uid, status, party) of an EVSE of `source` that NDW holds."""
    extra = "".join(f" AND e.{k} = '{v}'" for k, v in where.items())
    rows = query(
        deployment.warehouse,
        f"""
        SELECT e.location_id, e.evse_uid, e.status, e.party_id FROM mart.evses e
        JOIN ops.ndw_pushed p ON p.kind = 'evse' AND p.object_id = e.location_id AND p.evse_uid = e.evse_uid
        WHERE e.source = '{source}' AND NOT e.is_deleted AND e.status IN ('AVAILABLE', 'CHARGING') {extra}
        ORDER BY 1, 2""",
    )
    assert rows, f"NDW holds no {source} EVSE"
    return rows[0]


def puts(deployment: Deployment, path_part: str) -> list[object]:
    return [p for p in deployment.ndw_sim.accepted_pushes() if p.method == "PUT" and path_part in p.path]


@pytest.fixture
def nz_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # EVRoam's fleet is in New Zealand: to measure its push path end to end, the simulated access
    # point takes NZ locations too (a deployment delivers to its own country's access point). Its
    # rules want an eMI3 EVSE id on every EVSE, which EVRoam lacks: the NZ CPOs' operator entries
    # (this test's own, fictitious) give the ids derived from their stations.
    monkeypatch.setenv("EVPIPELINE_NAP_COUNTRIES", "NLD,NZL")
    reference = yaml.safe_load(Path(default_file()).read_text())
    reference["operators"] += [
        {
            "country_code": "NZ",
            "party_id": party,
            "operator_id": f"NZ*{party}",
            "name": f"Test CPO {party}",
            "legal_name": f"Test CPO {party} Ltd",
            "helpdesk": {"phone": "+64 9 000 0000"},
            "staffed": False,
            "payment_means": ["paymentCreditCard"],
        }
        for party in ("CNZ", "VEC", "ZEN", "MER", "BPP", "CTE", "JLT")
    ]
    path = tmp_path / "reference-nz.yaml"
    path.write_text(yaml.safe_dump(reference, sort_keys=False))
    monkeypatch.setenv("EVPIPELINE_REFERENCE_FILE", str(path))


@pytest.mark.slow
def test_every_source_reaches_ndw_through_the_supervised_lane(
    deployment: Deployment, nz_too: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deployment
    d.bootstrap()
    d.evroam_sim.clock.advance(60)
    d.resources["evroam"].client().subscribe(f"{d.receiver.url}/api/evroam_listener?code={WEBHOOK_KEY}")
    assert d.evroam_sim.wait_validated()

    # Status changes, one per source.
    _, zaptec_uid, zaptec_status, _ = held_evse(d, "zaptec")
    d.zaptec_sim.set_state(zaptec_uid, 710, "3" if zaptec_status == "AVAILABLE" else "1")
    greenflux_location, greenflux_uid, _, _ = held_evse(d, "greenflux", status="AVAILABLE")
    d.greenflux_sim.set_evse_status(greenflux_uid, "OUTOFORDER")
    _, station, _, _ = held_evse(d, "evroam", party_id="CNZ")
    for connector in d.evroam_sim.stations[station].body["connectors"]:
        d.evroam_sim.set_connector_status(station, connector["connectorId"], "Inoperative")
    assert d.evroam_sim.publish()

    # Ad-hoc prices: a GreenFlux tariff and the operator's own tariff change price; a GreenFlux
    # connector (elsewhere: a location PUT carries its EVSEs' statuses) switches to another tariff.
    [(gf_tariff, gf_location, gf_evse, gf_connector)] = query(
        d.warehouse,
        """
        WITH held AS (SELECT object_id FROM ops.ndw_pushed WHERE kind = 'tariff')
        SELECT c.tariff_ids->>0, c.location_id, c.evse_uid, c.connector_id
        FROM mart.connectors c JOIN ops.ndw_pushed p ON p.kind = 'location' AND p.object_id = c.location_id
        WHERE c.source = 'greenflux' AND (c.tariff_ids->>0) IN (SELECT object_id FROM held)
            AND c.location_id <> ?
        ORDER BY 2, 3, 4 LIMIT 1""",
        [greenflux_location],
    )
    d.greenflux_sim.clock.advance(1)
    d.greenflux_sim.edit_tariff(
        gf_tariff, elements=[{"price_components": [{"type": "ENERGY", "price": 0.99, "step_size": 1}]}]
    )
    # Another tariff of the same CPO (a tariff of another party would make NDW's copy invalid:
    # that connector would be held back with its last valid version).
    [(other,)] = query(
        d.warehouse,
        """SELECT min(t.tariff_id) FROM mart.tariffs t JOIN mart.locations l USING (country_code, party_id)
                                       WHERE l.location_id = ? AND t.tariff_id <> ? AND NOT t.is_deleted""",
        [gf_location, gf_tariff],
    )
    d.greenflux_sim.edit_connector(gf_evse, gf_connector, tariff_id=other)
    reference = yaml.safe_load(
        Path(reference_file()).read_text()
    )  # the deployment's file (with the NZ entries)
    zpt = next(t for t in reference["tariffs"] if t["id"] == "ZPT-NL-AC")
    zpt["elements"][0]["price_components"][0]["price"] = 0.41
    edited = tmp_path / "reference.yaml"
    edited.write_text(yaml.safe_dump(reference))
    monkeypatch.setenv("EVPIPELINE_REFERENCE_FILE", str(edited))
    materialize([reference_operator_data], d.resources)

    before = len(d.ndw_sim.accepted_pushes())
    instance = dg.DagsterInstance.ephemeral()
    [request] = run_requests(
        realtime_lane_sensor(dg.build_sensor_context(instance=instance, definitions=d.definitions()))
    )
    run = d.run_lane(instance, request, seconds=5)
    assert run.success
    sent = d.ndw_sim.accepted_pushes()[before:]

    assert [p.body["status"] for p in d.patches(greenflux_uid)] == ["OUTOFORDER"]
    assert [p.body["status"] for p in d.patches(station)] == ["INOPERATIVE"]
    assert len(d.patches(zaptec_uid)) == 1
    tariff_puts = {
        p.path.rsplit("/", 1)[-1]: p.body for p in sent if p.method == "PUT" and p.kind == "tariff"
    }
    assert tariff_puts[gf_tariff]["elements"][0]["price_components"][0]["price"] == 0.99
    assert tariff_puts["ZPT-NL-AC"]["elements"][0]["price_components"][0]["price"] == 0.41
    [location_put] = [
        p for p in sent if p.method == "PUT" and p.kind == "location" and p.path.endswith(f"/{gf_location}")
    ]
    connector = next(
        c
        for e in location_put.body["evses"]
        if e["uid"] == gf_evse
        for c in e["connectors"]
        if c["id"] == gf_connector
    )
    assert connector["tariff_ids"] == [other]
    # A full diff now finds nothing to PUT or PATCH: the lane sent it all. What is left is its own
    # work: DELETE the tariff no connector references any more (tariff DELETEs need every location).
    after = len(d.ndw_sim.accepted_pushes())
    materialize([ndw_push], d.resources)
    left = [(p.method, p.path.rsplit("/", 1)[-1]) for p in d.ndw_sim.accepted_pushes()[after:]]
    unreferenced = query(
        d.warehouse,
        """SELECT tariff_id FROM mart.tariffs t WHERE tariff_id = ? AND NOT EXISTS (
                                             SELECT 1 FROM mart.connectors c WHERE c.party_id = t.party_id
                                                 AND NOT c.is_deleted
                                             AND list_contains(CAST(c.tariff_ids AS VARCHAR[]),
                                                 t.tariff_id))""",
        [gf_tariff],
    )
    assert left == ([("DELETE", gf_tariff)] if unreferenced else [])
