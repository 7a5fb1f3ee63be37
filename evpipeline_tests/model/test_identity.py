"""Cross-source identity (`evpipeline.model.identity`) on a real DuckDB warehouse, against the ground
truth of a generated overlap (`evpipeline_tests.identity_fleet`): which locations are one place is
known from how the fleet was made, never read back from the matcher."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

import pytest
import yaml

from evpipeline.model.assets import reference_operator_data
from evpipeline.model.identity import CANDIDATES, IDENTITY, OVERRIDES, IdentityUpdate, update_identity
from evpipeline.model.reference import default_file
from evpipeline.quality.identity import identity
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, metadata, query
from evpipeline_tests.identity_fleet import Overlap, key, overlap_fleet
from evpipeline_tests.mart_fixture import MartRows, later

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def match(
    warehouse: WarehouseResource, *, scope: list[str] | None = None, now: datetime = NOW
) -> IdentityUpdate:
    """One matching pass in one transaction: every pair, or those touching the `scope` location keys."""
    with warehouse.writer("mart", "identity-test") as w:
        if scope is None:
            return update_identity(w.con, now)
        w.con.execute(
            "CREATE OR REPLACE TEMP TABLE _test_scope (country_code VARCHAR, party_id VARCHAR, "
            "location_id VARCHAR)"
        )
        if scope:
            w.con.executemany("INSERT INTO _test_scope VALUES (?, ?, ?)", [k.split(":", 2) for k in scope])
        return update_identity(w.con, now, scope="_test_scope")


def merged_pairs(warehouse: WarehouseResource) -> set[frozenset[str]]:
    """Every pair of source locations the identity table puts in one physical location."""
    clusters: dict[str, list[str]] = {}
    for identity_id, member in query(
        warehouse,
        f"SELECT identity_id, country_code || ':' || party_id || ':' || location_id FROM {IDENTITY}",
    ):
        clusters.setdefault(identity_id, []).append(member)
    return {frozenset(p) for members in clusters.values() for p in combinations(members, 2)}


def decisions(warehouse: WarehouseResource) -> dict[frozenset[str], tuple[str, str]]:
    return {
        frozenset((a, b)): (decision, rule)
        for a, b, decision, rule in query(
            warehouse,
            f"SELECT a_country_code || ':' || a_party_id || ':' || a_location_id, "
            f"b_country_code || ':' || b_party_id || ':' || b_location_id, decision, rule FROM {CANDIDATES}",
        )
    }


@pytest.fixture(scope="module")
def fleet_1k() -> Overlap:
    return overlap_fleet(250)


def test_matching_finds_the_duplicates_and_none_of_the_near_misses_at_1k_evses(
    warehouse: WarehouseResource, fleet_1k: Overlap
) -> None:
    o = fleet_1k
    assert 900 <= len(o.rows.evses) <= 1_400  # the fleet size the issue asks for (~1k EVSEs)
    assert len(o.truth) >= 60 and len(o.near_misses) >= 50
    o.rows.write(warehouse)

    report = match(warehouse)

    predicted = merged_pairs(warehouse)
    found = predicted & o.truth
    precision, recall = len(found) / len(predicted), len(found) / len(o.truth)
    assert precision >= 0.99, (
        f"precision {precision:.3f}: wrongly merged {sorted(map(sorted, predicted - o.truth))[:5]}"
    )
    assert recall >= 0.95, f"recall {recall:.3f}: missed {sorted(map(sorted, o.truth - predicted))[:5]}"
    assert not predicted & o.near_misses
    # Every near miss was close enough to be compared, and was told apart for its own reason.
    decided = decisions(warehouse)
    assert o.near_misses <= set(decided)
    rules = {decided[pair][1] for pair in o.near_misses}
    assert "different_cpo" in rules and rules <= {"different_cpo", "score_below", "near_threshold"}
    assert report.mode == "full" and report.clusters == len(predicted) and report.duplicates == len(predicted)
    # The addresses were written differently (case, `straat` -> `str.`, `12a` -> `12 A` / `12-a`):
    # normalised, every duplicate's street and house number are equal.
    features = {
        frozenset((a, b)): (street, house)
        for a, b, street, house in query(
            warehouse,
            "SELECT a_country_code || ':' || a_party_id || ':' || a_location_id, "
            "b_country_code || ':' || b_party_id || ':' || b_location_id, street_similarity, "
            f"same_house_number FROM {CANDIDATES}",
        )
    }
    assert {features[pair] for pair in o.truth} == {(1.0, True)}


def _pair(
    o: MartRows,
    n: int,
    party_b: str = "ZPT",
    metres_north: float = 8.0,
    address: str = "Kerkstr. 12",
    name: str | None = None,
) -> tuple[str, str]:
    """A Zaptec location at Kerkstraat 12 and a GreenFlux one `metres_north` away at `address`."""
    lat, lon = 52.0 + n * 0.01, 5.0
    a = o.location(
        n,
        party="ZPT",
        location_id=f"ZAP-{n}",
        source="zaptec",
        latitude=lat,
        longitude=lon,
        address="Kerkstraat 12",
    )
    g = o.location(
        n,
        party=party_b,
        location_id=f"GFX-{n}",
        source="greenflux",
        latitude=lat + metres_north / 111_320,
        longitude=lon,
        address=address,
        name=name or f"Laadplein {n}",
    )
    for row in (a, g):
        evse = o.evse(row, 1, source=row["source"], evse_id=None)
        o.connector(evse, 1, source=row["source"])
    return key(a), key(g)


def test_each_rule_decides_in_its_order_and_overrides_win(warehouse: WarehouseResource) -> None:
    rows = MartRows()
    twin = _pair(rows, 1)  # same CPO, 8 m, same address written differently: by score
    other_cpo = _pair(rows, 2, party_b="OTH")  # a second operator on the same spot
    far = _pair(rows, 3, metres_north=120.0, address="Molenweg 3", name="Elders")
    # ... but they share an eMI3 EVSE id: decisive, however low the score
    rows.evses[-2]["evse_id"] = rows.evses[-1]["evse_id"] = "NL*ZPT*E0003X"
    vetoed = _pair(rows, 4)  # the operator says: not the same (two chargers on one pole address)
    forced = _pair(rows, 5, party_b="OTH")  # the operator says: the same (an OCPP back office's party)
    rows.write(warehouse)
    with warehouse.writer("reference", "overrides") as w:
        w.con.executemany(
            f"INSERT INTO {OVERRIDES} VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [
                (*vetoed[1].split(":"), *vetoed[0].split(":"), "not_same", "two chargers, one address"),
                (*forced[0].split(":"), *forced[1].split(":"), "same", "GreenFlux reports ZPT under OTH"),
            ],
        )

    match(warehouse)

    decided = decisions(warehouse)
    assert decided[frozenset(twin)] == ("same", "score")
    assert decided[frozenset(other_cpo)] == ("not_same", "different_cpo")
    assert decided[frozenset(far)] == ("same", "evse_id")
    assert decided[frozenset(vetoed)] == ("not_same", "override")
    assert decided[frozenset(forced)] == ("same", "override")
    assert merged_pairs(warehouse) == {frozenset(twin), frozenset(far), frozenset(forced)}
    # The CPO's own back office keeps its ids when nothing was published before (source priority).
    assert query(warehouse, f"SELECT DISTINCT identity_id FROM {IDENTITY} ORDER BY 1") == [
        ("NL:OTH:GFX-5",),
        ("NL:ZPT:GFX-1",),
        ("NL:ZPT:GFX-3",),
    ]


def test_the_canonical_member_stays_canonical_when_the_cluster_is_decided_again(
    warehouse: WarehouseResource,
) -> None:
    rows = MartRows()
    zap, gfx = _pair(rows, 1)
    rows.write(warehouse)
    # The cluster was decided before with the Zaptec location as the published one.
    match(warehouse)
    with warehouse.writer("mart", "t") as w:
        w.con.execute(f"UPDATE {IDENTITY} SET canonical = (location_id = 'ZAP-1'), identity_id = ?", [zap])
    match(warehouse, now=NOW + timedelta(days=1))
    assert query(warehouse, f"SELECT location_id, identity_id, canonical FROM {IDENTITY} ORDER BY 1") == [
        ("GFX-1", zap, False),
        ("ZAP-1", zap, True),
    ]
    assert gfx != zap


# Its writes on both backends (the model suite runs on DuckDB otherwise).
@pytest.mark.parametrize("any_warehouse", ["duckdb", "ducklake"], indirect=True)
def test_incremental_matching_equals_full_matching_after_inserts_moves_and_deletes(
    warehouse: WarehouseResource, fleet_1k: Overlap
) -> None:
    o = fleet_1k
    o.rows.write(warehouse)
    match(warehouse)
    rng = random.Random(7)
    duplicates = sorted(o.greenflux)
    changed: list[str] = []
    mix = MartRows()
    for i in rng.sample(duplicates, 30):  # moved 2 km away: no longer the same place
        row = o.greenflux[i]
        mix.locations.append(
            {
                **row,
                "latitude": row["latitude"] + 0.02,
                "last_updated": later(60),
                "source_last_updated": later(60),
            }
        )
        changed.append(key(row))
    for i in rng.sample(
        [d for d in duplicates if key(o.greenflux[d]) not in changed], 20
    ):  # deleted upstream
        row = o.greenflux[i]
        mix.locations.append(
            {**row, "is_deleted": True, "last_updated": later(60), "source_last_updated": later(60)}
        )
        changed.append(key(row))
    lone = [i for i in sorted(o.zaptec) if i not in o.greenflux][:25]
    for i in lone:  # a new duplicate appears next to a Zaptec site that had none
        z = o.zaptec[i]
        g = mix.location(
            0,
            party="ZPT",
            location_id=f"NEW-{i:06d}",
            source_id=f"NEW-{i:06d}",
            source="greenflux",
            latitude=z["latitude"] + 5 / 111_320,
            longitude=z["longitude"],
            address=z["address"].upper(),
            name=z["name"],
            updated=later(60),
        )
        evse = mix.evse(g, 1, source="greenflux", evse_id=f"NL*ZPT*E{i:06d}1", updated=later(60))
        mix.connector(evse, 1, source="greenflux", updated=later(60))
        changed.append(key(g))
    own = [row for row in o.rows.locations if row["location_id"].startswith("GFO-")][:10]
    for g in own:  # and Zaptec reports a GreenFlux-only site too (its key sorts after GreenFlux's)
        z = mix.location(
            0,
            party="ZPT",
            location_id=f"ZNW-{g['location_id'][4:]}",
            source_id=f"ZNW-{g['location_id'][4:]}",
            source="zaptec",
            latitude=g["latitude"],
            longitude=g["longitude"] + 4 / 68_000,
            address=g["address"],
            name=g["name"],
            updated=later(60),
        )
        for n in (1, 2):
            evse = mix.evse(z, n, source="zaptec", evse_id=None, updated=later(60))
            mix.connector(evse, 1, source="zaptec", updated=later(60))
        changed.append(key(z))
    assert len(own) == 10
    mix.write(warehouse, "mix")

    incremental = match(warehouse, scope=changed, now=NOW + timedelta(hours=1))
    columns = "* EXCLUDE (scored_at)"
    after_incremental = (
        sorted(query(warehouse, f"SELECT {columns} FROM {CANDIDATES}")),
        sorted(query(warehouse, f"SELECT * EXCLUDE (decided_at) FROM {IDENTITY}")),
    )
    match(warehouse, now=NOW + timedelta(hours=2))
    after_full = (
        sorted(query(warehouse, f"SELECT {columns} FROM {CANDIDATES}")),
        sorted(query(warehouse, f"SELECT * EXCLUDE (decided_at) FROM {IDENTITY}")),
    )

    assert incremental.mode == "incremental" and incremental.scope == len(changed)
    assert after_incremental == after_full
    # And the mix did what it says: the moved and deleted ones left their clusters, the new ones joined.
    merged = merged_pairs(warehouse)
    assert all(not any(k in pair for pair in merged) for k in changed[:50])
    assert sum(1 for k in changed[50:] if any(k in pair for pair in merged)) == 35


def test_the_identity_asset_reports_the_decisions_draws_the_scores_and_checks_the_unresolved_share(
    warehouse: WarehouseResource, fleet_1k: Overlap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))
    fleet_1k.rows.write(warehouse)
    rows = MartRows()
    # One pair left near the threshold: same CPO, 60 m apart, the same street but another house number.
    planted = _pair(rows, 900, metres_north=60.0, address="Kerkstraat 14")
    rows.write(warehouse, "near")
    match(warehouse)

    strict = materialize(
        [identity], {"warehouse": warehouse}, run_config=op_config([identity], max_near_threshold_ratio=0.0)
    )
    lenient = materialize([identity], {"warehouse": warehouse})

    meta = metadata(strict, "quality/identity")
    truth = len(fleet_1k.truth)
    assert 0.95 * truth <= meta["same"] <= truth / 0.99  # what the precision/recall test allows
    assert decisions(warehouse)[frozenset(planted)] == ("review", "near_threshold")
    review = query(warehouse, f"SELECT count(*) FROM {CANDIDATES} WHERE decision = 'review'")[0][0]
    assert meta["near_threshold"] == meta["rule_near_threshold"] == review >= 1
    assert meta["duplicates_withheld"] == meta["physical_locations_merged"] == meta["same"]  # pairs of two
    assert meta["rule_different_cpo"] >= 1 and meta["pairs"] == sum(
        v for k, v in meta.items() if k.startswith("rule_")
    )
    png = Path(str(meta["plot"]))
    assert png.name == "identity_scores.png" and png.read_bytes().startswith(b"\x89PNG")
    [check] = strict.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("near_threshold", False)
    [check] = lenient.get_asset_check_evaluations()
    assert check.passed, check.metadata  # a few of ~100 pairs: within the default 5 %


def test_an_override_in_the_reference_file_reaches_the_next_incremental_pass(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator writes `identity:` entries in the reference file; the reference asset loads them
    and the next pass re-decides those pairs although no source changed them."""
    rows = MartRows()
    twin = _pair(rows, 1)
    rows.write(warehouse)
    match(warehouse)
    assert decisions(warehouse)[frozenset(twin)] == ("same", "score")
    document = yaml.safe_load(Path(default_file()).read_text())
    document["identity"] = [
        {"a": twin[1], "b": twin[0], "decision": "not_same", "note": "two poles, one address"}
    ]
    path = tmp_path / "reference.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setenv("EVPIPELINE_REFERENCE_FILE", str(path))

    materialize([reference_operator_data], {"warehouse": warehouse})
    report = match(warehouse, scope=[])  # an incremental pass with nothing changed in the sources

    assert report.mode == "incremental" and report.scope == 2  # the override's two locations
    assert decisions(warehouse)[frozenset(twin)] == ("not_same", "override")
    assert merged_pairs(warehouse) == set()
    assert query(warehouse, f"SELECT decision, note FROM {OVERRIDES}") == [
        ("not_same", "two poles, one address")
    ]
