"""10. DuckLake (PostgreSQL catalog) vs the DuckDB file, same data, same run (issue 16).

Three figures, each on both backends, the file being the reference (ratio = lake / file):

- merge: measurement 1's write path (55,000 changed rows into 1,000,000, with history, watermark
  and run log in one transaction) on a copy of the same loaded table, split into the work and its
  COMMIT; plus the fixed cost of one small commit (a watermark alone), which on a lake is the
  catalog round trips to PostgreSQL.
- cycle: measurement 8's lane cycle (GreenFlux delta with 20 changes, mart, NDW push, BI publish)
  in a fresh process after the same bootstrap; attaching (DuckLake reads its catalog) is timed on
  its own, outside the cycle, because the lane daemon attaches once.
- two sources: a GreenFlux and an EVRoam bootstrap in two threads at once on the lake (each its
  own WarehouseResource; a commit that lost a race is redone by `WarehouseResource.write`)
  against the same two one after the other on the file. Afterwards every run's rows and
  watermarks are compared with the file's; redone commits are counted from the resource's log.

Every lake is its own PostgreSQL database (created here, dropped after); where one is reused it
is copied from a template (`CREATE DATABASE ... TEMPLATE`), so the timed work never migrates.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import cycle_cost, merge_bench
from benchmarks.harness import Result, Scale, fmt_seconds, running
from evpipeline.sources.evroam import tables as EV
from evpipeline.sources.greenflux import tables as GF

PG_HOST = os.environ.get("EVPIPELINE_BENCH_PG_HOST", "127.0.0.1")
REPORT = "report"  # issue 16 asks for the figures; no target to meet


# -- catalogs: one PostgreSQL database per lake -------------------------------------------------------


class Catalogs:
    """PostgreSQL databases that hold DuckLake catalogs: made here, dropped (FORCE) when done."""

    def __init__(self, host: str = PG_HOST) -> None:
        import psycopg2

        self.host = host
        self.admin = psycopg2.connect(host=host, port=5432, user="postgres", dbname="postgres", connect_timeout=3)
        self.admin.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        self.made: list[str] = []

    def url(self, name: str) -> str:
        return f"ducklake:postgres:dbname={name} host={self.host} user=postgres"

    def create(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, whose lake must be detached); returns its name."""
        name = f"evp_bench_{uuid.uuid4().hex[:16]}"
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        from evpipeline.warehouse.resource import detach_lake

        detach_lake(self.url(name))  # our cached attachment holds catalog connections open
        with self.admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.made:
            self.made.remove(name)

    @contextmanager
    def fresh(self, template: str | None = None) -> Iterator[str]:
        """The attach string of a new lake, dropped afterwards."""
        name = self.create(template)
        try:
            yield self.url(name)
        finally:
            self.drop(name)

    def catalog_rows(self, name: str, sql: str) -> list[tuple[Any, ...]]:
        """A query on the catalog database itself (DuckLake's own tables), not through DuckDB."""
        import psycopg2

        con = psycopg2.connect(host=self.host, port=5432, user="postgres", dbname=name, connect_timeout=3)
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            con.close()

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)
        self.admin.close()


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (subprocesses inherit them), then restore."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _detached_template(catalogs: Catalogs, prepare: Callable[[str], None], template: str | None = None) -> str:
    """A lake database (a copy of `template`) prepared once by `prepare(url)`, then detached so it
    can be copied in turn."""
    from evpipeline.warehouse.resource import detach_lake

    name = catalogs.create(template)
    prepare(catalogs.url(name))
    detach_lake(catalogs.url(name))  # a template must have no open connection to be copied
    return name


