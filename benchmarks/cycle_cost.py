"""8. Cycle cost: one routine cycle with a fixed 20 status changes, at four fleet sizes up to ~214k EVSEs.

A cycle is what the lane does with a GreenFlux minute poll that returns 20 changed EVSEs: the
delta fetch and merge, the incremental `mart` build, the scoped NDW push (20 PATCHes to the NDW
simulator) and an incremental BI publication. Each fleet size is bootstrapped in one process
(not measured) and the cycle runs in a fresh process, so its peak RSS is the cycle's own. The
reference, in the same process right after the cycle: what the previous design did every cycle, a
full `mart` rebuild plus a whole-warehouse copy for BI (`COPY FROM DATABASE`). The full rebuild
also checks the incremental model against itself (`mismatches`, expected 0). Goals: cycle at the
largest fleet <= 2x cycle at the smallest; peak RSS <= 600 MB.

The GreenFlux simulator runs in the harness process (its fleet generation must not count against
us); NDW holds the first 1,000 locations (one hourly full push) and the 20 changes are EVSEs there.
One unmeasured cycle with one change runs first: the lane is measured in steady state.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from benchmarks.harness import Result, Scale, fmt_seconds, running
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.ndw import NdwSimulator
from evpipeline.simulators.toolkit import SimClock

TOKEN, NDW_ID, NDW_SECRET = "bench-token", "bench-ndw", "bench-ndw-secret"
CHANGES = 20
COMMON = """
import json, resource, sys, time
import dagster as dg
from evpipeline.ndw.push import NdwPushResource
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource
gf_url, ndw_url, token_url, db = sys.argv[1:5]
greenflux = GreenFluxResource(base_url=gf_url, token="bench-token", requests_per_second=1000, page_limit=500)
ndw = NdwPushResource(push_base_url=ndw_url, token_url=token_url, client_id="bench-ndw",
                      client_secret="bench-ndw-secret", max_static_pushes=1000, concurrency=8)
warehouse = WarehouseResource(database=db)
quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
"""
SETUP = (
    COMMON
    + """
from evpipeline.model.assets import mart_model, reference_operator_data, bi_snapshot
from evpipeline.ndw.push_assets import ndw_push
from evpipeline.sources.greenflux.assets import greenflux_locations, greenflux_tariffs
resources = {"greenflux": greenflux, "warehouse": warehouse, "ndw": ndw}
pause = float(sys.argv[5]) if len(sys.argv) > 5 else 1.1
for assets in ([greenflux_locations, greenflux_tariffs], [reference_operator_data], [mart_model], [ndw_push],
               [bi_snapshot]):
    dg.materialize(assets, resources=resources, run_config=quiet)
    time.sleep(pause)  # past the model's 1 s overlap: the bootstrap is not "recent change" for the cycle
# A running lane has a push cursor (a capped first full push does not set it): start it, as a lane would.
from evpipeline.lane.cycle import Lane
Lane(warehouse, ndw, feeds=[]).push("setup")
with warehouse.get_connection() as con:
    print(json.dumps({"evses": con.execute("SELECT count(*) FROM mart.evses").fetchone()[0],
                      "held": [r[0] for r in con.execute(
                          "SELECT evse_uid FROM ops.ndw_pushed WHERE kind = 'evse' ORDER BY 1").fetchall()]}))
"""
)
CYCLE = (
    COMMON
    + """
import logging
from evpipeline.lane.cycle import Lane
from evpipeline.model.build import build_mart
from evpipeline.model.snapshot import publish_snapshot, snapshot_dir
from evpipeline.sources.greenflux.assets import GreenFluxSyncConfig, sync_locations
log = logging.getLogger("bench")
steps = {}
def timed(name, fn):
    started = time.perf_counter(); out = fn(); steps[name] = time.perf_counter() - started; return out
client = greenflux.client()
timed("fetch + merge",
      lambda: sync_locations(warehouse, client, GreenFluxSyncConfig(), run_id="bench", log=log))
def mart():
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="bench")
build = timed("mart", mart)
push = timed("push", lambda: Lane(warehouse, ndw, feeds=[]).push("bench"))
def publish():
    with warehouse.get_connection() as con:
        return publish_snapshot(con, snapshot_dir(db), "bench")
published = timed("publish", publish)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if sys.argv[5:] != ["reference"]:
    print(json.dumps({"steps": steps}))
    sys.exit(0)
# Reference: the previous design's cycle, a full rebuild plus a whole-warehouse copy, same data.
def full():
    with warehouse.get_connection() as con:
        return build_mart(con, run_id="bench-full", full=True)
