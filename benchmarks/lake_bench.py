"""11. DuckLake (PostgreSQL catalog) vs the DuckDB file, same data, same run (issue 16).

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
from typing import Any, TypeVar

from benchmarks import cycle_cost, merge_bench
from benchmarks.harness import Result, Scale, fmt_seconds, running
from evpipeline.sources.evroam import tables as EV
from evpipeline.sources.greenflux import tables as GF
from evpipeline.warehouse import WarehouseResource, Writer

PG_HOST = os.environ.get("EVPIPELINE_BENCH_PG_HOST", "127.0.0.1")
REPORT = "report"  # issue 16 asks for the figures; no target to meet


# -- catalogs: one PostgreSQL database per lake -------------------------------------------------------


class Catalogs:
    """PostgreSQL databases that hold DuckLake catalogs: made here, dropped (FORCE) when done."""

    def __init__(self, host: str = PG_HOST) -> None:
        import psycopg2

        self.host = host
        self.admin = psycopg2.connect(
            host=host, port=5432, user="postgres", dbname="postgres", connect_timeout=3
        )
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


def _detached_template(
    catalogs: Catalogs, prepare: Callable[[str], None], template: str | None = None
) -> str:
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
        import evpipeline.lane.cycle
        import evpipeline.model.assets
        import evpipeline.ndw.push_assets
        import evpipeline.sources.evroam.assets
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
    checkpointed: bool = False  # the file's COMMIT ran an automatic checkpoint


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


def _timed_merge(
    con: Any, delta: Any, small_commits: int, *, lake: bool, wal: Path | None = None
) -> tuple[MergeSample, Any]:
    """The merge, then a few small commits; on the lake one more small commit, untimed, counting
    its catalog queries (printing them is not free)."""
    marks = [time.perf_counter()]
    counts = _merge(con, delta, marks)
    marks.append(time.perf_counter())
    # An empty WAL right after the merge: its COMMIT ran DuckDB's automatic checkpoint (WAL past
    # `checkpoint_threshold`), rewriting the table in the file inside the commit.
    checkpointed = wal is not None and (not wal.exists() or wal.stat().st_size == 0)
    smalls = []
    for _ in range(small_commits):
        begun = time.perf_counter()
        _small_commit(con)
        smalls.append(time.perf_counter() - begun)
    sample = MergeSample(
        marks[2] - marks[0],
        marks[1] - marks[0],
        marks[2] - marks[1],
        statistics.median(smalls),
        checkpointed=checkpointed,
    )
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
    checkpointed: list[bool] = []
    for attempt in range(scale.repeats):  # interleaved, so drift on a shared machine hits both alike
        copy = work / f"merge-{attempt}.duckdb"
        shutil.copyfile(pristine, copy)
        con = connect(str(copy))  # opening and the migration check stay outside the timing
        try:
            sample, written["file"] = _timed_merge(
                con, delta, small_commits, lake=False, wal=Path(f"{copy}.wal")
            )
            checkpointed.append(sample.checkpointed)
        finally:
            con.close()
            copy.unlink()
            Path(f"{copy}.wal").unlink(missing_ok=True)
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
                name,
                "SELECT (SELECT count(*) FROM ducklake_data_file), (SELECT count(*) "
                "FROM ducklake_delete_file)",
            )[0]
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
    same = (c_file.updated, c_file.inserted, c_file.status_changes) == (
        c_lake.updated,
        c_lake.inserted,
        c_lake.status_changes,
    )
    data_files, delete_files = written["files"]
    raw = {
        "file": [s.__dict__ for s in file_s],
        "lake": [s.__dict__ for s in lake_s],
        "load_file_s": load_file,
        "load_lake_s": load_lake,
        "data_files_before": files_before,
        "after_merge": written["files"],
        "file_commit_checkpointed": checkpointed,
    }
    return [
        Result(
            f"11. lake: merge {len(delta):,} rows into {rows:,}",
            f"{fmt_seconds(l_total)} DuckLake (COMMIT {fmt_seconds(l_commit)})",
            f"{fmt_seconds(f_total)} DuckDB file (COMMIT {fmt_seconds(f_commit)})",
            f"lake / file {_ratio(l_total, f_total)}",
            REPORT,
            None if same else False,
            f"measurement 1's write path on a copy of the same loaded table, median of {scale.repeats} "
            f"({c_lake.updated:,} updated, {c_lake.inserted:,} inserted, {c_lake.status_changes:,} "
            "status changes"
            + (
                ""
                if same
                else f"; **the file wrote {c_file.updated:,}/{c_file.inserted:,}/{c_file.status_changes:,}**"
            )
            + ("; the file's COMMIT includes DuckDB's automatic checkpoint" if all(checkpointed) else "")
            + f"); the lake's transaction sent {lake_s[0].queries} queries to its PostgreSQL catalog and "
            f"took the table from {files_before} to {data_files} data files + {delete_files} "
            f"delete files; loading the {rows:,} rows (untimed setup) took {fmt_seconds(load_lake)} "
            f"on the lake vs {fmt_seconds(load_file)}",
            raw=raw,
        ),
        Result(
            "11. lake: one small commit (a watermark alone)",
            f"{fmt_seconds(l_small)} DuckLake",
            f"{fmt_seconds(f_small)} DuckDB file",
            f"lake / file {_ratio(l_small, f_small)}",
            REPORT,
            None,
            f"median of {small_commits} per run, {scale.repeats} runs; what any write pays: "
            f"on the lake {lake_s[-1].small_queries} catalog queries (snapshot, table stats, inlined rows, "
            "the new snapshot's rows), on the file a WAL write; migrating a new warehouse (every "
            f"component's tables, untimed setup) took {fmt_seconds(base.lake_s)} "
            f"on the lake vs {fmt_seconds(base.file_s)}",
        ),
    ]


# -- 2. one lane cycle (measurement 8) ---------------------------------------------------------------


def cycle_script() -> str:
    """Measurement 8's cycle script, with the attach timed on its own first and the reference (a
    full rebuild plus a whole-warehouse copy to a file) left out: only the cycle is compared here."""
    marker = "if sys.argv[5:]"
    if not (cycle_cost.CYCLE.startswith(cycle_cost.COMMON) and marker in cycle_cost.CYCLE):
        raise RuntimeError("benchmarks.cycle_cost.CYCLE changed shape: update lake_bench.cycle_script")
    return (
        cycle_cost.COMMON
        + """
