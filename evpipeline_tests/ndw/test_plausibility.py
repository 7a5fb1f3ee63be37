"""Plausibility rules beyond the field tables: a connector's power within physics, AFIR's eMI3 EVSE id and
operator. Our definition refuses them, the NDW selection leaves such objects out with the reason (before
NDW sees anything), and the NDW simulator refuses a physically impossible connector by its own rule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from evpipeline.ndw.export import build_export
from evpipeline.ndw.push import NdwPushResource
from evpipeline.ocpi import definition as ocpi
from evpipeline.simulators.ndw import TOKEN_PATH, NdwSimulator, check
from evpipeline.simulators.toolkit import SimClock
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.mart_fixture import MartRows
from evpipeline_tests.ndw import ocpi_samples as samples
from evpipeline_tests.typed import running

# (power_type, volts, amps, watts, possible): at the limit, within 1 % rounding, above it;
# DC counts one phase.
POWER_CASES = [
    ("AC_1_PHASE", 230, 32, 7360, True),  # exactly V x A x 1
    ("AC_1_PHASE", 230, 32, 7400, True),  # a nominal 7.4 kW, rounded: within 1 %
    ("AC_1_PHASE", 230, 32, 22080, False),  # what Zaptec's mapping used to say: three phases' worth on one
    ("AC_3_PHASE", 230, 32, 22080, True),  # exactly V x A x 3
    ("AC_3_PHASE", 230, 32, 22305, False),  # 1.02 x the limit
    ("AC_2_PHASE", 230, 16, 7360, True),
    ("AC_2_PHASE_SPLIT", 120, 40, 9700, False),
    ("DC", 500, 100, 50000, True),  # exactly V x A: one "phase"
    ("DC", 400, 125, 150000, False),  # 3 x 50 kW would pass if DC counted three
]


def connector(power_type: str, volts: int, amps: int, watts: int) -> dict[str, Any]:
    return samples.connector(
        power_type=power_type, max_voltage=volts, max_amperage=amps, max_electric_power=watts
    )


@pytest.mark.parametrize(("power_type", "volts", "amps", "watts", "possible"), POWER_CASES)
def test_the_definition_refuses_a_connector_above_volts_amps_phases_naming_the_figures(
    power_type: str, volts: int, amps: int, watts: int, possible: bool
) -> None:
    for profile in ocpi.PROFILES:  # physics is OCPI's, not only NDW's
        errors = ocpi.validate_connector(connector(power_type, volts, amps, watts), profile)
        if possible:
            assert errors == []
        else:
            phases = ocpi.PHASES[power_type]
            assert errors == [
                f"(root): max_electric_power {watts} W exceeds max_voltage {volts} V x max_amperage {amps} "
                f"A x {phases} phase(s) ({power_type}) = {volts * amps * phases} W"
            ]


def test_the_ndw_profile_wants_an_emi3_evse_id_and_an_operator() -> None:
    evse = samples.evse()
    assert ocpi.validate_evse(evse) == []
    assert ocpi.validate_evse({**evse, "evse_id": "NLEVBE1"}) == []  # the separators are optional
    del evse["evse_id"]
    assert ocpi.validate_evse(evse) == [
        "evse_id: required field is missing (mandatory for AFIR: the eMI3 EVSE ID)"
    ]
    assert ocpi.validate_evse(evse, "ocpi") == []  # optional in plain OCPI
    assert ocpi.validate_evse({**evse, "evse_id": "NL-EVB-000123001"})[0].startswith(
        "evse_id: must be an eMI3 EVSE ID"
    )
    assert ocpi.validate_evse({**evse, "evse_id": "NL*EVB*E" + "1" * 31})[0].startswith(
        "evse_id: must be an eMI3 EVSE ID"
    )
    location = samples.location()
    del location["operator"]
    assert ocpi.validate_location(location) == [
        "operator: required field is missing (mandatory for AFIR: the operator)"
    ]
    assert ocpi.validate_location(location, "ocpi") == []
    assert (
        ocpi.validate_patch("evse", {"status": "CHARGING", "last_updated": samples.UPDATED}) == []
    )  # a status PATCH carries neither


def _mart() -> MartRows:
    m = MartRows()
    m.tariff("T-STD")
    for n, (power_type, volts, amps, watts, _possible) in enumerate(POWER_CASES, 1):
        m.connector(
            m.evse(m.location(n), 1),
            1,
            power_type=power_type,
            max_voltage=volts,
            max_amperage=amps,
            max_electric_power=watts,
            tariffs=["T-STD"],
        )
    m.connector(m.evse(m.location(50), 1, evse_id=None), 1)
    m.connector(m.evse(m.location(51), 1, evse_id="NL-ALF-0051"), 1)
    m.connector(m.evse(m.location(52, operator=None), 1), 1)
    return m


def test_the_ndw_selection_rejects_the_same_objects_with_the_reason_and_counts_them(
    warehouse: WarehouseResource,
) -> None:
    _mart().write(warehouse)
    with warehouse.get_connection() as con:
        export = build_export(con)
    reasons = {(r["object"], r["location_id"]): r["reasons"] for r in export.rejections}
    exported = {json.loads(body)["id"] for body in export.locations}
    for n, (power_type, volts, amps, watts, possible) in enumerate(POWER_CASES, 1):
        location = f"LOC-{n:04d}"
        if possible:
            assert location in exported and ("Connector", location) not in reasons
        else:
            assert location not in exported
            assert reasons[("Connector", location)] == [
                ocpi.power_problem(power_type, volts, amps, watts)
            ]  # the definition's own words and figures
            assert reasons[("Location", location)] == ["no valid EVSEs"]
    assert reasons[("EVSE", "LOC-0050")] == ["evse_id missing (AFIR: the eMI3 EVSE ID)"]
    assert reasons[("EVSE", "LOC-0051")] == ["evse_id NL-ALF-0051 is not an eMI3 EVSE ID"]
    assert reasons[("Location", "LOC-0052")] == ["operator missing (AFIR: the operator's name)"]
    impossible = sum(1 for *_, possible in POWER_CASES if not possible)
    assert (
        sum(1 for r in export.rejections if r["object"] == "Location") == impossible + 3
    )  # counted like the others
    assert export.candidates == len(POWER_CASES) + 3
    for body in export.locations:  # what the selection keeps, the definition accepts
        assert ocpi.validate_location(json.loads(body)) == []


CLIENT_ID, CLIENT_SECRET = "plausibility-client", "plausibility-secret"


@pytest.fixture
def ndw() -> Iterator[tuple[NdwSimulator, NdwPushResource]]:
    with running(NdwSimulator(clock=SimClock(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as sim:
        yield (
            sim,
            NdwPushResource(
                push_base_url=f"{sim.url}/ocpi/2.2.1",
                token_url=f"{sim.url}{TOKEN_PATH}",
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                backoff_base=0.01,
                backoff_max=0.05,
            ),
        )


def test_the_ndw_simulator_refuses_a_physically_impossible_connector(
    ndw: tuple[NdwSimulator, NdwPushResource],
) -> None:
    for power_type, volts, amps, watts, possible in POWER_CASES:
        errors = check("connector", connector(power_type, volts, amps, watts))
        assert (errors == []) is possible, (power_type, watts, errors)
    sim, resource = ndw
    location = samples.location()
    location["evses"][0]["connectors"][0].update(power_type="AC_1_PHASE", max_electric_power=22080)
    client = resource.client()
    try:
        outcome = client.put_location(location)
    finally:
        client.close()
    assert (outcome.outcome, outcome.http_status, outcome.ocpi_status) == ("rejected", 200, 2001)
    assert (
        "evses.0.connectors.0.max_electric_power: 22080 W is physically impossible at 230 V x 32 A x 1"
        in outcome.message
    )
    assert sim.location("NL", "EVB", location["id"]) is None