@dataclass
class Templates:
    """A migrated DuckDB file and lake every measurement starts from: migrating a new lake commits a
    catalog snapshot per table (seconds), which no measurement is about."""

    file: Path
    lake: str
    file_s: float
    lake_s: float

    @classmethod
    def make(cls, work: Path, catalogs: Catalogs) -> Templates:
        # Every component the measurements write registers its migrations on import.
        import evpipeline.lane.cycle  # noqa: F401
        import evpipeline.model.assets  # noqa: F401
        import evpipeline.ndw.push_assets  # noqa: F401
        import evpipeline.sources.evroam.assets  # noqa: F401
        import evpipeline.sources.greenflux.assets  # noqa: F401
        from evpipeline.warehouse import connect

        def migrate(database: str) -> None:
            connect(database).close()

        file = work / "template.duckdb"
        started = time.perf_counter()
        migrate(str(file))
        file_s = time.perf_counter() - started
        started = time.perf_counter()
        lake = _detached_template(catalogs, migrate)
        return cls(file, lake, file_s, time.perf_counter() - started)

    def file_copy(self, path: Path) -> Path:
        shutil.copyfile(self.file, path)
        return path


def _ratio(lake: float, file: float) -> str:
    return f"{lake / file:.2f}x" if file > 0 else "-"


# -- 1. merge: 55k changed rows into 1M ---------------------------------------------------------------


@contextmanager
def catalog_queries(con: Any) -> Iterator[list[int]]:
    """Count the queries DuckLake sends its PostgreSQL catalog during the block (yields [count]).

    The postgres extension prints each query to stderr under `pg_debug_show_queries` (one block per
    query, blank-line separated); stderr is pointed at a temporary file meanwhile.
    """
    counted = [0]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            con.execute("SET pg_debug_show_queries = true")
            try:
                yield counted
            finally:
                con.execute("SET pg_debug_show_queries = false")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        counted[0] = sum(1 for block in sink.read().decode(errors="replace").split("\n\n") if block.strip())


@dataclass
class MergeSample:
    total: float
    work: float
    commit: float
    small_commit: float
    queries: int = 0  # catalog queries of the merge's transaction (lake only)
    small_queries: int = 0  # ... and of the last small commit


def _merge(con: Any, delta: Any, marks: list[float] | None = None) -> Any:
    """Measurement 1's `ours`: merge, watermark and run log in one transaction (`marks` gets the
    time the work was done, before COMMIT)."""
    from evpipeline.warehouse import transaction

    with transaction(con, "bench", "bench-run") as w:
        counts = w.merge(delta, merge_bench.TABLE, ["evse_uid"], status_column="status")
        w.set_sync_state("evses", datetime.now(UTC))
        w.log_run("evses", requests=0)
        if marks is not None:
            marks.append(time.perf_counter())
    return counts


def _small_commit(con: Any) -> None:
    """A transaction that writes a watermark alone: what every commit costs whatever it carries."""
    from evpipeline.warehouse import transaction

    with transaction(con, "bench", "bench-small") as w:
        w.set_sync_state("small", datetime.now(UTC))


def _timed_merge(con: Any, delta: Any, small_commits: int, *, lake: bool) -> tuple[MergeSample, Any]:
    """The merge, then a few small commits; on the lake one more small commit, untimed, counting
    its catalog queries (printing them is not free)."""
    marks = [time.perf_counter()]
    counts = _merge(con, delta, marks)
    marks.append(time.perf_counter())
    smalls = []
    for _ in range(small_commits):
        begun = time.perf_counter()
        _small_commit(con)
        smalls.append(time.perf_counter() - begun)
    sample = MergeSample(marks[2] - marks[0], marks[1] - marks[0], marks[2] - marks[1], statistics.median(smalls))
    if lake:
        with catalog_queries(con) as queries:
            _small_commit(con)
        sample.small_queries = queries[0]
    return sample, counts


