"""The BI snapshot as a BI tool reads it (issue 23): from another process, after the folder was moved,
and from a long-lived process that opens a new connection after each publication. Each reader runs the
Python recipe docs/mart.md gives, taken from the document itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evpipeline.model.snapshot import publish_snapshot
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.mart_fixture import MartRows, later, standard_mart

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "mart.md"


def recipe(directory: Path) -> str:
    """The Python block of docs/mart.md, pointed at `directory` instead of data/snapshots
    (and without its print)."""
    block = re.search(r"```python\n(import duckdb\n.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/mart.md gives no Python recipe for reading the snapshot"
    code = block.group(1).replace("'data/snapshots'", repr(str(directory)))
    code = code.replace("'data/snapshots/warehouse.duckdb'", repr(str(directory / "warehouse.duckdb")))
    return "\n".join(line for line in code.splitlines() if not line.startswith("print("))


@pytest.fixture
def published(warehouse: WarehouseResource, tmp_path: Path) -> Iterator[tuple[WarehouseResource, Path]]:
    standard_mart().write(warehouse)
    directory = tmp_path / "published" / "snapshots"
    with warehouse.get_connection() as con:
        publish_snapshot(con, directory, "one")
    yield warehouse, directory


READ = """
import json
{recipe}
print(json.dumps({{
    "publication": con.execute("SELECT publication FROM main.snapshot_publication").fetchone()[0],
    "locations": con.execute("SELECT count(*) FROM mart.locations").fetchone()[0],
    "evses": con.execute("SELECT count(*) FROM mart.evses").fetchone()[0],
    "history": con.execute("SELECT count(*) FROM mart.evse_status_history").fetchone()[0],
}}))
"""


def test_a_moved_snapshot_reads_from_another_process(
    published: tuple[WarehouseResource, Path], tmp_path: Path
) -> None:
    _, directory = published
    moved = tmp_path / "mounted" / "bi"
    moved.parent.mkdir()
    shutil.move(str(directory), moved)  # the original path no longer exists
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", READ.format(recipe=recipe(moved))],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"publication": 1, "locations": 14, "evses": 21, "history": 21}


LONG_LIVED = """
import json, sys
held = []
for _ in sys.stdin:  # one line: open a new connection (keeping the earlier ones open, as a BI server does)
{recipe}
    held.append(con)
    print(json.dumps([[c.execute("SELECT publication FROM main.snapshot_publication").fetchone()[0],
                       c.execute("SELECT count(*) FROM mart.evses").fetchone()[0]] for c in held]),
          flush=True)
"""


def test_a_new_connection_in_a_long_lived_process_sees_the_newest_publication(
    published: tuple[WarehouseResource, Path], tmp_path: Path
) -> None:
    warehouse, directory = published
    reader = subprocess.Popen(
        [sys.executable, "-c", LONG_LIVED.format(recipe=textwrap.indent(recipe(directory), "    "))],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdin is not None and reader.stdout is not None
    try:
        reader.stdin.write("open\n")
        reader.stdin.flush()
        assert json.loads(reader.stdout.readline()) == [[1, 21]]
        rows = MartRows()
        rows.evse(MartRows().location(1), 9, updated=later(5))  # one more EVSE at location 1
        rows.write(warehouse, run_id="more")
        with warehouse.get_connection() as con:
            publish_snapshot(con, directory, "two")
        reader.stdin.write("open\n")
        reader.stdin.flush()
        # The new connection reads publication 2; the one opened before keeps its consistent view.
        assert json.loads(reader.stdout.readline()) == [[1, 21], [2, 22]]
    finally:
        reader.stdin.close()
        stderr = reader.stderr.read() if reader.stderr is not None else ""
        assert reader.wait(timeout=60) == 0, stderr[-2000:]
