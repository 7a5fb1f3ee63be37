"""Zaptec's 10 requests/s per account: the simulator enforces it, the client stays under it,
polls go first."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.zaptec_polling import measure_state_sync
from evpipeline.http import HttpClient, RetryPolicy
from evpipeline.simulators.toolkit import SimClock
from evpipeline.simulators.zaptec import ZaptecSimulator
from evpipeline.sources.zaptec.client import STATIC, ZaptecResource
from evpipeline_tests.sources.zaptec.conftest import PASSWORD, USER, resource_for, simulator
from evpipeline_tests.typed import running


def test_a_client_without_the_limiter_is_answered_429(clock: SimClock) -> None:
    """The baseline that gives the zero-429 results below their meaning."""
    with running(simulator(clock, chargers=6, limited=True)) as sim:
        token = resource_for(sim, limited=True).client().api.auth.token()  # type: ignore[attr-defined]  # HttpClient.auth is the Auth base; Zaptec's has token()
        greedy = HttpClient("greedy", sim.url, retry=RetryPolicy(max_attempts=1))
        charger = next(iter(sim.chargers))
        statuses = []
        for _ in range(40):
            response = greedy.session.get(
                f"{sim.url}/api/chargers/{charger}/state", headers={"Authorization": f"Bearer {token}"}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
    assert statuses.count(429) >= 20 and statuses[:5] == [200] * 5  # a burst of 5, then refused


def test_state_polls_are_served_before_a_bulk_static_refresh(clock: SimClock) -> None:
    with running(simulator(clock, chargers=16, limited=True)) as sim:
        client = resource_for(sim, limited=True).client()
        installation_ids = [i["Id"] for i in client.installations().records]
        charger_ids = [c["Id"] for c in client.chargers().records]

        def bulk_refresh() -> None:
            for installation_id in installation_ids:
                client.hierarchy(installation_id, priority=STATIC)

        bulk = threading.Thread(target=bulk_refresh)
        bulk.start()
        while len(sim.requests_to("/hierarchy")) < 3:  # the refresh is well under way
            time.sleep(0.01)
        poll = client.poll_states(charger_ids)
        bulk.join()
        log = [r for r in sim.requests if r.path.startswith("/api/")]

    assert poll.polled == 16
    states = [i for i, r in enumerate(log) if r.path.endswith("/state")]
    overtaken = [r for r in log[states[0] : states[-1]] if r.path.endswith("/hierarchy")]
    # Once polls queue up, the refresh waits (at most the request already holding a token slips in).
    assert len(overtaken) <= 1, [r.path.rsplit("/", 1)[-1] for r in log]
    assert len([r for r in log if r.path.endswith("/hierarchy")]) == len(installation_ids)  # then it finished
    assert all(r.status != 429 for r in log)
    assert sim.max_rate(1.0, "/api/") <= 10


def test_429_is_retried_after_the_servers_retry_after(
    zaptec: ZaptecResource, zaptec_sim: ZaptecSimulator
) -> None:
    zaptec_sim.faults.retry_after = 1
    zaptec_sim.faults.inject("429", count=1, path="/state")
    client = zaptec.client()
    poll = client.poll_states(list(zaptec_sim.chargers)[:3])
    assert poll.polled == 3 and not poll.failed
    assert client.api.stats.throttled == 1 and client.api.stats.retries == 1
    assert client.api.stats.backoff_seconds >= 1.0  # the wait honoured Retry-After: 1 (plus jitter)


@pytest.mark.timeout(120)
@pytest.mark.slow
def test_a_fleet_state_sync_stays_under_zaptecs_10_per_second_without_a_single_429(tmp_path: object) -> None:
    """A fleet under the real limits (10 requests/s per account, enforced by the simulator), for about
    15 real seconds: 150 chargers, two list pages (the second one partial) and 150 state polls, far past
    the burst of 5, so the limiter's steady rate is what is measured (a doubled refill in the limiter
    sends more than 10 in some second: seen failing). The 500-charger fleet the issue names is the benchmark's
    (`benchmarks.zaptec_polling`, row 4): its achieved rate is a figure, not a test; here only what must
    hold is asserted."""
    result = measure_state_sync(150, latency=0.02, warehouse_dir=str(tmp_path))
    assert result.chargers == 150
    assert result.requests == 2 + 150  # two pages of at most 100 chargers, one /state per charger
    assert result.http_429 == 0  # the simulator enforces Zaptec's 10/s and never had to refuse
    assert result.max_sent_per_second <= 10  # our limiter never let more than 10 go in any second
    assert result.token_requests == 1
    assert result.rows > 150 * 15  # every charger's observations landed
    print(
        f"\nzaptec 150-charger state sync: {result.requests} requests in {result.seconds:.1f}s = "
        f"{result.rate:.2f}/s ({result.fraction_of_limit:.0%} of 10/s), {result.http_429} x 429, "
        f"max {result.max_sent_per_second} sent / {result.max_per_second} received in any 1 s, "
        f"merge {result.merge_seconds:.2f}s"
    )


def test_the_simulator_caps_list_endpoints_and_requires_a_user_agent(clock: SimClock) -> None:
    import requests

    with running(simulator(clock, chargers=4, list_limits=((2, 30.0),))) as sim:
        client = resource_for(sim).client()
        token = client.api.auth.token()  # type: ignore[attr-defined]  # HttpClient.auth is the Auth base; Zaptec's has token()
        headers = {"Authorization": f"Bearer {token}", "User-Agent": "test"}
        answers = [requests.get(f"{sim.url}/api/chargers", headers=headers, timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429] and int(
            answers[-1].headers["Retry-After"]
        ) > 20
        charger = next(iter(sim.chargers))
        assert (
            requests.get(f"{sim.url}/api/chargers/{charger}/state", headers=headers, timeout=5).status_code
            == 200
        )
        anonymous = requests.get(
            f"{sim.url}/api/chargers/{charger}/state", headers={**headers, "User-Agent": ""}, timeout=5
        )
        assert anonymous.status_code == 403 and "User-Agent" in anonymous.text


def test_list_calls_wait_for_their_own_budget_without_holding_up_the_rest() -> None:
    from evpipeline.http import RateLimiter

    limiter = RateLimiter(1000.0, 10.0, windows={"list": [(2, 0.6)]})
    assert limiter.acquire(0, "list") < 0.05 and limiter.acquire(0, "list") < 0.05  # the window's two
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(limiter.acquire(10, "list")))
    thread.start()
    time.sleep(0.1)  # the third list call is now waiting for the window ...
    started = time.monotonic()
    for _ in range(20):
        limiter.acquire(0)  # ... while state polls go by at once
    assert time.monotonic() - started < 0.2
    thread.join(timeout=5)
    assert 0.4 < waited[0] < 1.5


def test_the_client_paces_list_calls_to_zaptecs_caps(clock: SimClock) -> None:
    with running(simulator(clock, chargers=200, list_limits=((3, 60.0), (150, 1800.0)))) as sim:
        client = resource_for(sim, list_per_minute=3).client()
        client.installations()  # 1 page
        client.chargers()  # 2 pages of 100: the cap reached, not exceeded
        limiter = client.api.limiter
        assert (
            limiter is not None and limiter._class_wait("list", time.monotonic()) > 30
        )  # the next one would wait
        assert {r.status for r in sim.requests if r.path in ("/api/chargers", "/api/installation")} == {200}


def test_the_151st_list_call_within_half_an_hour_waits_for_the_30_minute_window() -> None:
    """Zaptec allows 150 list calls per 30 minutes besides 30 a minute: with the per-minute cap the
    150 fit in about 4 minutes, and the 151st must then wait until the first one is 30 minutes old."""
    from evpipeline.http import RateLimiter
    from evpipeline.sources.zaptec.client import LIST

    # The windows exactly as the deployed resource configures them (defaults: no overrides).
    deployed = (
        ZaptecResource(base_url="http://zaptec.invalid", username=USER, password=PASSWORD)
        .client()
        .api.limiter
    )
    assert deployed is not None
    now = [0.0]  # an injected clock: waiting advances it, no real sleep

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(
        deployed.rate, deployed.burst, windows=deployed.windows, clock=lambda: now[0], sleep=sleep
    )
    granted = []
    for _ in range(151):
        limiter.acquire(STATIC, LIST)
        granted.append(now[0])
    # 30 a minute: five batches, the last one starting at 4 minutes; so 150 are sent within 5 minutes ...
    assert granted[120] == pytest.approx(240.0, abs=0.5) and granted[149] < 300.0
    # ... and the 151st goes only when the first (sent at 0 s) leaves the 30-minute window.
    assert granted[150] == pytest.approx(1800.0, abs=0.5)
