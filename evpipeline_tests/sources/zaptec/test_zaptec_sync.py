"""Zaptec static refresh and state polling through Dagster, against the simulator over real HTTP."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

import pandas as pd
import pytest

from evpipeline.http import AuthError
from evpipeline.resources import PushInboxResource
from evpipeline.simulators.toolkit import SimClock
from evpipeline.simulators.zaptec import LARGE_STATE, PULSE, ZaptecSimulator
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.sources.zaptec.normalize import OPERATION_MODES
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import metadata, query, scalar
from evpipeline_tests.sources.zaptec.conftest import (
    resource_for,
    simulator,
    sync_everything,
    sync_states,
    sync_static,
)
from evpipeline_tests.typed import running, step_error


@pytest.fixture
def warehouse(any_warehouse: WarehouseResource) -> WarehouseResource:
    """This sync suite runs on both backends: a DuckDB file and a DuckLake on PostgreSQL."""
    return any_warehouse


def sim_values(sim: ZaptecSimulator) -> dict[tuple[str, int], str | None]:
    """Every (charger, StateId) -> ValueAsString the simulator's /state answers would carry."""
    return {
        (cid, sid): value
        for cid, c in sim.chargers.items()
        for sid, (value, _) in c.states.items()
        if sid != LARGE_STATE
    }


def warehouse_values(warehouse: WarehouseResource) -> dict[tuple[str, int], str | None]:
    return {
        (c, s): v
        for c, s, v in query(
            warehouse, "SELECT charger_id, state_id, value_as_string FROM zaptec.charger_states"
        )
    }


