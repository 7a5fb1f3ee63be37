"""`evpipeline dev` (`make dev`) as a new user meets it, in a subprocess: the header names the UI, the
daemon starts exactly one real-time lane, Dagster's beta/preview notices stay out of the terminal, and
Ctrl-C (SIGINT to the terminal's process group) stops everything in order: the lane run ends successfully,
no trace is printed, nothing keeps listening. Marker `ui` (`make ui-check`); about two minutes."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline.cli import dev_ports
from evpipeline_tests.test_settings import clean_env
from evpipeline_tests.test_ui import graphql

ROOT = Path(__file__).resolve().parents[1]
LANE_RUNS = """{ runsOrError(filter: {pipelineName: "realtime_lane"}) { ... on Runs { results { runId status } } } }"""
WATCH_SECONDS = 30.0  # after the lane beats: six sensor ticks (every 5 s) that must start no second lane

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(420)]


def free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_ports() -> tuple[int, int]:
    """(port base, UI port): every port `dev` listens on is free."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000, 100)
        if all(free(p) for p in [*dev_ports(base).values(), base + 50]):
            return base, base + 50
    raise RuntimeError("no free port range")


def until(what: str, predicate: Callable[[], Any], deadline: float, log: Path, poll: float = 1.0) -> Any:
    """Poll `predicate` until it returns something truthy, or fail at `deadline` (time.monotonic())."""
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(poll)
    raise AssertionError(f"{what}: not within the deadline\n{log.read_text(errors='replace')[-4000:]}")


def heartbeat(data: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data / "lane" / "heartbeat.json").read_text())
    except (OSError, ValueError):
        return None


def lane_runs(port: int) -> dict[str, str]:
    try:
        results = graphql(port, LANE_RUNS, timeout=10)["runsOrError"]["results"]
    except OSError:
        return {}
    return {r["runId"]: r["status"] for r in results}


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, int]]:
    """`evpipeline dev` in a process group of its own (as a terminal runs it); yields (process, data, log, UI port)."""
    base, port = free_ports()
    data, home, log = tmp_path / "data", tmp_path / "home", tmp_path / "dev.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evpipeline.cli",
                "dev",
                "--data-dir",
                str(data),
                "--dagster-home",
                str(home),
                "--port",
                str(port),
                "--port-base",
                str(base),
                "--scale",
                "0.2",
                "--advance-every",
                "5",
            ],
            cwd=ROOT,
            env=clean_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process, data, log, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        _kill_leftovers(home)


def _kill_leftovers(home: Path) -> list[str]:
    """Processes this test started that outlived `dev` (Dagster's, in their own session): killed by pid."""
    left = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"DAGSTER_HOME={home}".encode() in environ.split(b"\0"):
            with contextlib.suppress(OSError):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                left.append(f"{entry.name}: {command[:200]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
    return left


def test_dev_runs_one_lane_and_ctrl_c_stops_it_cleanly(
    dev: tuple[subprocess.Popen[bytes], Path, Path, int], tmp_path: Path
) -> None:
    process, data, log, port = dev
    start = time.monotonic()
    header = until("the header", lambda: "Dagster UI" in log.read_text(errors="replace"), start + 60, log)
    assert header
    first = log.read_text(errors="replace").splitlines()[0]
    assert first.startswith(f"evpipeline dev: Dagster UI http://127.0.0.1:{port} "), first

    # The daemon's sensor starts a lane; it beats; through six more sensor ticks no second lane starts.
    until("a lane run", lambda: lane_runs(port), start + 180, log, poll=2.0)
    until("the lane's heartbeat", lambda: (heartbeat(data) or {}).get("state") == "running", start + 240, log)
    seen: dict[str, str] = {}
    watch = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < watch:
        seen.update(lane_runs(port))
        time.sleep(2)
    assert len(seen) == 1, f"lane runs: {seen}"
    [lane] = seen

    # Ctrl-C: SIGINT to the whole foreground process group, as the terminal sends it.
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=150) == 0
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    assert "is currently in beta" not in text and "is currently in preview" not in text
    assert "BetaWarning" not in text and "PreviewWarning" not in text and "SupersessionWarning" not in text
    assert (heartbeat(data) or {}).get("state") == "stopped"

    os.environ["DAGSTER_HOME"] = str(tmp_path / "home")
    try:
        instance = dg.DagsterInstance.get()
        statuses = {
            run.run_id: run.status
            for run in instance.get_runs(filters=dg.RunsFilter(job_name="realtime_lane"))
        }
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    finally:
        del os.environ["DAGSTER_HOME"]
    assert statuses == {lane: dg.DagsterRunStatus.SUCCESS}
    assert [r.job_name for r in failed] == []
    assert not listening(port), "the Dagster UI still listens"
    assert _kill_leftovers(tmp_path / "home") == []