_started = time.perf_counter()
with warehouse.get_connection() as _con:
    pass
attach = time.perf_counter() - _started
"""
        + cycle_cost.CYCLE[len(cycle_cost.COMMON) : cycle_cost.CYCLE.index(marker)]
        + """
# ru_maxrss of a child starts at its parent's peak (Linux keeps the high-water mark across fork and
# exec), and the harness holds 1M-row frames: VmHWM is this process's own.
try:
    rss = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps({"steps": steps, "attach": attach, "rss_mib": rss, "scope": build.scope,
                  "patches": sum(1 for p, o in push.run.results if p.kind == "evse" and o.ok)
                  if push else 0}))
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
def _cycle_fleet(
    sim_scale: float, database: str, seed: int
) -> Iterator[tuple[Any, Any, tuple[str, ...], dict[str, Any], float]]:
    """Measurement 8's simulators and bootstrap (untimed, in a subprocess) on `database`."""
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline.simulators.ndw import NdwSimulator
    from evpipeline.simulators.toolkit import SimClock

    clock = SimClock()
    with (
        running(GreenFluxSimulator(scale=sim_scale, clock=clock, token=cycle_cost.TOKEN, seed=seed)) as gf,
        running(
            NdwSimulator(clock=clock, client_id=cycle_cost.NDW_ID, client_secret=cycle_cost.NDW_SECRET)
        ) as ndw,
    ):
        args = (
            gf.url,
            f"{ndw.url}/ocpi/2.2.1",
            f"{ndw.url}/auth/realms/ndw/protocol/openid-connect/token",
            database,
        )
        started = time.perf_counter()
        setup = cycle_cost._python(cycle_cost.SETUP, *args)
        yield gf, clock, args, setup, time.perf_counter() - started


