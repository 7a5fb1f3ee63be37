"""Charts a person can read (issue 23): named rows, legible labels, the window and an as-of date on every
chart, the target on the axis it belongs to, the timeliness definition; and the report's scope."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from matplotlib.figure import Figure

from evpipeline.quality import assets, plots, report, tables
from evpipeline.run_config import op_config
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.mart_fixture import T0, standard_mart
from evpipeline_tests.typed import present

DAY = timedelta(days=1)
WINDOW = plots.Window(T0, T0 + 10 * DAY, "public points in NLD")
AS_OF = "as of 2026-11-11 08:00 UTC"


def texts(fig: Figure) -> list[str]:
    """Every title and free text of a figure."""
    found = [t.get_text() for t in fig.texts]
    suptitle = fig.get_suptitle()
    if suptitle:
        found.append(suptitle)
    for ax in fig.axes:
        found += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
        legend = ax.get_legend()
        if legend is not None:
            found += [t.get_text() for t in legend.get_texts()]
    return [t for t in found if t]


def drawn(fig: Figure) -> Figure:
    fig.canvas.draw()  # tick labels exist once drawn
    return fig


def test_the_status_timeline_names_each_row_by_its_evse_id_and_the_location_by_its_name() -> None:
    frame = pd.DataFrame(
        [
            {
                "country_code": "NL",
                "party_id": "ALF",
                "location_id": "2a1b9a7e-0c4d-4f7e-9d3b-1f0e6c5a4b3c",
                "location_name": "Laadplein Centrum",
                "evse_uid": uid,
                "evse_id": evse_id,
                "status": status,
                "period_start": T0,
                "period_end": T0 + DAY,
            }
            for uid, evse_id, status in (
                ("5f1c3d2e-9a8b-4c7d-8e6f-0a1b2c3d4e5f", "NL*ALF*E0001", "AVAILABLE"),
                ("6a2d4e3f-0b9c-4d8e-9f70-1b2c3d4e5f60", "NL*ALF*E0002", "CHARGING"),
            )
        ]
    )
    fig = drawn(plots.timeline_figure(frame, "2a1b9a7e-0c4d-4f7e-9d3b-1f0e6c5a4b3c", WINDOW))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["NL*ALF*E0001", "NL*ALF*E0002"]
    title = fig.axes[0].get_title()
    assert "Laadplein Centrum" in title and AS_OF in title


def test_reliability_states_scope_and_window_and_draws_the_99_percent_target_on_a_percent_axis() -> None:
    frame = pd.DataFrame(
        {
            "working_share": [0.5, 0.995, 1.0],
            "rapid": [False, True, True],
            "below_target": [False, False, False],
        }
    )
    fig = drawn(plots.reliability_figure(frame, WINDOW))
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "100%"
    assert list(ax.lines[0].get_xdata()) == [0.99, 0.99]  # type: ignore[arg-type]  # a vertical line's two x values
    assert "99 %" in present(ax.get_legend()).get_texts()[-1].get_text()
    assert ax.get_title().startswith(
        "EVSE reliability, public points in NLD, 2026-11-01 to 2026-11-11 (10 days), " + AS_OF
    )


def test_coverage_shows_evses_not_yet_seen_instead_of_a_spike_in_the_last_sample() -> None:
    frame = pd.DataFrame(
        [
            {"sampled_at": T0, "status": "AVAILABLE", "evses": 3},
            {"sampled_at": T0 + DAY, "status": "AVAILABLE", "evses": 3},
            {"sampled_at": T0 + 2 * DAY, "status": "AVAILABLE", "evses": 3},
            {"sampled_at": T0 + 2 * DAY, "status": "UNKNOWN", "evses": 5},  # first seen at the window's end
        ]
    )
    fig = plots.coverage_figure(frame, WINDOW)
    found = texts(fig)
    assert plots.NOT_YET_KNOWN in found
    assert any("5 EVSEs have no status before the pipeline first saw them" in t and AS_OF in t for t in found)


def test_completeness_labels_are_legible_and_dated() -> None:
    frame = pd.DataFrame(
        [
            {
                "country_code": "NL",
                "party_id": "ALF",
                "source": "greenflux",
                "object": "location",
                "element": element,
                "share": share,
            }
            for element, share in (("address", 1.0), ("energy_mix", 0.5))
        ]
    )
    fig = drawn(plots.completeness_figure(frame, WINDOW))
    ax = fig.axes[0]
    cells = {t.get_text(): (t.get_fontsize(), t.get_color()) for t in ax.texts}
    assert cells == {"100%": (8.0, "white"), "50%": (8.0, "black")}
    assert min(float(t.get_fontsize()) for t in ax.get_xticklabels()) >= 9
    assert ax.get_title().endswith(AS_OF)


def test_timeliness_prints_its_definition_the_clock_skew_and_first_publications_apart() -> None:
    delays = pd.DataFrame(
        [
            {
                "country_code": "NL",
                "party_id": "ALF",
                "source": "greenflux",
                "data_class": "dynamic",
                "publication": "change",
                "delay_seconds": 8.0,
                "clock_skew_seconds": 300.0,
                "clock_note": None,
            },
            {
                "country_code": "NL",
                "party_id": "EVB",
                "source": "greenflux",
                "data_class": "static",
                "publication": "change",
                "delay_seconds": 30.0,
                "clock_skew_seconds": None,
                "clock_note": "provider clock not measured",
            },
            {
                "country_code": "NL",
                "party_id": "ALF",
                "source": "greenflux",
                "data_class": "static",
                "publication": "first",
                "delay_seconds": 12.0,
                "clock_skew_seconds": -8.0,
                "clock_note": "first publication: from our recording",
            },
        ]
    )
    found = texts(plots.timeliness_figure(delays, WINDOW))
    assert plots.TIMELINESS_DEFINITION in found
    assert {
        "NL/ALF · greenflux (1, clock +300 s)",
        "NL/EVB · greenflux (1, clock not measured)",
        "NL/ALF · greenflux (1)",
    } <= set(found)
    assert {"dynamic: status PATCHes", "static: PUTs of changes", "static: first publications (PUT)"} <= set(
        found
    )
    assert any(AS_OF in t for t in found)


@pytest.fixture
def mixed(warehouse: WarehouseResource) -> WarehouseResource:
    """The standard mart (a Belgian location beside the Dutch ones); one EVSE in each country AVAILABLE for 10
    days."""
    standard_mart().write(warehouse)
    with warehouse.get_connection() as con:
        con.execute("DELETE FROM ops.status_history")
        for key in ("NL|ALF|LOC-0001|LOC-0001-E1", "BE|BEC|LOC-0202|LOC-0202-E1"):
            con.execute(
                "INSERT INTO ops.status_history VALUES ('mart', 'mart.evses', ?, 'status', NULL, "
                "'AVAILABLE', ?, ?, 't')",
                [key, T0, T0],
            )
    return warehouse


def test_reliability_and_coverage_cover_the_access_points_countries_only(
    mixed: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_NAP_COUNTRIES", "NLD")
    with mixed.get_connection() as con:
        report.write_reliability(con, T0, T0 + 10 * DAY, T0)
        report.write_coverage(con, T0, T0 + 10 * DAY, 60 * 24, T0)
    assert query(mixed, f"SELECT country_code, evse_uid FROM {tables.RELIABILITY}") == [("NL", "LOC-0001-E1")]
    assert query(mixed, f"SELECT DISTINCT evses FROM {tables.COVERAGE}") == [(1,)]
    with mixed.get_connection() as con:
        report.write_reliability(con, T0, T0 + 10 * DAY, T0, countries=["NLD", "BEL"])
    assert query(mixed, f"SELECT country_code FROM {tables.RELIABILITY} ORDER BY 1") == [("BE",), ("NL",)]


def test_the_dagster_ui_gets_each_plot_embedded_not_a_file_link(
    mixed: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVPIPELINE_DATA_DIR", str(tmp_path / "data"))
    result = dg.materialize(
        [assets.reliability],
        resources={"warehouse": mixed},
        run_config=op_config([assets.reliability], as_of=(T0 + 10 * DAY).isoformat(), days=10),
    )
    metadata = result.asset_materializations_for_node(assets.RELIABILITY_KEY.to_python_identifier())[
        0
    ].metadata
    image = str(metadata["plot_image"].value)
    assert image.startswith("![reliability](data:image/png;base64,") and "file://" not in image
    encoded = image.split("base64,", 1)[1].split(")", 1)[0]
    png = tmp_path / "data" / "reports" / "2026-11-11" / "reliability.png"
    assert base64.b64decode(encoded) == png.read_bytes()
    assert metadata["scope"].value == "public points in NLD"


def test_window_names_its_days_and_as_of() -> None:
    assert (
        plots.Window(datetime(2026, 11, 7, 4, 40), datetime(2026, 12, 7, 4, 40)).span
        == "2026-11-07 to 2026-12-07 (30 days), as of 2026-12-07 04:40 UTC"
    )
