"""evpipeline: EV-charging data from EVRoam, GreenFlux, Zaptec and TomTom to a DuckDB warehouse and NDW.

Errors are one line on stderr and a non-zero exit (1: the work failed, 2: usage or missing
settings); `--verbose` adds the trace.
"""

from __future__ import annotations

import argparse
import errno
import os
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
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
            try:
                s.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CliError(f"port {port} on {host} ({what}) is already in use: stop what listens there "
                                   "or choose another port") from exc
                raise CliError(f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}") from exc


def _simulator_ports() -> list[tuple[str, int, str]]:
    from evpipeline.settings import SIMULATOR_PORTS

    return [("127.0.0.1", port, f"{name} simulator") for name, port in SIMULATOR_PORTS.items()]


# -- commands -----------------------------------------------------------------------------------

def _demo(args: argparse.Namespace) -> int:
    from evpipeline import progress
    from evpipeline.demo import print_report, run_demo

    data = usable_data_dir(args.data_dir)
    progress.to_terminal(sys.stdout)  # long pulls and writes say how far they are
    report = run_demo(data, args.scale, say=lambda line: print(line, flush=True), dagster_home=args.dagster_home)
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
    import importlib

    declared = importlib.import_module(f"evpipeline.sources.{source}.assets").RUNS
    runs = [run for run in declared if run.full == full]
    if not runs:
        plain = ", ".join(run.job for run in declared)
        raise CliError(f"{source} declares no full pull: its sync ({plain}) already reads everything; "
                       f"run `evpipeline sync {source}`", code=2)
    return runs


def source_job_definitions(source: str) -> tuple[Any, list[str]]:
    """The source's own definitions plus the warehouse, and the environment variables they read.

    A sync needs only its source's settings, so it does not load the whole code location (which
    requires every source's secrets and NDW's)."""
    import importlib

    import dagster as dg

    from evpipeline.warehouse import WarehouseResource

    source_defs = importlib.import_module(f"evpipeline.sources.{source}.definitions").defs
    shared = dg.Definitions(resources={"warehouse": WarehouseResource(database=dg.EnvVar("EVPIPELINE_WAREHOUSE"))},
                            executor=dg.in_process_executor)
    defs = dg.Definitions.merge(source_defs, shared)
    variables = [value.env_var_name for resource in (defs.resources or {}).values() for value in vars(resource).values()
                 if isinstance(value, dg.EnvVar)]
    return defs, sorted(set(variables))


def run_job(defs: Any, job_name: str, *, verbose: bool = False, hint_variables: Sequence[str] = ()) -> tuple[bool, str]:
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
    cls, message = (error.cls_name, first_line(error.message, error.cls_name)) if error is not None else ("Failure", "see the run log")
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
            while error is not None and error.cls_name and error.cls_name.startswith("DagsterExecution") and error.cause:
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


def _start_simulators(scale: float, advance_every: float) -> dict:
    from evpipeline import settings, simulators

    settings.apply_dev_defaults()
    sims = simulators.start_all(scale=scale, fixed_ports=True, live=True)
    os.environ.update(simulators.env_for(sims))

    def tick() -> None:  # the fleet keeps changing while you watch
        while True:
            time.sleep(advance_every)
            for sim in sims.values():
                sim.tick(advance_every)

    if advance_every > 0:
        threading.Thread(target=tick, daemon=True, name="sim-ticker").start()
    return sims


def _simulate(args: argparse.Namespace) -> int:
    ensure_ports_free(_simulator_ports())
    sims = _start_simulators(args.scale, args.advance_every)
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
        results = rebuild_partition(warehouse_from_env(), args.partition, ocpi_root=export_root(NdwExportConfig()),
                                    datex2_root=datex2_root(Datex2ExportConfig()), output=output)
    except (FileNotFoundError, SnapshotUnavailable) as exc:
        raise CliError(str(exc), code=2) from exc
    for r in results:
        verdict = "identical to" if r.same else f"DIFFERENT ({', '.join(r.different)}) from"
        print(f"{r.name} {args.partition}: rebuilt from snapshot {r.snapshot} into {r.rebuilt}, {len(r.identical)} file(s) "
              f"{verdict} the delivery")
    return 0 if all(r.same for r in results) else 1


