"""Operator reference data: validated whole, fills what sources lack, never beats a source value unless
told to, carries its lineage, and a bad file changes nothing downstream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evpipeline.model.assets import reference_operator_data
from evpipeline.model.build import build_mart
from evpipeline.model.reference import (
    ReferenceError,
    apply_rules,
    assigned_party,
    default_file,
    load_reference,
)
from evpipeline.ndw.export import build_export
from evpipeline.ocpi import definition as ocpi
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import materialize, query
from evpipeline_tests.sources.greenflux.conftest import resource as greenflux_resource
from evpipeline_tests.sources.greenflux.conftest import sync as greenflux_sync
from evpipeline_tests.sources.zaptec.conftest import resource_for, simulator, sync_everything
from evpipeline_tests.typed import running


def default() -> dict[str, Any]:
    return yaml.safe_load(Path(default_file()).read_text())


def write(tmp_path: Path, document: dict[str, Any] | str, name: str = "reference.yaml") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def build(warehouse: WarehouseResource, **kwargs: Any) -> Any:
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="b", **kwargs)


def load(warehouse: WarehouseResource, path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Any:
    monkeypatch.setenv("EVPIPELINE_REFERENCE_FILE", str(path))
    return materialize([reference_operator_data], {"warehouse": warehouse}, **kwargs)


def test_the_shipped_file_is_valid_ocpi() -> None:
    data = load_reference()
    assert data.counts == {
        "rules": 5,
        "rule_fields": 14,
        "tariffs": 3,
        "parties": 0,
        "operators": 8,
        "identity_overrides": 0,
    }
    for row in data.tariffs.to_dict("records"):
        assert row["currency"] in ("EUR", "NOK", "NZD")


def _broken(mutate: Any) -> dict[str, Any]:
    document = default()
    mutate(document)
    return document


BAD_FILES = [
    (
        lambda d: d["rules"][0]["opening_times"].update(twentyfourseven=False),
        "rules[0] (id 'zaptec-nl-public'): opening_times: regular_hours must contain at least one entry",
    ),
    (
        lambda d: d["rules"][0].update(parking_restrictions=["EV_ONLY", "VIP"]),
        "rules[0] (id 'zaptec-nl-public'): parking_restrictions[1]:",
    ),
    (
        lambda d: d["rules"][1]["match"].update(country_code=False),  # what YAML makes of an unquoted NO
        'match.country_code must be a string (quote values such as "NO")',
    ),
    (
        lambda d: d["rules"][0].update(colour="green"),
        "rules[0] (id 'zaptec-nl-public'): unknown key(s) ['colour']",
    ),
    (
        lambda d: d["rules"][0].update(tariff_ids=["NOPE"]),
        "tariff_ids ['NOPE'] are not tariffs of NL/ZPT in this file",
    ),
    (
        lambda d: d["rules"][2].update(tariff_ids=["NZ-DC-STANDARD"]),
        "its match must name country_code and party_id",
    ),
    (
        lambda d: d["rules"].append({**d["rules"][0]}),
        "id 'zaptec-nl-public' is already used by an earlier rule",
    ),
    (lambda d: d["tariffs"][0].pop("currency"), "tariffs[0] (id 'ZPT-NL-AC'): currency"),
    (lambda d: d["tariffs"][0].update(elements=[]), "tariffs[0] (id 'ZPT-NL-AC'): elements"),
    (
        lambda d: d.update(identity=[{"a": "NL:ZPT:1", "b": "NL-ZPT-2", "decision": "same"}]),
        "identity[0]: `b` must be a location as country_code:party_id:location_id",
    ),
    (
        lambda d: d.update(identity=[{"a": "NL:ZPT:1", "b": "NL:ZPT:2", "decision": "maybe"}]),
        "identity[0]: `decision` must be same or not_same, not 'maybe'",
    ),
    (
        lambda d: d.update(identity=[{"a": "NL:ZPT:1", "b": "NL:ZPT:1", "decision": "same"}]),
        "identity[0]: `a` and `b` are the same location",
    ),
    (
        lambda d: d.update(
            identity=[
                {"a": "NL:ZPT:1", "b": "NL:GFX:2", "decision": "same"},
                {"a": "NL:GFX:2", "b": "NL:ZPT:1", "decision": "not_same"},
            ]
        ),
        "identity[0]: this pair is already listed",
    ),
]


@pytest.mark.parametrize("mutate, message", BAD_FILES)
def test_a_bad_file_is_refused_with_one_line_naming_the_entry(
    tmp_path: Path, mutate: Any, message: str
) -> None:
    path = write(tmp_path, _broken(mutate))
    with pytest.raises(ReferenceError) as caught:
        load_reference(path)
    text = str(caught.value)
    assert message in text and "\n" not in text and text.startswith(str(path))


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    match: {source: zaptec\n")
    with pytest.raises(ReferenceError, match=r"line \d+: not valid YAML"):
        load_reference(path)


@pytest.mark.slow
def test_reference_fills_what_zaptec_lacks_and_makes_it_exportable(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(simulator(clock, chargers=24)) as sim:
        sync_everything(resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / "inbox")))
    build(warehouse)
    with warehouse.get_connection() as con:
        before = build_export(con)
    assert not any(r["party_id"] == "ZPT" for r in map(json.loads, before.locations))  # AFIR fields missing
    load(warehouse, Path(default_file()), monkeypatch)
    result = build(warehouse)
    assert result.mode == "full" and result.reason == "operator reference rules changed"
    rows = query(
        warehouse,
        """SELECT l.opening_times, l.energy_mix, l.reference_fields, e.parking_restrictions,
                                      e.reference_fields, c.tariff_ids, c.reference_fields
                               FROM mart.locations l JOIN mart.evses e USING (country_code, party_id,
                                   location_id)
                               JOIN mart.connectors c USING (country_code, party_id, location_id, evse_uid)
                               WHERE l.source = 'zaptec' AND l.country_code = 'NL'""",
    )
    assert rows
    for hours, mix, loc_lineage, parking, evse_lineage, tariffs, conn_lineage in rows:
        assert (
            json.loads(hours) == {"twentyfourseven": True} and json.loads(mix)["supplier_name"] == "Vandebron"
        )
        assert json.loads(parking) == ["EV_ONLY"] and json.loads(tariffs) == ["ZPT-NL-AC"]
        # Lineage: which fields the operator supplied, and by which rule or operator entry.
        assert json.loads(loc_lineage) == {
            "opening_times": "zaptec-nl-public",
            "energy_mix": "zaptec-nl-public",
            "charging_when_closed": "zaptec-nl-public",
            "operator": "operators/NL/ZPT",
            "nuts_code": "operators/NL/ZPT",
        }
        assert json.loads(evse_lineage) == {
            "parking_restrictions": "zaptec-nl-public",
            "capabilities": "zaptec-nl-public",
            "evse_id": "operators/NL/ZPT",
        }
        assert json.loads(conn_lineage) == {"tariff_ids": "zaptec-nl-public"}
    with warehouse.get_connection() as con:
        after = build_export(con)
    exported = [json.loads(b) for b in after.locations if json.loads(b)["party_id"] == "ZPT"]
    assert exported and all(ocpi.validate_location(obj) == [] for obj in exported)
    assert ("NL", "ZPT", "ZPT-NL-AC") in after.tariff_keys


@pytest.mark.slow
def test_a_source_value_wins_unless_the_rule_overrides_it(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline_tests.sources.greenflux.conftest import TOKEN

    with running(GreenFluxSimulator(scale=0.1, clock=clock, token=TOKEN, seed=3)) as sim:
        greenflux_sync(greenflux_resource(sim), warehouse)
    build(warehouse)
    [(cc, party, location, source_hours)] = query(
        warehouse,
        """SELECT country_code, party_id, location_id, opening_times
        FROM mart.locations WHERE source = 'greenflux' AND opening_times IS NOT NULL ORDER BY location_id
            LIMIT 1""",
    )
    office = {
        "twentyfourseven": False,
        "regular_hours": [
            {"weekday": d, "period_begin": "08:00", "period_end": "18:00"} for d in range(1, 6)
        ],
    }
    document = {
        "rules": [
            {
                "id": "party-hours",
                "match": {"source": "greenflux", "country_code": cc, "party_id": party},
                "opening_times": office,
            },
        ]
    }
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)
    hours, lineage = query(
        warehouse,
        "SELECT opening_times, reference_fields FROM mart.locations WHERE location_id = ?",
        [location],
    )[0]
    assert json.loads(hours) == json.loads(source_hours) and lineage is None  # the source said it: it stands

    nights = {
        "twentyfourseven": False,
        "regular_hours": [{"weekday": 1, "period_begin": "18:00", "period_end": "23:00"}],
    }
    document["rules"].append(
        {
            "id": "this-location",
            "match": {"location_id": location},
            "opening_times": nights,
            "override": ["opening_times"],
        }
    )
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)
    hours, lineage = query(
        warehouse,
        "SELECT opening_times, reference_fields FROM mart.locations WHERE location_id = ?",
        [location],
    )[0]
    assert json.loads(hours) == nights and json.loads(lineage) == {
        "opening_times": "this-location"
    }  # the most specific rule


@pytest.mark.slow
def test_a_bad_file_changes_nothing_downstream(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(simulator(clock, chargers=24)) as sim:
        sync_everything(resource_for(sim), warehouse, PushInboxResource(directory=str(tmp_path / "inbox")))
    load(warehouse, Path(default_file()), monkeypatch)
    build(warehouse)
    snapshot = "SELECT * EXCLUDE (_ingested_at, _observed_at, _run_id) FROM mart.tariffs ORDER BY ALL"
    rules_before, tariffs_before = (
        query(warehouse, "SELECT count(*) FROM reference.rules")[0],
        query(warehouse, snapshot),
    )

    broken = _broken(lambda d: d["tariffs"][0].update(currency="EURO"))
    result = load(warehouse, write(tmp_path, broken), monkeypatch, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert "tariffs[0] (id 'ZPT-NL-AC'): currency" in description and "\n" not in description
    assert query(warehouse, "SELECT count(*) FROM reference.rules")[0] == rules_before
    assert build(warehouse).mode == "idle"  # nothing changed, so nothing for the lane to push
    assert query(warehouse, snapshot) == tariffs_before


@pytest.mark.slow
def test_a_feed_without_cpo_id_reaches_the_mart_through_an_assigned_party(
    clock: SimClock, warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline_tests.sources.greenflux.conftest import TOKEN

    with running(GreenFluxSimulator(scale=0.05, clock=clock, token=TOKEN, seed=3)) as sim:
        bare = sim.locations()[0]["id"]
        other = sim.locations()[1]["id"]
        for location in (bare, other):  # shaped like OCPI 2.1.1: no cpo_id at all
            sim.edit_location(location, cpo_id=None)
        greenflux_sync(greenflux_resource(sim), warehouse)
    build(warehouse, full=True)
    assert query(
        warehouse, "SELECT count(*) FROM mart.locations WHERE location_id IN (?, ?)", [bare, other]
    ) == [(0,)]
    [(field, rows)] = query(
        warehouse, "SELECT field, rows FROM mart.unmapped_values WHERE field LIKE 'location.cpo_id%'"
    )
    assert rows == 2 and "none assigned" in field  # reported, not guessed

    document = default()
    document["parties"] = [
        {
            "id": "this-one",
            "match": {"source": "greenflux", "location_id": bare},
            "country_code": "NL",
            "party_id": "GFX",
        }
    ]
    load(warehouse, write(tmp_path, document), monkeypatch)
    build(warehouse)  # the assignment changed: a full build
    assert query(
        warehouse, "SELECT country_code, party_id FROM mart.locations WHERE location_id = ?", [bare]
    ) == [("NL", "GFX")]
    assert (
        query(
            warehouse, "SELECT count(*) FROM mart.evses WHERE location_id = ? AND party_id = 'GFX'", [bare]
        )[0][0]
        > 0
    )
    assert query(warehouse, "SELECT rows FROM mart.unmapped_values WHERE field LIKE 'location.cpo_id%'") == [
        (1,)
    ]  # what remains


def test_party_assignments_are_validated(tmp_path: Path) -> None:
    document = default()
    document["parties"] = [
        {"id": "p", "match": {"source": "greenflux"}, "country_code": "nl", "party_id": "GFX"}
    ]
    with pytest.raises(
        ReferenceError, match=r"parties\[0\] \(id 'p'\): country_code must be ISO 3166 alpha-2"
    ):
        load_reference(write(tmp_path, document))


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the rule choice is SQL above the backend
@pytest.mark.parametrize("specific_first", [True, False], ids=["specific-first", "specific-last"])
def test_the_most_specific_rule_wins_whatever_its_place_in_the_file(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specific_first: bool
) -> None:
    # Three match fields (source 1 + country 2 + party 4 = 7) are still less specific than a location (8).
    party = {
        "id": "party-wide",
        "match": {"source": "greenflux", "country_code": "NL", "party_id": "GFX"},
        "time_zone": "Europe/Brussels",
    }
    location = {"id": "this-location", "match": {"location_id": "L1"}, "time_zone": "Europe/Amsterdam"}
    load(
        warehouse,
        write(tmp_path, {"rules": [location, party] if specific_first else [party, location]}),
        monkeypatch,
    )
    rows = """SELECT * FROM (VALUES ('greenflux', 'NL', 'GFX', 'L1', NULL::VARCHAR), ('greenflux', 'NL',
                  'GFX', 'L2', NULL::VARCHAR))
              AS t(source, country_code, party_id, location_id, time_zone)"""
    applied = apply_rules(
        "locations", rows, ["source", "country_code", "party_id", "location_id", "time_zone"]
    )
    with warehouse.get_connection() as con:
        result = con.execute(
            f"SELECT location_id, time_zone, reference_fields FROM ({applied}) ORDER BY 1"
        ).fetchall()
    assert [(loc, zone, json.loads(lineage)) for loc, zone, lineage in result] == [
        (
            "L1",
            "Europe/Amsterdam",
            {"time_zone": "this-location"},
        ),  # both match: the location rule, listed first or last
        ("L2", "Europe/Brussels", {"time_zone": "party-wide"}),  # only the party rule matches
    ]


def party(rule_id: str, party_id: str, **match: str) -> dict[str, Any]:
    """A `parties` entry for GreenFlux locations matching `match` (location_id, operator)."""
    return {
        "id": rule_id,
        "match": {"source": "greenflux", **match},
        "country_code": "NL",
        "party_id": party_id,
    }


def assigned(
    warehouse: WarehouseResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    parties: list[dict[str, Any]],
) -> list[tuple[str, str, str]]:
    """(location_id, party_id, rule_id) that `assigned_party` gives three GreenFlux locations under
    `parties`."""
    load(warehouse, write(tmp_path, {**default(), "parties": parties}), monkeypatch)
    with warehouse.get_connection() as con:
        return con.execute(f"""
            SELECT t.location_id, p.party_id, p.rule_id
            FROM (VALUES ('L1', 'Gemeente Utrecht'), ('L2', 'Gemeente Utrecht'), ('L3', 'Elders'))
                 AS t(location_id, operator),
                 LATERAL {assigned_party("greenflux", "t.location_id", "t.operator")} AS p
            ORDER BY 1""").fetchall()


@pytest.mark.parametrize("specific_first", [True, False], ids=["specific-first", "specific-last"])
def test_the_most_specific_party_assignment_wins_whatever_its_place_in_the_file(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specific_first: bool
) -> None:
    # A location_id (2) is narrower than an operator name (1), which is narrower than the source alone (0).
    feed = party("whole-feed", "FED")
    operator = party("by-operator", "UTR", operator="Gemeente Utrecht")
    location = party("one-location", "LOC", location_id="L1")
    ordered = [location, operator, feed] if specific_first else [feed, operator, location]
    assert assigned(warehouse, tmp_path, monkeypatch, ordered) == [
        ("L1", "LOC", "one-location"),
        ("L2", "UTR", "by-operator"),
        ("L3", "FED", "whole-feed"),
    ]


def test_among_equally_specific_party_assignments_the_later_one_wins(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parties = [party("earlier", "OLD", location_id="L1"), party("later", "NEW", location_id="L1")]
    assert assigned(warehouse, tmp_path, monkeypatch, parties)[0] == ("L1", "NEW", "later")
