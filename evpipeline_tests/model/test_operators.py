"""AFIR operator data in the reference file (`operators`) and what the model derives from it: validated
entries, `reference.operators` and `mart.operators`, the operator and NUTS-1 region of every location,
an eMI3 EVSE id on every EVSE, and the physical charging station of every EVSE."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from evpipeline.model.reference import ReferenceError, load_reference
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.greenflux.records import CPOS
from evpipeline.simulators.toolkit import NUTS1_CITIES, SimClock
from evpipeline.simulators.zaptec.fleet import NUTS1_REGIONS
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.model.test_build_evroam import SITE, station
from evpipeline_tests.model.test_build_evroam import load as load_evroam
from evpipeline_tests.model.test_reference import build, default, load, write
from evpipeline_tests.sources.greenflux.conftest import TOKEN
from evpipeline_tests.sources.greenflux.conftest import resource as greenflux_resource
from evpipeline_tests.sources.greenflux.conftest import sync as greenflux_sync
from evpipeline_tests.sources.zaptec.conftest import resource_for, simulator, sync_everything
from evpipeline_tests.typed import running

EMI3_EVSE_ID = r"[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9*]{1,30}"


def operators_only(**changes: Any) -> dict[str, Any]:
    """The shipped file with its first operator entry (NL/ALF) changed; a None value removes the key."""
    document = default()
    entry = document["operators"][0]
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return document


BAD_OPERATORS = [
    ({"operator_id": "NLALF1"}, "operator_id: 'NLALF1' is not an eMI3 operator id"),
    ({"operator_id": "nl*alf"}, "operator_id: 'nl*alf' is not an eMI3 operator id"),
    ({"operator_id": "BE*ALF"}, "operator_id: 'BE*ALF' is of country BE, not of the entry's NL"),
    ({"name": "x" * 101}, "name: String should have at most 100 characters"),
    ({"website": "www.alfa.example"}, "website: String should match pattern"),
    ({"legal_name": None}, "legal_name: required"),
    ({"legal_name": "Alfa\nLaadpunten"}, "legal_name: must be the registered name"),
    ({"helpdesk": {"email": "a@b.example"}}, "helpdesk.phone: None is not an international number"),
    (
        {"helpdesk": {"phone": "020 123 4567"}},
        "helpdesk.phone: '020 123 4567' is not an international number",
    ),
    (
        {"helpdesk": {"phone": "+31 (0)20 1234"}},
        "helpdesk.phone: '+31 (0)20 1234' is not an international number",
    ),
    (
        {"helpdesk": {"phone": "+31 20 123 4567", "email": "service"}},
        "helpdesk.email: 'service' is not an e-mail address",
    ),
    (
        {"helpdesk": {"phone": "+31 20 123 4567", "fax": "+31 20 123 4568"}},
        "helpdesk: must be a mapping of phone",
    ),
    ({"staffed": None}, "staffed: required"),
    ({"staffed": "no"}, "staffed: must be true or false"),
    ({"payment_means": []}, "payment_means: must list ad hoc payment means"),
    ({"payment_means": ["cash"]}, "payment_means: must list ad hoc payment means"),
    ({"payment_means": ["nfc", "nfc"]}, "payment_means: must list ad hoc payment means, each once"),
    ({"nuts_code": "NL34"}, "nuts_code: 'NL34' is not a NUTS-1 code"),
    ({"nuts_code": "BE2"}, "nuts_code: BE2 is not a region of NL (its NUTS codes start with NL)"),
    ({"country_code": "nl"}, "country_code must be ISO 3166 alpha-2 in capitals"),
    ({"colour": "green"}, "unknown key(s) ['colour']"),
]


@pytest.mark.parametrize("changes, message", BAD_OPERATORS)
def test_a_bad_operator_entry_is_refused_with_one_line_naming_it(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, operators_only(**changes))
    with pytest.raises(ReferenceError) as caught:
        load_reference(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: operators[0]") and message in text and "\n" not in text


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"country_code": "NO", "operator_id": "NO*ZPT", "nuts_code": "NO1"},
            "nuts_code: NO is a single NUTS-1 region, NO0",
        ),
        (
            {"country_code": "GR", "operator_id": "GR*ZPT", "nuts_code": "GR3"},
            "nuts_code: GR3 is not a region of GR (its NUTS codes start with EL)",
        ),
        (
            {"country_code": "NZ", "operator_id": "NZ*ZPT", "nuts_code": "NZ1"},
            "nuts_code: NZ has no NUTS regions",
        ),
        ({"country_code": "NL", "operator_id": "NL*ALF"}, "operators[8]: NL/ALF already has an entry"),
    ],
)
def test_nuts_codes_belong_to_the_entry_country_and_entries_are_unique(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    document = default()
    document["operators"].append({**copy.deepcopy(document["operators"][0]), "party_id": "ALF", **entry})
    with pytest.raises(ReferenceError, match=re.escape(message)):
        load_reference(write(tmp_path, document))
    if entry["country_code"] == "GR":  # Greece's NUTS code is EL
        document["operators"][-1]["nuts_code"] = "EL3"
        assert load_reference(write(tmp_path, document)).counts["operators"] == 9


def test_the_demo_operators_state_true_nuts_regions(clock: SimClock) -> None:
    """Every demo CPO with a nuts_code has all its simulated locations in cities of that region."""
    regions = {
        (o["country_code"], o["party_id"]): o["nuts_code"]
        for o in default()["operators"]
        if o.get("nuts_code")
    }
    assert {cpo: regions.get((cpo.country_code, cpo.party_id)) for cpo in CPOS if cpo.country == "NLD"} == {
        cpo: cpo.region for cpo in CPOS if cpo.country == "NLD"
    }
    assert regions[("NL", "ZPT")] == NUTS1_REGIONS["NLD"]
    cities = {region: {name for name, _lat, _lon in pool} for region, pool in NUTS1_CITIES.items()}
    sim = GreenFluxSimulator(scale=0.5, clock=clock, token=TOKEN, seed=5)
    seen = set()
    for location in sim.locations():
        if location["country"] == "NLD":
            region = regions[(location["cpo_id"][:2], location["cpo_id"][2:])]
            assert location["city"] in cities[region], location["cpo_id"]
            seen.add(region)
    assert seen == {"NL1", "NL2", "NL3", "NL4"}
    zaptec = simulator(clock, chargers=40)
    dutch = [i.body["City"] for i in zaptec.installations.values() if i.country == "NLD"]
    assert dutch and set(dutch) <= cities[regions[("NL", "ZPT")]]


def test_operators_load_into_their_table_and_bi_view_and_a_removed_entry_goes(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = default()
    load(warehouse, write(tmp_path, document), monkeypatch)
    rows = query(
        warehouse,
        "SELECT party_id, operator_id, helpdesk_phone, staffed, payment_means, nuts_code "
        "FROM mart.operators WHERE country_code = 'NL' ORDER BY party_id",
    )
    assert [r[0] for r in rows] == ["ALF", "EVB", "GFX", "WTP", "ZPT"]
    assert rows[0] == (
        "ALF",
        "NL*ALF",
        "+31 85 000 1001",
        False,
        ["paymentCreditCard", "paymentDebitCard", "nfc", "qrCode"],
        "NL3",
    )
    [(kind,)] = query(
        warehouse,
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = 'mart' AND table_name = 'operators' AND column_name = 'payment_means'",
    )
    assert kind == "VARCHAR[]"

    document["operators"] = [o for o in document["operators"] if o["party_id"] != "WTP"]
    load(warehouse, write(tmp_path, document), monkeypatch)
    assert query(warehouse, "SELECT count(*) FROM mart.operators") == [(7,)]
    assert query(warehouse, "SELECT is_deleted FROM reference.operators WHERE party_id = 'WTP'") == [
        (True,)
    ]  # flagged, kept


def _zaptec(clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, inbox: str = "inbox") -> None:
    with running(simulator(clock, chargers=30)) as sim:
        sync_everything(resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / inbox)))


@pytest.mark.slow
def test_nuts_code_from_a_rule_then_the_operator_entry_then_a_single_region_country_else_null(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _zaptec(clock, warehouse, tmp_path)
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN, seed=3)) as gfx:
        abroad = next(loc["id"] for loc in gfx.locations() if loc["cpo_id"] == "NLALF")
        gfx.edit_location(abroad, country="LUX")  # a Dutch CPO's location in Luxembourg
        greenflux_sync(greenflux_resource(gfx), warehouse)
    [first, *others] = [
        r[0]
        for r in query(
            warehouse,
            "SELECT installation_id FROM zaptec.installations WHERE country = 'NLD' ORDER BY installation_id",
        )
    ]
    assert (
        others
        and query(warehouse, "SELECT count(*) FROM zaptec.installations WHERE country = 'NOR'")[0][0] > 0
    )
    document = default()
    document["rules"].append({"id": "this-site-is-east", "match": {"location_id": first}, "nuts_code": "NL2"})
    [norway] = [o for o in document["operators"] if o["country_code"] == "NO"]
    assert "nuts_code" not in norway
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)

    def nuts(source: str = "zaptec") -> dict[str, tuple[str | None, str | None]]:
        rows = query(
            warehouse,
            "SELECT location_id, nuts_code, reference_fields->>'nuts_code' FROM mart.locations "
            "WHERE source = ?",
            [source],
        )
        return {location: (code, lineage) for location, code, lineage in rows}

    alfa = dict(
        query(warehouse, "SELECT location_id, party_id FROM mart.locations WHERE source = 'greenflux'")
    )
    greenflux = nuts("greenflux")
    assert greenflux.pop(abroad) == (
        "LU0",
        "nuts-single-region/LUX",
    )  # the entry's NL3 is no region of Luxembourg
    assert {v for k, v in greenflux.items() if alfa[k] == "ALF"} == {("NL3", "operators/NL/ALF")}
    found = nuts()
    assert found[first] == ("NL2", "this-site-is-east")  # a rule beats the operator entry
    assert {found[o] for o in others} == {("NL3", "operators/NL/ZPT")}  # the entry's region
    norwegian = {v for k, v in found.items() if k != first and k not in others}
    assert norwegian == {("NO0", "nuts-single-region/NOR")}  # Norway is one NUTS-1 region

    document["rules"].pop()
    document["operators"] = [{k: v for k, v in o.items() if k != "nuts_code"} for o in document["operators"]]
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)
    found = nuts()
    assert {found[o] for o in [first, *others]} == {
        (None, None)
    }  # four regions in the Netherlands: not guessed
    assert {v for k, v in found.items() if k != first and k not in others} == {
        ("NO0", "nuts-single-region/NOR")
    }


@pytest.mark.slow
def test_operator_and_evse_id_are_filled_only_where_the_source_is_silent_and_stay_stable(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _zaptec(clock, warehouse, tmp_path)
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN, seed=3)) as gfx:
        blank = next(e["uid"] for loc in gfx.locations() for e in loc["evses"] if loc["cpo_id"] == "NLALF")
        gfx.edit_evse(blank, evse_id=None)  # GreenFlux without an evse_id for this one EVSE
        greenflux_sync(greenflux_resource(gfx), warehouse)
    load(warehouse, write(tmp_path, default()), monkeypatch)
    build(warehouse)

    # Operator: GreenFlux names its own (kept, even though the entry's name differs); Zaptec names none.
    names = {cpo.party_id: cpo.name for cpo in CPOS}
    for source, cc, party, operator, lineage in query(
        warehouse,
        """SELECT source, country_code, party_id, operator,
            reference_fields->>'operator' FROM mart.locations WHERE source IN ('greenflux', 'zaptec')""",
    ):
        if source == "greenflux":
            assert (json.loads(operator)["name"], lineage) == (names[party], None)
        else:
            website = f"https://www.zapnet.example/{cc.lower()}"
            name = {"NL": "Zapnet Laden", "NO": "Zapnet Lading"}[cc]
            assert (json.loads(operator), lineage) == (
                {"name": name, "website": website},
                f"operators/{cc}/ZPT",
            )

    # EVSE ids: the source's where it has one; else the operator id, *E and the point's own identifier.
    ids = query(
        warehouse,
        """SELECT e.source, e.country_code, e.party_id, e.evse_uid, e.evse_id, e.reference_fields->>'evse_id',
                                     g.evse_id, z.device_id
                              FROM mart.evses e LEFT JOIN greenflux.evses g ON e.source = 'greenflux'
                                  AND g.evse_uid = e.evse_uid
                              LEFT JOIN zaptec.chargers z ON e.source = 'zaptec'
                                  AND z.charger_id = e.evse_uid""",
    )
    assert {r[0] for r in ids} == {"greenflux", "zaptec"}
    for source, cc, _party, uid, evse_id, lineage, source_id, device in ids:
        assert re.fullmatch(EMI3_EVSE_ID, evse_id), evse_id
        if source == "zaptec":
            assert (evse_id, lineage) == (f"{cc}*ZPT*E{device}", f"operators/{cc}/ZPT")
        elif uid == blank:
            assert (evse_id, lineage) == ("NL*ALF*E" + uid.replace("-", ""), "operators/NL/ALF")
        else:
            assert (evse_id, lineage) == (source_id, None)  # never overridden
    ids_of = {(cc, party, uid): evse_id for _s, cc, party, uid, evse_id, *_ in ids}
    assert len(set(ids_of.values())) == len(
        ids_of
    )  # one id per EVSE, unique within each operator (and beyond)

    # Stable: a full rebuild, and a warehouse built afresh from the same source data, derive the same ids.
    before = query(warehouse, "SELECT evse_uid, evse_id FROM mart.evses ORDER BY 1")
    build(warehouse, full=True)
    assert query(warehouse, "SELECT evse_uid, evse_id FROM mart.evses ORDER BY 1") == before
    fresh = WarehouseResource(database=str(tmp_path / "fresh.duckdb"))
    _zaptec(clock, fresh, tmp_path, inbox="fresh-inbox")
    load(fresh, write(tmp_path, default()), monkeypatch)
    build(fresh)
    assert set(query(fresh, "SELECT evse_uid, evse_id FROM mart.evses")) <= set(before)

    # Without an operator entry nothing is derived: the Norwegian chargers lose theirs, never a guessed one.
    document = default()
    document["operators"] = [o for o in document["operators"] if o["country_code"] != "NO"]
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)
    [(evses, with_id, with_operator)] = query(
        warehouse,
        """SELECT count(*), count(e.evse_id), count(l.operator)
        FROM mart.evses e JOIN mart.locations l USING (country_code, party_id, location_id)
            WHERE e.country_code = 'NO'""",
    )
    assert evses > 0 and (with_id, with_operator) == (0, 0)


@pytest.mark.slow
def test_station_id_is_the_physical_station_of_each_source_and_incremental_equals_full(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _zaptec(clock, warehouse, tmp_path)
    load_evroam(
        warehouse,
        [SITE],
        [
            station("st-1", connectors=[("CHAdeMO", "Operative")]),
            station("st-2", connectors=[("Type 2 Socketed", "Operative")]),
        ],
    )
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN, seed=3)) as gfx:
        greenflux_sync(greenflux_resource(gfx), warehouse)
        load(warehouse, write(tmp_path, default()), monkeypatch)
        build(warehouse)
        listed = dict(
            query(
                warehouse,
                "SELECT uid, charge_station_id FROM greenflux.charge_stations, "
                "unnest(CAST(evse_uids AS VARCHAR[])) AS u(uid)",
            )
        )
        stations = query(warehouse, "SELECT source, evse_uid, station_id FROM mart.evses")
        assert {s for s, _u, _st in stations} == {"evroam", "greenflux", "zaptec"}
        for source, uid, station_id in stations:
            expected = (
                listed[uid] if source == "greenflux" else uid
            )  # Zaptec: the charger; EVRoam: the station
            assert station_id == expected, (source, uid)
        shared = query(
            warehouse,
            "SELECT count(*) FROM (SELECT station_id FROM mart.evses WHERE source = 'greenflux' "
            "GROUP BY 1 HAVING count(*) > 1)",
        )[0][0]
        assert shared > 0  # GreenFlux stations carry two EVSEs

        # A station the warehouse does not know (yet): its EVSEs fall back to their own uid ...
        cs_id, uids = query(
            warehouse,
            "SELECT charge_station_id, evse_uids FROM greenflux.charge_stations "
            "WHERE json_array_length(evse_uids) = 2 ORDER BY 1 LIMIT 1",
        )[0]
        with warehouse.get_connection() as con:
            con.execute("DELETE FROM greenflux.charge_stations WHERE charge_station_id = ?", [cs_id])
        build(warehouse, full=True)
        own = query(
            warehouse,
            "SELECT evse_uid, station_id FROM mart.evses WHERE evse_uid IN (SELECT unnest(?))",
            [json.loads(uids)],
        )
        assert own and all(uid == station_id for uid, station_id in own)
        # ... until it arrives: the incremental build maps its EVSEs' locations, and equals a full build.
        clock.advance(60)
        gfx.edit_charge_station(cs_id, remarks="kabel vervangen")
        greenflux_sync(greenflux_resource(gfx), warehouse)
        result = build(warehouse)
        assert result.mode == "incremental"
        assert {
            s
            for _u, s in query(
                warehouse,
                "SELECT evse_uid, station_id FROM mart.evses WHERE evse_uid IN (SELECT unnest(?))",
                [json.loads(uids)],
            )
        } == {cs_id}
        reconcile = build(warehouse, full=True)
        assert reconcile.mismatches is not None and set(reconcile.mismatches.values()) == {0}, (
            reconcile.mismatch_sample
        )


def _base36(number: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[digit] + digits
    return digits


def test_a_guid_identifier_is_written_in_base_36_to_fit_emi3(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    guid = "42672e5a-076b-4750-8eea-003b472f74b9"  # EVRoam's station ids: 32 hex digits, eMI3 allows 30
    load_evroam(
        warehouse,
        [SITE],
        [
            station(guid, connectors=[("CHAdeMO", "Operative")]),
            station("st-42", connectors=[("Type 2 Socketed", "Operative")]),
        ],
    )
    document = default()
    document["operators"].append(
        {
            "country_code": "NZ",
            "party_id": "CNZ",
            "operator_id": "NZ*CNZ",
            "name": "Test CPO",
            "legal_name": "Test CPO Ltd",
            "helpdesk": {"phone": "+64 9 000 0000"},
            "staffed": False,
            "payment_means": ["paymentCreditCard"],
        }
    )
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)
    ids = dict(query(warehouse, "SELECT evse_uid, evse_id FROM mart.evses"))
    number = int(guid.replace("-", ""), 16)
    part = _base36(number >> 64, 13) + _base36(
        number & (2**64 - 1), 13
    )  # the same 128 bits: unique as the GUID
    assert ids == {guid: f"NZ*CNZ*E{part}", "st-42": "NZ*CNZ*EST42"} and len(part) == 26
