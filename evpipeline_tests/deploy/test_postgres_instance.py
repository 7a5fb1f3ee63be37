"""deploy/dagster.yaml on a real PostgreSQL: runs and events land there, and every process sees them.

Each test run creates its own database on 127.0.0.1:5432 (user postgres, trust auth) and drops it
after; the tests skip only when nothing listens there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg2 import sql

from evpipeline_tests.deploy.two_steps import two_processes

PROFILE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def connect(dbname: str) -> Any:
    """An autocommit psycopg2 connection to `dbname` as the test's PostgreSQL user."""
    con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, connect_timeout=5)
    con.autocommit = True
    return con


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, empty database, dropped (with whatever still holds it) after the test."""
    # Skip only when PostgreSQL is not there; a server that refuses us (auth, permissions) fails.
    try:
        socket.create_connection((PG_HOST, PG_PORT), timeout=2).close()
    except OSError as error:
        pytest.skip(f"PostgreSQL unreachable on {PG_HOST}:{PG_PORT} ({error}); the deploy profile needs one")
    name = f"evp_deploy_{uuid.uuid4().hex}"
    admin = connect("postgres")
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def dagster_home(tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding the real deploy/dagster.yaml, its DAGSTER_PG_* naming `pg_database`.

    Set in os.environ, so the step processes and the second Python process inherit them."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", PG_HOST)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(PG_PORT))
    monkeypatch.setenv("DAGSTER_PG_USER", PG_USER)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")  # trust auth; the profile needs it set anyway
    monkeypatch.setenv("DAGSTER_PG_DB", pg_database)
    return home


def test_profile_puts_every_storage_in_postgres_with_the_dev_instance_settings(dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
        # evpipeline/dagster.yaml's settings, carried over.
        assert instance.global_op_concurrency_default_limit == 1
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None and queue.max_concurrent_runs == 4
        assert not instance.telemetry_enabled
        assert not instance.nux_enabled
        assert instance.freshness_enabled


@pytest.mark.slow
def test_a_multiprocess_run_lands_in_postgres_and_other_processes_see_it(
    dagster_home: Path, pg_database: str, tmp_path: Path
) -> None:
    with (
        dg.DagsterInstance.get() as instance,
        dg.execute_job(dg.reconstructable(two_processes), instance=instance) as result,
    ):
        assert result.success
        run_id = result.run_id
        returned = {step: result.output_for_node(step) for step in ("left", "right")}

    # The two steps ran in two processes, neither of them this one (the run's orchestrator).
    assert len(set(returned.values())) == 2
    assert os.getpid() not in returned.values()

    # What PostgreSQL holds, read without Dagster: the run, and each step's success with its pid.
    with closing(connect(pg_database)) as con, con.cursor() as cur:
        cur.execute("SELECT pipeline_name, status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("two_processes", "SUCCESS")]
        cur.execute(
            "SELECT step_key, event FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (run_id, dg.DagsterEventType.STEP_SUCCESS.value),
        )
        rows = cur.fetchall()
    recorded = {}
    for step_key, body in rows:
        event = dg.deserialize_value(body, dg.EventLogEntry).dagster_event
        assert event is not None
        recorded[step_key] = event.pid
    assert recorded == returned

    # A second instance object in this process reads the same run and events back.
    with dg.DagsterInstance.from_config(str(dagster_home)) as second:
        run = second.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        steps = second.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
        assert sorted(record.event_log_entry.step_key or "" for record in steps) == ["left", "right"]

    # And so does another Python process that only knows DAGSTER_HOME (and the DAGSTER_PG_* variables).
    code = (
        "import sys, dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    run = instance.get_run_by_id(sys.argv[1])\n"
        "    print(type(instance.run_storage).__name__, run.status.value if run else None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, run_id],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["PostgresRunStorage", "SUCCESS"]
