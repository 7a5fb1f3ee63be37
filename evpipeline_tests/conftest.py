"""Shared fixtures: a throwaway warehouse, frozen simulator clocks, simulators on free ports."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from evpipeline import settings

# Tests run against the simulators: their development settings fill whatever the environment lacks.
settings.apply_dev_defaults()

from evpipeline.simulators.evroam import EVRoamSimulator  # noqa: E402
from evpipeline.simulators.toolkit import SimClock  # noqa: E402
from evpipeline.sources.evroam.client import EVRoamResource  # noqa: E402
from evpipeline.warehouse import WarehouseResource  # noqa: E402
from evpipeline_tests.typed import present, running  # noqa: E402

START = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def duckdb_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated DuckDB warehouse to copy: migrating a new file costs 0.15-0.35 s on two cores, copying
    this one a few milliseconds. Built after collection, so it holds every migration registered by then
    (the test modules' own too); one registered later is applied to a copy when it is first opened, as
    on any warehouse (`connect` migrates once per process per file)."""
    import evpipeline.definitions  # noqa: F401  (registers every component's migrations)
    from evpipeline.warehouse.resource import connect

    path = tmp_path_factory.mktemp("duckdb_template") / "warehouse.duckdb"
    connect(str(path)).close()  # closed: checkpointed into the file, no WAL left beside it
    return path


def migrated_copy(template: Path, path: Path) -> WarehouseResource:
    """A warehouse at `path`, a copy of the migrated template."""
    shutil.copyfile(template, path)
    return WarehouseResource(database=str(path))


@pytest.fixture
def warehouse(tmp_path: Path, duckdb_template: Path) -> WarehouseResource:
    return migrated_copy(duckdb_template, tmp_path / "warehouse.duckdb")


# The DuckLake backend's tests use the machine's PostgreSQL as catalog: each test its own database.
PG_HOST = os.environ.get("EVPIPELINE_TEST_PG_HOST", "127.0.0.1")


def _postgres(dbname: str = "postgres") -> Any:
    import psycopg2

    con = psycopg2.connect(host=PG_HOST, port=5432, user="postgres", dbname=dbname, connect_timeout=3)
    con.autocommit = True
    return con


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A migrated DuckLake catalog to copy (PostgreSQL `CREATE DATABASE ... TEMPLATE`): migrating a
    fresh lake commits a snapshot per table (~8 s); a copy takes a fraction of a second. Every copy
    shares this session's data directory (DuckLake names each Parquet file uniquely)."""
    import psycopg2

    try:
        admin = _postgres()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL reachable on {PG_HOST}:5432 for the DuckLake catalog ({exc})")
    import evpipeline.definitions  # noqa: F401  (registers every component's migrations)
    from evpipeline.warehouse.resource import connect, detach_lake

    name = f"evp_tpl_{uuid.uuid4().hex[:16]}"
    data = str(tmp_path_factory.mktemp("lake")) + "/"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    previous = os.environ.get("EVPIPELINE_LAKE_DATA")
    os.environ["EVPIPELINE_LAKE_DATA"] = data
    try:
        connect(_lake_url(name)).close()
        detach_lake(_lake_url(name))  # a template must have no open connection to be copied
    finally:
        if previous is None:
            os.environ.pop("EVPIPELINE_LAKE_DATA", None)
        else:
            os.environ["EVPIPELINE_LAKE_DATA"] = previous
    try:
        yield name, data
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _lake_url(dbname: str) -> str:
    return f"ducklake:postgres:dbname={dbname} host={PG_HOST} user=postgres"


@pytest.fixture
def lake_database(lake_template: tuple[str, str]) -> Iterator[str]:
    """A DuckLake attach string on its own PostgreSQL database (a copy of the template; dropped after)."""
    template, data = lake_template
    name = f"evp_test_{uuid.uuid4().hex[:16]}"
    admin = _postgres()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    # Set by hand, not with `monkeypatch`: a test calling `monkeypatch.undo()` must not lose it.
    previous = os.environ.get("EVPIPELINE_LAKE_DATA")
    os.environ["EVPIPELINE_LAKE_DATA"] = data
    try:
        yield _lake_url(name)
    finally:
        if previous is None:
            os.environ.pop("EVPIPELINE_LAKE_DATA", None)
        else:
            os.environ["EVPIPELINE_LAKE_DATA"] = previous
        from evpipeline.warehouse.resource import detach_lake

        detach_lake(_lake_url(name))
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["duckdb", "ducklake"])
def any_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> WarehouseResource:
    """The warehouse on each backend: a DuckDB file (a copy of the migrated template), and a DuckLake
    with a PostgreSQL catalog (a copy of its migrated template). Suites about the warehouse itself
    (merge, sync, model) take their `warehouse` from here."""
    if request.param == "duckdb":
        return migrated_copy(request.getfixturevalue("duckdb_template"), tmp_path / "warehouse.duckdb")
    return WarehouseResource(database=request.getfixturevalue("lake_database"))


@pytest.fixture
def clock() -> SimClock:
    return SimClock(start=START)


@pytest.fixture
def evroam_sim(clock: SimClock) -> Iterator[EVRoamSimulator]:
    with running(EVRoamSimulator(scale=0.5, clock=clock, page_size=50, subscription_key="test-key")) as sim:
        yield sim


@pytest.fixture
def evroam(evroam_sim: EVRoamSimulator) -> EVRoamResource:
    return EVRoamResource(
        base_url=f"{evroam_sim.url}/consumer/api",
        subscription_key="test-key",
        allowed_push_hosts=evroam_sim.url,
        requests_per_second=500,
        backoff_base=0.01,
        read_timeout=1.0,
    )


def query(
    warehouse: WarehouseResource, sql: str, params: Sequence[Any] | None = None
) -> list[tuple[Any, ...]]:
    with warehouse.get_connection() as con:
        return con.execute(sql, params or []).fetchall()


def scalar(warehouse: WarehouseResource, sql: str, params: Sequence[Any] | None = None) -> Any:
    return query(warehouse, sql, params)[0][0]


_SHARED_INSTANCE: list[dg.DagsterInstance] = []


def shared_instance() -> dg.DagsterInstance:
    """One ephemeral Dagster instance per test process, for runs whose test reads only the run's own
    result: a new instance costs 0.2-0.3 s on two cores (its in-memory storages are created), hundreds
    of times a suite. What a run reads from the instance is its own run's (the quarantine check reads
    the materialization its run just made); a test that reads the instance's history passes its own."""
    if not _SHARED_INSTANCE:
        _SHARED_INSTANCE.append(dg.DagsterInstance.ephemeral())
    return _SHARED_INSTANCE[0]


def materialize(
    assets: Sequence[Any],
    resources: dict[str, Any],
    *,
    run_config: dict[str, Any] | None = None,
    selection: Any = None,
    raise_on_error: bool = True,
    instance: dg.DagsterInstance | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize through Dagster itself, in process, quietly."""
    config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}, **(run_config or {})}
    return dg.materialize(
        assets,
        resources=resources,
        run_config=config,
        selection=selection,
        partition_key=partition_key,
        instance=instance or shared_instance(),
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    """The metadata values of one asset's materialization in a run."""
    for event in result.get_asset_materialization_events():
        if present(event.asset_key).to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise KeyError(key)


@pytest.fixture(autouse=True)
def _quiet_http_logs() -> None:
    logging.getLogger("evpipeline.http").setLevel(logging.ERROR)
