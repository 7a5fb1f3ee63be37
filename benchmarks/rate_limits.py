"""4. Rate-limited throughput: the fraction of an API's allowed request rate we achieve, and the 429s.

The reference is the limit itself, enforced by the simulator exactly as the provider documents it
(Zaptec 10 requests/s per account, TomTom the key's QPS): a client that stays under it never sees
429, and every second it idles below it is throughput lost.
"""

from __future__ import annotations

from benchmarks.harness import Result, Scale


def tomtom(scale: Scale) -> Result:
    from benchmarks.tomtom_polling import benchmark_polling

    ids = scale.pick(1000, 50)
    b = benchmark_polling(ids)
    return Result(
        "4. rate limit: TomTom availability",
        f"{b.achieved_qps:.1f} req/s, {b.http_429} x 429",
        f"{b.qps_limit:.0f} QPS limit",
        f"{b.fraction_of_limit:.0%} of limit",
        ">= 90 %, zero 429",
        b.fraction_of_limit >= 0.9 and b.http_429 == 0,
        f"{b.ids:,} ids in {b.seconds:.1f} s, max {b.max_per_second} requests in any 1 s window, "
        "concurrent within the limit",
    )


def zaptec(scale: Scale) -> Result:
    from benchmarks.zaptec_polling import measure_state_sync

    chargers = scale.pick(500, 30)
    m = measure_state_sync(chargers)
    fraction = m.fraction_of_limit
    return Result(
        "4. rate limit: Zaptec charger states",
        f"{m.rate:.2f} req/s, {m.http_429} x 429",
        f"{m.rate / m.fraction_of_limit:.0f} req/s limit",
        f"{fraction:.0%} of limit",
        ">= 90 %, zero 429",
        fraction >= 0.9 and m.http_429 == 0,
        f"{chargers} chargers: {m.requests} requests in {m.seconds:.1f} s, at most {m.max_sent_per_second} "
        f"sent ({m.max_per_second} received) in any 1 s window; simulator latency 20 ms",
    )


PROBES = [zaptec, tomtom]


def run(scale: Scale) -> list[Result]:
    return [probe(scale) for probe in PROBES]
