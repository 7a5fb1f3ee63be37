"""`evpipeline demo`: the whole pipeline once, through Dagster, on the bundled simulators.

It runs the same jobs the schedules and sensors start: a bootstrap sync of every source, the
operator reference data, a full build of the canonical model and a full push to NDW; then five
simulated minutes of changes (statuses flip, Zaptec publishes messages, EVRoam pushes
notifications to our webhook) carried to NDW by the real-time lane within seconds; then the BI
snapshot, today's NDW export and NDW crawling our pull server. It prints what landed where.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evpipeline import simulators
from evpipeline.dagster_home import DEFAULT_HOME
from evpipeline.dagster_home import instance as dagster_instance
from evpipeline.progress import duration
from evpipeline.warehouse.backend import LAKE_PREFIX, redact
from evpipeline.warehouse.rows import scalar

HEARTBEAT_SECONDS = 15.0  # a step running longer says so this often (progress lines come in between)
LANE_SECONDS = 8.0  # long enough for every feed's first cycle (GreenFlux polls every 30 s, at start)


@dataclass(frozen=True)
class FailedCheck:
    """An asset check that did not pass in one of the demo's runs, with the check's own figures."""

    step: str
    asset: str
    check: str
    severity: str  # WARN or ERROR
    figures: dict[str, Any]

    def describe(self) -> str:
        shown = ", ".join(f"{name} {value}" for name, value in self.figures.items())
        return f"{self.asset} {self.check} ({self.severity}){': ' + shown if shown else ''}  [{self.step}]"


@dataclass
class DemoReport:
    data_dir: Path
    dagster_home: Path = Path(DEFAULT_HOME)
    seconds: float = 0.0
    steps: list[tuple[str, float, bool]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    outputs: list[str] = field(default_factory=list)
    checks_evaluated: int = 0
    failed_checks: list[FailedCheck] = field(default_factory=list)


def failed_checks(step: str, result: Any) -> tuple[int, list[FailedCheck]]:
    """(asset checks a run evaluated, those that did not pass). A run succeeds whatever its non-blocking
    checks say, so the demo reads them itself; figures are the check's scalar metadata."""
    evaluations = (
        result.get_asset_check_evaluations() if hasattr(result, "get_asset_check_evaluations") else []
    )
    failed = []
    for evaluation in evaluations:
        if evaluation.passed:
            continue
        figures = {
            name: value.value
            for name, value in evaluation.metadata.items()
            if isinstance(value.value, int | float)
            or (isinstance(value.value, str) and len(value.value) <= 80 and "\n" not in value.value)
        }
        if evaluation.description:
            figures = {"description": evaluation.description, **figures}
        failed.append(
            FailedCheck(
                step,
                evaluation.asset_key.to_user_string(),
                evaluation.check_name,
                evaluation.severity.value,
                figures,
            )
        )
    return len(evaluations), failed


