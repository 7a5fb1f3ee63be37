"""Completeness per CPO and AFIR Annex row (quality.afir_annex_completeness) on a real DuckDB mart:
exact shares per level, values read above and below the object, rows not measured listed with why."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from evpipeline.afir import annex as afir
from evpipeline.quality import tables
from evpipeline.quality.annex_completeness import by_type, write_annex_completeness
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.conftest import query
from evpipeline_tests.mart_fixture import T0, standard_mart

Figures = tuple[Any, Any, Any, Any]  # objects, present, share, reason


@pytest.fixture
def mart(warehouse: WarehouseResource) -> WarehouseResource:
    standard_mart().write(warehouse)
    return warehouse


def _report(warehouse: WarehouseResource, annex: afir.Annex | None = None) -> dict[tuple[str, str], Figures]:
    """(party_id, annex_id) -> (objects, present, share, reason)."""
    with warehouse.get_connection() as con:
        write_annex_completeness(con, T0, annex)
    return {
        (p, a): (o, n, s, r)
        for p, a, o, n, s, r in query(
            warehouse,
            f"""
        SELECT party_id, annex_id, objects, present, share, reason FROM {tables.ANNEX_COMPLETENESS}""",
        )
    }


def _annex(row_id: str, **change: Any) -> afir.Annex:
    """The packaged map with one row changed (None removes a key)."""
    doc = yaml.safe_load(afir.PATH.read_text())
    for raw in doc["rows"]:
        if raw["id"] == row_id:
            for key, value in change.items():
                raw.pop(key, None) if value is None else raw.__setitem__(key, value)
    return afir.parse(doc)


def test_every_cpo_gets_every_annex_row_with_exact_shares(mart: WarehouseResource) -> None:
    got = _report(mart)
    assert len(got) == 2 * 37  # NL/ALF and BE/BEC (private and deleted locations make no CPO)
    order = [
        a for (a,) in query(mart, f"SELECT annex_id FROM {tables.ANNEX_COMPLETENESS} WHERE party_id = 'ALF'")
    ]
    assert order == [r.id for r in afir.load().rows]
    # 11 published live NL locations, 17 live EVSEs (REMOVED not counted), 29 connectors.
    assert got[("ALF", "commercial_name")] == (11, 11, 1.0, None)
    assert got[("ALF", "renewable_electricity")] == (
        11,
        10,
        10 / 11,
        None,
    )  # LOC-0101 has no energy mix (SQL NULL)
    assert got[("ALF", "vehicle_types")] == (17, 16, 16 / 17, None)  # one EVSE without parking restrictions
    assert got[("ALF", "connector_type")] == (29, 28, 28 / 29, None)  # one unmapped standard
    assert got[("ALF", "number_of_connectors")] == (17, 17, 1.0, None)
    # a connector carries an ad hoc price when it names a live tariff of its CPO with price elements:
    # not T-GHOST (no such tariff) nor T-BROKEN (no elements)
    assert got[("ALF", "ad_hoc_price")] == (29, 27, 27 / 29, None)
    assert got[("BEC", "ad_hoc_price")] == (1, 0, 0.0, None)  # it names ALF's T-STD, not a tariff of its own


def test_rows_not_carried_are_listed_with_their_reason_not_counted(mart: WarehouseResource) -> None:
    got = _report(mart)
    objects, present, share, reason = got[("ALF", "parking_spaces")]
    assert (objects, present, share) == (None, None, None)
    assert reason == f"not carried: {afir.load().row('parking_spaces').not_carried}"
    assert {a for (p, a), f in got.items() if p == "ALF" and f[3] and f[3].startswith("not carried")} == {
        r.id for r in afir.load().rows if not r.mapped
    }


def test_a_column_the_warehouse_lacks_is_listed_not_counted(mart: WarehouseResource) -> None:
    annex = _annex("coordinates", model=["mart.locations.latitude", "mart.locations.no_such_column"])
    assert _report(mart, annex)[("ALF", "coordinates")] == (
        None,
        None,
        None,
        "model column(s) not in the warehouse: mart.locations.no_such_column",
    )


def test_values_below_the_object_must_all_be_there(mart: WarehouseResource) -> None:
    with mart.get_connection() as con:
        con.execute(
            "UPDATE mart.connectors SET max_electric_power = 0 WHERE evse_uid = 'LOC-0001-E1' "
            "AND connector_id = '2'"
        )
        con.execute("UPDATE mart.evses SET status = 'UNKNOWN' WHERE evse_uid = 'LOC-0002-E1'")
    got = _report(mart)
    assert got[("ALF", "point_max_power")] == (17, 16, 16 / 17, None)  # one of its two connectors unrated
    assert got[("ALF", "operational_status")] == (17, 16, 16 / 17, None)
    # An operator-level row over locations: every published location of the CPO must carry it.
    per_cpo = _annex("renewable_electricity", level="operator")
    got = _report(mart, per_cpo)
    assert got[("ALF", "renewable_electricity")] == (1, 0, 0.0, None)  # LOC-0101 has no energy mix
    assert got[("BEC", "renewable_electricity")] == (1, 1, 1.0, None)


def test_stations_are_the_evses_sharing_a_station_id(mart: WarehouseResource) -> None:
    with mart.get_connection() as con:  # the column comes with the model's station migration (afir-model)
        con.execute("ALTER TABLE mart.evses ADD COLUMN IF NOT EXISTS station_id VARCHAR")
        con.execute("""UPDATE mart.evses SET station_id = CASE WHEN location_id IN ('LOC-0001', 'LOC-0002')
                       THEN 'S-' || location_id ELSE 'S-' || evse_uid END""")
        con.execute(
            "UPDATE mart.connectors SET max_electric_power = 0 WHERE evse_uid = 'LOC-0001-E2' "
            "AND connector_id = '1'"
        )
        nullable = con.execute("""SELECT is_nullable FROM duckdb_columns() WHERE schema_name = 'mart'
                                  AND table_name = 'evses' AND column_name = 'station_id'""").fetchone()
    got = _report(mart)
    # 2 stations of 2 EVSEs + 13 stations of one EVSE = 15
    assert got[("ALF", "number_of_points")] == (15, 15, 1.0, None)
    assert got[("ALF", "station_max_power")] == (15, 14, 14 / 15, None)  # S-LOC-0001 has an unrated connector
    if (
        nullable and nullable[0]
    ):  # an EVSE without a station id is a station of its own, whose station is unknown
        with mart.get_connection() as con:
            con.execute("UPDATE mart.evses SET station_id = NULL WHERE evse_uid = 'LOC-0003-E1'")
        assert _report(mart)[("ALF", "number_of_points")] == (15, 14, 14 / 15, None)


def test_operator_level_rows_read_the_cpos_operator_rows(mart: WarehouseResource) -> None:
    with mart.get_connection() as con:
        exists = con.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'mart' AND table_name = 'operators'"
        ).fetchone()
        if not exists or not exists[0]:  # until the model's mart.operators view is merged (afir-model)
            con.execute("""CREATE TABLE mart.operators (country_code VARCHAR, party_id VARCHAR,
                    operator_id VARCHAR,
                name VARCHAR, legal_name VARCHAR, website VARCHAR, helpdesk_phone VARCHAR,
                    helpdesk_email VARCHAR,
                helpdesk_name VARCHAR, staffed BOOLEAN, payment_means VARCHAR[], nuts_code VARCHAR)""")
            con.execute("""INSERT INTO mart.operators (country_code, party_id, operator_id, name, legal_name,
                               staffed)
                           VALUES ('NL', 'ALF', 'NL*ALF', 'Allego', 'Allego B.V.', false), ('BE', 'BEC',
                               'BE*BEC', 'Bec', ' ', NULL)""")
    got = _report(mart)
    for party in ("ALF", "BEC"):
        carried = (
            query(
                mart,
                f"""SELECT count(*) FROM mart.operators o WHERE party_id = '{party}'
                                  AND {by_type("o", "legal_name", "VARCHAR")}""",
            )[0][0]
            > 0
        )
        assert got[(party, "legal_name")] == (1, int(carried), float(carried), None)  # one object: the CPO
