"""Versions over days, as the daily asset gives them: publish from the state read, then record the versions
the publication gave (`versions.record`). An object's versionG changes exactly when its own content
does; an unchanged object keeps its version and its lastUpdated; no change, no new version."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from evpipeline.datex2 import versions
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.datex2.fleet import (
    PUBLISHED_AT,
    Fmt,
    Kind,
    Published,
    point_statuses,
    points,
    publish,
    reference_problems,
    sites,
    stations,
    table,
)
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart

Versions = dict[tuple[str, str], tuple[str, str | None]]
JSON: tuple[tuple[Kind, Fmt], ...] = (
    ("static", "json"),
    ("status", "json"),
)  # what these tests read (XML says the same: test_encodings)


def day(warehouse: WarehouseResource, n: int) -> Published:
    """Day n's delivery: the documents, then the versions they gave recorded. Whatever changed, the
    status publication references the static one's objects at their versions."""
    published = publish(warehouse, published_at=PUBLISHED_AT + timedelta(days=n), documents_=JSON)
    assert reference_problems(published.json("static"), published.json("status")) == []
    with warehouse.writer("datex2", f"day-{n}") as writer:
        versions.record(writer, published.changes)
    return published


def of(published: Published) -> Versions:
    """(kind, id) -> (versionG, lastUpdated) of every versioned object of the static document."""
    static = published.json("static")
    found: Versions = {("table", table(static)["idG"]): (table(static)["versionG"], None)}
    for site in sites(static):
        found[("site", site["idG"])] = (site["versionG"], site["lastUpdated"])
        hours = site["operatingHours"].get("afacOperatingHoursSpecification")
        if hours:
            found[("hours", hours["idG"])] = (hours["versionG"], hours["lastUpdated"])
        for role in ("operator", "helpdesk"):
            defined = site[role].get("afacReferenceableOrganisation")
            if defined:
                found[(role, defined["idG"])] = (defined["versionG"], None)
    for _, station in stations(static):
        found[("station", station["idG"])] = (station["versionG"], station["lastUpdated"])
    for _, _, point in points(static):
        found[("point", point["idG"])] = (point["versionG"], point["lastUpdated"])
    return found


def changed(before: Versions, after: Versions) -> dict[tuple[str, str], tuple[Any, Any]]:
    return {
        key: (before.get(key), after.get(key))
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key)
    }


def ledger(warehouse: WarehouseResource) -> dict[tuple[str, str], int]:
    with warehouse.get_connection() as con:
        return {
            (k, i): v
            for k, i, v in con.execute(f"SELECT kind, object_id, version FROM {versions.LEDGER}").fetchall()
        }


def merge(
    warehouse: WarehouseResource,
    *,
    locations: list[dict[str, Any]] = (),  # type: ignore[assignment]  # read only: an empty tuple is an empty list here
    evses: list[dict[str, Any]] = (),  # type: ignore[assignment]
    connectors: list[dict[str, Any]] = (),  # type: ignore[assignment]
    operators: list[dict[str, Any]] = (),  # type: ignore[assignment]
    run: str = "change",
) -> None:
    """Changed rows through the shared merge (the pipeline's way)."""
    m = MartRows(
        locations=list(locations), evses=list(evses), connectors=list(connectors), operators=list(operators)
    )
    m.write(warehouse, run)


def at(row: dict[str, Any], minutes: int, **change: Any) -> dict[str, Any]:
    return {**row, **change, "last_updated": later(minutes), "source_last_updated": later(minutes)}


@pytest.fixture
def first(warehouse: WarehouseResource) -> Published:
    standard_mart().write(warehouse)
    return day(warehouse, 1)


def test_the_first_day_gives_version_1_and_records_every_object(
    warehouse: WarehouseResource, first: Published
) -> None:
    got = of(first)
    assert {v for v, _ in got.values()} == {"1"}
    assert len(got) == 1 + 8 + 14 + 14 + 2  # table, sites, stations, points, operator and helpdesk
    assert ledger(warehouse) == dict.fromkeys(got, 1)
    assert first.changes.num_rows == len(got)