def run_demo(
    data_dir: str | Path = "data",
    scale: float = 1.0,
    say: Callable[[str], None] = print,
    dagster_home: str | Path = DEFAULT_HOME,
) -> DemoReport:
    """The whole pipeline once; its runs are recorded in `dagster_home`,
    the instance `evpipeline dev` shows."""
    started = time.monotonic()
    data = Path(data_dir).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    # A DuckLake warehouse (EVPIPELINE_WAREHOUSE=ducklake:...) is used as configured; otherwise the
    # demo's DuckDB file lives in its data directory.
    if not os.environ.get("EVPIPELINE_WAREHOUSE", "").startswith(LAKE_PREFIX):
        os.environ.pop("EVPIPELINE_WAREHOUSE", None)
    from evpipeline import settings

    # The demo always runs on simulators it starts itself: configured endpoints and keys are set
    # aside for this process, said in one line (names only, never values).
    configured = sorted(
        name for name in settings.DEV if os.environ.get(name) and os.environ[name] != settings.DEV[name]
    )
    if configured:
        say(
            f"the demo starts its own simulators and ignores the configured {', '.join(configured)} "
            "(`evpipeline sync SOURCE` runs against configured endpoints)"
        )
        for name in configured:
            del os.environ[name]
    # The demo's simulated TomTom key allows 100 queries/s (TomTom sells keys with higher QPS); the
    # client still stays under whatever TOMTOM_QPS says. Zaptec keeps its fixed 10 requests/s. Set
    # before the defaults, which would otherwise fill in the deployment's 20.
    os.environ.setdefault("TOMTOM_QPS", "100")
    settings.apply_dev_defaults()  # the demo runs on the simulators, with their development keys
    report = DemoReport(data, Path(dagster_home).expanduser().resolve())

    sims = simulators.start_all(scale=scale)
    os.environ.update(simulators.env_for(sims))
    say(f"simulators: {', '.join(f'{n} {s.url}' for n, s in sims.items())}")

    import dagster as dg

    from evpipeline.definitions import defs
    from evpipeline.lane.assets import lane_loop
    from evpipeline.run_config import op_config
    from evpipeline.serving import BackgroundServer
    from evpipeline.sources.evroam.push import create_webhook_app
    from evpipeline.warehouse import connect

    instance = dagster_instance(dagster_home)  # `make dev`'s UI shows these runs afterwards
    os.environ["DAGSTER_HOME"] = instance.root_directory  # and whatever this process starts uses it too
    say(
        f"dagster runs recorded in {os.environ['DAGSTER_HOME']} (`{dev_command(data, dagster_home)}` shows "
        "them)"
    )
    with dg.build_resources(dict(defs.resources or {})) as initialized:
        inbox, evroam = initialized.inbox.open(), initialized.evroam.client()
    receiver = BackgroundServer(create_webhook_app(inbox, os.environ["EVROAM_WEBHOOK_KEY"])).start()
    sync_all = defs.resolve_job_def("sync_all")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t = time.monotonic()
        with heartbeat(name, say):
            result = fn()
        ok = bool(getattr(result, "success", True))
        report.steps.append((name, time.monotonic() - t, ok))
        evaluated, failed = failed_checks(name, result)
        report.checks_evaluated += evaluated
        report.failed_checks += failed
        note = f"; {len(failed)} asset check(s) failed (below)" if failed else ""
        say(f"  {'ok ' if ok else 'FAILED'} {name} ({time.monotonic() - t:.1f}s){note}")
        for check in failed:
            say(f"       check failed: {check.describe()}")
        if not ok:
            raise SystemExit(f"demo step failed: {name}")
        return result

    def run(job: str, **kwargs: Any) -> Any:
        config = {**quiet, **kwargs.pop("run_config", {})}
        return defs.resolve_job_def(job).execute_in_process(instance=instance, run_config=config, **kwargs)

    try:
        say("bootstrap: full pull of every source, the operator reference data, the canonical model, NDW")
        step("sync_all (bootstrap)", lambda: sync_all.execute_in_process(instance=instance, run_config=quiet))
        step("reference_data (tariffs, hours, energy mix the CPO supplies)", lambda: run("reference_data"))
        step("mart_reconcile (full build of the canonical model)", lambda: run("mart_reconcile"))
        step("ndw_push_full (NDW gets every exportable location and tariff)", lambda: run("ndw_push_full"))
        step(
            "datex2_status_snapshot (the DATEX II receiver gets the static table and every status)",
            lambda: run("datex2_status_snapshot"),
        )

        say(
            "real time: subscribe the EVRoam webhook, let 5 simulated minutes of changes happen, run the lane"
        )
        evroam.subscribe(f"{receiver.url}/api/evroam_listener?code={os.environ['EVROAM_WEBHOOK_KEY']}")
        sims["evroam"].wait_validated()  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
        patches_before = len(sims["ndw"].accepted_pushes())  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
        deliveries_before = len(sims["datex2"].deliveries())  # type: ignore[attr-defined]  # that simulator, as above
        for sim in sims.values():
            sim.advance(300)
        lane = op_config([lane_loop], max_seconds=LANE_SECONDS, report_every_seconds=5.0)
        step(
            f"realtime_lane ({LANE_SECONDS:.0f} s: messages, push files, polls -> mart -> NDW)",
            lambda: run("realtime_lane", run_config=lane),
        )
        sent = sims["ndw"].accepted_pushes()[patches_before:]  # type: ignore[attr-defined]  # start_all() types its values as SimServer; this key is that simulator
        say(
            f"     NDW accepted {sum(1 for p in sent if p.method == 'PATCH')} status PATCH(es) and "
            f"{sum(1 for p in sent if p.method == 'PUT')} PUT(s) from the lane"
        )
        deltas = [d for d in sims["datex2"].deliveries()[deliveries_before:] if d.protocol == "deltaPush"]  # type: ignore[attr-defined]  # that simulator, as above
        say(
            f"     the DATEX II receiver accepted {sum(d.accepted for d in deltas)} of {len(deltas)} "
            "deltaPush(es) from the lane"
        )

        say("delta: what changed since the watermark, then the daily deliveries")
        step("sync_all (delta)", lambda: sync_all.execute_in_process(instance=instance, run_config=quiet))
        step("mart_update (incremental build of what the delta changed)", lambda: run("mart_update"))
        step("bi_publish (BI snapshot)", lambda: run("bi_publish"))
        for name, fn in downstream_steps(defs, instance, quiet):
            step(name, fn)
    finally:
        receiver.stop()
        for sim in sims.values():
            sim.stop()
        from evpipeline.warehouse import WarehouseResource

        if left := settle_inbox(inbox, WarehouseResource(database=os.environ["EVPIPELINE_WAREHOUSE"])):
            say(
                f"     {left} push delivery(ies) the lane did not reach discarded: "
                "they name this demo's stopped simulators"
            )

    with connect(os.environ["EVPIPELINE_WAREHOUSE"], read_only=True) as con:
        for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema NOT IN ('information_schema', "
            "'pg_catalog') AND table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall():
            report.tables[f"{schema}.{table}"] = scalar(
                con.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            )
        report.quarantined = report.tables.get("ops.quarantine", 0)
    report.outputs = [str(p) for p in sorted(data.glob("exports/**/*")) if p.is_file()]
    report.seconds = time.monotonic() - started
    return report


def settle_inbox(inbox: Any, warehouse: Any) -> int:
    """Discard the push deliveries the demo's lane did not merge, and move the lane's cursors past them.

    They name files on (or came from) the demo's simulators, which stop with it: a later `make dev`
    lane would only refuse or fail them. Each is marked `discarded` in the inbox with the reason."""
    from evpipeline.sources.feeds import InboxFeed

    discarded = 0
    for source in inbox_sources(inbox):
        feed = InboxFeed(source, inbox, warehouse)
        newest = inbox.newest_id(source)
        if newest <= feed.cursor():
            continue
        for message in inbox.after(source, feed.cursor(), limit=1_000_000):
            inbox.mark(
                message.id,
                "discarded",
                "the demo ended before its lane merged it (its simulators are stopped)",
            )
            discarded += 1
        with warehouse.writer(source) as writer:
            feed.advance(writer, newest)
        feed.committed(newest)
    return discarded


def inbox_sources(inbox: Any) -> list[str]:
    from evpipeline.sources import registry

    return [source.name for source in registry.live() if "inbox" in source.feed_resources]


@contextmanager
def heartbeat(name: str, say: Callable[[str], None], every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Say every `every` seconds that a step is still running (a large `--scale` is never silent)."""
    stop = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            say(f"     ... {name} still running ({duration(time.monotonic() - started)})")

    thread = threading.Thread(target=beat, daemon=True, name="demo-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def downstream_steps(
    defs: Any, instance: Any, run_config: dict[str, Any]
) -> list[tuple[str, Callable[[], Any]]]:
    """After the syncs, the model and the BI snapshot: the daily NDW deliveries."""
    from evpipeline.timeutil import utcnow

    today = utcnow().strftime("%Y-%m-%d")
    export = defs.resolve_job_def("ndw_daily_export")
    push = defs.resolve_job_def("ndw_push_full")
    return [
        (
            f"ndw_daily_export {today}",
            lambda: export.execute_in_process(instance=instance, partition_key=today, run_config=run_config),
        ),
        (
            "ndw_push_full (PUT/PATCH/DELETE to NDW)",
            lambda: push.execute_in_process(instance=instance, run_config=run_config),
        ),
        ("NDW crawls our OCPI pull server", crawl_pull_server),
    ]


def crawl_pull_server() -> Any:
    """Serve the BI snapshot as NDW's pull server would see it, and crawl it with NDW's client (OAuth2)."""
    from evpipeline.ndw.server import app_from_env
    from evpipeline.serving import BackgroundServer
    from evpipeline.simulators.ndw import crawl

    with BackgroundServer(app_from_env(development=True)) as server:
        oauth = (f"{server.url}/oauth/token", os.environ["OCPI_CLIENT_ID"], os.environ["OCPI_CLIENT_SECRET"])
        locations = crawl(server.url, oauth=oauth, module="locations", limit=100)
        tariffs = crawl(server.url, oauth=oauth, module="tariffs")
    exported = sorted(Path(os.environ["EVPIPELINE_DATA_DIR"], "exports", "ndw").glob("*/locations.json"))[-1]
    import json

    same = [o["id"] for o in locations.objects] == [o["id"] for o in json.loads(exported.read_text())]
    print(
        f"     crawled {len(locations.objects)} locations in {locations.pages} "
        f"pages and {len(tariffs.objects)} tariffs; {'identical to' if same else 'DIFFERENT from'} "
        "the daily export"
    )
    return type("Crawl", (), {"success": same})()


def print_report(report: DemoReport, say: Callable[[str], None] = print) -> None:
    say("")
    say(f"evpipeline demo finished in {report.seconds:.1f}s")
    say(f"warehouse: {redact(os.environ['EVPIPELINE_WAREHOUSE'])}")
    width = max((len(t) for t in report.tables), default=10)
    for table, rows in report.tables.items():
        say(f"  {table:<{width}}  {rows:>8} rows")
    say(f"quarantined rows: {report.quarantined} (ops.quarantine, with reasons and raw payloads)")
    if report.failed_checks:
        say(f"asset checks: {len(report.failed_checks)} of {report.checks_evaluated} failed:")
        for check in report.failed_checks:
            say(f"  {check.describe()}")
    else:
        say(f"asset checks: all {report.checks_evaluated} passed")
    if report.outputs:
        say("exports:")
        for path in report.outputs:
            say(f"  {path}")
    from evpipeline.model.snapshot import SNAPSHOT_NAME, snapshot_dir

    say(
        f"explore: `{dev_command(report.data_dir, report.dagster_home)}` opens the Dagster UI on these runs "
        f"and this data; BI tools read {snapshot_dir(os.environ['EVPIPELINE_WAREHOUSE']) / SNAPSHOT_NAME} "
        "(docs/mart.md)."
    )


def dev_command(data_dir: Path, dagster_home: str | Path) -> str:
    """How to see a demo's runs and data in the UI: `make dev` when the demo used its defaults, else the
    `evpipeline dev` line naming the data directory and Dagster home it used."""
    default_data = Path("data").resolve()  # `make dev` (without EVPIPELINE_DATA_DIR set)
    default_home = Path(DEFAULT_HOME).expanduser().resolve()
    data, home = Path(data_dir).expanduser().resolve(), Path(dagster_home).expanduser().resolve()
    if data == default_data and home == default_home:
        return "make dev"
    return f"evpipeline dev --data-dir {data} --dagster-home {home}"
