"""The AFIR annex map stays true: every row mapped or explained, ids unique, every model column in a
freshly migrated warehouse, every OCPI path in our definition (with NDW's rule for it), every DATEX II
path in the vendored AFIR profile, and docs/afir.md generated from it. Each check is also shown to fail
on broken input."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from evpipeline.afir import annex as afir
from evpipeline.afir.render import DOC, render_markdown
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.afir.paths import datex2_exists, ndw_rule, ocpi_fields, profile_sets

ANNEX = afir.load()


def _document() -> dict[str, Any]:
    return dict(yaml.safe_load(afir.PATH.read_text()))


def _with_row(change: dict[str, Any], row_id: str = "coordinates") -> dict[str, Any]:
    """The annex document with one row's keys replaced (None removes a key)."""
    doc = copy.deepcopy(_document())
    for raw in doc["rows"]:
        if raw["id"] == row_id:
            for key, value in change.items():
                if value is None:
                    raw.pop(key, None)
                else:
                    raw[key] = value
    return doc


def _warehouse_columns(warehouse: WarehouseResource) -> set[tuple[str, str]]:
    import evpipeline.definitions  # noqa: F401  (registers every component's migrations)

    with warehouse.get_connection() as con:
        rows = con.execute("""SELECT schema_name || '.' || table_name, column_name FROM duckdb_columns()
                              WHERE database_name = current_database()""").fetchall()
    return {(str(t).lower(), str(c).lower()) for t, c in rows}


def missing_columns(annex: afir.Annex, columns: set[tuple[str, str]]) -> list[str]:
    return sorted({f"{r.id}: {t}.{c}" for r in annex.rows for t, c in r.columns() if (t, c) not in columns})


def ocpi_problems(annex: afir.Annex) -> list[str]:
    """OCPI paths our definition lacks, and `ndw` values that differ from what the NDW profile says."""
    found = []
    for row in annex.rows:
        try:
            for path in row.ocpi:
                ocpi_fields(path)
        except KeyError as error:
            found.append(f"{row.id}: {error}")
            continue
        if row.ndw != ndw_rule(row.ocpi):
            found.append(
                f"{row.id}: ndw is {row.ndw!r} but NDW's profile makes {row.ocpi} {ndw_rule(row.ocpi)!r}"
            )
    return found


def datex2_problems(annex: afir.Annex) -> list[str]:
    sets = profile_sets()
    return [f"{row.id}: {path}" for row in annex.rows for path in row.datex2 if not datex2_exists(path, sets)]


# -- every row mapped or explained, ids unique ---------------------------------------------------------------


def test_every_row_is_mapped_or_explained() -> None:
    assert len(ANNEX.rows) == 37 and [g.table for g in ANNEX.groups] == ["A", "B", "F"]
    assert [r.number for r in ANNEX.rows if r.group == "static-general"] == [f"A{n}" for n in range(1, 25)]
    assert [r.number for r in ANNEX.rows if r.group == "static-recharging"] == [f"B{n}" for n in range(1, 11)]
    assert [r.number for r in ANNEX.rows if r.group == "dynamic-recharging"] == ["F1", "F2", "F3"]
    for row in ANNEX.rows:
        assert row.mapped != bool(row.not_carried), row.id
        assert row.mandatory, row.id  # Art. 3(1)(a): every data type of the Annex
    assert {r.id for r in ANNEX.rows if not r.mapped} == {
        "vehicle_specifications",
        "parking_spaces",
        "payment_providers",
        "mobility_service_providers",
        "plug_and_charge",
    }


def test_a_row_neither_mapped_nor_explained_is_refused() -> None:
    bare = _with_row({"ocpi": None, "ndw": None, "datex2": None})  # model only: carried nowhere
    with pytest.raises(afir.AnnexError, match="row coordinates: neither mapped"):
        afir.parse(bare)
    with pytest.raises(afir.AnnexError, match="row coordinates: neither mapped"):
        afir.parse(_with_row({"model": None}))
    explained = _with_row({"model": None, "ocpi": None, "ndw": None, "not_carried": "no source has it"})
    assert not afir.parse(explained).row("coordinates").mapped
    with pytest.raises(afir.AnnexError, match="mapped and not_carried at once"):
        afir.parse(_with_row({"not_carried": "but also this"}))
    # A DATEX II gap explains a datex2 path of a mapped row, nothing else.
    assert afir.parse(_with_row({"datex2_gap": "not yet"})).row("coordinates").datex2_gap == "not yet"
    with pytest.raises(afir.AnnexError, match="datex2_gap explains a datex2 path"):
        afir.parse(_with_row({"datex2": None, "datex2_gap": "nothing to explain"}))
    with pytest.raises(afir.AnnexError, match="datex2_gap explains a datex2 path"):
        afir.parse(
            _with_row(
                {"model": None, "ocpi": None, "ndw": None, "not_carried": "no source", "datex2_gap": "x"}
            )
        )