def test_no_change_no_new_version(warehouse: WarehouseResource, first: Published) -> None:
    second = day(warehouse, 2)
    assert of(second) == of(first)
    assert second.changes.num_rows == 0
    # The documents differ in their publicationTime only.
    for key, document in second.documents.items():
        assert document.replace(b"2026-11-04T03:00:00Z", b"2026-11-03T03:00:00Z") == first.documents[key], key


def test_a_reader_computes_what_a_writer_records(warehouse: WarehouseResource, first: Published) -> None:
    """Before anything is recorded, publishing twice gives the same versions: a reader (the pull server)
    and a rebuild agree with the writer that records them."""
    merge(warehouse, locations=[at(standard_mart().locations[3], 120, name="Laadplein Vier")])
    read_once, read_again = publish(warehouse, documents_=JSON), publish(warehouse, documents_=JSON)
    assert of(read_once) == of(read_again)
    assert read_once.documents == read_again.documents
    assert ledger(warehouse)[("site", "NL:ALF:LOC-0004")] == 1  # readers never write


def test_a_renamed_location_bumps_its_site_only(warehouse: WarehouseResource, first: Published) -> None:
    merge(warehouse, locations=[at(standard_mart().locations[3], 120, name="Laadplein Vier")])
    second = day(warehouse, 2)
    assert changed(of(first), of(second)) == {
        ("site", "NL:ALF:LOC-0004"): (("1", "2026-11-01T08:00:00Z"), ("2", "2026-11-01T10:00:00Z"))
    }
    assert ledger(warehouse)[("site", "NL:ALF:LOC-0004")] == 2
    # The status publication names the site's new version; its stations and points keep theirs.
    references = {
        (s["reference"]["idG"], s["reference"]["versionG"])
        for s, _, _ in point_statuses(second.json("status"))
    }
    assert ("NL:ALF:LOC-0004", "2") in references and ("NL:ALF:LOC-0001", "1") in references
    third = day(warehouse, 3)
    assert of(third) == of(second) and third.changes.num_rows == 0


def test_a_changed_connector_bumps_its_charging_point_only(
    warehouse: WarehouseResource, first: Published
) -> None:
    mart = standard_mart()
    connector = next(c for c in mart.connectors if (c["evse_uid"], c["connector_id"]) == ("LOC-0002-E1", "2"))
    # 22 kW -> 11 kW on the second connector: the point's availableChargingPower changes, its maximum
    # (and so its station's totalMaximumPower) does not.
    merge(warehouse, connectors=[at(connector, 130, max_amperage=16, max_electric_power=11000)])
    second = day(warehouse, 2)
    assert changed(of(first), of(second)) == {
        ("point", "NL:ALF:LOC-0002:LOC-0002-E1"): (
            ("1", "2026-11-01T08:00:00Z"),
            ("2", "2026-11-01T10:10:00Z"),
        )
    }
    (point,) = [p for _, _, p in points(second.json("static")) if p["idG"] == "NL:ALF:LOC-0002:LOC-0002-E1"]
    assert point["availableChargingPower"] == [22000.0, 11000.0]


def test_a_status_change_bumps_nothing_and_lastupdated_stays(
    warehouse: WarehouseResource, first: Published
) -> None:
    evse = standard_mart().evses[0]  # LOC-0001-E1
    merge(warehouse, evses=[at(evse, 140, status="OUTOFORDER")])
    second = day(warehouse, 2)
    assert of(second) == of(
        first
    )  # versions and lastUpdated: the EVSE's newer last_updated is not new content
    (status,) = [
        p
        for _, _, p in point_statuses(second.json("status"))
        if p["reference"]["idG"] == "NL:ALF:LOC-0001:LOC-0001-E1"
    ]
    assert (status["status"], status["lastUpdated"], status["reference"]["versionG"]) == (
        {"value": "outOfOrder"},
        "2026-11-01T10:20:00Z",
        "1",
    )


