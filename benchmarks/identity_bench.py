"""13. Cross-source matching (evpipeline/model/identity.py) at several fleet sizes.

Each size runs in a fresh process on a generated overlap with ground truth (the test suite's
`evpipeline_tests.identity_fleet`: Zaptec sites, a share of them reported again by GreenFlux with
other ids, jittered positions and rewritten addresses, near misses of other operators). Measured:

- **full matching** of the whole fleet: time, and peak RSS above the process's just before it (sampled
  every 5 ms while it runs);
  precision and recall against the ground truth;
- **a lane cycle's matching**: 20 changed locations (moved 10 m, one in three a new duplicate) re-scored
  incrementally, next to the reference: the merge of those same 20 changes into the mart, which a
  cycle does anyway. Goal (issue 26): matching adds <= 20 % to the cycle (ratio <= 1.2).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from benchmarks.harness import ROOT, Result, Scale, fmt_seconds

CHILD = """
import json, statistics, sys, tempfile, time
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

from evpipeline.model.identity import IDENTITY, update_identity
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.identity_fleet import key, overlap_fleet
from evpipeline_tests.mart_fixture import MartRows, later


import os, threading

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


sites, repeats = int(sys.argv[1]), int(sys.argv[2])
fleet = overlap_fleet(sites)
work = Path(tempfile.mkdtemp(prefix="evp-identity-"))
warehouse = WarehouseResource(database=str(work / "warehouse.duckdb"))
fleet.rows.write(warehouse)
before = rss_mib()
peak, stop = [before], threading.Event()


def sample():  # resident set every 5 ms while the full pass runs: its own peak, not the generator's
    while not stop.wait(0.005):
        peak[0] = max(peak[0], rss_mib())


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
with warehouse.writer("mart", "bench") as w:
    started = time.perf_counter()
    update_identity(w.con, datetime.now(UTC))
    full = time.perf_counter() - started
stop.set()
sampler.join()
peak = peak[0]
with warehouse.get_connection() as con:
    clusters = {}
    for identity_id, member in con.execute(
        f"SELECT identity_id, country_code || ':' || party_id || ':' || location_id FROM {IDENTITY}"
    ).fetchall():
        clusters.setdefault(identity_id, []).append(member)
predicted = {frozenset(p) for m in clusters.values() for p in combinations(m, 2)}
found = len(predicted & fleet.truth)

merges, matches = [], []
zaptec = sorted(fleet.zaptec)
for rep in range(repeats):
    changes = MartRows()
    changed = []
    for n, i in enumerate(zaptec[rep * 20:(rep + 1) * 20]):
        z = fleet.zaptec[i]
        stamp = later(60 + rep)
        if n % 3 == 0:  # a new duplicate next to it
            g = changes.location(0, party="ZPT", location_id=f"NEW-{i}", source_id=f"NEW-{i}",
                                 source="greenflux", latitude=z["latitude"] + 5 / 111_320,
                                 longitude=z["longitude"], address=z["address"], name=z["name"],
                                 updated=stamp)
            evse = changes.evse(g, 1, source="greenflux", evse_id=None, updated=stamp)
            changes.connector(evse, 1, source="greenflux", updated=stamp)
            changed.append(key(g))
        else:  # moved 10 m
            changes.locations.append({**z, "latitude": z["latitude"] + 10 / 111_320, "last_updated": stamp,
                                      "source_last_updated": stamp})
            changed.append(key(z))
    started = time.perf_counter()
    changes.write(warehouse, f"cycle-{rep}")
    merges.append(time.perf_counter() - started)
    with warehouse.writer("mart", "bench") as w:
        w.con.execute("CREATE OR REPLACE TEMP TABLE _bench_scope "
                      "(country_code VARCHAR, party_id VARCHAR, location_id VARCHAR)")
        w.con.executemany("INSERT INTO _bench_scope VALUES (?, ?, ?)", [k.split(":", 2) for k in changed])
        started = time.perf_counter()
        update_identity(w.con, datetime.now(UTC) + timedelta(minutes=rep), scope="_bench_scope")
        matches.append(time.perf_counter() - started)
print(json.dumps({
    "sites": sites, "evses": len(fleet.rows.evses), "locations": len(fleet.rows.locations),
    "truth": len(fleet.truth), "precision": found / len(predicted) if predicted else 1.0,
    "recall": found / len(fleet.truth) if fleet.truth else 1.0,
    "near_misses_merged": len(predicted & fleet.near_misses),
    "full_seconds": full, "rss_growth_mib": max(0.0, peak - before),
    "merge_seconds": statistics.median(merges), "match_seconds": statistics.median(matches),
}))
"""


def _child(sites: int, repeats: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(sites), str(repeats)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,  # the fleet generator lives with the tests
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-800:])
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def run(scale: Scale) -> list[Result]:
    sizes = scale.pick((400, 4_000, 40_000, 70_000), (400,))
    results = []
    for sites in sizes:
        r = _child(sites, scale.pick(5, 3))
        cycle = (r["merge_seconds"] + r["match_seconds"]) / r["merge_seconds"]
        results.append(
            Result(
                f"13. Cross-source matching, {r['evses']:,} EVSEs ({r['locations']:,} locations)",
                f"20 changes: matching {fmt_seconds(r['match_seconds'])}; full: "
                f"{fmt_seconds(r['full_seconds'])}, +{r['rss_growth_mib']:,.0f} MiB",
                f"the merge of the same 20 changes {fmt_seconds(r['merge_seconds'])}",
                f"{cycle:.2f}x",
                "merge + matching <= 1.2x the merge; precision >= 0.99, recall >= 0.95",
                cycle <= 1.2 and r["precision"] >= 0.99 and r["recall"] >= 0.95,
                f"precision {r['precision']:.4f}, recall {r['recall']:.4f} against {r['truth']:,} "
                f"true pairs; near misses merged: {r['near_misses_merged']}",
                raw=r,
            )
        )
    return results
