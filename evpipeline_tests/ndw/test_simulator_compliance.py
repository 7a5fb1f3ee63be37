"""The NDW simulator judges our pushes independently: published JSON Schemas + its own receiver
rules, never our OCPI definition. A push that breaks the schema must come back refused, with why."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from evpipeline.ndw.push import NdwPushResource
from evpipeline.simulators.ndw import TOKEN_PATH, NdwSimulator, check
from evpipeline.simulators.ndw.compliance import receiver_errors
from evpipeline.simulators.toolkit import SimClock
from evpipeline_tests.ndw import ocpi_samples as samples
from evpipeline_tests.typed import running

CLIENT_ID, CLIENT_SECRET = "compliance-client", "compliance-secret"


@pytest.fixture(scope="module")
def sim() -> Iterator[NdwSimulator]:
    with running(NdwSimulator(clock=SimClock(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as server:
        yield server


@pytest.fixture
def ndw(sim: NdwSimulator) -> NdwPushResource:
    sim.reset()
    return NdwPushResource(
        push_base_url=f"{sim.url}/ocpi/2.2.1",
        token_url=f"{sim.url}{TOKEN_PATH}",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        backoff_base=0.01,
        backoff_max=0.05,
    )


def test_the_simulator_never_imports_our_definition() -> None:
    code = (
        "import sys, evpipeline.simulators.ndw; print(sorted(m for m in sys.modules if "
        "m.startswith('evpipeline.ocpi')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_samples_pass_the_independent_check() -> None:
    assert check("location", samples.location()) == []
    assert check("tariff", samples.tariff()) == []
    assert check("evse", {"status": "CHARGING", "last_updated": "2026-11-01T12:00:00Z"}, patch=True) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"parking_type": "CAR_PARK"}, "parking_type"),  # not an OCPI ParkingType value (schema enum)
        ({"last_updated": "2026-11-01T12:00:00+00:00"}, "last_updated"),  # NDW wants Z (schema pattern)
        ({"surprise": 1}, "surprise"),  # unknown field (schema additionalProperties)
        (
            {"publish_allowed_to": [{"uid": "04A1B2C3", "type": "RFID"}]},
            "publish_allowed_to",
        ),  # receiver rule
    ],
)
def test_a_push_that_breaks_the_contract_is_rejected_with_a_reason(
    ndw: NdwPushResource, sim: NdwSimulator, change: dict[str, object], field: str
) -> None:
    client = ndw.client()
    try:
        outcome = client.put_location(samples.location(**change))
    finally:
        client.close()
    assert (outcome.outcome, outcome.http_status, outcome.ocpi_status) == ("rejected", 200, 2001)
    assert field in outcome.message
    assert sim.location("NL", "EVB", "LOC-UTR-000123") is None
    assert [(p.accepted, p.status_code) for p in sim.pushes] == [(False, 2001)]


def test_afir_fields_are_the_receivers_own_rule() -> None:
    connector = samples.connector()
    del connector["max_electric_power"]
    # Hand-written, so it holds even if a regenerated schema lost the requirement.
    assert receiver_errors("connector", connector) == ["max_electric_power: required by NDW (AFIR)"]
    assert check("connector", connector) == ["max_electric_power: required field is missing"]  # named once
    assert check("connector", connector, "ocpi") == []  # plain OCPI leaves it optional
