"""Installation country from CountryId via /api/constants, the time zone as the fallback (real HTTP)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest

from evpipeline.resources import PushInboxResource
from evpipeline.simulators.zaptec import COUNTRY_IDS, ZaptecSimulator
from evpipeline.sources.zaptec.client import ZaptecResource, parse_country_ids
from evpipeline.sources.zaptec.normalize import installations
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import metadata, query
from evpipeline_tests.sources.zaptec.conftest import resource_for, sync_static


def stored(warehouse: WarehouseResource) -> dict[str, tuple[str | None, str | None]]:
    rows = query(warehouse, "SELECT installation_id, country, country_source FROM zaptec.installations")
    return {iid: (country, source) for iid, country, source in rows}


def test_a_dutch_site_on_brussels_time_is_in_the_netherlands(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    dutch = zaptec_sim.add_installation("NLD", time_zone="Europe/Brussels")
    assert zaptec_sim.installations[dutch].body["TimeZoneIanaName"] == "Europe/Brussels"
    result = sync_static(zaptec, warehouse, inbox)
    countries = stored(warehouse)
    assert countries[dutch] == ("NLD", "country_id")  # the time zone would have said BEL
    expected = {iid: (i.country, "country_id") for iid, i in zaptec_sim.installations.items()}
    assert countries == expected
    assert len(zaptec_sim.requests_to("/api/constants")) == 1  # one request per run
    assert "country_source" in metadata(result, "zaptec/installations")["preview"]


def test_an_unknown_country_id_falls_back_to_the_time_zone(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    unlisted = zaptec_sim.add_installation("NLD", country_id=str(uuid.uuid4()))
    nowhere = zaptec_sim.add_installation("NOR", country_id=str(uuid.uuid4()), time_zone="Asia/Tokyo")
    sync_static(zaptec, warehouse, inbox)
    countries = stored(warehouse)
    assert countries[unlisted] == ("NLD", "time_zone")
    assert countries[nowhere] == (None, None)  # neither known: NULL, not a guess
    others = {source for iid, (_, source) in countries.items() if iid not in (unlisted, nowhere)}
    assert others == {"country_id"}


def test_constants_failing_still_syncs_installations_with_the_fallback(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dutch = zaptec_sim.add_installation("NLD", time_zone="Europe/Brussels")
    zaptec_sim.faults.inject("500", count=zaptec.max_attempts, path="/api/constants")  # every retry fails too
    instance = dg.DagsterInstance.ephemeral()
    with caplog.at_level(logging.WARNING):
        result = sync_static(zaptec, warehouse, inbox, instance=instance)
    assert result.success
    assert [r.status for r in zaptec_sim.requests_to("/api/constants")] == [500] * zaptec.max_attempts
    assert any("/api/constants failed" in message and "time zone" in message for message in caplog.messages)
    # ... and in the run's own log, where whoever looks at the failed-over run will see it.
    run_log = [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING]
    assert any("/api/constants failed" in message for message in run_log)
    countries = stored(warehouse)
    assert len(countries) == len(zaptec_sim.installations)
    assert countries[dutch] == ("BEL", "time_zone")  # the fallback's known weakness, recorded as such
    assert {v for iid, v in countries.items() if iid != dutch} == {("NOR", "time_zone"), ("NLD", "time_zone")}
    # The next run resolves CountryId again: the fallback is not kept.
    sync_static(zaptec, warehouse, inbox)
    assert stored(warehouse)[dutch] == ("NLD", "country_id")


def test_pinned_country_ids_win_and_survive_a_constants_failure(zaptec_sim: ZaptecSimulator) -> None:
    unlisted = str(uuid.uuid4()).upper()  # GUID case does not matter
    pins = f"{unlisted}=bel, {COUNTRY_IDS['NLD']}=DEU"
    client = resource_for(zaptec_sim, country_ids=pins).client()
    countries = client.countries()
    assert countries[unlisted.lower()] == "BEL" and countries[COUNTRY_IDS["NLD"]] == "DEU"
    assert countries[COUNTRY_IDS["NOR"]] == "NOR"
    assert client.countries() == countries and len(zaptec_sim.requests_to("/api/constants")) == 1  # cached

    zaptec_sim.faults.inject("500", count=5, path="/api/constants")
    failed = resource_for(zaptec_sim, country_ids=pins, max_attempts=5).client().countries()
    assert failed == {unlisted.lower(): "BEL", COUNTRY_IDS["NLD"]: "DEU"}


def test_pinned_ids_come_from_the_environment(
    zaptec_sim: ZaptecSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZAPTEC_COUNTRY_IDS", "0b0e9d3c-1a2b-4c5d-8e9f-0a1b2c3d4e5f=SWE")
    assert resource_for(zaptec_sim).client().countries()["0b0e9d3c-1a2b-4c5d-8e9f-0a1b2c3d4e5f"] == "SWE"
    monkeypatch.setenv("ZAPTEC_COUNTRY_IDS", "0b0e9d3c=SE")  # alpha-2 is a configuration error, not a guess
    with pytest.raises(ValueError, match="ZAPTEC_COUNTRY_IDS"):
        resource_for(zaptec_sim).client()
    assert parse_country_ids("") == {}


def test_constants_are_read_without_a_token_and_truncated_answers_retried(
    zaptec_sim: ZaptecSimulator,
) -> None:
    zaptec_sim.faults.inject("truncate", count=1, path="/api/constants")
    client = resource_for(zaptec_sim).client()
    assert client.countries()[COUNTRY_IDS["NLD"]] == "NLD"
    assert [r.status for r in zaptec_sim.requests_to("/api/constants")] == [200, 200]
    assert not zaptec_sim.requests_to("/oauth/token")  # anonymous: no login needed for it


def test_normalize_prefers_the_country_id_then_the_time_zone() -> None:
    nld, unknown = "7A9E3C21-4D5F-4B6A-8C7D-1E2F3A4B5C6D", "11111111-2222-4333-8444-555555555555"
    records: list[dict[str, Any]] = [
        {"Id": "i1", "CountryId": nld, "TimeZoneIanaName": "Europe/Brussels"},
        {"Id": "i2", "CountryId": unknown, "TimeZoneIanaName": "Europe/Oslo"},
        {"Id": "i3", "CountryId": unknown, "TimeZoneIanaName": "Asia/Tokyo"},
        {"Id": "i4", "TimeZoneIanaName": "Europe/Amsterdam"},
        {"Id": "i5", "CountryId": None},
    ]
    frame = installations(records, datetime(2026, 1, 1, tzinfo=UTC), {nld.lower(): "NLD"}).frame
    assert list(frame["country"]) == ["NLD", "NOR", None, "NLD", None]
    assert list(frame["country_source"]) == ["country_id", "time_zone", None, "time_zone", None]
    assert list(frame["country_id"]) == [nld, unknown, unknown, None, None]  # Zaptec's id kept as sent
    # Without a countries map (e.g. /api/constants failed), the time zone decides.
    frame = installations(records, datetime(2026, 1, 1, tzinfo=UTC)).frame
    assert list(frame["country"]) == ["BEL", "NOR", None, "NLD", None]
    assert set(frame["country_source"].dropna()) == {"time_zone"}
