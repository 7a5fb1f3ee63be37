"""The Zaptec figure the benchmark reports: a 500-charger state sync under Zaptec's real rate limit.

For the benchmark harness and the tests only (it starts the simulator); the pipeline never
imports it. The simulator enforces 10 requests/s per account and adds network latency; the
client uses its production settings (9.5/s, burst 1, four polling threads).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from evpipeline.http import RateLimiter
from evpipeline.simulators.toolkit import most_in_window
from evpipeline.sources.zaptec.assets import merge_observations
from evpipeline.sources.zaptec.client import ZaptecResource
from evpipeline.sources.zaptec.tables import STATES
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.rows import scalar

ALLOWED_RATE = 10.0  # Zaptec's documented limit, requests/s per account


@dataclass(frozen=True)
class StateSyncMeasurement:
    """What one state sync of the whole fleet cost, as the simulator saw it."""

    chargers: int
    requests: int  # API requests: the charger list's pages plus one /state per charger
    seconds: float  # wall time of those requests (list + poll), merge excluded
    http_429: int  # 429s the simulator sent (any endpoint)
    max_per_second: (
        int  # most API requests the simulator received in any 1 s window (arrivals bunch on a busy machine)
    )
    max_sent_per_second: int  # most requests our limiter let go in any 1 s window: what the client controls
    token_requests: int
    rows: int  # charger_states rows in the warehouse afterwards
    merge_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def fraction_of_limit(self) -> float:
        return self.rate / ALLOWED_RATE

    def as_tuple(self) -> tuple[int, float, int]:
        return self.requests, self.seconds, self.http_429


def measure_state_sync(
    chargers: int = 500,
    *,
    latency: float = 0.02,
    concurrency: int = 4,
    warehouse_dir: str | Path | None = None,
    seed: int = 7,
) -> StateSyncMeasurement:
    """List the fleet's chargers and poll every charger's state into a warehouse, under the real limits."""
    from evpipeline.simulators.zaptec import ZaptecSimulator  # only benchmarks and tests start simulators

    username, password = "bench@example.com", "bench-password"
    with (
        tempfile.TemporaryDirectory() as scratch,
        ZaptecSimulator(chargers=chargers, username=username, password=password, seed=seed) as sim,
    ):
        sim.faults.latency = latency
        warehouse = WarehouseResource(database=str(Path(warehouse_dir or scratch) / "zaptec-bench.duckdb"))
        resource = ZaptecResource(
            base_url=sim.url, username=username, password=password, concurrency=concurrency
        )
        client = resource.client()
        with recording_grants(client.api.limiter) as sent:
            started = time.monotonic()
            charger_ids = [
                str(r["Id"]) for r in client.chargers().records
            ]  # what the hourly static job caches
            polled_at = time.monotonic()
            poll = client.poll_states(charger_ids)
            seconds = (polled_at - started) + poll.seconds
        merge_started = time.monotonic()
        merge_observations(
            warehouse,
            poll.observations,
            run_id="bench",
            stream="state_poll",
            requests=client.api.stats.requests,
            watermark=poll.server_time,
            lineage="bench: state poll",
        )
        merge_seconds = time.monotonic() - merge_started
        with warehouse.get_connection() as con:
            stored = int(scalar(con.execute(f"SELECT count(*) FROM {STATES}")))
        api_requests = sim.requests_to("/api/")
        return StateSyncMeasurement(
            chargers=len(charger_ids),
            requests=len(api_requests),
            seconds=seconds,
            http_429=sum(1 for r in sim.requests if r.status == 429),
            max_per_second=sim.max_rate(1.0, "/api/"),
            max_sent_per_second=most_in_window(sent, 1.0),
            token_requests=len(sim.requests_to("/oauth/token")),
            rows=stored,
            merge_seconds=merge_seconds,
        )


@contextmanager
def recording_grants(limiter: RateLimiter | None) -> Iterator[list[float]]:
    """The times at which the limiter lets requests go, while the block runs.

    The limiter is shared per account for the whole process, so the wrapper is removed afterwards."""
    assert limiter is not None, "the Zaptec client always has its account's limiter"
    grants: list[float] = []
    acquire = limiter.acquire

    def recording(priority: int = 0, endpoint_class: str | None = None) -> float:
        waited = acquire(priority, endpoint_class)
        grants.append(time.monotonic())
        return waited

    limiter.acquire = recording  # type: ignore[method-assign]  # instrumentation of this one instance
    try:
        yield grants
    finally:
        del limiter.acquire  # back to the class's method


def run_state_sync_benchmark(chargers: int = 500) -> tuple[int, float, int]:
    """(requests, seconds, http_429) of a `chargers`-charger state sync, for the benchmark harness."""
    return measure_state_sync(chargers).as_tuple()