def test_a_moved_address_bumps_the_site_and_its_stations(
    warehouse: WarehouseResource, first: Published
) -> None:
    """A station repeats its site's facility location (address, time zone, NUTS region): a new address is
    new content of both."""
    merge(warehouse, locations=[at(standard_mart().locations[0], 150, address="Dorpsstraat 9")])
    second = day(warehouse, 2)
    assert changed(of(first), of(second)) == {
        ("site", "NL:ALF:LOC-0001"): (("1", "2026-11-01T08:00:00Z"), ("2", "2026-11-01T10:30:00Z")),
        ("station", "NL:ALF:LOC-0001:station:LOC-0001-E1"): (
            ("1", "2026-11-01T08:00:00Z"),
            ("2", "2026-11-01T10:30:00Z"),
        ),
        ("station", "NL:ALF:LOC-0001:station:LOC-0001-E2"): (
            ("1", "2026-11-01T08:00:00Z"),
            ("2", "2026-11-01T10:30:00Z"),
        ),
    }


def test_organisations_and_opening_hours_are_versioned_on_their_own(
    warehouse: WarehouseResource, first: Published
) -> None:
    mart = standard_mart()
    merge(
        warehouse,
        operators=[{**mart.operators[0], "legal_name": "Allego Nederland B.V.", "last_updated": later(160)}],
        locations=[
            at(
                mart.locations[1],
                161,
                opening_times='{"twentyfourseven": false, "regular_hours": '
                '[{"weekday": 1, "period_begin": "08:00", "period_end": "18:00"}]}',
            )
        ],
    )
    second = day(warehouse, 2)
    after = of(second)
    # The hours specification is a new object (the site had none: open all hours), so the site changed too.
    assert changed(of(first), after) == {
        ("operator", "NL:ALF:operator"): (("1", None), ("2", None)),
        ("site", "NL:ALF:LOC-0002"): (("1", "2026-11-01T08:00:00Z"), ("2", "2026-11-01T10:41:00Z")),
        ("hours", "NL:ALF:LOC-0002:hours"): (None, ("1", "2026-11-01T10:41:00Z")),
    }
    merge(
        warehouse,
        locations=[
            at(
                mart.locations[1],
                170,
                opening_times='{"twentyfourseven": false, "regular_hours": '
                '[{"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}]}',
            )
        ],
        run="hours",
    )
    third = day(warehouse, 3)
    assert changed(after, of(third)) == {
        ("hours", "NL:ALF:LOC-0002:hours"): (("1", "2026-11-01T10:41:00Z"), ("2", "2026-11-01T10:50:00Z"))
    }


def test_the_table_version_follows_its_set_of_sites(warehouse: WarehouseResource, first: Published) -> None:
    m = MartRows()
    m.connector(m.evse(m.location(7, updated=later(180)), 1, updated=later(180)), 1, updated=later(180))
    m.write(warehouse, "new-site")
    second = day(warehouse, 2)
    assert changed(of(first), of(second)) == {
        ("table", "NL:evpipeline-test:table:NLD"): (("1", None), ("2", None)),
        ("site", "NL:ALF:LOC-0007"): (None, ("1", "2026-11-01T11:00:00Z")),
        ("station", "NL:ALF:LOC-0007:station:LOC-0007-E1"): (None, ("1", "2026-11-01T11:00:00Z")),
        ("point", "NL:ALF:LOC-0007:LOC-0007-E1"): (None, ("1", "2026-11-01T11:00:00Z")),
    }
    (reference,) = second.json("status")["messageContainer"]["payload"][0][
        "aegiEnergyInfrastructureStatusPublication"
    ]["tableReference"]
    assert reference["versionG"] == "2"


def test_recording_only_moves_forward(warehouse: WarehouseResource, first: Published) -> None:
    """A publication that read an older state (recorded late) never takes a version back."""
    merge(warehouse, locations=[at(standard_mart().locations[3], 120, name="Laadplein Vier")])
    newer = day(warehouse, 2)
    with warehouse.writer("datex2", "late") as writer:
        assert versions.record(writer, first.changes) == 0
    assert ledger(warehouse)[("site", "NL:ALF:LOC-0004")] == 2
    assert of(publish(warehouse, documents_=JSON)) == of(newer)
