"""2. Bootstrap: the first full load of ~1,000,000 EVSEs from the GreenFlux simulator.

The simulator runs in its own process (its object generation must not count against us). Ours:
the `greenflux_locations` asset through Dagster (paging, normalizing, pandera, spooling, one
merge transaction with history and watermark) in a fresh process, reporting wall time, peak RSS
and the share of time spent inside pandera. Reference, same simulator, same run: fetching and
decoding the same pages and nothing else (the HTTP + JSON floor).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from benchmarks.harness import Result, Scale, fmt_seconds

TOKEN = "bench-token"
SIMULATOR = """
import sys, time
from evpipeline.simulators.greenflux import GreenFluxSimulator
sim = GreenFluxSimulator(scale=float(sys.argv[1]), token=sys.argv[2], rate_limit_style="http").start()
print(sim.url, flush=True)  # its own free port: no race with another process for a port chosen before
while True:
    time.sleep(3600)
"""
PIPELINE = """
import json, resource, sys, time
import dagster as dg
import pandera.api.pandas.container as container
spent = [0.0]
original = container.DataFrameSchema.validate
def timed(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return original(self, *args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - started
container.DataFrameSchema.validate = timed
from evpipeline.sources.greenflux.assets import greenflux_locations
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource
url, token, db = sys.argv[1:4]
started = time.perf_counter()
result = dg.materialize([greenflux_locations], resources={
    "greenflux": GreenFluxResource(base_url=url, token=token, requests_per_second=1000),
    "warehouse": WarehouseResource(database=db)},
    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
seconds = time.perf_counter() - started
meta = {e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()
                                       if k in ("fetched", "inserted", "requests", "quarantined")}
        for e in result.get_asset_materialization_events()}
print(json.dumps({"seconds": seconds, "pandera": spent[0],
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "meta": meta}))
"""
FETCH_ONLY = """
import json, resource, sys, time
from evpipeline.sources.greenflux.client import GreenFluxResource
url, token = sys.argv[1:3]
client = GreenFluxResource(base_url=url, token=token, requests_per_second=1000).client()
started = time.perf_counter()
objects = sum(len(page.records) for page in client.locations())
print(json.dumps({"seconds": time.perf_counter() - started, "objects": objects,
                  "requests": client.api.stats.requests,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(code: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=3600
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-800:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(scale: Scale) -> list[Result]:
    sim_scale = scale.pick(1165, 5)  # 300 locations per scale unit, ~2.9 EVSEs each
    work = Path(tempfile.mkdtemp(prefix="evp-bootstrap-"))
    log = (work / "simulator.log").open("w")  # not our stderr: a pipe a caller waits on must close with us
    sim = subprocess.Popen(
        [sys.executable, "-c", SIMULATOR, str(sim_scale), TOKEN],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert sim.stdout is not None  # stdout=PIPE
        url = sim.stdout.readline().strip()  # once the fleet is built and the server listens
        if not url:
            raise RuntimeError(
                f"the GreenFlux simulator exited: {(work / 'simulator.log').read_text()[-800:]}"
            )
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/_sim/stats", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        ours = _child(PIPELINE, url, TOKEN, str(work / "warehouse.duckdb"))
        floor = _child(FETCH_ONLY, url, TOKEN)
    finally:
        sim.kill()
        sim.wait(timeout=30)
        log.close()
        shutil.rmtree(work, ignore_errors=True)
    evses = ours["meta"].get("greenflux/evses", {}).get("inserted", 0)
    share = ours["pandera"] / ours["seconds"]
    return [
        Result(
            "2. bootstrap (GreenFlux Locations)",
            f"{fmt_seconds(ours['seconds'])}, peak RSS {ours['rss_mib']:,.0f} MiB",
            f"{fmt_seconds(floor['seconds'])} fetch+decode only",
            f"{ours['seconds'] / floor['seconds']:.2f}x",
            "peak RSS <= 1 GiB",
            ours["rss_mib"] <= 1024,
            f"{evses:,} EVSEs in {floor['objects']:,} locations, "
            f"{ours['meta'].get('greenflux/locations', {}).get('requests', '?')} requests; "
            f"pandera {share:.0%} of the time ({fmt_seconds(ours['pandera'])}); "
            "one transaction with history and watermark",
        )
    ]
