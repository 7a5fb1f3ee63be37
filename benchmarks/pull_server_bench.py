"""6. Pull server: requests/s and p50/p99 of `GET /ocpi/2.2.1/locations?limit=100` over 100,000 locations.

Load comes from separate processes on loopback. The reference is the framework floor on the same
machine in the same run: a bare Starlette app on uvicorn answering every request with a
pre-built body of the same size (no auth, no paging, no OCPI), so the ratio is what our server
itself costs per page.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.harness import Result, Scale
from benchmarks.pull_server_load import load_test, measure
from evpipeline.serving import free_port

FLOOR_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
body = b'x' * int(sys.argv[2])
async def page(request):
    return Response(body, media_type="application/json")
async def health(request):
    return Response(b"ok")
app = Starlette(routes=[Route("/ocpi/2.2.1/locations", page), Route("/health", health)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def floor(body_bytes: int, duration: float, clients: int, warmup: float = 0.5) -> dict[str, float]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FLOOR_APP, str(port), str(body_bytes)])
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        result = load_test(
            f"http://127.0.0.1:{port}", "unused", clients=clients, duration=duration, warmup=warmup
        )
        return {"rps": result.requests_per_second, "p50": result.p50_ms, "p99": result.p99_ms}
    finally:
        process.terminate()
        process.wait(timeout=30)


def run(scale: Scale) -> list[Result]:
    locations = scale.pick(100_000, 2_000)
    # Quick: half a second of load after a short warm-up, on each server (proves the harness, not the figure).
    duration, warmup = scale.pick(15.0, 0.5), scale.pick(3.0, 0.2)
    work = Path(tempfile.mkdtemp(prefix="evp-pull-"))
    try:
        ours = measure(locations, duration=duration, warmup=warmup, clients=2, data_dir=work)
        ref = floor(int(ours["mean_bytes"]), duration, clients=2, warmup=scale.pick(0.5, 0.2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        Result(
            "6. pull server GET /locations?limit=100",
            f"{ours['requests_per_second']:,.0f} req/s, p50 {ours['p50_ms']} ms, p99 {ours['p99_ms']} ms",
            f"{ref['rps']:,.0f} req/s, p50 {ref['p50']} ms, p99 {ref['p99']} ms (framework floor)",
            f"{ours['requests_per_second'] / ref['rps']:.0%} of floor throughput",
            "report",
            None,
            f"{locations:,} locations, {int(ours['mean_bytes']) // 1000} kB pages, "
            f"2 load processes on loopback, {ours['errors']} errors; snapshot load "
            f"{ours.get('server_start_and_load_s', '?')} s",
        )
    ]