def cycle_results(scale: Scale, work: Path, catalogs: Catalogs, base: Templates) -> list[Result]:
    script = cycle_script()
    sim_scale = scale.pick(12, 0.3)
    measured = scale.pick(scale.repeats, 1)
    seed = 5
    (work / "cycle").mkdir()
    file_db = str(base.file_copy(work / "cycle" / "warehouse.duckdb"))
    runs = {"file": CycleRun("file"), "lake": CycleRun("lake")}
    with (
        catalogs.fresh(base.lake) as lake_db,
        _cycle_fleet(sim_scale, file_db, seed) as file_fleet,
        _cycle_fleet(sim_scale, lake_db, seed) as lake_fleet,
    ):
        fleets = {"file": file_fleet, "lake": lake_fleet}
        for backend, (_gf, _clock, _args, setup, setup_s) in fleets.items():
            runs[backend].evses, runs[backend].setup_s = setup["evses"], setup_s
        # The same EVSEs change on both fleets (same seed, same data): one warm-up change, then 20 a cycle.
        held = file_fleet[3]["held"]
        picked = random.Random(seed).sample(held, 1 + cycle_cost.CHANGES * measured)
        batches = [picked[:1]] + [
            picked[1 + i * cycle_cost.CHANGES : 1 + (i + 1) * cycle_cost.CHANGES] for i in range(measured)
        ]
        for number, uids in enumerate(batches):
            for backend, (gf, clock, args, _setup, _s) in fleets.items():  # interleaved
                clock.advance(60)
                for uid in uids:
                    gf.set_evse_status(uid, "OUTOFORDER")
                row = cycle_cost._python(script, *args)
                if number:  # the first is the warm-up: the lane in steady state
                    runs[backend].cycles.append(row)
    file_run, lake_run = runs["file"], runs["lake"]
    f_cycle, l_cycle = file_run.median(file_run.seconds), lake_run.median(lake_run.seconds)
    steps = list(file_run.cycles[0]["steps"])

    def per_step(run: CycleRun) -> str:
        return ", ".join(
            f"{s} {fmt_seconds(statistics.median(c['steps'][s] for c in run.cycles))}" for s in steps
        )

    def rss(run: CycleRun) -> float:
        return max(c["rss_mib"] for c in run.cycles)

    same_fleet = (
        file_run.evses == lake_run.evses and file_run.cycles[-1]["patches"] == lake_run.cycles[-1]["patches"]
    )
    return [
        Result(
            f"11. lake: lane cycle, 20 changes, {lake_run.evses:,} EVSEs",
            f"{fmt_seconds(l_cycle)} DuckLake ({per_step(lake_run)}); peak RSS {rss(lake_run):.0f} MiB",
            f"{fmt_seconds(f_cycle)} DuckDB file ({per_step(file_run)}); peak RSS {rss(file_run):.0f} MiB",
            f"lake / file {_ratio(l_cycle, f_cycle)}",
            REPORT,
            None if same_fleet else False,
            f"measurement 8's cycle in a fresh process, median of {measured}; "
            "attaching before it (not in the cycle: the lane daemon attaches once) "
            f"{fmt_seconds(lake_run.median(lambda c: c['attach']))} lake vs "
            f"{fmt_seconds(file_run.median(lambda c: c['attach']))} file; {lake_run.cycles[-1]['patches']} "
            f"PATCHes; bootstrap (untimed setup) {fmt_seconds(lake_run.setup_s)} "
            f"lake vs {fmt_seconds(file_run.setup_s)} file"
            + (
                ""
                if same_fleet
                else f"; **file {file_run.evses:,} EVSEs / {file_run.cycles[-1]['patches']} PATCHes differ**"
            ),
            raw={"file": file_run.__dict__, "lake": lake_run.__dict__},
        )
    ]


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
    logger.setLevel(
        logging.INFO
    )  # the retry line is INFO; the default WARNING would drop it before any handler
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)


_WRITES: dict[str, float] = {}  # source -> seconds inside WarehouseResource.write, this run
_WRITES_LOCK = threading.Lock()
T = TypeVar("T")


class TimedWarehouse(WarehouseResource):
    """The warehouse resource, timing each source's writes (its transactions, redone ones included),
    so a sync's time splits into fetching/validating and writing."""

    def write(self, source: str, run_id: str | None, work: Callable[[Writer], T]) -> T:
        started = time.perf_counter()
        try:
            return super().write(source, run_id, work)
        finally:
            with _WRITES_LOCK:
                _WRITES[source] = _WRITES.get(source, 0.0) + time.perf_counter() - started


