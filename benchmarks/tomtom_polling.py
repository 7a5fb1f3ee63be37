"""Polling throughput within QPS, for the benchmark harness: `benchmark_polling(n_ids, qps)`.

Starts a TomTom simulator enforcing `qps` for its key, polls `n_ids` availability ids through the
production client (same limiter, pool and retries as the asset) and reports what the *server*
saw: requests, 429s and the busiest 1 s window. Run it alone with
`python -m benchmarks.tomtom_polling [n_ids] [qps]`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from evpipeline import settings
from evpipeline.sources.tomtom.client import TomTomResource

PATH = "/chargingAvailability"


@dataclass
class PollBenchmark:
    ids: int
    requests: int
    seconds: float
    qps_limit: float
    achieved_qps: float
    fraction_of_limit: float
    http_429: int
    max_per_second: int  # most requests the server received in any 1 s window
    with_data: int


def benchmark_polling(
    n_ids: int = 1000, qps: float | None = None, *, concurrency: int = 8, seed: int = 7
) -> PollBenchmark:
    """Poll `n_ids` ids at `qps` (default TOMTOM_QPS) against a fresh simulator and measure it."""
    # Benchmarks only: production code never imports the simulators.
    from evpipeline.simulators.tomtom import TomTomSimulator

    limit = float(qps if qps is not None else settings.get("TOMTOM_QPS"))
    scale = max(0.05, n_ids / 400)
    while True:
        sim = TomTomSimulator(scale=scale, qps=limit, api_key="bench-key", seed=seed)
        if len(sim.availability_ids()) >= n_ids:
            break
        scale *= 1.5
    with sim:
        client = TomTomResource(
            base_url=sim.url, api_key="bench-key", qps=limit, concurrency=concurrency
        ).client()
        batch = client.poll_many(sim.availability_ids()[:n_ids])
        served = sim.requests_to(PATH)
        achieved = len(batch.polls) / batch.seconds if batch.seconds else 0.0
        return PollBenchmark(
            ids=len(batch.polls),
            requests=len(served),
            seconds=round(batch.seconds, 3),
            qps_limit=limit,
            achieved_qps=round(achieved, 3),
            fraction_of_limit=round(achieved / limit, 4),
            http_429=sum(1 for r in served if r.status == 429),
            max_per_second=sim.max_rate(1.0, PATH),
            with_data=batch.count("data"),
        )


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:3]]
    result = benchmark_polling(int(args[0]) if args else 1000, args[1] if len(args) > 1 else None)
    print(json.dumps(asdict(result), indent=2))
