"""The AFIR quality report on a constructed warehouse: exact shares, percentiles and PNGs through Dagster."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

import evpipeline.ndw.push_sync  # noqa: F401  (registers ops.ndw_pushes)
from evpipeline.quality import assets, report, tables
from evpipeline.quality.elements import elements
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.mart_fixture import T0, standard_mart

DAY = timedelta(days=1)
PNG = b"\x89PNG\r\n\x1a\n"
RAPID = ("LOC-0002-E1", "LOC-0002-E2")


def _history(warehouse: WarehouseResource, rows: list[tuple[str, str, datetime]]) -> None:
    """Replace the status history with (evse_uid, status, status_at) rows, recorded 5 s after the change."""
    with warehouse.get_connection() as con:
        con.execute("DELETE FROM ops.status_history")
        for uid, status, at in rows:
            loc = uid.rsplit("-", 1)[0]
            con.execute(
                "INSERT INTO ops.status_history VALUES ('mart', 'mart.evses', ?, 'status', NULL, ?, ?, ?, "
                "'test')",
                [f"NL|ALF|{loc}|{uid}", status, at, at + timedelta(seconds=5)],
            )


def _push(
    warehouse: WarehouseResource, pushed_at: datetime, kind: str, method: str, key: str, *, ok: bool = True
) -> None:
    with warehouse.get_connection() as con:
        con.execute(
            """INSERT INTO ops.ndw_pushes (pushed_at, kind, method, path, key, outcome, ok, attempts)
                       VALUES (?, ?, ?, '/x', ?, ?, ?, 1)""",
            [pushed_at, kind, method, key, "accepted" if ok else "rejected", ok],
        )


@pytest.fixture
def mart(warehouse: WarehouseResource) -> WarehouseResource:
    m = standard_mart()
    for c in m.connectors:
        if c["evse_uid"] in RAPID:
            c.update(
                max_electric_power=150_000, power_type="DC", standard="IEC_62196_T2_COMBO", format="CABLE"
            )
    m.write(warehouse)
    return warehouse


@pytest.fixture
def history(mart: WarehouseResource) -> WarehouseResource:
    """Ten days from T0: known working/not-working periods."""
    _history(
        mart,
        [
            ("LOC-0001-E1", "AVAILABLE", T0),
            ("LOC-0001-E1", "OUTOFORDER", T0 + 9 * DAY),  # 0.9
            ("LOC-0002-E1", "AVAILABLE", T0),
            ("LOC-0002-E1", "CHARGING", T0 + DAY),
            ("LOC-0002-E1", "OUTOFORDER", T0 + timedelta(days=9.95)),  # 0.995, rapid
            ("LOC-0002-E2", "RESERVED", T0),
            ("LOC-0002-E2", "INOPERATIVE", T0 + 9 * DAY),  # 0.9, rapid
            ("LOC-0003-E1", "AVAILABLE", T0 - 5 * DAY),
            ("LOC-0003-E1", "UNKNOWN", T0 + 5 * DAY),  # 0.5 (clipped)
            ("LOC-0003-E2", "AVAILABLE", T0),
            ("LOC-0003-E2", "REMOVED", T0 + 5 * DAY),  # 1.0 over 5 days
        ],
    )
    return mart


def test_elements_follow_the_ndw_definition() -> None:
    names = {(e.object, e.name): e.requirement for e in elements()}
    assert names[("location", "opening_times")] == names[("connector", "tariff_ids")] == "NDW (AFIR)"
    assert names[("location", "address")] == names[("evse", "connectors")] == "NDW (OCPI)"
    assert names[("evse", "evse_id")] == "AFIR static"
    assert ("location", "last_updated") not in names


def test_completeness_shares_per_cpo_and_source(mart: WarehouseResource) -> None:
    with mart.get_connection() as con:
        report.write_completeness(con, T0)
        report.write_rejections(con, T0)
    shares = {
        (cc, obj, el): (objects, present, share)
        for cc, obj, el, objects, present, share in query(
            mart,
            f"SELECT country_code, object, element, objects, present, share FROM {tables.COMPLETENESS} "
            "WHERE party_id IN ('ALF', 'BEC')",
        )
    }
    # 11 published live NL locations (5 good + 6 defects; private and deleted are not counted),
    # one without energy mix.
    assert shares[("NL", "location", "energy_mix")] == (11, 10, 10 / 11)
    assert shares[("NL", "location", "opening_times")] == (11, 11, 1.0)
    # 17 live EVSEs (the REMOVED one is not counted), one without parking restrictions.
    assert shares[("NL", "evse", "parking_restrictions")] == (17, 16, 16 / 17)
    assert shares[("NL", "connector", "standard")] == (29, 28, 28 / 29)
    assert shares[("NL", "connector", "max_electric_power")] == (29, 29, 1.0)
    assert shares[("BE", "evse", "payment_methods")] == (1, 0, 0.0)
    rejected = dict(query(mart, f"SELECT reason, objects FROM {tables.REJECTIONS} WHERE object = 'Location'"))
    assert rejected["energy_mix missing (AFIR-mandatory)"] == 1


def test_timeliness_percentiles_and_share_within_target(mart: WarehouseResource) -> None:
    changes = [
        ("LOC-0001-E1", 10),
        ("LOC-0001-E2", 20),
        ("LOC-0002-E1", 30),
        ("LOC-0002-E2", 40),
        ("LOC-0003-E1", 120),
    ]
    _history(mart, [(uid, "CHARGING", T0 + DAY) for uid, _ in changes])
    for uid, delay in changes:
        _push(
            mart,
            T0 + DAY + timedelta(seconds=delay),
            "evse",
            "PATCH",
            f"NL/ALF/{uid.rsplit('-', 1)[0]}/{uid}",
        )
    _push(
        mart, T0 + DAY + timedelta(seconds=3), "evse", "PATCH", "NL/ALF/LOC-0001/LOC-0001-E1", ok=False
    )  # rejected: not counted
    _push(mart, T0 + timedelta(hours=2), "location", "PUT", "NL/ALF/LOC-0002")  # 7200 s
    _push(mart, T0 + timedelta(hours=25), "tariff", "PUT", "NL/ALF/T-STD")  # 90000 s
    with mart.get_connection() as con:
        report.write_timeliness(con, T0 - DAY, T0 + 2 * DAY, T0)
    rows = {
        r[0]: r[1:]
        for r in query(
            mart,
            f"""
        SELECT data_class, pushes, p50_seconds, p95_seconds, max_seconds, within_target_share,
            observed_p50_seconds, source
        FROM {tables.TIMELINESS} WHERE party_id = 'ALF'""",
        )
    }
    pushes, p50, p95, worst, within, observed_p50, source = rows["dynamic"]
    assert (pushes, p50, worst, within, observed_p50, source) == (5, 30.0, 120.0, 0.8, 25.0, "test")
    assert p95 == pytest.approx(40 + 0.8 * 80)  # linear interpolation between 40 s and 120 s
    pushes, p50, p95, worst, within, _, _ = rows["static"]
    assert (pushes, p50, worst, within) == (2, (7200 + 90000) / 2, 90000.0, 0.5)


def test_reliability_time_weighted_shares_and_rapid_flag(history: WarehouseResource) -> None:
    with history.get_connection() as con:
        report.write_reliability(con, T0, T0 + 10 * DAY, T0)
    got = {
        r[0]: r[1:]
        for r in query(
            history,
            f"""
        SELECT evse_uid, working_share, observed_seconds, rapid, below_target, transitions
            FROM {tables.RELIABILITY}""",
        )
    }
    assert got["LOC-0001-E1"][0] == pytest.approx(0.9)
    assert got["LOC-0001-E1"][2:] == (False, False, 2)
    assert got["LOC-0002-E1"][0] == pytest.approx(0.995) and got["LOC-0002-E1"][2:4] == (True, False)
    assert got["LOC-0002-E2"][0] == pytest.approx(0.9) and got["LOC-0002-E2"][2:4] == (True, True)
    assert got["LOC-0003-E1"][:2] == (pytest.approx(0.5), 10 * 86400) and got["LOC-0003-E1"][4] == 1
    assert got["LOC-0003-E2"][:2] == (1.0, 5 * 86400)  # REMOVED time is not in service


def test_timeline_and_coverage(history: WarehouseResource) -> None:
    with history.get_connection() as con:
        location = report.busiest_location(con, T0, T0 + 10 * DAY)
        assert location == "LOC-0002"
        report.write_timeline(con, location, T0, T0 + 10 * DAY, T0)
        report.write_coverage(con, T0, T0 + 10 * DAY, 60, T0)
    periods = query(
        history,
        f"SELECT evse_uid, status, epoch(period_end - period_start) FROM {tables.TIMELINE} ORDER BY ALL",
    )
    assert periods == [
        ("LOC-0002-E1", "AVAILABLE", 86400.0),
        ("LOC-0002-E1", "CHARGING", 773280.0),
        ("LOC-0002-E1", "OUTOFORDER", 4320.0),
        ("LOC-0002-E2", "INOPERATIVE", 86400.0),
        ("LOC-0002-E2", "RESERVED", 9 * 86400.0),
    ]
    at_day6 = dict(
        query(history, f"SELECT status, evses FROM {tables.COVERAGE} WHERE sampled_at = ?", [T0 + 6 * DAY])
    )
    assert at_day6 == {"AVAILABLE": 1, "CHARGING": 1, "RESERVED": 1, "UNKNOWN": 1, "REMOVED": 1}


def test_assets_materialize_with_tables_and_pngs(
    history: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))
    _push(history, T0 + 9 * DAY + timedelta(seconds=30), "evse", "PATCH", "NL/ALF/LOC-0001/LOC-0001-E1")
    _push(history, T0 + 2 * DAY, "location", "PUT", "NL/ALF/LOC-0001")
    as_of = (T0 + 10 * DAY).isoformat()
    result = dg.materialize(
        assets.ASSETS,
        resources={"warehouse": history},
        run_config=op_config(assets.ASSETS, as_of=as_of, days=10),
    )
    assert result.success
    day = tmp_path / "data" / "reports" / f"{T0 + 10 * DAY:%Y-%m-%d}"
    pngs = sorted(p.name for p in day.glob("*.png"))
    assert pngs == [
        "afir_completeness.png",
        "coverage.png",
        "reliability.png",
        "status_timeline_LOC-0002.png",
        "timeliness.png",
    ]
    for name in pngs:
        data = (day / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, name
    for key in assets.KEYS:
        metadata = result.asset_materializations_for_node(key.to_python_identifier())[0].metadata
        assert metadata["dagster/table_name"].value == ".".join(key.path)
        assert str(metadata["dagster/uri"].value).startswith("file://") and "![" in str(
            metadata["plot_image"].value
        )
        assert metadata["dagster/row_count"].value == len(
            pd.DataFrame(query(history, f"SELECT * FROM {'.'.join(key.path)}"))
        )
    assert query(history, f"SELECT count(*) FROM {tables.RELIABILITY} WHERE below_target")[0][0] == 1
    completeness = result.asset_materializations_for_node(assets.COMPLETENESS_KEY.to_python_identifier())[
        0
    ].metadata
    assert completeness["annex_table"].value == tables.ANNEX_COMPLETENESS
    assert "| ALF | A1 |" in str(completeness["annex"].value)
    assert query(history, f"SELECT count(DISTINCT annex_id) FROM {tables.ANNEX_COMPLETENESS}")[0][0] == 37
    assert query(history, f"SELECT data_class, delay_seconds FROM {tables.DELAYS} ORDER BY 1") == [
        ("dynamic", 30.0),
        ("static", 2 * 86400.0),
    ]
