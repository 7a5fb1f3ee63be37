"""merge(), flag_missing(), the Writer transaction, quarantine and sync state, on a real DuckDB file."""

from __future__ import annotations

import gc
import sys
import weakref
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from evpipeline.warehouse import Migration, QuarantineRecord, WarehouseResource, register, source_table
from evpipeline.warehouse import migrations as migration_registry
from evpipeline.warehouse.merge import MergeCounts
from evpipeline_tests.conftest import query, scalar

register(
    Migration(
        "testsrc",
        1,
        "things",
        "CREATE SCHEMA IF NOT EXISTS testsrc;"
        + source_table(
            "testsrc.things",
            "thing_id VARCHAR NOT NULL, part INTEGER NOT NULL, status VARCHAR, power DOUBLE, tags JSON",
        ),
    )
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ["thing_id", "part"]


@pytest.fixture(autouse=True, params=["temp table", "in memory"])
def staging(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every rule holds on both ways a delta is staged: registered and a temporary table (small
    deltas), or read by name from memory (from `IN_MEMORY_FROM_ROWS` rows)."""
    # The module by its name: the package's `merge` is the function.
    monkeypatch.setattr(
        sys.modules["evpipeline.warehouse.merge"],
        "IN_MEMORY_FROM_ROWS",
        1 if request.param == "in memory" else 10**9,
    )
    return str(request.param)


def frame(
    rows: list[tuple[str, int, str, float, datetime]], deleted: list[bool] | None = None
) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["thing_id", "part", "status", "power", "last_updated"])
    df["last_updated"] = pd.to_datetime(df["last_updated"], utc=True)
    df["is_deleted"] = deleted or [False] * len(rows)
    return df


def merge(warehouse: WarehouseResource, df: pd.DataFrame, run_id: str = "r1") -> MergeCounts:
    with warehouse.writer("testsrc", run_id) as w:
        return w.merge(df, "testsrc.things", KEYS, status_column="status")


def rows(warehouse: WarehouseResource) -> list[tuple]:
    return query(
        warehouse, "SELECT thing_id, part, status, power, is_deleted FROM testsrc.things ORDER BY 1, 2"
    )


def test_insert_update_unchanged_counts(warehouse: WarehouseResource) -> None:
    c = merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0), ("b", 1, "CHARGING", 22.0, T0)]))
    assert (c.inserted, c.updated, c.unchanged, c.status_changes) == (2, 0, 0, 2)
    c = merge(
        warehouse,
        frame([("a", 1, "CHARGING", 11.0, T0 + timedelta(minutes=1)), ("b", 1, "CHARGING", 22.0, T0)]),
    )
    assert (c.inserted, c.updated, c.unchanged, c.status_changes) == (0, 1, 1, 1)
    assert rows(warehouse) == [("a", 1, "CHARGING", 11.0, False), ("b", 1, "CHARGING", 22.0, False)]


def test_replay_changes_nothing(warehouse: WarehouseResource) -> None:
    data = frame([("a", 1, "AVAILABLE", 11.0, T0), ("b", 2, "CHARGING", 22.0, T0)])
    merge(warehouse, data)
    before = query(warehouse, "SELECT * EXCLUDE (_ingested_at, _run_id) FROM testsrc.things ORDER BY 1")
    history = scalar(warehouse, "SELECT count(*) FROM ops.status_history")
    c = merge(warehouse, data, run_id="r2")
    assert (c.inserted, c.updated, c.deleted, c.unchanged) == (0, 0, 0, 2)
    assert (
        query(warehouse, "SELECT * EXCLUDE (_ingested_at, _run_id) FROM testsrc.things ORDER BY 1") == before
    )
    assert scalar(warehouse, "SELECT count(*) FROM ops.status_history") == history


def test_older_data_never_overwrites_newer(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "CHARGING", 11.0, T0 + timedelta(hours=1))]))
    c = merge(warehouse, frame([("a", 1, "AVAILABLE", 7.0, T0)]))  # arrives late
    assert c.updated == 0 and c.unchanged == 1
    assert rows(warehouse) == [("a", 1, "CHARGING", 11.0, False)]


def test_unchanged_newer_observation_protects_against_late_older_change(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0)]))
    # 10:20 confirms the same content; a change stamped 10:10 arriving afterwards is stale.
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0 + timedelta(minutes=20))]))
    c = merge(warehouse, frame([("a", 1, "OUTOFORDER", 11.0, T0 + timedelta(minutes=10))]))
    assert c.updated == 0
    assert rows(warehouse)[0][2] == "AVAILABLE"
    # last_updated keeps the time the content last changed, not the time we last saw it.
    assert scalar(warehouse, "SELECT last_updated FROM testsrc.things") == T0


def test_same_timestamp_different_content_is_applied(warehouse: WarehouseResource) -> None:
    """GreenFlux marks moved EVSEs REMOVED without touching their timestamp: that must land."""
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0)]))
    c = merge(warehouse, frame([("a", 1, "REMOVED", 11.0, T0)]))
    assert c.updated == 1 and rows(warehouse)[0][2] == "REMOVED"


def test_duplicates_in_one_frame_collapse_to_the_newest(warehouse: WarehouseResource) -> None:
    c = merge(warehouse, frame([("a", 1, "OLD", 1.0, T0), ("a", 1, "NEW", 2.0, T0 + timedelta(seconds=1))]))
    assert c.inserted == 1 and c.unchanged == 0
    assert rows(warehouse) == [("a", 1, "NEW", 2.0, False)]


def test_soft_delete_is_a_flag_with_deleted_at(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0)]))
    later = T0 + timedelta(minutes=5)
    c = merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, later)], deleted=[True]))
    assert c.deleted == 1 and c.updated == 0
    assert query(warehouse, "SELECT is_deleted, deleted_at FROM testsrc.things") == [(True, later)]
    c = merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, later + timedelta(minutes=5))], deleted=[True]))
    assert c.deleted == 0 and c.unchanged == 1  # still deleted: nothing new
    assert scalar(warehouse, "SELECT deleted_at FROM testsrc.things") == later  # first deletion time kept
    c = merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, later + timedelta(minutes=9))]))
    assert c.updated == 1 and query(warehouse, "SELECT is_deleted, deleted_at FROM testsrc.things") == [
        (False, None)
    ]


def test_flag_missing_marks_hard_deletes_within_scope(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "X", 1.0, T0), ("a", 2, "X", 1.0, T0), ("b", 1, "X", 1.0, T0)]))
    snapshot = pd.DataFrame({"thing_id": ["a"], "part": [1]})
    as_of = T0 + timedelta(hours=1)
    with warehouse.writer("testsrc") as w:
        flagged = w.flag_missing(
            "testsrc.things", KEYS, snapshot, as_of, scope_keys=pd.DataFrame({"thing_id": ["a"]})
        )
    assert flagged == 1  # a/2 vanished; b is outside the snapshot's scope
    assert [(r[0], r[1], r[4]) for r in rows(warehouse)] == [("a", 1, False), ("a", 2, True), ("b", 1, False)]
    with warehouse.writer("testsrc") as w:
        assert w.flag_missing("testsrc.things", KEYS, snapshot, as_of) == 1  # unscoped: b goes too


def test_flag_missing_spares_rows_observed_after_the_snapshot(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("late", 1, "X", 1.0, T0 + timedelta(hours=2))]))
    with warehouse.writer("testsrc") as w:
        assert (
            w.flag_missing(
                "testsrc.things", KEYS, pd.DataFrame({"thing_id": [], "part": []}), T0 + timedelta(hours=1)
            )
            == 0
        )


def test_crash_before_commit_leaves_everything_untouched(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0)]))
    with warehouse.writer("testsrc") as w:
        w.set_sync_state("things", T0)
    with pytest.raises(RuntimeError), warehouse.writer("testsrc", "crashing") as w:
        w.merge(
            frame([("a", 1, "CHARGING", 11.0, T0 + timedelta(hours=1)), ("z", 1, "NEW", 1.0, T0)]),
            "testsrc.things",
            KEYS,
            status_column="status",
        )
        w.quarantine([QuarantineRecord("testsrc.things", "q", "bad", {"x": 1})])
        w.set_sync_state("things", T0 + timedelta(hours=1))
        raise RuntimeError("killed between merge and commit")
    assert rows(warehouse) == [("a", 1, "AVAILABLE", 11.0, False)]
    assert scalar(warehouse, "SELECT watermark FROM ops.sync_state WHERE stream = 'things'") == T0
    assert scalar(warehouse, "SELECT count(*) FROM ops.quarantine") == 0
    assert scalar(warehouse, "SELECT count(*) FROM ops.status_history WHERE run_id = 'crashing'") == 0


def test_watermark_never_moves_backwards(warehouse: WarehouseResource) -> None:
    with warehouse.writer("testsrc") as w:
        w.set_sync_state("s", T0 + timedelta(hours=1), {"page": 3})
    with warehouse.writer("testsrc") as w:
        w.set_sync_state("s", T0)
    assert warehouse.sync_state("testsrc", "s") == (T0 + timedelta(hours=1), {"page": 3})


def test_quarantine_is_idempotent_per_payload(warehouse: WarehouseResource) -> None:
    record = QuarantineRecord("testsrc.things", "k1", "power: ge(0) (got -1)", {"id": "k1", "power": -1})
    for run in ("r1", "r2"):
        with warehouse.writer("testsrc", run) as w:
            w.quarantine([record])
    assert query(
        warehouse, "SELECT entity_key, occurrences, first_run_id, last_run_id, raw_json FROM ops.quarantine"
    ) == [("k1", 2, "r1", "r2", '{"id": "k1", "power": -1}')]


def test_status_history_records_transitions(warehouse: WarehouseResource) -> None:
    for minute, status in enumerate(["AVAILABLE", "CHARGING", "CHARGING", "AVAILABLE"]):
        merge(warehouse, frame([("a", 1, status, 11.0, T0 + timedelta(minutes=minute))]))
    assert query(
        warehouse, "SELECT entity_key, old_status, new_status FROM ops.status_history ORDER BY status_at"
    ) == [("a|1", None, "AVAILABLE"), ("a|1", "AVAILABLE", "CHARGING"), ("a|1", "CHARGING", "AVAILABLE")]


def test_unknown_columns_are_rejected(warehouse: WarehouseResource) -> None:
    df = frame([("a", 1, "X", 1.0, T0)]).assign(surprise=1)
    with pytest.raises(ValueError, match="surprise"):
        merge(warehouse, df)


def test_migrations_apply_once_and_refuse_edits(warehouse: WarehouseResource) -> None:
    with warehouse.get_connection() as con:
        assert migration_registry.apply(con) == []
        versions = con.execute("SELECT component, version FROM ops.schema_migrations ORDER BY 1").fetchall()
    assert ("ops", 1) in versions and ("testsrc", 1) in versions
    with pytest.raises(ValueError, match="different SQL"):
        register(Migration("testsrc", 1, "things", "CREATE TABLE changed(x INT)"))


def sequenced(rows: list[tuple[str, int, str, float, datetime]], seqs: list[int]) -> pd.DataFrame:
    """`frame` with each row's fetch sequence (`_observed_seq`), as a sync stamps it."""
    return frame(rows).assign(_observed_seq=seqs)


@pytest.mark.parametrize("any_warehouse", ["duckdb"], indirect=True)
def test_equal_stamps_are_ordered_by_the_observation_sequence_against_the_stored_row(
    warehouse: WarehouseResource,
) -> None:
    merge(warehouse, sequenced([("a", 1, "SEEN-5", 1.0, T0)], [5]))
    # Same stamp, an earlier fetch (a replay, a slow run): older, ignored.
    c = merge(warehouse, sequenced([("a", 1, "SEEN-3", 1.0, T0)], [3]))
    assert (c.updated, c.unchanged) == (0, 1) and rows(warehouse)[0][2] == "SEEN-5"
    assert scalar(warehouse, "SELECT _observed_seq FROM testsrc.things") == 5
    # Same stamp, a later fetch: newer, applied.
    c = merge(warehouse, sequenced([("a", 1, "SEEN-7", 1.0, T0)], [7]))
    assert c.updated == 1 and rows(warehouse)[0][2] == "SEEN-7"
    assert scalar(warehouse, "SELECT _observed_seq FROM testsrc.things") == 7


@pytest.mark.parametrize("any_warehouse", ["duckdb"], indirect=True)
def test_equal_stamps_in_one_frame_collapse_to_the_highest_sequence(warehouse: WarehouseResource) -> None:
    # The same two contents per key, the later fetch holding X for a and Y for b: any fallback order
    # (content hash, row position) picks the same content for both keys, so it gets one of them wrong.
    versions = [
        ("a", 1, "X", 1.0, T0),
        ("a", 1, "Y", 2.0, T0),
        ("b", 1, "X", 1.0, T0),
        ("b", 1, "Y", 2.0, T0),
    ]
    c = merge(warehouse, sequenced(versions, [2, 1, 1, 2]))
    assert c.inserted == 2
    assert rows(warehouse) == [("a", 1, "X", 1.0, False), ("b", 1, "Y", 2.0, False)]


def test_a_long_frame_with_duplicate_keys_collapses_to_the_newest(warehouse: WarehouseResource) -> None:
    # 1,200 keys; the first 300 come twice, the second copy a minute newer with another status.
    first = [(f"t{i:04d}", i % 3, "OLD", float(i), T0) for i in range(1200)]
    again = [(f"t{i:04d}", i % 3, "NEW", float(i), T0 + timedelta(minutes=1)) for i in range(300)]
    data = frame(first + again)
    c = merge(warehouse, data)
    assert (c.fetched, c.inserted, c.updated, c.unchanged, c.status_changes) == (1500, 1200, 0, 0, 1200)
    assert query(warehouse, "SELECT status, count(*) FROM testsrc.things GROUP BY 1 ORDER BY 1") == [
        ("NEW", 300),
        ("OLD", 900),
    ]
    assert query(warehouse, "SELECT status FROM testsrc.things WHERE thing_id = 't0299'") == [("NEW",)]
    c = merge(warehouse, data, run_id="r2")  # the same delivery again: nothing to do
    assert (c.inserted, c.updated, c.deleted, c.unchanged, c.status_changes) == (0, 0, 0, 1200, 0)
    assert scalar(warehouse, "SELECT count(*) FROM testsrc.things") == 1200


def test_a_long_frame_with_unique_compound_keys_is_merged_row_by_row(warehouse: WarehouseResource) -> None:
    # One thing_id per two parts: unique only as (thing_id, part).
    rows_ = [(f"t{i // 2:04d}", i % 2, "AVAILABLE", float(i), T0) for i in range(1200)]
    assert merge(warehouse, frame(rows_)).inserted == 1200
    changed = [(t, p, "CHARGING" if p else s, w, T0 + timedelta(minutes=1)) for t, p, s, w, _ in rows_]
    c = merge(warehouse, frame(changed), run_id="r2")
    # Part 1 changed status; part 0 only got a newer observation.
    assert (c.inserted, c.updated, c.unchanged, c.status_changes) == (0, 600, 600, 600)
    assert query(warehouse, "SELECT part, status, count(*) FROM testsrc.things GROUP BY 1, 2 ORDER BY 1") == [
        (0, "AVAILABLE", 600),
        (1, "CHARGING", 600),
    ]
    # Both moved the observation forward.
    assert query(warehouse, "SELECT DISTINCT _observed_at FROM testsrc.things") == [
        (T0 + timedelta(minutes=1),)
    ]


def test_columns_the_frame_lacks_keep_their_values_on_update(warehouse: WarehouseResource) -> None:
    merge(warehouse, frame([("a", 1, "AVAILABLE", 11.0, T0)]).assign(tags='["x"]'))
    c = merge(
        warehouse,
        frame([("a", 1, "CHARGING", 11.0, T0 + timedelta(minutes=1)), ("b", 1, "CHARGING", 7.0, T0)]),
    )
    assert (c.inserted, c.updated) == (1, 1)
    assert query(
        warehouse, "SELECT thing_id, status, CAST(tags AS VARCHAR) FROM testsrc.things ORDER BY 1"
    ) == [
        ("a", "CHARGING", '["x"]'),
        ("b", "CHARGING", None),
    ]


def test_a_large_delta_is_not_kept_alive_by_the_transaction(
    warehouse: WarehouseResource, staging: str
) -> None:
    """A registered frame stays referenced by its (dropped) view until the transaction ends; a
    bootstrap merging hundreds of batches in one transaction held them all. From
    `IN_MEMORY_FROM_ROWS` rows the frame is read by name and is free once its merge returns."""
    delta = frame([(f"t{i}", 1, "AVAILABLE", 11.0, T0) for i in range(50)])
    alive = weakref.ref(delta)
    with warehouse.writer("testsrc", "r1") as w:
        assert w.merge(delta, "testsrc.things", KEYS, status_column="status").inserted == 50
        del delta
        gc.collect()
        kept = alive() is not None
    assert kept == (staging == "temp table")