def merge_results(scale: Scale, work: Path, catalogs: Catalogs, base: Templates) -> list[Result]:
    from evpipeline.warehouse import connect, transaction

    rows = scale.pick(1_000_000, 50_000)  # measurement 1's sizes and generator
    updates, inserts = scale.pick(50_000, 2_500), scale.pick(5_000, 250)
    loaded, delta = merge_bench.frames(rows, updates, inserts)

    def load(database: str) -> None:
        con = connect(database)
        try:
            with transaction(con, "bench") as w:
                w.merge(loaded, merge_bench.TABLE, ["evse_uid"], status_column="status")
            if not database.startswith("ducklake:"):  # on a lake CHECKPOINT is maintenance (compaction)
                con.execute("CHECKPOINT")  # the file: the load out of the WAL, as measurement 1 has it
        finally:
            con.close()

    pristine = base.file_copy(work / "merge-pristine.duckdb")
    started = time.perf_counter()
    load(str(pristine))
    load_file = time.perf_counter() - started
    started = time.perf_counter()
    template = _detached_template(catalogs, load, base.lake)
    load_lake = time.perf_counter() - started
    files_before = catalogs.catalog_rows(template, "SELECT count(*) FROM ducklake_data_file")[0][0]

    small_commits = scale.pick(5, 3)
    file_s: list[MergeSample] = []
    lake_s: list[MergeSample] = []
    written: dict[str, Any] = {}
    for attempt in range(scale.repeats):  # interleaved, so drift on a shared machine hits both alike
        copy = work / f"merge-{attempt}.duckdb"
        shutil.copyfile(pristine, copy)
        con = connect(str(copy))  # opening and the migration check stay outside the timing
        try:
            sample, written["file"] = _timed_merge(con, delta, small_commits, lake=False)
        finally:
            con.close()
            copy.unlink()
        file_s.append(sample)
        name = catalogs.create(template)
        try:
            con = connect(catalogs.url(name))  # attaching reads the catalog: outside the timing
            try:
                sample, written["lake"] = _timed_merge(con, delta, small_commits, lake=True)
            finally:
                con.close()
            lake_s.append(sample)
            written["files"] = catalogs.catalog_rows(
                name, "SELECT (SELECT count(*) FROM ducklake_data_file), (SELECT count(*) FROM ducklake_delete_file)")[0]
        finally:
            catalogs.drop(name)
        # The merge's own catalog queries, on one more copy, untimed (printing each query costs time).
        if attempt == 0:
            with catalogs.fresh(template) as url:
                con = connect(url)
                try:
                    with catalog_queries(con) as queries:
                        _merge(con, delta)
                finally:
                    con.close()
                lake_s[0].queries = queries[0]
    catalogs.drop(template)

    def med(samples: list[MergeSample], what: str) -> float:
        return float(statistics.median(getattr(s, what) for s in samples))

    f_total, l_total = med(file_s, "total"), med(lake_s, "total")
    f_commit, l_commit = med(file_s, "commit"), med(lake_s, "commit")
    f_small, l_small = med(file_s, "small_commit"), med(lake_s, "small_commit")
    c_file, c_lake = written["file"], written["lake"]
    same = (c_file.updated, c_file.inserted, c_file.status_changes) == (c_lake.updated, c_lake.inserted, c_lake.status_changes)
    data_files, delete_files = written["files"]
    raw = {"file": [s.__dict__ for s in file_s], "lake": [s.__dict__ for s in lake_s], "load_file_s": load_file,
           "load_lake_s": load_lake, "data_files_before": files_before, "after_merge": written["files"]}
    return [
        Result(
            f"10. lake: merge {len(delta):,} rows into {rows:,}",
            f"{fmt_seconds(l_total)} DuckLake (COMMIT {fmt_seconds(l_commit)})",
            f"{fmt_seconds(f_total)} DuckDB file (COMMIT {fmt_seconds(f_commit)})",
            f"lake / file {_ratio(l_total, f_total)}", REPORT, None if same else False,
            f"measurement 1's write path on a copy of the same loaded table, median of {scale.repeats} "
            f"({c_lake.updated:,} updated, {c_lake.inserted:,} inserted, {c_lake.status_changes:,} status changes"
            + ("" if same else f"; **the file wrote {c_file.updated:,}/{c_file.inserted:,}/{c_file.status_changes:,}**")
            + f"); the lake's transaction sent {lake_s[0].queries} queries to its PostgreSQL catalog and took the table "
            f"from {files_before} to {data_files} data files + {delete_files} delete files; loading the {rows:,} rows "
            f"(untimed setup) took {fmt_seconds(load_lake)} on the lake vs {fmt_seconds(load_file)}",
            raw=raw,
        ),
        Result(
            "10. lake: one small commit (a watermark alone)",
            f"{fmt_seconds(l_small)} DuckLake", f"{fmt_seconds(f_small)} DuckDB file", f"lake / file {_ratio(l_small, f_small)}",
            REPORT, None,
            f"median of {small_commits} per run, {scale.repeats} runs; what any write pays: on the lake "
            f"{lake_s[-1].small_queries} catalog queries (snapshot, table stats, inlined rows, the new snapshot's rows), "
            f"on the file a WAL write; migrating a new warehouse (every component's tables, untimed setup) "
            f"took {fmt_seconds(base.lake_s)} on the lake vs {fmt_seconds(base.file_s)}",
        ),
    ]