@dataclass
class Sources:
    """The two simulators and how to bootstrap each into a warehouse."""

    greenflux: Any
    evroam: Any

    def greenflux_sync(self, database: str) -> None:
        from evpipeline.sources.greenflux.assets import GreenFluxSyncConfig, sync_locations
        from evpipeline.sources.greenflux.client import GreenFluxResource

        client = GreenFluxResource(
            base_url=self.greenflux.url, token=self.greenflux.token, requests_per_second=1000, page_limit=500
        ).client()
        sync_locations(
            TimedWarehouse(database=database),
            client,
            GreenFluxSyncConfig(),
            run_id="bench-greenflux",
            log=logging.getLogger("benchmarks.lake_bench"),
        )

    def evroam_sync(self, database: str) -> None:
        from evpipeline.sources.evroam.assets import EVRoamSyncConfig, pull
        from evpipeline.sources.evroam.client import EVRoamResource

        client = EVRoamResource(
            base_url=f"{self.evroam.url}/consumer/api",
            subscription_key=self.evroam.subscription_key,
            requests_per_second=1000,
        ).client()
        warehouse = TimedWarehouse(database=database)
        for stream in ("Site", "ChargingStation"):
            pull(
                warehouse,
                client,
                stream,
                EVRoamSyncConfig(),
                run_id=f"bench-evroam-{stream}",
                log=logging.getLogger("benchmarks.lake_bench"),
            )

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

        threads = [
            threading.Thread(target=one, args=("greenflux", self.greenflux_sync)),
            threading.Thread(target=one, args=("evroam", self.evroam_sync)),
        ]
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
        marks = {
            f"{s}/{st}": str(w)
            for s, st, w in con.execute(
                "SELECT source, stream, watermark FROM ops.sync_state WHERE source IN ('greenflux', "
                "'evroam') ORDER BY 1, 2"
            ).fetchall()
        }
        runs = dict(
            con.execute(
                "SELECT source, count(*) FROM ops.runs WHERE source IN ('greenflux', 'evroam') GROUP BY 1"
            ).fetchall()
        )
    return {"rows": counts, "watermarks": marks, "runs": runs}