def _serve_ocpi(args: argparse.Namespace) -> int:
    """The OCPI 2.2.1 pull server NDW GETs from, on the latest warehouse snapshot (docs/ndw.md)."""
    import logging

    from evpipeline.ndw.pull_snapshot import snapshot_path
    from evpipeline.ndw.server import app_from_env
    from evpipeline.serving import serve_forever

    if args.data_dir is not None:
        data = Path(args.data_dir).expanduser().resolve()
        if not data.is_dir():
            raise CliError(f"--data-dir {data}: {'not a directory' if data.exists() else 'no such directory'}")
    app = app_from_env(args.data_dir, page_cap=args.page_cap)  # refuses to start without credentials (exit 2)
    snapshot = snapshot_path(args.data_dir)
    if not snapshot.is_file():
        raise CliError(f"no warehouse snapshot at {snapshot}: publish one first (`evpipeline demo`, or the bi_publish "
                       "job), or point --data-dir at the directory holding snapshots/")
    ensure_ports_free([(args.host, args.port, "OCPI pull server")])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_forever(app, args.host, args.port)
    return 0


def _dev(args: argparse.Namespace) -> int:
    """Simulators + webhook receiver + OCPI pull server + `dagster dev` (whose daemon runs the schedules
    and the sensors, among them the supervisor that keeps the real-time lane running)."""
    from evpipeline import settings

    ensure_ports_free([*_simulator_ports(), ("127.0.0.1", settings.WEBHOOK_PORT, "webhook receiver"),
                       ("127.0.0.1", settings.OCPI_SERVER_PORT, "OCPI pull server"), ("127.0.0.1", args.port, "dagster dev")])
    sims = _start_simulators(args.scale, args.advance_every)  # sets the simulators' development settings
    from evpipeline.inbox import Inbox
    from evpipeline.serving import BackgroundServer
    from evpipeline.sources.evroam.push import create_webhook_app

    receiver = BackgroundServer(
        create_webhook_app(Inbox(settings.data_dir() / "inbox" / "push.sqlite"), settings.get("EVROAM_WEBHOOK_KEY")),
        port=settings.WEBHOOK_PORT,
    ).start()
    from evpipeline.ndw.server import app_from_env

    ocpi = BackgroundServer(app_from_env(), port=settings.OCPI_SERVER_PORT).start()
    print("\n".join(f"{n:<10} {s.url}" for n, s in sims.items()) + f"\nwebhook    {receiver.url}\nocpi pull  {ocpi.url}/ocpi/versions")
    from evpipeline import dagster_home

    home = dagster_home.prepare(args.dagster_home)  # the same home `evpipeline demo` records its runs in
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    process = subprocess.Popen([dagster, "dev", "-w", "workspace.yaml", "-p", str(args.port)], env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        return process.wait()


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

    parser = argparse.ArgumentParser(prog="evpipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", "-v", action="store_true", help="on an error, print the full trace too")
    common = argparse.ArgumentParser(add_help=False)  # --verbose also after the command
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, print the full trace too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_default = os.environ.get("EVPIPELINE_DATA_DIR") or "data"

    def command(name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common], **kwargs)

    demo = command("demo", "run the whole pipeline once on simulators it starts itself (ignores configured endpoints)")
    demo.add_argument("--data-dir", default=data_default,
                      help="warehouse, snapshots and exports go here (default: $EVPIPELINE_DATA_DIR or %(default)s)")
    demo.add_argument("--scale", type=float, default=1.0, help="fleet size multiplier of every simulator (default: %(default)s)")
    demo.add_argument("--dagster-home", default=DEFAULT_HOME,
                      help="Dagster instance the runs are recorded in, shared with `evpipeline dev` so its UI shows them "
                           "(default: %(default)s)")
    demo.set_defaults(func=_demo)

    names = source_names()
    sync = command("sync", "run one source's sync job against the configured endpoints and print what it wrote")
    sync.add_argument("source", choices=names, metavar="SOURCE", help=f"the source: {', '.join(names)}")
    sync.add_argument("--full", action="store_true",
                      help="run the one run the source declares full=True instead, e.g. greenflux_full, evroam_repair "
                           "(default: its other runs, the delta sync)")
    sync.add_argument("--data-dir", default=data_default,
                      help="where the warehouse is (default: $EVPIPELINE_DATA_DIR or %(default)s)")
    sync.set_defaults(func=_sync)

    simulate = command("simulate", "run every simulator in the foreground on fixed ports (8701-8706)")
    simulate.add_argument("--scale", type=float, default=1.0, help="fleet size multiplier of every simulator (default: %(default)s)")
    simulate.add_argument("--advance-every", type=float, default=30.0,
                          help="seconds between fleet changes, 0: never (default: %(default)s)")
    simulate.set_defaults(func=_simulate)

    webhook = command("webhook", "run the EVRoam webhook receiver (deliveries go to $EVPIPELINE_DATA_DIR/inbox)")
    webhook.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    webhook.add_argument("--port", type=int, default=WEBHOOK_PORT, help="port to listen on, 0: any free one (default: %(default)s)")
    webhook.set_defaults(func=_webhook)

    serve_ocpi = command("serve-ocpi", "run the OCPI 2.2.1 (and DATEX II) pull server NDW GETs from, on the latest snapshot")
    serve_ocpi.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve_ocpi.add_argument("--port", type=int, default=OCPI_SERVER_PORT, help="port to listen on, 0: any free one (default: %(default)s)")
    serve_ocpi.add_argument("--data-dir", default=None,
                            help="directory whose snapshots/warehouse.duckdb is served (default: next to the warehouse, "
                                 "$EVPIPELINE_DATA_DIR/snapshots)")
    serve_ocpi.add_argument("--page-cap", type=int, default=1000, help="most objects per page, X-Limit (default: %(default)s)")
    serve_ocpi.set_defaults(func=_serve_ocpi)

    rebuild = command("rebuild-export", "rebuild a past day's OCPI export and DATEX II publications from the warehouse "
                      "snapshot each read (DuckLake backend) and compare them with what was delivered")
    rebuild.add_argument("partition", metavar="YYYY-MM-DD", help="the delivered day to rebuild")
    rebuild.add_argument("--data-dir", default=data_default,
                         help="where the exports are (default: $EVPIPELINE_DATA_DIR or %(default)s)")
    rebuild.add_argument("--output", default=None, help="where the rebuilt files go (default: DATA_DIR/rebuilt)")
    rebuild.set_defaults(func=_rebuild_export)

    dev = command("dev", "simulators + webhook receiver + OCPI pull server + dagster dev (the UI)")
    dev.add_argument("--scale", type=float, default=1.0, help="fleet size multiplier of every simulator (default: %(default)s)")
    dev.add_argument("--advance-every", type=float, default=30.0,
                     help="seconds between fleet changes, 0: never (default: %(default)s)")
    dev.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default: %(default)s)")
    dev.add_argument("--dagster-home", default=DEFAULT_HOME,
                     help="Dagster instance (runs, schedules, sensors), shared with `evpipeline demo` (default: %(default)s)")
    dev.set_defaults(func=_dev)

    bench = sub.add_parser("bench", help="benchmarks side by side with references; writes docs/benchmarks.md "
                           "(`evpipeline bench --help` for its options)", add_help=False)
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
        print(missing, file=sys.stderr)
        return 2
    except CliError as error:
        if verbose:
            traceback.print_exc()
        print(f"evpipeline {args.command}: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last word: one line, the trace only when asked
        if verbose:
            traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"evpipeline {args.command} failed: {type(exc).__name__}: {first}"
              + ("" if verbose else " (--verbose for the trace)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