# -- 2. one lane cycle (measurement 8) ---------------------------------------------------------------

# Measurement 8's cycle script, with the attach timed on its own first and the reference (a full
# rebuild plus a whole-warehouse copy to a file) left out: only the cycle itself is compared here.
_MARKER = "if sys.argv[5:]"
assert cycle_cost.CYCLE.startswith(cycle_cost.COMMON) and _MARKER in cycle_cost.CYCLE
LAKE_CYCLE = (
    cycle_cost.COMMON
    + """
_started = time.perf_counter()
with warehouse.get_connection() as _con:
    pass
attach = time.perf_counter() - _started
"""
    + cycle_cost.CYCLE[len(cycle_cost.COMMON):cycle_cost.CYCLE.index(_MARKER)]
    + """
print(json.dumps({"steps": steps, "attach": attach, "rss_mib": rss, "scope": build.scope,
                  "patches": sum(1 for p, o in push.run.results if p.kind == "evse" and o.ok) if push else 0}))
"""
)


@dataclass
class CycleRun:
    backend: str
    evses: int = 0
    cycles: list[dict[str, Any]] = field(default_factory=list)
    setup_s: float = 0.0

    def seconds(self, cycle: dict[str, Any]) -> float:
        return float(sum(cycle["steps"].values()))

    def median(self, what: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(what(c) for c in self.cycles)


@contextmanager
def _cycle_fleet(sim_scale: float, database: str, seed: int) -> Iterator[tuple[Any, Any, tuple[str, ...], dict[str, Any], float]]:
    """Measurement 8's simulators and bootstrap (untimed) on `database`; the warm-up cycle done."""
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline.simulators.ndw import NdwSimulator
    from evpipeline.simulators.toolkit import SimClock

    clock = SimClock()
    with (running(GreenFluxSimulator(scale=sim_scale, clock=clock, token=cycle_cost.TOKEN, seed=seed)) as gf,
          running(NdwSimulator(clock=clock, client_id=cycle_cost.NDW_ID, client_secret=cycle_cost.NDW_SECRET)) as ndw):
        args = (gf.url, f"{ndw.url}/ocpi/2.2.1", f"{ndw.url}/auth/realms/ndw/protocol/openid-connect/token", database)
        started = time.perf_counter()
        setup = cycle_cost._python(cycle_cost.SETUP, *args)
        yield gf, clock, args, setup, time.perf_counter() - started


def cycle_results(scale: Scale, work: Path, catalogs: Catalogs, base: Templates) -> list[Result]:
    sim_scale = scale.pick(12, 0.3)
    measured = scale.pick(scale.repeats, 1)
    seed = 5
    (work / "cycle").mkdir()
    file_db = str(base.file_copy(work / "cycle" / "warehouse.duckdb"))
    runs = {"file": CycleRun("file"), "lake": CycleRun("lake")}
    with catalogs.fresh(base.lake) as lake_db, \
            _cycle_fleet(sim_scale, file_db, seed) as file_fleet, _cycle_fleet(sim_scale, lake_db, seed) as lake_fleet:
        fleets = {"file": file_fleet, "lake": lake_fleet}
        for backend, (_gf, _clock, _args, setup, setup_s) in fleets.items():
            runs[backend].evses, runs[backend].setup_s = setup["evses"], setup_s
        # The same EVSEs change on both fleets (same seed, same data): one warm-up change, then 20 a cycle.
        held = file_fleet[3]["held"]
        picked = random.Random(seed).sample(held, 1 + cycle_cost.CHANGES * measured)
        batches = [picked[:1]] + [picked[1 + i * cycle_cost.CHANGES:1 + (i + 1) * cycle_cost.CHANGES] for i in range(measured)]
        for number, uids in enumerate(batches):
            for backend, (gf, clock, args, _setup, _s) in fleets.items():  # interleaved
                clock.advance(60)
                for uid in uids:
                    gf.set_evse_status(uid, "OUTOFORDER")
                row = cycle_cost._python(LAKE_CYCLE, *args)
                if number:  # the first is the warm-up: the lane in steady state
                    runs[backend].cycles.append(row)
    file_run, lake_run = runs["file"], runs["lake"]
    f_cycle, l_cycle = file_run.median(file_run.seconds), lake_run.median(lake_run.seconds)
    steps = list(file_run.cycles[0]["steps"])

    def per_step(run: CycleRun) -> str:
        return ", ".join(f"{s} {fmt_seconds(statistics.median(c['steps'][s] for c in run.cycles))}" for s in steps)

    def rss(run: CycleRun) -> float:
        return max(c["rss_mib"] for c in run.cycles)

    same_fleet = file_run.evses == lake_run.evses and file_run.cycles[-1]["patches"] == lake_run.cycles[-1]["patches"]
    return [Result(
        f"10. lake: lane cycle, 20 changes, {lake_run.evses:,} EVSEs",
        f"{fmt_seconds(l_cycle)} DuckLake ({per_step(lake_run)}); peak RSS {rss(lake_run):.0f} MiB",
        f"{fmt_seconds(f_cycle)} DuckDB file ({per_step(file_run)}); peak RSS {rss(file_run):.0f} MiB",
        f"lake / file {_ratio(l_cycle, f_cycle)}", REPORT, None if same_fleet else False,
        f"measurement 8's cycle in a fresh process, median of {measured}; attaching before it (not in the cycle: the lane "
        f"daemon attaches once) {fmt_seconds(lake_run.median(lambda c: c['attach']))} lake vs "
        f"{fmt_seconds(file_run.median(lambda c: c['attach']))} file; {lake_run.cycles[-1]['patches']} PATCHes; "
        f"bootstrap (untimed setup, incl. migrating) {fmt_seconds(lake_run.setup_s)} lake vs {fmt_seconds(file_run.setup_s)} file"
        + ("" if same_fleet else f"; **file {file_run.evses:,} EVSEs / {file_run.cycles[-1]['patches']} PATCHes differ**"),
        raw={"file": file_run.__dict__, "lake": lake_run.__dict__},
    )]


# -- 3. two sources at once on the lake, one after the other on the file ------------------------------


class RetryCounter(logging.Handler):
    """Counts `WarehouseResource.write`'s "commit lost a race" log lines (one per redone transaction)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self._lock_count = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if "commit lost a race" in record.getMessage():
            with self._lock_count:
                self.count += 1


@contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    counter = RetryCounter()
    logger = logging.getLogger("evpipeline.warehouse.resource")
    level = logger.level
    logger.setLevel(logging.INFO)  # the retry line is INFO; the default WARNING would drop it before any handler
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)


@dataclass
class Sources:
    """The two simulators and how to bootstrap each into a warehouse."""

    greenflux: Any
    evroam: Any

    def greenflux_sync(self, database: str) -> None:
        from evpipeline.sources.greenflux.assets import GreenFluxSyncConfig, sync_locations
        from evpipeline.sources.greenflux.client import GreenFluxResource
        from evpipeline.warehouse import WarehouseResource

        client = GreenFluxResource(base_url=self.greenflux.url, token=self.greenflux.token, requests_per_second=1000,
                                   page_limit=500).client()
        sync_locations(WarehouseResource(database=database), client, GreenFluxSyncConfig(), run_id="bench-greenflux",
                       log=logging.getLogger("benchmarks.lake_bench"))

    def evroam_sync(self, database: str) -> None:
        from evpipeline.sources.evroam.assets import EVRoamSyncConfig, pull
        from evpipeline.sources.evroam.client import EVRoamResource
        from evpipeline.warehouse import WarehouseResource

        client = EVRoamResource(base_url=f"{self.evroam.url}/consumer/api", subscription_key=self.evroam.subscription_key,
                                requests_per_second=1000).client()
        warehouse = WarehouseResource(database=database)
        for stream in ("Site", "ChargingStation"):
            pull(warehouse, client, stream, EVRoamSyncConfig(), run_id=f"bench-evroam-{stream}",
                 log=logging.getLogger("benchmarks.lake_bench"))

    def serial(self, database: str) -> dict[str, float]:
        started = time.perf_counter()
        self.greenflux_sync(database)
        between = time.perf_counter()
        self.evroam_sync(database)
        return {"greenflux": between - started, "evroam": time.perf_counter() - between}

    def parallel(self, database: str) -> dict[str, float]:
        took: dict[str, float] = {}
        failed: list[BaseException] = []

        def one(name: str, sync: Callable[[str], None]) -> None:
            started = time.perf_counter()
            try:
                sync(database)
            except BaseException as exc:  # re-raised in the caller's thread
                failed.append(exc)
            took[name] = time.perf_counter() - started

        threads = [threading.Thread(target=one, args=("greenflux", self.greenflux_sync)),
                   threading.Thread(target=one, args=("evroam", self.evroam_sync))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]
        return took


def warehouse_state(database: str) -> dict[str, Any]:
    """Row counts of both sources' tables, their watermarks and run log: what must be there afterwards."""
    from evpipeline.warehouse import WarehouseResource
    from evpipeline.warehouse.rows import scalar

    names = [GF.LOCATIONS, GF.EVSES, GF.CONNECTORS, EV.SITES, EV.STATIONS, EV.CONNECTORS, EV.AVAILABILITY]
    with WarehouseResource(database=database).get_connection() as con:
        counts = {t: scalar(con.execute(f"SELECT count(*) FROM {t}")) for t in names}
        marks = {f"{s}/{st}": str(w) for s, st, w in con.execute(
            "SELECT source, stream, watermark FROM ops.sync_state WHERE source IN ('greenflux', 'evroam') ORDER BY 1, 2").fetchall()}
        runs = dict(con.execute("SELECT source, count(*) FROM ops.runs WHERE source IN ('greenflux', 'evroam') GROUP BY 1").fetchall())
    return {"rows": counts, "watermarks": marks, "runs": runs}


def parallel_results(scale: Scale, work: Path, catalogs: Catalogs, base: Templates) -> list[Result]:
    from evpipeline.simulators.evroam import EVRoamSimulator
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.warehouse import connect

    runs = scale.pick(scale.repeats, 1)
    # Frozen clocks: both backends bootstrap exactly the same records.
    with (running(GreenFluxSimulator(scale=scale.pick(5, 0.5), clock=SimClock(), seed=5)) as gf,
          running(EVRoamSimulator(scale=scale.pick(10, 1), clock=SimClock(), page_size=100, seed=5)) as ev):
        sources = Sources(gf, ev)
        samples: dict[str, list[float]] = {"file serial": [], "lake parallel": [], "lake serial": []}
        per_source: dict[str, list[dict[str, float]]] = {k: [] for k in samples}
        states: dict[str, list[dict[str, Any]]] = {k: [] for k in samples}
        retries: dict[str, int] = {k: 0 for k in samples}
        for attempt in range(runs):
            for kind in samples:  # interleaved
                if kind.startswith("file"):
                    database = str(work / f"sources-{attempt}.duckdb")
                    base.file_copy(Path(database))
                    lake_name = None
                else:
                    lake_name = catalogs.create(base.lake)
                    database = catalogs.url(lake_name)
                try:
                    connect(database).close()  # open/attach and migration check outside the timing
                    with counting_retries() as counter:
                        started = time.perf_counter()
                        took = sources.parallel(database) if kind.endswith("parallel") else sources.serial(database)
                        samples[kind].append(time.perf_counter() - started)
                    retries[kind] += counter.count
                    per_source[kind].append(took)
                    states[kind].append(warehouse_state(database))
                finally:
                    if lake_name is None:
                        Path(database).unlink(missing_ok=True)
                    else:
                        catalogs.drop(lake_name)
        expected = {"sites": len(ev.sites), "stations": len(ev.stations), "locations": gf.n_locations}

    reference = states["file serial"][0]
    complete = len(reference["watermarks"]) == 3 and all(v not in ("None", "") for v in reference["watermarks"].values())
    complete = complete and reference["runs"] == {"greenflux": 1, "evroam": 2}
    rows = reference["rows"]
    complete = complete and rows[EV.SITES] == expected["sites"] and rows[EV.STATIONS] == expected["stations"] \
        and rows[GF.LOCATIONS] == expected["locations"]
    mismatched = [f"{kind} run {i + 1}" for kind, taken in states.items() for i, s in enumerate(taken) if s != reference]
    verified = complete and not mismatched
    file_t, lake_t, lake_serial_t = (statistics.median(samples[k]) for k in ("file serial", "lake parallel", "lake serial"))

    def each(kind: str) -> str:
        return " + ".join(f"{name} {fmt_seconds(statistics.median(t[name] for t in per_source[kind]))}"
                          for name in ("greenflux", "evroam"))

    return [Result(
        "10. lake: two sources at once vs serialized on the file",
        f"{fmt_seconds(lake_t)} DuckLake, 2 threads ({each('lake parallel')}); {retries['lake parallel']} commits redone",
        f"{fmt_seconds(file_t)} DuckDB file, one after the other ({each('file serial')})",
        f"lake / file {_ratio(lake_t, file_t)}", "rows + watermarks complete", verified,
        f"GreenFlux Locations bootstrap ({rows[GF.EVSES]:,} EVSEs, {rows[GF.CONNECTORS]:,} connectors) and "
        f"EVRoam Site + ChargingStation bootstraps ({rows[EV.STATIONS]:,} stations, {rows[EV.CONNECTORS]:,} "
        f"connectors), simulators in this process, median of {runs}; the same two serialized on the lake: "
        f"{fmt_seconds(lake_serial_t)} ({each('lake serial')}; lake serial / file {_ratio(lake_serial_t, file_t)}); "
        f"after every run rows, run log and all 3 watermarks "
        + ("equal the file's and the simulators'" if verified else
           f"**differ**: {', '.join(mismatched) or 'reference incomplete'}; reference {json.dumps(reference)[:200]}"),
        raw={"samples": samples, "per_source": per_source, "retries": retries, "states": states, "expected": expected},
    )]


# -- the measurement ---------------------------------------------------------------------------------


def run(scale: Scale) -> list[Result]:
    try:
        catalogs = Catalogs()
    except Exception as exc:  # no PostgreSQL here: a row saying so, not an error
        return [Result("10. lake vs file", "not measured", "", "", REPORT, None,
                       f"no PostgreSQL on {PG_HOST}:5432 for the DuckLake catalog ({type(exc).__name__}: {str(exc).strip()[:120]})")]
    work = Path(tempfile.mkdtemp(prefix="evp-lake-"))
    # The lake's Parquet files, and what a lake puts under the data directory (BI snapshots), stay in
    # this run's directory, for this process and the cycle's subprocesses alike.
    try:
        with environment(EVPIPELINE_LAKE_DATA=str(work / "lake") + "/", EVPIPELINE_DATA_DIR=str(work / "data")):
            base = Templates.make(work, catalogs)
            results = merge_results(scale, work, catalogs, base)
            results += cycle_results(scale, work, catalogs, base)
            results += parallel_results(scale, work, catalogs, base)
        return results
    finally:
        catalogs.close()
        shutil.rmtree(work, ignore_errors=True)