def parallel_results(scale: Scale, work: Path, catalogs: Catalogs, base: Templates) -> list[Result]:
    from evpipeline.simulators.evroam import EVRoamSimulator
    from evpipeline.simulators.greenflux import GreenFluxSimulator
    from evpipeline.simulators.toolkit import SimClock
    from evpipeline.warehouse import connect

    runs = scale.pick(scale.repeats, 1)
    # Frozen clocks: both backends bootstrap exactly the same records.
    with (
        running(GreenFluxSimulator(scale=scale.pick(5, 0.5), clock=SimClock(), seed=5)) as gf,
        running(EVRoamSimulator(scale=scale.pick(10, 1), clock=SimClock(), page_size=100, seed=5)) as ev,
    ):
        sources = Sources(gf, ev)
        samples: dict[str, list[float]] = {"file serial": [], "lake parallel": [], "lake serial": []}
        per_source: dict[str, list[dict[str, float]]] = {k: [] for k in samples}
        states: dict[str, list[dict[str, Any]]] = {k: [] for k in samples}
        retries: dict[str, int] = {k: 0 for k in samples}
        writing: dict[str, list[dict[str, float]]] = {k: [] for k in samples}
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
                    _WRITES.clear()
                    with counting_retries() as counter:
                        started = time.perf_counter()
                        took = (
                            sources.parallel(database)
                            if kind.endswith("parallel")
                            else sources.serial(database)
                        )
                        samples[kind].append(time.perf_counter() - started)
                    retries[kind] += counter.count
                    per_source[kind].append(took)
                    writing[kind].append(dict(_WRITES))
                    states[kind].append(warehouse_state(database))
                finally:
                    if lake_name is None:
                        Path(database).unlink(missing_ok=True)
                    else:
                        catalogs.drop(lake_name)
        expected = {"sites": len(ev.sites), "stations": len(ev.stations), "locations": gf.n_locations}

    reference = states["file serial"][0]
    complete = len(reference["watermarks"]) == 3 and all(
        v not in ("None", "") for v in reference["watermarks"].values()
    )
    complete = complete and reference["runs"] == {"greenflux": 1, "evroam": 2}
    rows = reference["rows"]
    complete = (
        complete
        and rows[EV.SITES] == expected["sites"]
        and rows[EV.STATIONS] == expected["stations"]
        and rows[GF.LOCATIONS] == expected["locations"]
    )
    mismatched = [
        f"{kind} run {i + 1}" for kind, taken in states.items() for i, s in enumerate(taken) if s != reference
    ]
    verified = complete and not mismatched
    file_t, lake_t, lake_serial_t = (
        statistics.median(samples[k]) for k in ("file serial", "lake parallel", "lake serial")
    )

    def each(kind: str) -> str:
        """Each source's own wall time, and of it the time inside its warehouse transactions."""
        return ", ".join(
            f"{name} {fmt_seconds(statistics.median(t[name] for t in per_source[kind]))} "
            f"(writing {fmt_seconds(statistics.median(w.get(name, 0.0) for w in writing[kind]))})"
            for name in ("greenflux", "evroam")
        )

    return [
        Result(
            "11. lake: two sources at once vs serialized on the file",
            f"{fmt_seconds(lake_t)} DuckLake, 2 threads ({each('lake parallel')}); "
            f"{retries['lake parallel']} commits redone",
            f"{fmt_seconds(file_t)} DuckDB file, one after the other ({each('file serial')})",
            f"lake / file {_ratio(lake_t, file_t)}",
            "rows + watermarks complete",
            verified,
            f"GreenFlux Locations bootstrap ({rows[GF.EVSES]:,} EVSEs, {rows[GF.CONNECTORS]:,} "
            f"connectors) and EVRoam Site + ChargingStation bootstraps ({rows[EV.STATIONS]:,} stations, "
            f"{rows[EV.CONNECTORS]:,} connectors), simulators in this process, median of {runs}; "
            f"the same two serialized on the lake: {fmt_seconds(lake_serial_t)} ({each('lake serial')}; "
            f"lake serial / file {_ratio(lake_serial_t, file_t)}); after every run rows, "
            "run log and all 3 watermarks "
            + (
                "equal the file's and the simulators'"
                if verified
                else f"**differ**: {', '.join(mismatched) or 'reference incomplete'}; "
                f"reference {json.dumps(reference)[:200]}"
            ),
            raw={
                "samples": samples,
                "per_source": per_source,
                "writing": writing,
                "retries": retries,
                "states": states,
                "expected": expected,
            },
        )
    ]


# -- the measurement ---------------------------------------------------------------------------------


def run(scale: Scale) -> list[Result]:
    from evpipeline.warehouse.backend import extension_path

    try:
        for extension in ("ducklake", "postgres_scanner"):
            extension_path(extension)
        catalogs = Catalogs()
    except Exception as exc:  # no DuckLake wheels or no PostgreSQL here: a row saying so, not an error
        return [
            Result(
                "11. lake vs file",
                "not measured",
                "",
                "",
                REPORT,
                None,
                f"needs the DuckLake extensions and PostgreSQL on {PG_HOST}:5432 for the catalog "
                f"({type(exc).__name__}: {str(exc).strip()[:160]})",
            )
        ]
    work = Path(tempfile.mkdtemp(prefix="evp-lake-"))
    # The lake's Parquet files, and what a lake puts under the data directory (BI snapshots), stay in
    # this run's directory, for this process and the cycle's subprocesses alike.
    try:
        with environment(
            EVPIPELINE_LAKE_DATA=str(work / "lake") + "/", EVPIPELINE_DATA_DIR=str(work / "data")
        ):
            base = Templates.make(work, catalogs)
            results = merge_results(scale, work, catalogs, base)
            if (
                scale.quick
            ):  # two bootstraps and four cycles in fresh processes: a minute and a half even small
                results.append(
                    Result(
                        "11. lake: lane cycle",
                        "not measured (--quick)",
                        "",
                        "",
                        REPORT,
                        None,
                        "full scale only: measurement 8's cycle on both backends",
                    )
                )
            else:
                results += cycle_results(scale, work, catalogs, base)
            results += parallel_results(scale, work, catalogs, base)
        return results
    finally:
        catalogs.close()
        shutil.rmtree(work, ignore_errors=True)
