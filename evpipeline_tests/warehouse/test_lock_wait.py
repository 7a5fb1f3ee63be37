"""A step waiting for the DuckDB file says so, and for whom (issue 23: a quarantine check waited 1 m 45 s
silently). A real process holds the real lock; the wait runs on an injected clock (no sleeping)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from evpipeline.lane.service import lane_dir, write_heartbeat
from evpipeline.warehouse import WarehouseResource
from evpipeline.warehouse.resource import attach_waiting

HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # a writer: holds the file's lock until it exits
print("held", flush=True)
sys.stdin.readline()
"""


class Lines:
    """A logger that keeps what it is told."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(message % args)


@pytest.fixture
def holder(warehouse: WarehouseResource) -> Iterator[subprocess.Popen[str]]:
    if warehouse.backend.is_lake:
        pytest.skip("a DuckLake has no file another process could lock")
    with warehouse.get_connection():
        pass  # the file exists, migrated
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, warehouse.database],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def _wait(warehouse: WarehouseResource, holder: subprocess.Popen[str], release_after: float) -> list[str]:
    """Attach on a clock that only the pauses move; the holder lets go once `release_after` seconds have
    passed."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= release_after and holder.poll() is None:
            assert holder.stdin is not None
            holder.stdin.write("go\n")
            holder.stdin.flush()
            holder.wait(timeout=30)

    log = Lines()
    attach_waiting(warehouse.database, clock=lambda: now[0], sleep=sleep, logger=log).close()
    return log.lines


def test_a_wait_for_the_file_is_logged_with_its_holder_and_how_long(
    warehouse: WarehouseResource, holder: subprocess.Popen[str]
) -> None:
    command = Path(f"/proc/{holder.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()[:160]
    lines = _wait(warehouse, holder, release_after=20.0)
    # Pauses 0.05, 0.1, 0.2, 0.4, 0.8 s, then every second: said at 2.55 s, 17.55 s; the lock goes at 20.55 s.
    assert lines == [
        f"waiting for the warehouse {warehouse.database}, held by PID {holder.pid} ({command}): 3 s so far "
        "(giving up after 6 min 50 s)",
        f"waiting for the warehouse {warehouse.database}, held by PID {holder.pid} ({command}): 18 s so far "
        "(giving up after 6 min 50 s)",
        f"got the warehouse {warehouse.database} after waiting 21 s",
    ]


def test_the_real_time_lane_is_named_when_it_holds_the_file(
    warehouse: WarehouseResource,
    holder: subprocess.Popen[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path))
    write_heartbeat(
        lane_dir(tmp_path) / "heartbeat.json",
        {"pid": holder.pid, "run_id": "5f3a9c1e-lane", "state": "running"},
    )
    [waiting, got] = _wait(warehouse, holder, release_after=5.0)
    assert waiting == (
        f"waiting for the warehouse {warehouse.database}, held by the real-time lane (run 5f3a9c1e, "
        f"PID {holder.pid}), between two of its cycles: 3 s so far (giving up after 6 min 50 s)"
    )
    assert got == f"got the warehouse {warehouse.database} after waiting 6 s"


def test_a_short_wait_is_not_logged(warehouse: WarehouseResource, holder: subprocess.Popen[str]) -> None:
    assert _wait(warehouse, holder, release_after=1.0) == []
