"""evpipeline: EV-charging data from EVRoam, GreenFlux, Zaptec and TomTom to a DuckDB warehouse and NDW.

Errors are one line on stderr and a non-zero exit (1: the work failed, 2: usage or missing
settings); `--verbose` adds the trace.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class CliError(Exception):
    """A problem the user can fix, told in one line (no trace unless --verbose); `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- checks every command shares ----------------------------------------------------------------


def positive_number(text: str) -> float:
    """An argparse type: a finite number above zero (`--scale`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, e.g. 0.5 or 2 (got {text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, e.g. 0.5 or 2 (got {text!r})")
    return value


def non_negative_number(text: str) -> float:
    """An argparse type: a finite number of zero or more (`--advance-every`, where 0 means never)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more (got {text!r})") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more (got {text!r})")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero (`--page-cap`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0 (got {text!r})") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0 (got {text!r})")
    return value


def iso_day(text: str) -> str:
    """An argparse type: a calendar day written YYYY-MM-DD (`rebuild-export`'s partition)."""
    import datetime as dt

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, e.g. 2026-12-01 (got {text!r})")
    try:
        dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text} is no calendar day ({exc})") from None
    return text


def usable_data_dir(path: str | os.PathLike[str]) -> Path:
    """The data directory, created if missing; refused in one line when it is no directory or not writable."""
    data = Path(path).expanduser().resolve()
    if data.exists() and not data.is_dir():
        raise CliError(f"--data-dir {data}: not a directory")
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--data-dir {data}: cannot create it ({exc.strerror or exc})") from exc
    probe = data / f".evpipeline-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CliError(f"--data-dir {data}: not writable ({exc.strerror or exc})") from exc
    return data


def ensure_ports_free(ports: Iterable[tuple[str, int, str]]) -> None:
    """Refuse, in one line, to start when a port we would listen on is taken (`(host, port, what)`)."""
    for host, port, what in ports:
        if not port:
            continue  # 0: the system picks a free one
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(
                socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
            )  # as uvicorn does: TIME_WAIT is no conflict
            try:
                s.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CliError(
                        f"port {port} on {host} ({what}) is already in use: stop what listens there "
                        "or choose another port"
                    ) from exc
                raise CliError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from exc


# -- commands -----------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from evpipeline import progress
    from evpipeline.demo import print_report, run_demo

    data = usable_data_dir(args.data_dir)
    progress.to_terminal(sys.stdout)  # long pulls and writes say how far they are
    report = run_demo(
        data, args.scale, say=lambda line: print(line, flush=True), dagster_home=args.dagster_home
    )
    print_report(report)
    return 0


def _sync(args: argparse.Namespace) -> int:
    """One source's job (or its full pull) against the configured endpoints, through Dagster."""
    from evpipeline import progress, settings

    data = usable_data_dir(args.data_dir)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    settings.apply_defaults()  # deployment defaults only: never the simulators' values
    runs = source_runs(args.source, full=args.full)
    defs, variables = source_job_definitions(args.source)
    settings.require(variables)  # names every missing one; exit 2
    progress.to_terminal(sys.stderr)
    failed = False
    for run in runs:
        ok, line = run_job(defs, run.job, verbose=args.verbose, hint_variables=variables)
        print(line, file=sys.stdout if ok else sys.stderr, flush=True)
        if not ok:
            failed = True
            break  # a later run of the source (Zaptec's state poll) needs what the failed one writes
    return 1 if failed else 0


def source_runs(source: str, *, full: bool) -> list[Any]:
    """The runs `sync SOURCE [--full]` starts: the source's full pull, or every other run, as declared."""
    from evpipeline.sources import registry

    declared = registry.source(source).runs
    runs = [run for run in declared if run.full == full]
    if not runs:
        plain = ", ".join(run.job for run in declared)
        raise CliError(
            f"{source} declares no full pull: its sync ({plain}) already reads everything; "
            f"run `evpipeline sync {source}`",
            code=2,
        )
    return runs


def source_job_definitions(source: str) -> tuple[Any, list[str]]:
    """The source's own definitions plus the warehouse, and the environment variables they read.

    A sync needs only its source's settings, so it does not load the whole code location (which
    requires every source's secrets and NDW's)."""
    import dagster as dg

    from evpipeline.sources import registry
    from evpipeline.warehouse import WarehouseResource

    source_defs = registry.source(source).definitions
    shared = dg.Definitions(
        resources={"warehouse": WarehouseResource(database=dg.EnvVar("EVPIPELINE_WAREHOUSE"))},
        executor=dg.in_process_executor,
    )
    defs = dg.Definitions.merge(source_defs, shared)
    variables = [
        value.env_var_name
        for resource in (defs.resources or {}).values()
        for value in vars(resource).values()
        if isinstance(value, dg.EnvVar)
    ]
    return defs, sorted(set(variables))


def run_job(
    defs: Any, job_name: str, *, verbose: bool = False, hint_variables: Sequence[str] = ()
) -> tuple[bool, str]:
    """Execute one job in process (DAGSTER_HOME's instance if set, else an ephemeral one): (ok, one line)."""
    import dagster as dg

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def(job_name)
    # Dagster's console logger prints step failures with their stack: only with --verbose.
    level = "INFO" if verbose else "CRITICAL"
    run_config = {**(_default_run_config(job)), "loggers": {"console": {"config": {"log_level": level}}}}
    started = time.monotonic()
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    seconds = time.monotonic() - started
    if result.success:
        return True, f"{job_name}: ok in {seconds:.1f} s — {summarize(result)}"
    error = step_error(result)
    if verbose and error is not None:
        print(error.to_string(), file=sys.stderr)
    cls, message = (
        (error.cls_name, first_line(error.message, error.cls_name))
        if error is not None
        else ("Failure", "see the run log")
    )
    line = f"{job_name} failed after {seconds:.1f} s: {cls}: {message}{hint(cls, hint_variables)}"
    return False, line + ("" if verbose else " (--verbose for the trace)")


def first_line(message: str, cls_name: str) -> str:
    """The first line of an error message, without the `module.Class: ` Dagster prefixes it with."""
    line = (message.strip().splitlines() or [""])[0]
    prefix = line.split(": ", 1)
    return prefix[1] if len(prefix) == 2 and prefix[0].split(".")[-1] == cls_name else line


def _default_run_config(job: Any) -> dict[str, Any]:
    """The config a job was declared with (e.g. `mode: full`), kept when we add logger settings."""
    partial = getattr(job, "run_config", None)
    return dict(partial) if isinstance(partial, dict) else {}


def summarize(result: Any) -> str:
    """`greenflux/locations +120 ~30 -2, ..., 0 quarantined` from the run's materializations."""
    parts, quarantined = [], 0
    for event in result.get_asset_materialization_events():
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        key = event.asset_key.to_user_string() if event.asset_key else "?"
        if "inserted" in meta:
            parts.append(f"{key} +{meta['inserted']} ~{meta.get('updated', 0)} -{meta.get('deleted', 0)}")
        else:
            parts.append(f"{key} {meta.get('fetched', 0)} fetched")
        quarantined += int(meta.get("quarantined") or 0)
    return ", ".join(parts + [f"{quarantined} quarantined"])


def step_error(result: Any) -> Any:
    """The error of the first failed step (the user's exception, not Dagster's wrapper)."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            while (
                error is not None
                and error.cls_name
                and error.cls_name.startswith("DagsterExecution")
                and error.cause
            ):
                error = error.cause
            return error
    return None


def hint(cls_name: str, variables: Sequence[str]) -> str:
    """What to check for the usual failures: credentials on 401/403, the endpoint when unreachable."""
    from evpipeline import settings

    if cls_name == "AuthError":
        names = [v for v in variables if v in settings.secret_names()]
    elif cls_name in ("TransportError", "ResponseFormatError", "ClientError"):
        names = [v for v in variables if v.endswith("_URL")]
    else:
        return ""
    return f" (check {', '.join(names)})" if names else ""


DEV_PORT_BASE = (
    8700  # the simulators on 8701-8706, the webhook receiver on 8710, the OCPI pull server on 8720
)


def dev_ports(base: int = DEV_PORT_BASE) -> dict[str, int]:
    """Where `dev` and `simulate` listen: every simulator, `webhook` and `ocpi` at their offset from
    `base`."""
    from evpipeline.settings import OCPI_SERVER_PORT, SIMULATOR_PORTS, WEBHOOK_PORT

    fixed = {**SIMULATOR_PORTS, "webhook": WEBHOOK_PORT, "ocpi": OCPI_SERVER_PORT}
    return {name: base + port - DEV_PORT_BASE for name, port in fixed.items()}


def _start_simulators(scale: float, advance_every: float, ports: dict[str, int]) -> dict:
    from evpipeline import settings, simulators

    settings.apply_dev_defaults()
    sims = simulators.start_all(
        scale=scale, live=True, ports={n: p for n, p in ports.items() if n in settings.SIMULATOR_PORTS}
    )
    os.environ.update(simulators.env_for(sims))

    def tick() -> None:  # the fleet keeps changing while you watch
        while True:
            time.sleep(advance_every)
            for sim in sims.values():
                sim.tick(advance_every)

    if advance_every > 0:
        threading.Thread(target=tick, daemon=True, name="sim-ticker").start()
    return sims


def seed_dev_ndw(sim: Any, database: str) -> tuple[int, int]:
    """Give a freshly started NDW simulator what the warehouse's push mirror (`ops.ndw_pushed`) says NDW
    holds: `make dev` after `make demo` starts a new, empty simulator, and the lane would otherwise PATCH
    EVSEs it never received (`unknown evse`). (locations, tariffs) seeded; (0, 0) without a warehouse."""
    from evpipeline.ndw.push_sync import held_copy
    from evpipeline.warehouse.backend import Backend
    from evpipeline.warehouse.resource import connect

    backend = Backend(database)
    if backend.local_path is not None and not backend.local_path.exists():
        return 0, 0
    import evpipeline.ndw.push_sync  # noqa: F401  (registers ops.ndw_pushed)

    with connect(database) as con:  # migrated: a warehouse from an older version has the table too
        locations, tariffs = held_copy(con)
    sim.hold(locations, tariffs)
    return len(locations), len(tariffs)


def _simulate(args: argparse.Namespace) -> int:
    ports = dev_ports(args.port_base)
    ensure_ports_free(
        ("127.0.0.1", port, f"{name} simulator")
        for name, port in ports.items()
        if name not in ("webhook", "ocpi")
    )
    sims = _start_simulators(args.scale, args.advance_every, ports)
    for name, sim in sims.items():
        print(f"{name:<10} {sim.url}")
    print("simulators running; Ctrl-C to stop")
    _wait_forever()
    return 0


def _webhook(args: argparse.Namespace) -> int:
    from evpipeline import settings

    settings.apply_defaults()
    settings.require(["EVROAM_WEBHOOK_KEY"])  # an open receiver would accept anyone's notifications
    from evpipeline.inbox import Inbox
    from evpipeline.serving import serve_forever
    from evpipeline.sources.evroam.push import create_webhook_app

    inbox_dir = usable_data_dir(settings.data_dir()) / "inbox"
    ensure_ports_free([(args.host, args.port, "webhook receiver")])
    inbox = Inbox(inbox_dir / "push.sqlite")
    serve_forever(create_webhook_app(inbox, settings.get("EVROAM_WEBHOOK_KEY")), args.host, args.port)
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    """List, release or retry the lane's dead letters (`ops.dead_letters` and the push inbox)."""
    from evpipeline import settings
    from evpipeline.inbox import Inbox
    from evpipeline.lane import dead_letters
    from evpipeline.warehouse import warehouse_from_env

    data = usable_data_dir(args.data_dir)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    settings.apply_defaults()
    warehouse = warehouse_from_env()
    if args.action == "list":
        letters = dead_letters.listing(warehouse, source=args.source, status=args.status)
        for d in letters:
            reason = " ".join(d.reason.split())[:200]  # one line each, whatever the reason holds
            print(
                f"{d.message_id}\t{d.source}\t{d.kind}\t{d.status}\t{d.dead_at:%Y-%m-%d %H:%M:%S}\t{reason}"
            )
        print(f"{len(letters)} dead letter(s)", file=sys.stderr)
        return 0
    if bool(args.ids) == bool(args.all):
        raise CliError(f"{args.action}: name the message ids, or --all (not both)", code=2)
    ids = args.ids or [
        d.message_id for d in dead_letters.listing(warehouse, source=args.source, status=args.status)
    ]
    inbox = Inbox(data / "inbox" / "push.sqlite")
    try:
        if args.action == "release":
            released = dead_letters.release(warehouse, inbox, ids)
            print(f"released {len(released)} dead letter(s)")
        else:
            retried = dead_letters.retry(warehouse, inbox, ids)
            for d, new_id in retried:
                print(f"{d.message_id} stored again as {new_id}: the lane tries it in its next cycle")
            print(f"retried {len(retried)} dead letter(s)")
    except KeyError as exc:
        raise CliError(str(exc.args[0]), code=2) from None
    return 0


def _rebuild_export(args: argparse.Namespace) -> int:
    """A past day's OCPI export and DATEX II publications again, from the snapshot each read (DuckLake)."""
    from evpipeline import settings
    from evpipeline.ndw.assets import Datex2ExportConfig, NdwExportConfig, datex2_root, export_root
    from evpipeline.ndw.rebuild import rebuild_partition
    from evpipeline.warehouse import warehouse_from_env
    from evpipeline.warehouse.timetravel import SnapshotUnavailable

    data = usable_data_dir(args.data_dir)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    settings.apply_defaults()
    output = Path(args.output or data / "rebuilt").resolve()
    try:
        results = rebuild_partition(
            warehouse_from_env(),
            args.partition,
            ocpi_root=export_root(NdwExportConfig()),
            datex2_root=datex2_root(Datex2ExportConfig()),
            output=output,
        )
    except (FileNotFoundError, SnapshotUnavailable) as exc:
        raise CliError(str(exc), code=2) from exc
    for r in results:
        verdict = "identical to" if r.same else f"DIFFERENT ({', '.join(r.different)}) from"
        print(
            f"{r.name} {args.partition}: rebuilt from snapshot {r.snapshot} into {r.rebuilt}, "
            f"{len(r.identical)} file(s) {verdict} the delivery"
        )
    return 0 if all(r.same for r in results) else 1


def _serve_ocpi(args: argparse.Namespace) -> int:
    """The OCPI 2.2.1 pull server NDW GETs from, on the latest warehouse snapshot (docs/ndw.md)."""
    import logging

    from evpipeline import settings
    from evpipeline.ndw.pull_snapshot import snapshot_path
    from evpipeline.ndw.server import app_from_env
    from evpipeline.serving import serve_forever
    from evpipeline.warehouse.backend import Backend

    # --data-dir means what it means elsewhere: the data directory, whose warehouse's snapshot is served
    # (beside the warehouse file, where `mart/bi_snapshot` publishes it; under it for a DuckLake).
    data = Path(args.data_dir).expanduser().resolve()
    if not data.is_dir():
        raise CliError(f"--data-dir {data}: {'not a directory' if data.exists() else 'no such directory'}")
    configured = settings.data_dir().expanduser().resolve()
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    if data != configured and not Backend(settings.warehouse_path()).is_lake:
        # Another data directory than the configured one: its own warehouse file, not EVPIPELINE_WAREHOUSE's.
        os.environ["EVPIPELINE_WAREHOUSE"] = str(data / "warehouse.duckdb")
    settings.apply_defaults()
    app = app_from_env(page_cap=args.page_cap)  # refuses to start without credentials (exit 2)
    snapshot = snapshot_path()
    if not snapshot.is_file():
        raise CliError(
            f"no warehouse snapshot at {snapshot} (--data-dir {data}): publish one first (`evpipeline demo`, "
            "or the bi_publish job), or point --data-dir at the data directory the pipeline writes"
        )
    print(f"serving {snapshot} (--data-dir {data})", flush=True)
    ensure_ports_free([(args.host, args.port, "OCPI pull server")])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_forever(app, args.host, args.port)
    return 0


DAGSTER_DEV_WARNINGS = (
    "ignore:Function `dev_command` is superseded"  # `dagster dev`'s own notice (we run it, not `dg`)
)
SHUTDOWN_SECONDS = 90.0  # Ctrl-C: how long the lane and the runs in flight get to finish before Dagster stops


def _dev(args: argparse.Namespace) -> int:
    """Simulators + webhook receiver + OCPI pull server + `dagster dev` (whose daemon runs the schedules
    and the sensors, among them the supervisor that keeps the real-time lane running).

    `dagster dev` runs in a session of its own, so Ctrl-C reaches this process only: it asks the lane to
    stop after its cycle (`lane.service.request_stop`), waits for the runs in flight to end, then stops
    Dagster, the servers and the simulators, in that order (Ctrl-C again: at once)."""
    from evpipeline import dagster_home, settings

    data = usable_data_dir(args.data_dir)
    os.environ["EVPIPELINE_DATA_DIR"] = str(data)
    ports = dev_ports(args.port_base)
    ensure_ports_free(
        [
            *(
                ("127.0.0.1", port, f"{name} simulator")
                for name, port in ports.items()
                if name not in ("webhook", "ocpi")
            ),
            ("127.0.0.1", ports["webhook"], "webhook receiver"),
            ("127.0.0.1", ports["ocpi"], "OCPI pull server"),
            ("127.0.0.1", args.port, "dagster dev"),
        ]
    )
    sims = _start_simulators(
        args.scale, args.advance_every, ports
    )  # sets the simulators' development settings
    from evpipeline.inbox import Inbox
    from evpipeline.lane.service import clear_stop
    from evpipeline.serving import BackgroundServer
    from evpipeline.sources.evroam.push import create_webhook_app

    receiver = ocpi = None
    try:
        receiver = BackgroundServer(
            create_webhook_app(Inbox(data / "inbox" / "push.sqlite"), settings.get("EVROAM_WEBHOOK_KEY")),
            port=ports["webhook"],
        ).start()
        if settings.dev_value("EVROAM_WEBHOOK_PUBLIC_URL"):  # the development value names the default port
            os.environ["EVROAM_WEBHOOK_PUBLIC_URL"] = f"{receiver.url}/api/evroam_listener"
        from evpipeline.ndw.server import app_from_env

        ocpi = BackgroundServer(app_from_env(development=True), port=ports["ocpi"]).start()
        held = seed_dev_ndw(sims["ndw"], settings.warehouse_path())
        home = dagster_home.prepare(args.dagster_home)  # the same home `evpipeline demo` records its runs in
        clear_stop(data)  # a stop request an earlier `dev` left behind
        ui = f"http://127.0.0.1:{args.port}"
        print(
            "\n".join(
                [
                    f"evpipeline dev: Dagster UI {ui} (ready when the code location has loaded, "
                    "about half a minute)",
                    f"  data dir      {data} (--data-dir)",
                    f"  Dagster home  {home} (--dagster-home)",
                    *(f"  {name:<13} {sim.url}" for name, sim in sims.items()),
                    f"  {'webhook':<13} {receiver.url}",
                    f"  {'ocpi pull':<13} {ocpi.url}/ocpi/versions",
                    f"  NDW simulator holds {held[0]} locations and {held[1]} tariffs: "
                    "what the warehouse's push mirror (ops.ndw_pushed) says NDW holds",
                    "  Ctrl-C stops the real-time lane after its cycle, then Dagster, "
                    "the servers and the simulators",
                ]
            ),
            flush=True,
        )
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PYTHONWARNINGS": ",".join(
                filter(None, [os.environ.get("PYTHONWARNINGS"), DAGSTER_DEV_WARNINGS])
            ),
        }
        dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
        # Ctrl-C, `kill` and a closed terminal stop in order. A handler of ours (not an ignored signal, which
        # a process started in the background inherits) also leaves dagster dev the default dispositions.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        process = subprocess.Popen(
            [dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)],
            env=env,
            start_new_session=True,
        )  # Ctrl-C reaches us, not Dagster's processes: we stop them in order
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop_dagster_dev(process, data, home)
            return 0
    finally:
        for server in (ocpi, receiver):
            if server is not None:
                server.stop()
        for sim in sims.values():
            sim.stop()
        clear_stop(data)


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def stop_dagster_dev(
    process: subprocess.Popen[bytes], data: Path, home: Path, *, deadline: float = SHUTDOWN_SECONDS
) -> None:
    """Stop `dagster dev` as Ctrl-C should: the lane ends its cycle and every run in flight ends (up to
    `deadline` seconds; another Ctrl-C skips the wait), then Dagster's own processes stop."""
    from evpipeline.lane.service import request_stop

    print(
        "stopping: the real-time lane ends its cycle and the runs in flight finish; "
        "Ctrl-C again stops at once",
        flush=True,
    )
    request_stop(data, "evpipeline dev is stopping (Ctrl-C)")
    try:
        left = wait_for_runs(home, time.monotonic() + deadline)
        if left:
            print(f"stopping Dagster with {len(left)} run(s) still in flight: {', '.join(left)}", flush=True)
        process.send_signal(signal.SIGINT)  # dagster dev stops its webserver, daemon and code servers
        process.wait(timeout=60)
    except KeyboardInterrupt:
        pass
    except subprocess.TimeoutExpired:
        print("dagster dev did not stop within a minute: terminating its processes", flush=True)
    finally:
        # What is left of Dagster's process group (its code servers would wait 45 s for a heartbeat
        # that no longer comes; no run is left by now) is terminated, then killed if it lingers.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            if _group_gone(process, time.monotonic() + 15):
                break


def _group_gone(process: subprocess.Popen[bytes], until: float) -> bool:
    """Wait until no process is left in `process`'s group (its session: `start_new_session`), or `until`."""
    while True:
        process.poll()  # reap the leader, so it does not count
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= until:
            return False
        time.sleep(0.2)


def wait_for_runs(home: Path, until: float, poll: float = 0.5) -> list[str]:
    """Wait until no run of the Dagster instance at `home` is queued, starting or started (or `until`,
    a `time.monotonic()` deadline); the runs still in flight then, as `job (run id)`."""
    import dagster as dg

    from evpipeline import dagster_home

    instance = dagster_home.instance(home)
    busy = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    while True:
        runs = instance.get_runs(filters=dg.RunsFilter(statuses=busy))
        if not runs or time.monotonic() >= until:
            return [f"{run.job_name} ({run.run_id[:8]})" for run in runs]
        time.sleep(poll)


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    from benchmarks.harness import main as bench_main

    return bench_main(rest)


def _wait_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from evpipeline.dagster_home import DEFAULT_HOME
    from evpipeline.settings import OCPI_SERVER_PORT, WEBHOOK_PORT
    from evpipeline.sources import source_names

    parser = argparse.ArgumentParser(
        prog="evpipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="on an error, print the full trace too")
    common = argparse.ArgumentParser(add_help=False)  # --verbose also after the command
    common.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, print the full trace too",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_default = os.environ.get("EVPIPELINE_DATA_DIR") or "data"

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common], **kwargs)

    demo = command(
        "demo", "run the whole pipeline once on simulators it starts itself (ignores configured endpoints)"
    )
    demo.add_argument(
        "--data-dir",
        default=data_default,
        help="warehouse, snapshots and exports go here (default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    demo.add_argument(
        "--scale",
        type=positive_number,
        default=1.0,
        help="fleet size multiplier of every simulator, a positive number (default: %(default)s)",
    )
    demo.add_argument(
        "--dagster-home",
        default=DEFAULT_HOME,
        help="Dagster instance the runs are recorded in, shared with `evpipeline dev` so its UI shows them "
        "(default: %(default)s)",
    )
    demo.set_defaults(func=_demo)

    names = source_names()
    sync = command(
        "sync", "run one source's sync job against the configured endpoints and print what it wrote"
    )
    sync.add_argument("source", choices=names, metavar="SOURCE", help=f"the source: {', '.join(names)}")
    sync.add_argument(
        "--full",
        action="store_true",
        help="run the one run the source declares full=True instead, e.g. greenflux_full, evroam_repair "
        "(default: its other runs, the delta sync)",
    )
    sync.add_argument(
        "--data-dir",
        default=data_default,
        help="where the warehouse is (default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    sync.set_defaults(func=_sync)

    simulate = command("simulate", "run every simulator in the foreground on fixed ports (8701-8706)")
    simulate.add_argument(
        "--scale",
        type=positive_number,
        default=1.0,
        help="fleet size multiplier of every simulator, a positive number (default: %(default)s)",
    )
    simulate.add_argument(
        "--advance-every",
        type=non_negative_number,
        default=30.0,
        help="seconds between fleet changes, 0: never (default: %(default)s)",
    )
    simulate.add_argument(
        "--port-base",
        type=int,
        default=DEV_PORT_BASE,
        help="the simulators listen on BASE+1 (EVRoam) ... BASE+6 (DATEX II receiver) (default: %(default)s)",
    )
    simulate.set_defaults(func=_simulate)

    webhook = command(
        "webhook", "run the EVRoam webhook receiver (deliveries go to $EVPIPELINE_DATA_DIR/inbox)"
    )
    webhook.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    webhook.add_argument(
        "--port",
        type=int,
        default=WEBHOOK_PORT,
        help="port to listen on, 0: any free one (default: %(default)s)",
    )
    webhook.set_defaults(func=_webhook)

    serve_ocpi = command(
        "serve-ocpi", "run the OCPI 2.2.1 (and DATEX II) pull server NDW GETs from, on the latest snapshot"
    )
    serve_ocpi.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve_ocpi.add_argument(
        "--port",
        type=int,
        default=OCPI_SERVER_PORT,
        help="port to listen on, 0: any free one (default: %(default)s)",
    )
    serve_ocpi.add_argument(
        "--data-dir",
        default=data_default,
        help="the data directory: the BI snapshot of its warehouse is served (snapshots/warehouse.duckdb "
        "beside the warehouse) (default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    serve_ocpi.add_argument(
        "--page-cap",
        type=positive_int,
        default=1000,
        help="most objects per page, X-Limit (default: %(default)s)",
    )
    serve_ocpi.set_defaults(func=_serve_ocpi)

    dead = command(
        "dead-letters",
        "list the push deliveries the real-time lane dead-lettered, release them or retry them",
    )
    dead.add_argument(
        "action",
        choices=["list", "release", "retry"],
        help="list them; release: let them go (their records came by a delta pull); retry: store them "
        "again for the lane's next cycle",
    )
    dead.add_argument("ids", nargs="*", type=int, metavar="ID", help="inbox message ids (from `list`)")
    dead.add_argument(
        "--all", action="store_true", help="release or retry every listed one (with the filters)"
    )
    dead.add_argument(
        "--source", default=None, help="only this source's, e.g. evroam (default: every source)"
    )
    dead.add_argument(
        "--status",
        default=None,
        choices=["refused", "failed"],
        help="only refused or failed ones (default: both)",
    )
    dead.add_argument(
        "--data-dir",
        default=data_default,
        help="where the warehouse and the push inbox are (default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    dead.set_defaults(func=_dead_letters)

    rebuild = command(
        "rebuild-export",
        "rebuild a past day's OCPI export and DATEX II publications from the warehouse "
        "snapshot each read (DuckLake backend) and compare them with what was delivered",
    )
    rebuild.add_argument("partition", metavar="YYYY-MM-DD", type=iso_day, help="the delivered day to rebuild")
    rebuild.add_argument(
        "--data-dir",
        default=data_default,
        help="where the exports are (default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    rebuild.add_argument(
        "--output", default=None, help="where the rebuilt files go (default: DATA_DIR/rebuilt)"
    )
    rebuild.set_defaults(func=_rebuild_export)

    dev = command("dev", "simulators + webhook receiver + OCPI pull server + dagster dev (the UI)")
    dev.add_argument(
        "--data-dir",
        default=data_default,
        help="warehouse, snapshots, exports and the push inbox, as `demo` and `sync` use it "
        "(default: $EVPIPELINE_DATA_DIR or %(default)s)",
    )
    dev.add_argument(
        "--scale",
        type=positive_number,
        default=1.0,
        help="fleet size multiplier of every simulator, a positive number (default: %(default)s)",
    )
    dev.add_argument(
        "--advance-every",
        type=non_negative_number,
        default=30.0,
        help="seconds between fleet changes, 0: never (default: %(default)s)",
    )
    dev.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default: %(default)s)")
    dev.add_argument(
        "--dagster-home",
        default=DEFAULT_HOME,
        help="Dagster instance (runs, schedules, sensors), shared with `evpipeline demo` (default: "
        "%(default)s)",
    )
    dev.add_argument(
        "--port-base",
        type=int,
        default=DEV_PORT_BASE,
        help="the simulators listen on BASE+1 ... BASE+6, the webhook receiver on BASE+10, the OCPI pull "
        "server on BASE+20 (default: %(default)s)",
    )
    dev.set_defaults(func=_dev)

    bench = sub.add_parser(
        "bench",
        help="benchmarks side by side with references; writes docs/benchmarks.md "
        "(`evpipeline bench --help` for its options)",
        add_help=False,
    )
    bench.set_defaults(func=_bench)
    return parser


def _quiet_dagster_notices() -> None:
    """Dagster warns about its own beta/preview APIs on every import; a one-line CLI keeps them out of
    its output (the run logs and the UI are unaffected)."""
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)


def main(argv: list[str] | None = None) -> int:
    _quiet_dagster_notices()
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.func is _bench:
        return int(_bench(args, rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from evpipeline.settings import MissingSettings

    verbose = bool(getattr(args, "verbose", False))
    try:
        return int(args.func(args) or 0)
    except MissingSettings as missing:
        print(f"evpipeline {args.command}: {missing.one_line()}", file=sys.stderr)
        if verbose:
            print(missing, file=sys.stderr)
        return 2
    except CliError as error:
        if verbose:
            traceback.print_exc()
        print(f"evpipeline {args.command}: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's last word: one line, the trace only when asked
        if verbose:
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"evpipeline {args.command} failed: {type(exc).__name__}: {first}"
            + ("" if verbose else " (--verbose for the trace)"),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
