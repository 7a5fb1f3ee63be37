"""Writer.append / delete_matching / update_matching: plain row writes inside the Writer's transaction."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pandas as pd
import pytest

from evpipeline.warehouse.writer import transaction


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA ops")
    # `key` is a keyword: the Writer must quote column names.
    con.execute("""CREATE TABLE ops.held (kind VARCHAR NOT NULL, "key" VARCHAR NOT NULL, status VARCHAR,
                   withdrawn BOOLEAN NOT NULL DEFAULT false, run_id VARCHAR, PRIMARY KEY (kind, "key"))""")
    yield con
    con.close()


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute('SELECT kind, "key", status, withdrawn, run_id FROM ops.held ORDER BY 1, 2').fetchall()


def test_append_by_name_with_defaults(con: duckdb.DuckDBPyConnection) -> None:
    with transaction(con, "t", "r1") as w:
        # Columns in another order, `withdrawn` and `run_id` left to the table.
        assert (
            w.append(
                "ops.held",
                pd.DataFrame({"status": ["A", None], "key": ["1", "2"], "kind": ["evse", "location"]}),
            )
            == 2
        )
        assert w.append("ops.held", pd.DataFrame()) == 0
    assert rows(con) == [("evse", "1", "A", False, None), ("location", "2", None, False, None)]


def test_delete_matching_only_exact_key_rows(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO ops.held (kind, \"key\") VALUES ('evse', '1'), ('evse', '2'), ('location', '1'), "
        "('tariff', '1')"
    )
    keys = pd.DataFrame(
        {"kind": ["evse", "location", "evse"], "key": ["1", "1", "1"]}
    )  # a duplicate counts once
    with transaction(con, "t", "r1") as w:
        assert w.delete_matching("ops.held", keys) == 2
        assert w.delete_matching("ops.held", keys.iloc[0:0]) == 0
    assert rows(con) == [("evse", "2", None, False, None), ("tariff", "1", None, False, None)]


def test_update_matching_sets_other_columns_and_constants(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO ops.held (kind, \"key\", status) VALUES ('evse', '1', 'A'), ('evse', '2', 'A'), "
        "('location', '1', 'A')"
    )
    values = pd.DataFrame(
        {"kind": ["evse", "evse"], "key": ["1", "9"], "status": ["B", "C"]}
    )  # '9' matches nothing
    with transaction(con, "t", "r2") as w:
        assert (
            w.update_matching(
                "ops.held", ["kind", "key"], values, constants={"run_id": "r2", "withdrawn": True}
            )
            == 1
        )
    assert rows(con) == [
        ("evse", "1", "B", True, "r2"),
        ("evse", "2", "A", False, None),
        ("location", "1", "A", False, None),
    ]


def test_row_writes_roll_back_with_the_transaction(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("INSERT INTO ops.held (kind, \"key\", status) VALUES ('evse', '1', 'A')")
    with pytest.raises(RuntimeError), transaction(con, "t", "r3") as w:
        w.append("ops.held", pd.DataFrame({"kind": ["evse"], "key": ["2"]}))
        w.update_matching(
            "ops.held", ["kind", "key"], pd.DataFrame({"kind": ["evse"], "key": ["1"], "status": ["B"]})
        )
        w.delete_matching("ops.held", pd.DataFrame({"kind": ["evse"], "key": ["1"]}))
        raise RuntimeError("crash before COMMIT")
    assert rows(con) == [("evse", "1", "A", False, None)]
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name LIKE '_evp%'").fetchone() == (0,)
