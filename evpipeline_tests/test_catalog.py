"""The Dagster catalog: every asset described once, owned, kinded, with table metadata and freshness;
source and mart materializations carry table name, row count and a described column schema; the
mart checks catch broken warehouses."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import CronFreshnessPolicy, TimeWindowFreshnessPolicy

from evpipeline import catalog
from evpipeline.model.checks import (
    EVSE_EXISTS,
    LOCATION_EXISTS,
    TARIFFS_EXIST,
    UNIQUE,
    mart_problems,
)
from evpipeline.model.lineage import mart_column_lineage
from evpipeline.ndw.assets import invalid_exported
from evpipeline.warehouse import WarehouseResource
from evpipeline_tests.mart_fixture import MartRows

KINDS = {"duckdb", "ducklake", "python", "parquet", "ocpi", "json", "xml", "yaml", "png"}


def _specs() -> list[tuple[dg.AssetsDefinition | None, dg.AssetSpec]]:
    from evpipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    out = []
    for key in graph.get_all_asset_keys():
        assets_def = graph.assets_def_for_key(key)
        out.append(
            (
                assets_def if assets_def.is_executable else None,
                next(s for s in assets_def.specs if s.key == key),
            )
        )
    return out


def test_every_asset_has_one_description_owners_kinds_and_code_references() -> None:
    specs = _specs()
    assert len(specs) >= 24
    for assets_def, spec in specs:
        name = spec.key.to_user_string()
        assert spec.description, name
        if assets_def is not None and assets_def.op.description:  # the op may carry no text, or the same one
            assert assets_def.op.description == spec.description, name
        assert spec.owners == catalog.owners() == ["team:data-engineering"], name
        assert spec.kinds and set(spec.kinds) <= KINDS, (name, spec.kinds)
        assert "dagster/code_references" in spec.metadata, name


def test_every_table_asset_declares_its_table_and_described_columns() -> None:
    tables = 0
    for _assets_def, spec in _specs():
        table = ".".join(spec.key.path)
        if table not in catalog.declared_schemas():
            continue
        tables += 1
        assert spec.metadata[catalog.TABLE_NAME] == table
        schema = spec.metadata[catalog.COLUMN_SCHEMA]
        assert isinstance(schema, dg.TableSchema) and schema.columns
        assert all(c.description for c in schema.columns), table
    assert tables >= 20


def test_ddl_comments_describe_columns_and_mart_has_column_lineage() -> None:
    schema = catalog.declared_schemas()["mart.evses"]
    described = {c.name: c.description for c in schema.columns}
    assert described["evse_uid"] == "OCPI EVSE.uid, stable forever"
    assert described["_ingested_at"] == catalog.STANDARD_DESCRIPTIONS["_ingested_at"]
    lineage = mart_column_lineage("mart.evses")
    assert lineage is not None
    assert (
        dg.TableColumnDep(dg.AssetKey(["greenflux", "evses"]), "status") in lineage.deps_by_column["status"]
    )


def _description_problems() -> tuple[list[str], list[str], list[str]]:
    """(columns left at the type fallback, declared columns no migration creates, declared descriptions a
    DDL comment hides) over every table the registered migrations create."""
    import evpipeline.definitions  # noqa: F401  (registers every component's migrations)
    from evpipeline.sources import source_names

    # The product's schemas only: test modules register small tables of their own (e.g. `batchsrc`).
    product = {"ops", "mart", "reference", "quality", *source_names()}
    shown = {
        (table, c.name): (c.description, catalog.fallback_description(c.type, c.constraints.nullable))
        for table, schema in catalog.declared_schemas().items()
        if table.split(".")[0] in product
        for c in schema.columns
    }
    declared = catalog.declared_descriptions()
    bare = sorted(f"{t}.{c}" for (t, c), (text, fallback) in shown.items() if text == fallback)
    unknown = sorted(f"{t}.{c}" for t, c in declared if (t, c) not in shown)
    hidden = sorted(
        f"{t}.{c}" for (t, c), text in declared.items() if (t, c) in shown and shown[(t, c)][0] != text
    )
    return bare, unknown, hidden


def test_every_column_of_every_table_is_described() -> None:
    """No column ends at the type fallback ("VARCHAR, required."): a DDL comment, its component's
    `COLUMNS` or a standard description says what it means."""
    bare, _unknown, _hidden = _description_problems()
    assert len(catalog.declared_schemas()) >= 40 and len(catalog.declared_descriptions()) > 400
    assert bare == [], f"columns without a description (add them to their component's COLUMNS): {bare}"


def test_declared_column_descriptions_name_existing_columns_and_are_shown() -> None:
    _bare, unknown, hidden = _description_problems()
    assert unknown == [], f"COLUMNS describe columns no migration creates (a typo?): {unknown}"
    # A DDL comment wins over a declared description: one declared there too would never be seen.
    assert hidden == [], f"COLUMNS entries hidden by a DDL comment (keep one of the two): {hidden}"


def test_a_misspelt_or_twice_declared_column_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from evpipeline.sources.evroam import tables as evroam_tables

    sites = evroam_tables.COLUMNS[evroam_tables.SITES]
    monkeypatch.setitem(evroam_tables.COLUMNS, evroam_tables.SITES, {**sites, "nmae": "The site's name."})
    catalog._declared_descriptions.cache_clear()
    try:
        assert _description_problems()[1] == ["evroam.sites.nmae"]
        monkeypatch.setitem(evroam_tables.COLUMNS, "mart.locations", {"name": "Described a second time."})
        catalog._declared_descriptions.cache_clear()
        with pytest.raises(ValueError, match=r"mart\.locations\.name is described twice"):
            catalog.declared_descriptions()
    finally:
        monkeypatch.undo()
        catalog._declared_descriptions.cache_clear()


def test_freshness_policies_are_attached() -> None:
    policies = {spec.key.to_user_string(): spec.freshness_policy for _a, spec in _specs()}
    # A minute only where the lane records a materialization every window, busy or quiet.
    minute = {
        key
        for key, p in policies.items()
        if isinstance(p, TimeWindowFreshnessPolicy) and p.fail_window.to_timedelta() <= timedelta(minutes=1)
    }
    assert minute == {"ndw/live"}
    for polled in (
        "zaptec/charger_states",
        "evroam/availability",
        "greenflux/evses",
        "tomtom/availability_latest",
    ):
        policy = policies[polled]  # written by the lane only on change; the fallback syncs keep them
        assert isinstance(
            policy, TimeWindowFreshnessPolicy
        ) and policy.fail_window.to_timedelta() == timedelta(minutes=35), polled
    static = policies["greenflux/locations"]
    assert isinstance(static, TimeWindowFreshnessPolicy) and static.fail_window.to_timedelta() == timedelta(
        hours=24
    )
    assert isinstance(policies["ndw/ocpi_export"], CronFreshnessPolicy)
    assert policies["reference/operator_data"] is None  # loaded when the file changes, not by age


# -- mart checks -------------------------------------------------------------------------------


def clean_mart(n: int = 3) -> MartRows:
    m = MartRows()
    for tid in ("T-STD", "T-FAST"):
        m.tariff(tid)
    for i in range(1, n + 1):
        loc = m.location(i)
        for e in (1, 2):
            evse = m.evse(loc, e)
            for c in (1, 2):
                m.connector(evse, c, tariffs=["T-STD"] if c == 1 else ["T-STD", "T-FAST"])
    return m


def problems(warehouse: WarehouseResource) -> dict[tuple[str, str], int]:
    with warehouse.get_connection() as con:
        return {(name, table): count for name, table, count, _sample in mart_problems(con)}


def test_mart_checks_pass_on_a_clean_model(warehouse: WarehouseResource) -> None:
    clean_mart().write(warehouse)
    assert set(problems(warehouse).values()) == {0}
    with warehouse.get_connection() as con:
        selected, failing = invalid_exported(con)
    assert selected > 0 and failing == []


def test_mart_checks_fail_on_duplicate_keys_orphans_and_missing_tariffs(warehouse: WarehouseResource) -> None:
    m = clean_mart()
    m.connector(m.evse(m.location(9), 1), 1, tariffs=["T-GHOST"])
    m.locations = [r for r in m.locations if r["location_id"] != "LOC-0009"]  # its EVSE is now an orphan
    m.write(warehouse)
    with warehouse.get_connection() as con:  # a duplicate key, as a merge would never write it
        con.execute("INSERT INTO mart.tariffs SELECT * FROM mart.tariffs WHERE tariff_id = 'T-STD'")
    found = problems(warehouse)
    assert found[(UNIQUE, "mart.tariffs")] == 1
    assert found[(LOCATION_EXISTS, "mart.evses")] == 1
    assert found[(TARIFFS_EXIST, "mart.connectors")] == 1
    assert found[(EVSE_EXISTS, "mart.connectors")] == 0


def test_mart_integrity_runs_as_blocking_checks(warehouse: WarehouseResource) -> None:
    from evpipeline.ndw.assets import mart_integrity

    m = clean_mart()
    m.connector(m.evse(m.location(9), 1), 1)
    m.locations = [r for r in m.locations if r["location_id"] != "LOC-0009"]
    m.write(warehouse)
    assert all(spec.blocking for spec in mart_integrity.check_specs)
    from evpipeline.model.assets import mart_model

    result = dg.materialize(
        [mart_model, mart_integrity],
        resources={"warehouse": warehouse},
        raise_on_error=False,
        selection=dg.AssetSelection.checks(mart_integrity),
    )
    verdicts = {
        (e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()
    }
    assert verdicts[("mart/evses", LOCATION_EXISTS)] is False
    assert verdicts[("mart/locations", UNIQUE)] is True
