"""The NDW simulator the push tests share: one server per module, reset for every test, and a push
resource pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from evpipeline.ndw.push import NdwPushResource
from evpipeline.simulators.ndw import TOKEN_PATH, NdwSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline_tests.typed import running

CLIENT_ID, CLIENT_SECRET = "push-test-client", "push-test-secret-9f3a"


@pytest.fixture(scope="module")
def _ndw_server() -> Iterator[NdwSimulator]:
    with running(NdwSimulator(clock=SimClock(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as sim:
        yield sim


@pytest.fixture
def sim(_ndw_server: NdwSimulator, clock: SimClock) -> NdwSimulator:
    _ndw_server.reset(clock)
    _ndw_server.token_lifetime = 1800.0
    return _ndw_server


def resource(sim: NdwSimulator, **overrides: Any) -> NdwPushResource:
    # One push in flight keeps the order of arrival (and so which push a knob hits) deterministic.
    settings: dict[str, Any] = {
        "push_base_url": f"{sim.url}/ocpi/2.2.1",
        "token_url": f"{sim.url}{TOKEN_PATH}",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "read_timeout": 5.0,
        "concurrency": 1,
    }
    return NdwPushResource(**{**settings, **overrides})


@pytest.fixture
def ndw(sim: NdwSimulator) -> NdwPushResource:
    return resource(sim)
