"""The two warehouse backends: DuckLake specifics (DDL, extensions, secrets, concurrent writers,
committed-only reads) and a kill -9 in the middle of a commit on both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from evpipeline.sources import source_names
from evpipeline.warehouse import WRITER_POOL, WarehouseResource
from evpipeline.warehouse.backend import Backend, extension_path, lake_ddl, redact
from evpipeline.warehouse.resource import WarehouseUnavailable, connect
from evpipeline_tests.conftest import query, scalar
from evpipeline_tests.warehouse import writers

ROOT = Path(__file__).resolve().parents[2]


def test_lake_ddl_drops_key_constraints_and_indexes_only() -> None:
    ddl = """
        CREATE TABLE ops.a (k VARCHAR NOT NULL PRIMARY KEY, v INTEGER UNIQUE, w INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE ops.b (x VARCHAR NOT NULL, y VARCHAR, PRIMARY KEY (x, y), UNIQUE (y));
        CREATE UNIQUE INDEX b_by_y ON ops.b (y);
        CREATE INDEX b_by_x ON ops.b (x);
    """
    expected = """
        CREATE TABLE ops.a (k VARCHAR NOT NULL, v INTEGER, w INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE ops.b (x VARCHAR NOT NULL, y VARCHAR);
    """
    assert lake_ddl(ddl).split() == expected.split()


@pytest.mark.parametrize(
    ("database", "kind", "extensions"),
    [
        ("data/warehouse.duckdb", None, ()),
        ("ducklake:postgres:dbname=lake host=db", "postgres", ("ducklake", "postgres_scanner")),
        ("ducklake:sqlite:/srv/lake.sqlite", "sqlite", ("ducklake", "sqlite_scanner")),
        ("ducklake:/srv/lake.ducklake", "duckdb", ("ducklake",)),
    ],
)
def test_the_warehouse_setting_names_the_backend(
    database: str, kind: str | None, extensions: tuple[str, ...]
) -> None:
    backend = Backend(database)
    assert backend.catalog_kind == kind and backend.extensions == extensions
    for name in extensions:  # from the pinned wheels, for this DuckDB version: nothing is downloaded
        assert Path(extension_path(name)).is_file()
        assert "site-packages" in extension_path(name)


def test_a_catalog_password_never_reaches_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVPIPELINE_LAKE_DATA", str(tmp_path / "lake") + "/")
    url = (
        "ducklake:postgres:dbname=evp_no_such_database host=127.0.0.1 user=postgres password=s3cret-pw "
        "connect_timeout=2"
    )
    with pytest.raises(WarehouseUnavailable) as raised:
        connect(url)
    assert "s3cret-pw" not in str(raised.value) and "password=***" in str(raised.value)
    assert redact("dbname=x password='a b' host=y") == "dbname=x password=*** host=y"


@pytest.mark.slow
def test_a_sqlite_catalog_works_like_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVPIPELINE_LAKE_DATA", str(tmp_path / "lake") + "/")
    warehouse = WarehouseResource(database=f"ducklake:sqlite:{tmp_path / 'catalog.sqlite'}")
    writers.write_round(warehouse, "alpha", 1, 50)
    assert scalar(warehouse, "SELECT count(*) FROM alpha.items") == 50
    assert list((tmp_path / "lake").rglob("*.parquet")), "data lives as Parquet under EVPIPELINE_LAKE_DATA"


def _state(warehouse: WarehouseResource, source: str) -> dict[str, Any]:
    return {
        "rows": query(
            warehouse, f"SELECT item_id, value, status, is_deleted FROM {source}.items ORDER BY item_id"
        ),
        "watermark": query(warehouse, "SELECT watermark FROM ops.sync_state WHERE source = ?", [source]),
    }


def test_two_writers_at_once_both_commit_on_ducklake(lake_database: str) -> None:
    """Two sources commit over each other: the one that loses the race on the shared ops tables
    is redone whole, and neither loses a row or a watermark."""
    warehouse = WarehouseResource(database=lake_database)
    for source in writers.SOURCES:
        writers.write_round(warehouse, source, 1, 200)
    beta_committed = threading.Event()
    attempts: list[int] = []

    def alpha_waits_for_beta(_writer: Any, _valid: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:  # the first attempt holds its transaction open across beta's commit
            assert beta_committed.wait(60)

    alpha = threading.Thread(
        target=writers.write_round,
        args=(warehouse, "alpha", 2, 200),
        kwargs={"before_commit": alpha_waits_for_beta},
    )
    alpha.start()
    while not attempts:
        time.sleep(0.01)
    writers.write_round(warehouse, "beta", 2, 300)
    beta_committed.set()
    alpha.join(60)

    assert len(attempts) == 2, "alpha's first commit must have lost to beta's and been redone"
    for source, count in (("alpha", 200), ("beta", 300)):
        expected = writers.items(2, count)
        state = _state(warehouse, source)
        assert [(r[0], r[1]) for r in state["rows"]] == list(
            zip(expected["item_id"], expected["value"], strict=True)
        )
        assert state["watermark"] == [(writers.START.replace(minute=2),)]
    assert scalar(warehouse, "SELECT count(*) FROM ops.runs") == 4  # the lost attempt logged nothing


def test_readers_see_only_committed_snapshots_on_ducklake(lake_database: str) -> None:
    warehouse = WarehouseResource(database=lake_database)
    writers.write_round(warehouse, "alpha", 1, 100)
    with warehouse.get_connection() as reader:
        reader.execute("BEGIN TRANSACTION")
        before = reader.execute("SELECT sum(value) FROM alpha.items").fetchone()
        with warehouse.writer("alpha", "uncommitted") as w:
            w.merge(writers.items(2, 150), "alpha.items", ["item_id"])
            with warehouse.get_connection() as other:  # mid-transaction: nothing of it visible
                assert other.execute("SELECT count(*) FROM alpha.items").fetchone() == (100,)
        # Committed now, but the open read transaction keeps reading the snapshot it started on.
        assert reader.execute("SELECT sum(value) FROM alpha.items").fetchone() == before
        reader.execute("COMMIT")
    assert scalar(warehouse, "SELECT count(*) FROM alpha.items") == 150


@pytest.mark.parametrize("fraction", [0.35, 0.7, 0.95])
@pytest.mark.slow
def test_kill_9_during_a_commit_then_rerun_converges(
    any_warehouse: WarehouseResource, tmp_path: Path, fraction: float
) -> None:
    """A writer killed (SIGKILL) somewhere in its write leaves round 1 or round 2 whole, never a mix;
    running the write again gives exactly what an uninterrupted run gives."""
    count = 20_000
    writers.write_round(any_warehouse, "alpha", 1, count)
    clean = WarehouseResource(database=str(tmp_path / "clean.duckdb"))
    started = time.perf_counter()
    writers.write_round(clean, "alpha", 1, count)
    writers.write_round(clean, "alpha", 2, count)
    duration = (time.perf_counter() - started) / 2  # about what one round takes here

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "evpipeline_tests.warehouse.writers",
            any_warehouse.database,
            "alpha",
            "2",
            str(count),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    time.sleep(duration * fraction)
    child.kill()
    child.wait(30)

    after_kill = _state(any_warehouse, "alpha")
    rounds = {value // 1_000_000 for _, value, _, _ in after_kill["rows"]}
    assert len(rounds) == 1 and len(after_kill["rows"]) == count, "a partial write became visible"
    (data_round,) = rounds
    assert after_kill["watermark"] == [(writers.START.replace(minute=data_round),)], (
        "data and watermark disagree"
    )

    writers.write_round(any_warehouse, "alpha", 2, count)
    assert _state(any_warehouse, "alpha") == _state(clean, "alpha")
    runs = json.loads(
        scalar(any_warehouse, "SELECT details FROM ops.runs ORDER BY committed_at DESC LIMIT 1")
    )
    assert runs["tables"]["alpha.items"]["fetched"] == count


def test_source_syncs_leave_the_single_writer_pool_only_on_ducklake(tmp_path: Path) -> None:
    """On a DuckLake the sources' sync assets run side by side (no pool); the model and the exports
    stay one at a time on both backends. Read from a freshly loaded code location."""
    script = (
        "import json, warnings; warnings.simplefilter('ignore');from evpipeline import settings; "
        "settings.apply_dev_defaults();from evpipeline.definitions import defs;pools = {a.op.name: "
        "[a.op.pool, sorted(set(a.group_names_by_key.values()))] for a in defs.assets if hasattr(a, "
        "'op')};print(json.dumps(pools))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVPIPELINE_WAREHOUSE")}
    pools = {}
    for backend, database in (
        ("file", str(tmp_path / "w.duckdb")),
        ("lake", "ducklake:postgres:dbname=unused host=127.0.0.1"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, "EVPIPELINE_WAREHOUSE": database, "EVPIPELINE_DATA_DIR": str(tmp_path)},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        pools[backend] = json.loads(done.stdout.strip().splitlines()[-1])
    syncs = [name for name, (_pool, groups) in pools["file"].items() if set(groups) <= set(source_names())]
    assert len(syncs) >= len(source_names()), pools["file"]
    assert {pools["file"][name][0] for name in syncs} == {WRITER_POOL}
    assert {pools["lake"][name][0] for name in syncs} == {None}
    assert pools["file"]["mart_model"][0] == pools["lake"]["mart_model"][0] == WRITER_POOL
