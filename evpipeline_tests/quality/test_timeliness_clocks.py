"""Timeliness on clocks that can be compared: a provider whose clock runs 300 s ahead of ours, and an
old object published for the first time (issue 23). Real DuckDB, the report's own SQL; the provider
clock is measured from a real simulator's `Date` header over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import duckdb
import pytest

import evpipeline.ndw.push_sync  # noqa: F401  (registers ops.ndw_pushes)
from evpipeline import clocks
from evpipeline.quality import report, tables
from evpipeline.simulators.greenflux import GreenFluxSimulator
from evpipeline.simulators.toolkit import SimClock
from evpipeline.sources.greenflux.client import GreenFluxResource
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.mart_fixture import T0, standard_mart
from evpipeline_tests.typed import running

DAY = timedelta(days=1)
S = timedelta(seconds=1)
NOTICED = T0 + 30 * DAY  # when the warehouse recorded LOC-0002 (its source stamps are 30 days older)


@pytest.fixture
def skewed(warehouse: WarehouseResource) -> WarehouseResource:
    """The standard mart (source `test`), whose provider clock runs 300 s ahead of ours."""
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        con.execute("DELETE FROM ops.status_history")
        con.execute(
            f"INSERT INTO {clocks.TABLE} VALUES ('test', ?, 300.0, 0.6, 3, 299.8, 300.2)", [T0 + DAY - 60 * S]
        )
        # E1 changed at 12:00:00 ours = 12:05:00 provider, recorded 5 s later, accepted 8 s after the change.
        # E2 says 12:06:40 provider = 12:01:40 ours, yet we recorded it at 12:00:10: a residual 90 s.
        for uid, status_at, recorded_at, pushed_at in (
            ("LOC-0001-E1", T0 + DAY + 300 * S, T0 + DAY + 5 * S, T0 + DAY + 8 * S),
            ("LOC-0001-E2", T0 + DAY + 400 * S, T0 + DAY + 10 * S, T0 + DAY + 30 * S),
        ):
            con.execute(
                "INSERT INTO ops.status_history VALUES ('mart', 'mart.evses', ?, 'status', 'AVAILABLE', "
                "'CHARGING', ?, ?, 't')",
                [f"NL|ALF|LOC-0001|{uid}", status_at, recorded_at],
            )
            _push(con, pushed_at, "evse", "PATCH", f"NL/ALF/LOC-0001/{uid}", "status")
        # LOC-0002: source stamps of T0, first seen (written to the mart) 30 days later,
        # first PUT 12 s after that.
        for table in ("mart.locations", "mart.evses", "mart.connectors"):
            con.execute(f"UPDATE {table} SET _ingested_at = ? WHERE location_id = 'LOC-0002'", [NOTICED])
        _push(con, NOTICED + 12 * S, "location", "PUT", "NL/ALF/LOC-0002", "new")
        # T-STD: published first, then PUT again without a newer source stamp (a change of ours,
        # 40 s after we wrote it).
        con.execute("UPDATE mart.tariffs SET _ingested_at = ? WHERE tariff_id = 'T-STD'", [NOTICED + 100 * S])
        _push(con, NOTICED + 2 * S, "tariff", "PUT", "NL/ALF/T-STD", "new")
        _push(con, NOTICED + 140 * S, "tariff", "PUT", "NL/ALF/T-STD", "changed")
    with warehouse.get_connection() as con:
        report.write_timeliness(con, T0, T0 + 60 * DAY, T0)
    return warehouse


def _push(
    con: duckdb.DuckDBPyConnection, pushed_at: datetime, kind: str, method: str, key: str, reason: str
) -> None:
    con.execute(
        """INSERT INTO ops.ndw_pushes (pushed_at, kind, method, path, key, reason, outcome, ok, attempts)
                   VALUES (?, ?, ?, '/x', ?, ?, 'accepted', true, 1)""",
        [pushed_at, kind, method, key, reason],
    )


def test_a_status_change_is_measured_on_our_clock_with_the_provider_skew_taken_off(
    skewed: WarehouseResource,
) -> None:
    rows = query(
        skewed,
        f"""SELECT push_key, publication, clock_skew_seconds, observable_at, delay_seconds,
                                    observed_delay_seconds, clock_note FROM {tables.DELAYS}
                                    WHERE data_class = 'dynamic' ORDER BY push_key""",
    )
    assert rows == [
        ("NL/ALF/LOC-0001/LOC-0001-E1", "change", 300.0, T0 + DAY, 8.0, 3.0, None),
        (
            "NL/ALF/LOC-0001/LOC-0001-E2",
            "change",
            300.0,
            T0 + DAY + 10 * S,
            20.0,
            20.0,
            "source time 90.0 s after our recording: from our recording",
        ),
    ]


def test_an_old_object_published_for_the_first_time_is_measured_from_when_we_recorded_it(
    skewed: WarehouseResource,
) -> None:
    rows = query(
        skewed,
        f"""SELECT push_key, publication, changed_at, observable_at, delay_seconds, clock_note
                             FROM {tables.DELAYS} WHERE data_class = 'static' ORDER BY pushed_at""",
    )
    assert rows == [
        (
            "NL/ALF/T-STD",
            "first",
            T0,
            None,
            None,
            "first publication: from our recording",
        ),  # not yet recorded then
        ("NL/ALF/LOC-0002", "first", T0, NOTICED, 12.0, "first publication: from our recording"),
        (
            "NL/ALF/T-STD",
            "change",
            T0,
            NOTICED + 100 * S,
            40.0,
            "source unchanged since the previous push: from our recording",
        ),
    ]


def test_the_summary_keeps_first_publications_apart_and_never_counts_a_negative_delay(
    skewed: WarehouseResource,
) -> None:
    rows = query(
        skewed,
        f"""SELECT data_class, publication, pushes, p50_seconds, max_seconds, within_target_share,
                                    clock_skew_seconds, measured_from_recording
                             FROM {tables.TIMELINESS} ORDER BY data_class, publication""",
    )
    assert rows == [
        ("dynamic", "change", 2, 14.0, 20.0, 1.0, 300.0, 1),  # the skew taken off E1's source time
        ("static", "change", 1, 40.0, 40.0, 1.0, None, 1),  # measured from our recording: no skew used
        ("static", "first", 1, 12.0, 12.0, 1.0, None, 1),
    ]
    assert query(skewed, f"SELECT count(*) FROM {tables.DELAYS} WHERE delay_seconds < 0") == [(0,)]


@pytest.fixture
def greenflux_ahead() -> Iterator[GreenFluxSimulator]:
    clock = SimClock()  # frozen: its Date header says exactly what we set
    clock.advance(300)
    with running(GreenFluxSimulator(scale=0.05, clock=clock, token="sim-greenflux-token")) as sim:
        yield sim


def test_the_provider_clock_is_measured_from_its_answers_and_written_with_its_next_write(
    greenflux_ahead: GreenFluxSimulator, warehouse: WarehouseResource
) -> None:
    clocks.CLOCKS.forget()
    client = GreenFluxResource(base_url=greenflux_ahead.url, token="sim-greenflux-token").client()
    list(client.locations(None))
    with warehouse.writer("greenflux"):
        pass
    [(source, skew, uncertainty, samples)] = query(
        warehouse, f"SELECT source, skew_seconds, uncertainty_seconds, samples FROM {clocks.TABLE}"
    )
    assert source == "greenflux" and samples >= 1
    assert 298.5 <= skew <= 300.5 and 0.5 <= uncertainty < 1.5