def test_ids_and_numbers_are_unique() -> None:
    assert len({r.id for r in ANNEX.rows}) == len({r.number for r in ANNEX.rows}) == len(ANNEX.rows)
    twice = _with_row({"id": "country"})
    with pytest.raises(afir.AnnexError, match="id 'country' is used by more than one row"):
        afir.parse(twice)


def test_rows_name_known_levels_groups_and_reachable_tables() -> None:
    with pytest.raises(afir.AnnexError, match="level 'pool' is not one of"):
        afir.parse(_with_row({"level": "pool"}))
    with pytest.raises(afir.AnnexError, match="a tariff-level row cannot read mart.locations"):
        afir.parse(_with_row({"level": "tariff"}))
    with pytest.raises(afir.AnnexError, match="ndw is given exactly when an ocpi path is"):
        afir.parse(_with_row({"ndw": None}))


# -- model columns -------------------------------------------------------------------------------------------


def test_every_model_column_exists_in_a_freshly_migrated_warehouse(warehouse: WarehouseResource) -> None:
    assert missing_columns(ANNEX, _warehouse_columns(warehouse)) == []


def test_a_misspelt_model_column_is_caught(warehouse: WarehouseResource) -> None:
    columns = _warehouse_columns(warehouse)
    typo = afir.parse(_with_row({"model": ["mart.locations.latitude", "mart.locations.longtitude"]}))
    assert "coordinates: mart.locations.longtitude" in missing_columns(typo, columns)
    with pytest.raises(afir.AnnexError, match="is not mart.<table>.<column>"):
        afir.parse(_with_row({"model": ["mart.sites.latitude"]}))


# -- OCPI paths and NDW's rule -------------------------------------------------------------------------------


def test_every_ocpi_path_exists_in_our_definition_with_ndws_rule() -> None:
    assert ocpi_problems(ANNEX) == []
    assert ndw_rule(("Location.energy_mix.is_green_energy",)) == "afir-mandatory"
    assert (
        ndw_rule(("Location.operator.name",)) == "optional"
    )  # operator is optional, name required inside it
    assert ndw_rule(("Location.coordinates",)) == "required"


def test_a_misspelt_ocpi_path_or_wrong_ndw_rule_is_caught() -> None:
    typo = afir.parse(_with_row({"ocpi": "Location.coordinate"}))
    assert any("no field 'coordinate'" in p for p in ocpi_problems(typo))
    wrong = afir.parse(_with_row({"ndw": "optional"}))
    assert ocpi_problems(wrong) == [
        "coordinates: ndw is 'optional' but NDW's profile makes ('Location.coordinates',) 'required'"
    ]


# -- DATEX II paths ------------------------------------------------------------------------------------------


def test_every_datex2_path_exists_in_the_vendored_profile() -> None:
    assert datex2_problems(ANNEX) == []
    # the brief's examples: through OrganisationG, extensions (FacilityLocation), and the status set
    for path in (
        "EnergyInfrastructureStation/totalMaximumPower",
        "ElectricChargingPoint/availableChargingPower",
        "EnergyInfrastructureSite/operator",
        "AnOrganisation/legalName",
        "ElectricChargingPointStatus/status",
        "EnergyRate/energyPrice",
        "PointLocation/FacilityLocation/nutsArea/nutsCode",
    ):
        assert datex2_exists(path), path


def test_a_misspelt_datex2_path_is_caught() -> None:
    typo = afir.parse(
        _with_row(
            {"datex2": "EnergyInfrastructureStation/locationReference/pointByCoordinate/pointCoordinates"}
        )
    )
    assert datex2_problems(typo) == [
        "coordinates: EnergyInfrastructureStation/locationReference/pointByCoordinate/pointCoordinates"
    ]
    assert not datex2_exists("EnergyInfrastructureStation/totalMaximumPowr")
    assert not datex2_exists(
        "ElectricChargingPoint/status"
    )  # the status lives in the status publication's type
    assert not datex2_exists("EnergyInfrastructurePool/totalMaximumPower")


# -- docs ----------------------------------------------------------------------------------------------------


def test_docs_afir_md_is_generated_from_the_map() -> None:
    assert Path(DOC).read_text() == render_markdown(), (
        "docs/afir.md is stale: run `python -m evpipeline.afir.render --write`"
    )
    for row in ANNEX.rows:
        assert f"| {row.number} | `{row.id}` |" in render_markdown()


def test_a_changed_map_makes_the_docs_stale() -> None:
    changed = afir.parse(_with_row({"note": "a new note"}))
    assert render_markdown(changed) != Path(DOC).read_text()
