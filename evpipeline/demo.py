"""`evpipeline demo`: the whole pipeline once, through Dagster, on the bundled simulators.

It runs the same definitions the schedules and sensors use: a bootstrap sync of every source,
some simulated time with changes and push notifications, the push sensor, a delta sync, then
the downstream jobs (canonical model, NDW export) that exist; and prints what landed where.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evpipeline import simulators


@dataclass
class DemoReport:
    data_dir: Path
    seconds: float = 0.0
    steps: list[tuple[str, float, bool]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    outputs: list[str] = field(default_factory=list)


def run_demo(data_dir: str | Path = "data", scale: float = 1.0, say: Callable[[str], None] = print) -> DemoReport:
    started = time.monotonic()
    data = Path(data_dir).expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    os.environ.pop("EVPIPELINE_WAREHOUSE", None)
    report = DemoReport(data)
    # The demo's simulated TomTom key allows 100 queries/s (TomTom sells keys with higher QPS); the
    # client still stays under whatever TOMTOM_QPS says. Zaptec keeps its fixed 10 requests/s.
    os.environ.setdefault("TOMTOM_QPS", "100")

    sims = simulators.start_all(scale=scale)
    os.environ.update(simulators.env_for(sims))
    say(f"simulators: {', '.join(f'{n} {s.url}' for n, s in sims.items())}")

    import dagster as dg

    from evpipeline.definitions import build_resources, defs
    from evpipeline.serving import BackgroundServer
    from evpipeline.sources.evroam.push import create_webhook_app
    from evpipeline.warehouse import connect

    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources()
    with dg.build_resources(resources) as initialized:
        inbox, evroam = initialized.inbox.open(), initialized.evroam.client()
    receiver = BackgroundServer(create_webhook_app(inbox, os.environ["EVROAM_WEBHOOK_KEY"])).start()
    sync_all = defs.resolve_job_def("sync_all")
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        t = time.monotonic()
        result = fn()
        ok = bool(getattr(result, "success", True))
        report.steps.append((name, time.monotonic() - t, ok))
        say(f"  {'ok ' if ok else 'FAILED'} {name} ({time.monotonic() - t:.1f}s)")
        if not ok:
            raise SystemExit(f"demo step failed: {name}")
        return result

    try:
        say("bootstrap: full pull of every source")
        step("sync_all (bootstrap)", lambda: sync_all.execute_in_process(instance=instance, run_config=quiet))

        say("push: subscribe the EVRoam webhook, let 5 simulated minutes pass, run the push sensor")
        evroam.subscribe(f"{receiver.url}/api/evroam_listener?code={os.environ['EVROAM_WEBHOOK_KEY']}")
        sims["evroam"].wait_validated()  # type: ignore[attr-defined]
        for sim in sims.values():
            sim.advance(300)
        from evpipeline.sources.evroam.push import evroam_push_sensor

        sensor_result = evroam_push_sensor(
            dg.build_sensor_context(instance=instance, resources={"evroam": resources["evroam"], "inbox": resources["inbox"]})
        )
        for request in sensor_result.run_requests or []:
            step(
                f"push run {request.tags.get('evroam/push', '')}",
                lambda request=request: sync_all.execute_in_process(
                    instance=instance, run_config={**quiet, **request.run_config}, asset_selection=request.asset_selection
                ),
            )

        say("delta: what changed since the watermark")
        step("sync_all (delta)", lambda: sync_all.execute_in_process(instance=instance, run_config=quiet))
        for name, fn in downstream_steps(defs, instance, quiet):
            step(name, fn)
    finally:
        receiver.stop()
        for sim in sims.values():
            sim.stop()

    with connect(os.environ["EVPIPELINE_WAREHOUSE"], read_only=True) as con:
        for schema, table in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') AND table_type = 'BASE TABLE' ORDER BY 1, 2"
        ).fetchall():
            report.tables[f"{schema}.{table}"] = con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
        report.quarantined = report.tables.get("ops.quarantine", 0)
    report.outputs = [str(p) for p in sorted(data.glob("exports/**/*")) if p.is_file()]
    report.seconds = time.monotonic() - started
    return report


def downstream_steps(defs: Any, instance: Any, run_config: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
    """After the syncs (which rebuilt the canonical model and the BI snapshot): NDW delivery."""
    from evpipeline.timeutil import utcnow

    today = utcnow().strftime("%Y-%m-%d")
    export = defs.resolve_job_def("ndw_daily_export")
    push = defs.resolve_job_def("ndw_push_full")
    return [
        (f"ndw_daily_export {today}", lambda: export.execute_in_process(instance=instance, partition_key=today, run_config=run_config)),
        ("ndw_push_full (PUT/PATCH/DELETE to NDW)", lambda: push.execute_in_process(instance=instance, run_config=run_config)),
        ("NDW crawls our OCPI pull server", crawl_pull_server),
    ]


def crawl_pull_server() -> Any:
    """Serve the BI snapshot as NDW's pull server would see it, and crawl it with NDW's client (OAuth2)."""
    from evpipeline.ndw.server import app_from_env
    from evpipeline.serving import BackgroundServer
    from evpipeline.simulators.ndw import crawl

    with BackgroundServer(app_from_env()) as server:
        oauth = (f"{server.url}/oauth/token", os.environ["OCPI_CLIENT_ID"], os.environ["OCPI_CLIENT_SECRET"])
        locations = crawl(server.url, oauth=oauth, module="locations", limit=100)
        tariffs = crawl(server.url, oauth=oauth, module="tariffs")
    exported = sorted(Path(os.environ["EVPIPELINE_DATA_DIR"], "exports", "ndw").glob("*/locations.json"))[-1]
    import json

    same = [o["id"] for o in locations.objects] == [o["id"] for o in json.loads(exported.read_text())]
    print(f"     crawled {len(locations.objects)} locations in {locations.pages} pages and {len(tariffs.objects)} tariffs; "
          f"{'identical to' if same else 'DIFFERENT from'} the daily export")
    return type("Crawl", (), {"success": same})()


def print_report(report: DemoReport, say: Callable[[str], None] = print) -> None:
    say("")
    say(f"evpipeline demo finished in {report.seconds:.1f}s")
    say(f"warehouse: {os.environ['EVPIPELINE_WAREHOUSE']}")
    width = max((len(t) for t in report.tables), default=10)
    for table, rows in report.tables.items():
        say(f"  {table:<{width}}  {rows:>8} rows")
    say(f"quarantined rows: {report.quarantined} (ops.quarantine, with reasons and raw payloads)")
    if report.outputs:
        say("exports:")
        for path in report.outputs:
            say(f"  {path}")
    say("explore: `make dev` opens the Dagster UI on the same simulators; BI tools read data/snapshots/warehouse.duckdb (docs/mart.md).")
