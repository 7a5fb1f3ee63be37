"""Command line: `evpipeline demo | simulate | webhook | dev | serve-ocpi | bench`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from evpipeline.demo import print_report, run_demo

    report = run_demo(args.data_dir, args.scale)
    print_report(report)
    return 0


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

    inbox = Inbox(settings.data_dir() / "inbox" / "push.sqlite")
    serve_forever(create_webhook_app(inbox, settings.get("EVROAM_WEBHOOK_KEY")), args.host, args.port)
    return 0


def _serve_ocpi(args: argparse.Namespace) -> int:
    """The OCPI 2.2.1 pull server NDW GETs from, on the latest warehouse snapshot (docs/ndw.md)."""
    import logging

    from evpipeline.ndw.server import app_from_env
    from evpipeline.serving import serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_forever(app_from_env(args.data_dir, page_cap=args.page_cap), args.host, args.port)
    return 0


def _dev(args: argparse.Namespace) -> int:
    """Simulators + webhook receiver + OCPI pull server + `dagster dev` (whose daemon runs the schedules
    and the sensors, among them the supervisor that keeps the real-time lane running)."""
    from evpipeline import settings

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
    home = Path(".dagster_home").resolve()
    home.mkdir(exist_ok=True)
    shutil.copy(Path(__file__).with_name("dagster.yaml"), home / "dagster.yaml")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evpipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline once on the bundled simulators")
    demo.add_argument("--data-dir", default=os.environ.get("EVPIPELINE_DATA_DIR", "data"))
    demo.add_argument("--scale", type=float, default=1.0, help="fleet size multiplier of every simulator")
    demo.set_defaults(func=_demo)

    simulate = sub.add_parser("simulate", help="run every simulator in the foreground on fixed ports")
    simulate.add_argument("--scale", type=float, default=1.0)
    simulate.add_argument("--advance-every", type=float, default=30.0, help="seconds between fleet changes (0: never)")
    simulate.set_defaults(func=_simulate)

    webhook = sub.add_parser("webhook", help="run the EVRoam webhook receiver")
    webhook.add_argument("--host", default="127.0.0.1")
    webhook.add_argument("--port", type=int, default=8710)
    webhook.set_defaults(func=_webhook)

    from evpipeline.settings import OCPI_SERVER_PORT

    serve_ocpi = sub.add_parser("serve-ocpi", help="run the OCPI 2.2.1 pull server NDW GETs from")
    serve_ocpi.add_argument("--host", default="127.0.0.1")
    serve_ocpi.add_argument("--port", type=int, default=OCPI_SERVER_PORT)
    serve_ocpi.add_argument("--data-dir", default=None, help="where snapshots/warehouse.duckdb is (default: next to the warehouse)")
    serve_ocpi.add_argument("--page-cap", type=int, default=1000, help="most objects per page (X-Limit)")
    serve_ocpi.set_defaults(func=_serve_ocpi)

    dev = sub.add_parser("dev", help="simulators + webhook receiver + OCPI pull server + dagster dev")
    dev.add_argument("--scale", type=float, default=1.0)
    dev.add_argument("--advance-every", type=float, default=30.0)
    dev.add_argument("--port", type=int, default=3000)
    dev.set_defaults(func=_dev)

    bench = sub.add_parser("bench", help="benchmarks side by side with references (see docs/benchmarks.md)", add_help=False)
    bench.set_defaults(func=_bench)

    args, rest = parser.parse_known_args(argv)
    if args.func is _bench:
        return int(_bench(args, rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from evpipeline.settings import MissingSettings

    try:
        return int(args.func(args) or 0)
    except MissingSettings as missing:
        print(missing, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
