"""10. DATEX II static publication (AFIR profile JSON, 3.7 XML) vs the NDW OCPI export of the same
fleet, at several fleet sizes.

Each figure runs in a fresh process on the same warehouse, OCPI first, then the DATEX II static
publication as JSON (the profile's form, what the access point takes) and as XML, streamed to a file. Peak RSS
is sampled (/proc/self/statm every 5 ms) while the work runs, against the process's RSS just before it
(imports and the DuckDB connection), so start-up peaks do not hide the work's own. Targets (issue 15): DATEX
II static <= 1.5x the OCPI export's time, and memory flat in fleet size: peak RSS above the process's baseline
at the largest fleet <= 1.5x that at the smallest (the OCPI export holds every object in memory;
the DATEX II writer holds one chunk of locations).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Result, Scale, fmt_seconds
from benchmarks.mart_data import populate_mart
from evpipeline.warehouse import connect

CHILD = """
import json, os, resource, statistics, sys, threading, time
from pathlib import Path

db, what, repeats, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
from evpipeline.warehouse import connect
from evpipeline.ndw.export import build_export, write_export
from evpipeline.datex2 import Creator, write_publication

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


peak = [0.0]
stop = threading.Event()


def sample():  # resident set every 5 ms: the peak of the work itself, not of start-up
    while not stop.wait(0.005):
        peak[0] = max(peak[0], rss_mib())


con = connect(db)
con.execute("SET TimeZone = 'UTC'")
baseline = rss_mib()
peak[0] = baseline
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
samples, size = [], 0
for _ in range(repeats):
    started = time.perf_counter()
    if what == "ocpi":
        manifest = write_export(build_export(con, countries=["NLD"]), out, "2026-11-22")
        size = manifest.body["files"]["locations.json"]["bytes"]
    else:
        fmt = what.split("-")[1]
        with open(out / f"static.{fmt}", "wb") as f:
            write_publication(con, "static", fmt, f, countries=["NLD"], creator=Creator("NL", "bench"))
        size = (out / f"static.{fmt}").stat().st_size
    samples.append(time.perf_counter() - started)
stop.set()
sampler.join()
peak[0] = max(peak[0], rss_mib())
con.close()
print(json.dumps({"seconds": statistics.median(samples), "rss_mib": peak[0], "baseline_mib": baseline,
                  "bytes": size,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(db: Path, what: str, repeats: int, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(db), what, str(repeats), str(out)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=ROOT,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-800:])
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def _growth(run: dict[str, Any]) -> float:
    return max(1.0, run["rss_mib"] - run["baseline_mib"])


def run(scale: Scale) -> list[Result]:
    sizes = scale.pick((25_000, 50_000, 100_000, 200_000), (500, 2_000))  # quick: two sizes, 4x apart
    repeats = scale.pick(3, 1)
    work = Path(tempfile.mkdtemp(prefix="evp-datex2-"))
    try:
        runs: dict[int, dict[str, dict[str, Any]]] = {}
        for locations in sizes:
            db = work / f"warehouse-{locations}.duckdb"
            con = connect(str(db))
            populate_mart(con, locations)
            con.close()
            runs[locations] = {
                what: _child(db, what, repeats, work / f"out-{locations}-{what}")
                for what in ("ocpi", "datex2-xml", "datex2-json")
            }
        small, large = sizes[0], sizes[-1]
        flat = _growth(runs[large]["datex2-json"]) / _growth(runs[small]["datex2-json"])
        results = []
        for locations in sizes:
            ocpi, xml, js = (
                runs[locations]["ocpi"],
                runs[locations]["datex2-xml"],
                runs[locations]["datex2-json"],
            )
            ratio = js["seconds"] / ocpi["seconds"]
            last = locations == large
            results.append(
                Result(
                    f"10. DATEX II static vs OCPI export, {locations:,} locations",
                    f"JSON {fmt_seconds(js['seconds'])}, peak RSS +{_growth(js):,.0f} MiB",
                    f"OCPI {fmt_seconds(ocpi['seconds'])}, peak RSS +{_growth(ocpi):,.0f} MiB",
                    f"{ratio:.2f}x",
                    "<= 1.5x OCPI; RSS growth flat in fleet size" if last else "<= 1.5x OCPI",
                    ratio <= 1.5 and (flat <= 1.5 if last else True),
                    f"XML {fmt_seconds(xml['seconds'])} ({xml['seconds'] / ocpi['seconds']:.2f}x, "
                    f"+{_growth(xml):,.0f} MiB); JSON {js['bytes'] / 1e6:.0f} MB, "
                    f"XML {xml['bytes'] / 1e6:.0f} MB, OCPI locations.json {ocpi['bytes'] / 1e6:.0f} MB; "
                    f"RSS is above the process baseline ({js['baseline_mib']:,.0f} MiB: interpreter, "
                    "imports, DuckDB connection)"
                    + (
                        f"; DATEX II RSS growth {large:,} vs {small:,} locations: {flat:.2f}x" if last else ""
                    ),
                    raw={"ocpi": ocpi, "xml": xml, "json": js},
                )
            )
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