def warehouse_chargers(warehouse: WarehouseResource) -> list[str]:
    return [
        r[0]
        for r in query(warehouse, "SELECT charger_id FROM zaptec.chargers WHERE NOT is_deleted ORDER BY 1")
    ]


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_paging_uses_the_minimum_number_of_requests(
    clock: SimClock, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    with running(simulator(clock, chargers=330)) as sim:
        zaptec = resource_for(sim)
        result = sync_static(zaptec, warehouse, inbox)
        installations, chargers = len(sim.installations), len(sim.chargers)
        charger_pages = [r.query for r in sim.requests_to("/api/chargers")]
        installation_pages = [
            r.query for r in sim.requests_to("/api/installation") if r.path == "/api/installation"
        ]
    assert installations > 100 and chargers == 330  # both lists span several pages
    assert [(q["PageIndex"], q["PageSize"]) for q in charger_pages] == [([str(i)], ["100"]) for i in range(4)]
    assert [q["PageIndex"] for q in installation_pages] == [
        [str(i)] for i in range(math.ceil(installations / 100))
    ]
    assert metadata(result, "zaptec/chargers")["pages"] == 4
    assert scalar(warehouse, "SELECT count(*) FROM zaptec.chargers") == 330
    assert scalar(warehouse, "SELECT count(*) FROM zaptec.installations") == installations
    # One hierarchy request per installation; circuits of every installation we may see.
    visible = [i for i in sim.installations.values() if i.body["CurrentUserRoles"] & ~1]
    assert metadata(result, "zaptec/circuits")["hierarchies"] == len(visible)
    assert scalar(warehouse, "SELECT count(*) FROM zaptec.circuits") == sum(len(i.circuits) for i in visible)


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_hierarchy_204_is_skipped_not_failed(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    hidden = [iid for iid, i in zaptec_sim.installations.items() if i.public][0]
    zaptec_sim.installations[hidden].body["CurrentUserRoles"] = 1  # User only: /hierarchy answers 204
    result = sync_static(zaptec, warehouse, inbox)
    assert result.success
    assert [r.status for r in zaptec_sim.requests_to(f"/api/installation/{hidden}/hierarchy")] == [204]
    meta = metadata(result, "zaptec/circuits")
    assert meta["no_access"] >= 1 and hidden in meta["no_access_ids"]
    assert scalar(warehouse, "SELECT count(*) FROM zaptec.circuits WHERE installation_id = ?", [hidden]) == 0
    # Its chargers still come from the charger list, with their circuit ids.
    expected = len(zaptec_sim.installations[hidden].charger_ids)
    assert (
        scalar(warehouse, "SELECT count(circuit_id) FROM zaptec.chargers WHERE installation_id = ?", [hidden])
        == expected
    )


def test_403_for_one_installation_or_charger_skips_only_that_one(
    zaptec: ZaptecResource, zaptec_sim: ZaptecSimulator
) -> None:
    installation, charger = next(iter(zaptec_sim.installations)), list(zaptec_sim.chargers)[1]
    zaptec_sim.forbidden |= {installation, charger}  # how the API answered no access before 2025
    client = zaptec.client()
    assert client.hierarchy(installation)[0] is None
    poll = client.poll_states(list(zaptec_sim.chargers))
    assert poll.missing == [charger] and poll.polled == len(zaptec_sim.chargers) - 1 and not poll.failed


def test_private_homes_and_public_sites_are_told_apart(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sync_static(zaptec, warehouse, inbox)
    stored = {
        i: (public, country, reason)
        for i, public, country, reason in query(
            warehouse,
            "SELECT installation_id, is_public, country, visibility_reason FROM zaptec.installations",
        )
    }
    assert {iid: v[0] for iid, v in stored.items()} == {
        iid: i.public for iid, i in zaptec_sim.installations.items()
    }
    assert {(v[0], v[1]) for v in stored.values()} == {
        (True, "NOR"),
        (False, "NOR"),
        (True, "NLD"),
        (False, "NLD"),
    }
    # A home running a Pro charger is still private: no authentication is required there.
    pro_home = [
        iid for iid, i in zaptec_sim.installations.items() if not i.public and i.body["InstallationType"] == 0
    ]
    assert pro_home and all(stored[i][0] is False and "no authentication" in stored[i][2] for i in pro_home)
    names = dict(query(warehouse, "SELECT name, bool_or(is_public) FROM zaptec.installations GROUP BY name"))
    assert not any(names.get(n) for n in ("Hjemme", "Thuis", "Hytta", "Huis"))


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_state_poll_parses_strings_and_zoneless_timestamps(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    result = sync_everything(zaptec, warehouse, inbox)
    meta = metadata(result, "zaptec/charger_states")
    assert meta["chargers_polled"] == len(zaptec_sim.chargers) and meta["requests"] == len(
        zaptec_sim.chargers
    )
    assert meta["mode"] == "poll" and meta["http_429"] == 0 and meta["requests_per_second"] > 0
    assert warehouse_values(warehouse) == sim_values(zaptec_sim)  # strings kept exactly ("7360.000")

    charger = next(c for c in zaptec_sim.chargers.values() if c.value(710) == "3")
    rows = {
        sid: row
        for sid, *row in query(
            warehouse,
            "SELECT state_id, value_number, value_bool, unit, operation_mode, last_updated "
            "FROM zaptec.charger_states WHERE charger_id = ?",
            [charger.id],
        )
    }
    assert rows[710][3] == OPERATION_MODES[3] == "Connected_Charging"
    assert rows[513][0] == float(charger.value(513) or "nan") and rows[513][2] == "W"
    assert rows[553][2] == "kWh" and rows[-2][1] is True and rows[PULSE][:4] == [None, None, None, None]
    # The zone-less "2026-11-01T10:13:02.41" is UTC: the stored instant equals the simulator's.
    for state_id in (710, 513, PULSE):
        assert pd.Timestamp(rows[state_id][4]).tz_convert(UTC) == pd.Timestamp(charger.states[state_id][1])
    # The large blob integrations exclude is not stored.
    assert (
        scalar(warehouse, "SELECT count(*) FROM zaptec.charger_states WHERE state_id = ?", [LARGE_STATE]) == 0
    )


def test_only_changed_observations_are_written_and_transitions_kept(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sync_everything(zaptec, warehouse, inbox)
    before = sim_values(zaptec_sim)
    modes_before = {cid: c.value(710) for cid, c in zaptec_sim.chargers.items()}
    history_before = scalar(
        warehouse, "SELECT count(*) FROM ops.status_history WHERE table_name = 'zaptec.charger_states'"
    )
    assert history_before == len(zaptec_sim.chargers)  # first sighting of every charger's mode

    zaptec_sim.advance(1800)  # half an hour of sessions starting and ending
    after = sim_values(zaptec_sim)
    changed = sum(1 for key, value in after.items() if key not in before or before[key] != value)
    transitions = sum(1 for cid, c in zaptec_sim.chargers.items() if c.value(710) != modes_before[cid])
    assert changed > 0 and transitions > 0
    meta = metadata(sync_states(zaptec, warehouse, inbox), "zaptec/charger_states")
    assert meta["inserted"] + meta["updated"] == changed
    assert meta["unchanged"] == len(after) - changed
    assert meta["status_changes"] == transitions
    assert warehouse_values(warehouse) == after
    new_modes = dict(
        query(
            warehouse,
            "SELECT split_part(entity_key, '|', 1), new_status FROM ops.status_history "
            "WHERE table_name = 'zaptec.charger_states' AND old_status IS NOT NULL",
        )
    )
    assert new_modes == {
        cid: OPERATION_MODES[int(c.value(710) or 0)]
        for cid, c in zaptec_sim.chargers.items()
        if c.value(710) != modes_before[cid]
    }


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_token_expiry_mid_sync_is_recovered(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sync_static(zaptec, warehouse, inbox)
    zaptec_sim.reset_log()
    zaptec_sim.expire_tokens(after_requests=5)  # the token dies five calls into the poll
    result = sync_states(zaptec, warehouse, inbox)
    assert result.success
    statuses = [r.status for r in zaptec_sim.requests_to("/state")]
    assert 401 in statuses and statuses.count(200) == len(zaptec_sim.chargers)
    assert len(zaptec_sim.requests_to("/oauth/token")) >= 1  # logged in again, within the run
    assert warehouse_values(warehouse) == sim_values(zaptec_sim)


@pytest.mark.parametrize(
    "any_warehouse", ["duckdb"], indirect=True
)  # the protocol, not the backend, is tested
def test_bad_credentials_fail_clearly(
    zaptec_sim: ZaptecSimulator, warehouse: WarehouseResource, inbox: PushInboxResource
) -> None:
    bad = resource_for(zaptec_sim, password="not-the-password-42")
    result = sync_static(bad, warehouse, inbox, raise_on_error=False)
    assert not result.success
    error = step_error(result, AuthError.__name__)
    assert error.cls_name == AuthError.__name__
    assert (
        "refused the credentials (check ZAPTEC_USERNAME and ZAPTEC_PASSWORD)" in error.message
        and "invalid_grant" in error.message
    )
    assert "not-the-password-42" not in error.message and "HTTP 400" in error.message
    assert [r.status for r in zaptec_sim.requests_to("/oauth/token")] == [400]  # not retried
    assert zaptec_sim.requests_to("/api/") == []
    assert scalar(warehouse, "SELECT count(*) FROM ops.sync_state") == 0


def test_persistent_401_fails_clearly_after_one_fresh_login(
    zaptec: ZaptecResource, zaptec_sim: ZaptecSimulator
) -> None:
    zaptec_sim.reject_tokens = True  # the login works, but the account may not use the API
    with pytest.raises(AuthError) as raised:
        zaptec.client().installations()
    assert "HTTP 401" in str(raised.value) and "denied" in str(raised.value)
    assert [r.status for r in zaptec_sim.requests_to("/api/installation")] == [
        401,
        401,
    ]  # retried once, no more
    assert len(zaptec_sim.requests_to("/oauth/token")) == 2  # with a fresh token in between
    assert zaptec.password not in str(raised.value)


def test_invalid_observations_are_quarantined_while_valid_ones_merge(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    victims = list(zaptec_sim.chargers)[:4]
    bad: dict[str, dict[str, Any]] = {
        victims[0]: {
            "StateId": 710,
            "Timestamp": "2026-11-01T11:00:00.5",
            "ValueAsString": "4",
        },  # 4 is unused
        victims[1]: {"StateId": 513, "Timestamp": "2026-11-01T11:00:00", "ValueAsString": "n/a"},
        victims[2]: {"StateId": 553, "Timestamp": "yesterday-ish", "ValueAsString": "1.000"},
        victims[3]: {"StateId": "abc", "Timestamp": "2026-11-01T11:00:00", "ValueAsString": "1"},
    }
    for charger_id, observation in bad.items():
        zaptec_sim.inject_observation(charger_id, {"ChargerId": charger_id, **observation})
    result = sync_everything(zaptec, warehouse, inbox)
    assert result.success
    meta = metadata(result, "zaptec/charger_states")
    assert meta["quarantined"] == 4
    assert warehouse_values(warehouse) == sim_values(zaptec_sim)  # every valid observation merged
    reasons = dict(
        query(
            warehouse,
            "SELECT split_part(entity_key, '|', 1), failed_checks FROM ops.quarantine "
            "WHERE table_name = 'zaptec.charger_states'",
        )
    )
    assert "ChargerOperationMode" in reasons[victims[0]] and "'4'" in reasons[victims[0]]
    assert "TotalChargePower" in reasons[victims[1]] and "not a number" in reasons[victims[1]]
    assert "Timestamp" in reasons[victims[2]]
    assert "StateId" in reasons[victims[3]]
    raw = scalar(warehouse, "SELECT raw_json FROM ops.quarantine WHERE entity_key LIKE ?", [f"{victims[2]}%"])
    assert "yesterday-ish" in raw


def test_removed_charger_is_skipped_by_polling_and_flagged_by_the_static_refresh(
    zaptec: ZaptecResource,
    zaptec_sim: ZaptecSimulator,
    warehouse: WarehouseResource,
    inbox: PushInboxResource,
) -> None:
    sync_static(zaptec, warehouse, inbox)
    gone = list(zaptec_sim.chargers)[2]
    zaptec_sim.remove_charger(gone)
    poll = zaptec.client().poll_states(warehouse_chargers(warehouse))  # what the state job does
    assert poll.missing == [gone] and poll.polled == len(zaptec_sim.chargers) and not poll.failed
    zaptec_sim.clock.advance(3600)
    assert metadata(sync_static(zaptec, warehouse, inbox), "zaptec/chargers")["deleted"] == 1
    assert query(
        warehouse,
        "SELECT is_deleted, deleted_at IS NOT NULL FROM zaptec.chargers WHERE charger_id = ?",
        [gone],
    ) == [(True, True)]
    assert scalar(warehouse, "SELECT count(*) FROM zaptec.chargers WHERE NOT is_deleted") == len(
        zaptec_sim.chargers
    )