rebuild = timed("ref: full rebuild", full)
def copy():
    import os
    target = db + ".copy.duckdb"
    with warehouse.get_connection() as con:
        con.execute(f"ATTACH '{target}' AS evp_copy")
        con.execute("COPY FROM DATABASE warehouse TO evp_copy")
        con.execute("DETACH evp_copy")
    os.remove(target)
timed("ref: whole copy", copy)
print(json.dumps({"steps": steps, "rss_mib": rss, "scope": build.scope, "mart_mode": build.mode,
                  "mart_reason": build.reason,
                  "patches": sum(1 for p, o in push.run.results if p.kind == "evse" and o.ok) if push else 0,
                  "published_rows": published.rows_written, "mismatches": rebuild.mismatches}))
"""
)


def _python(code: str, *args: str, timeout: float = 1800) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-1500:])
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(scale: float, workdir: Path, seed: int = 5, pause: float = 1.1) -> dict[str, Any]:
    """Bootstrap a GreenFlux fleet at `scale` (`pause` seconds after each of its five steps), then time one
    cycle of 20 changes (fresh process)."""
    clock = SimClock()
    with (
        running(GreenFluxSimulator(scale=scale, clock=clock, token=TOKEN, seed=seed)) as gf,
        running(NdwSimulator(clock=clock, client_id=NDW_ID, client_secret=NDW_SECRET)) as ndw,
    ):
        db = str(workdir / f"scale-{scale:g}" / "warehouse.duckdb")
        Path(db).parent.mkdir(parents=True)
        args = (
            gf.url,
            f"{ndw.url}/ocpi/2.2.1",
            f"{ndw.url}/auth/realms/ndw/protocol/openid-connect/token",
            db,
        )
        setup = _python(SETUP, *args, str(pause))
        warm_up, *changes = random.Random(seed).sample(setup["held"], CHANGES + 1)
        # A lane in steady state has just carried the previous change: one cycle with one change first
        # (not measured), so the measured cycle diffs what changed since then, not the bootstrap's inserts.
        clock.advance(60)
        gf.set_evse_status(warm_up, "OUTOFORDER")
        _python(CYCLE, *args)
        clock.advance(60)
        for uid in changes:
            gf.set_evse_status(uid, "OUTOFORDER")
        return {"evses": setup["evses"], **_python(CYCLE, *args, "reference")}


def _cycle_seconds(row: dict[str, Any]) -> float:
    return sum(v for k, v in row["steps"].items() if not k.startswith("ref:"))


def run(scale: Scale) -> list[Result]:
    scales = scale.pick([1, 12, 60, 250], [0.3, 1])
    # Quick: no pause after the bootstrap's steps (5.5 s a fleet). The unmeasured warm-up cycle, in a process
    # started seconds later, already moves the model's watermark past the bootstrap, so the measured cycle's
    # scope is its 20 changes either way.
    pause = scale.pick(1.1, 0.0)
    workdir = Path(tempfile.mkdtemp(prefix="evp-cycle-"))
    try:
        rows = [measure(s, workdir, pause=pause) for s in scales]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = []
    for row in rows:
        steps = ", ".join(
            f"{k} {fmt_seconds(v)}" for k, v in row["steps"].items() if not k.startswith("ref:")
        )
        reference = row["steps"]["ref: full rebuild"] + row["steps"]["ref: whole copy"]
        results.append(
            Result(
                f"8. cycle cost, 20 changes, {row['evses']:,} EVSEs",
                f"{fmt_seconds(_cycle_seconds(row))} ({steps}); peak RSS {row['rss_mib']:.0f} MiB; "
                f"{row['patches']} PATCHes",
                f"{fmt_seconds(reference)} (full rebuild + whole copy)",
                f"reference / ours {reference / _cycle_seconds(row):.1f}",
                "peak RSS <= 600 MB; incremental == full",
                row["rss_mib"] <= 600 and not any(row["mismatches"].values()),
                f"mart scope {row['scope']}; mismatches vs full {sum(row['mismatches'].values())}",
                raw=row,
            )
        )
    small, large = rows[0], rows[-1]
    growth = _cycle_seconds(large) / _cycle_seconds(small)
    ref_growth = (large["steps"]["ref: full rebuild"] + large["steps"]["ref: whole copy"]) / (
        small["steps"]["ref: full rebuild"] + small["steps"]["ref: whole copy"]
    )
    results.append(
        Result(
            f"8. cycle cost growth {small['evses']:,} -> {large['evses']:,} EVSEs",
            f"{fmt_seconds(_cycle_seconds(large))} vs {fmt_seconds(_cycle_seconds(small))}",
            "the smallest fleet, same run",
            f"{growth:.2f}x",
            "<= 2x",
            growth <= 2.0,
            f"full rebuild + copy grew {ref_growth:.0f}x",
        )
    )
    return results
