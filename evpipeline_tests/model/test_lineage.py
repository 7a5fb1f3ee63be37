"""Column lineage of `mart`, read from the mapping SQL: the walk over DuckDB's AST on small queries, then
the lineage of the real mappings (known columns, every dependency a declared column of an upstream
asset, and more mart columns covered than the same-name lineage it replaces)."""

from __future__ import annotations

import dagster as dg
import pytest

from evpipeline import catalog
from evpipeline.model import lineage
from evpipeline.model.build import KINDS

TABLES = {
    "src.sites": frozenset({"site_id", "name", "operator", "address"}),
    "src.stations": frozenset({"station_id", "site_id", "status", "codes"}),
}


def walk(sql: str) -> dict[str, lineage.Deps | None]:
    return lineage.column_lineage(sql, TABLES.get)


def test_walk_follows_ctes_subqueries_stars_and_rule_lookups() -> None:
    found = walk("""
        WITH s AS (SELECT x.* EXCLUDE (address), upper(x.address) AS addr FROM src.sites x)
        SELECT s.name, s.addr AS address, st.id AS evse_uid, coalesce(r.status, 'UNKNOWN') AS status,
               list_filter(st.codes, lambda code: code <> '') AS codes, p.party_id
        FROM s
        JOIN rules_operators p USING (operator)
        JOIN (SELECT station_id AS id, * FROM src.stations) st ON st.site_id = s.site_id
        LEFT JOIN rules_status r ON r.value = st.status
    """)
    assert found == {
        "name": frozenset({("src.sites", "name")}),
        "address": frozenset({("src.sites", "address")}),
        "evse_uid": frozenset({("src.stations", "station_id")}),
        "status": frozenset(
            {("src.stations", "status")}
        ),  # through the rule table, joined on the station's status
        "codes": frozenset({("src.stations", "codes")}),  # the lambda's parameter is no column
        "party_id": frozenset({("src.sites", "operator")}),
    }


def test_walk_skips_ambiguous_columns_and_leaves_unknown_constructs_unresolved() -> None:
    found = walk("""
        SELECT site_id AS either, name, st.status || q.note AS status, t.a AS renamed
        FROM src.sites s JOIN src.stations st USING (site_id), scratch AS q, (SELECT 1) AS t(a)
    """)
    assert found["either"] == frozenset()  # both tables have site_id: skipped, not guessed
    assert found["name"] == frozenset()  # `scratch` is no warehouse table: it may hold `name` too
    assert found["status"] == frozenset(
        {("src.stations", "status")}
    )  # q.note: not a warehouse column, nothing to record
    assert found["renamed"] is None  # t(a) renames by position: not followed
    assert walk("SELECT z.name FROM src.sites s")["name"] is None  # no relation (nor column) z in scope
    assert walk("SELECT codes.first AS f FROM src.stations")["f"] == frozenset(
        {("src.stations", "codes")}
    )  # a struct field


def test_walk_refuses_what_is_not_one_select() -> None:
    with pytest.raises(ValueError, match="not a plain SELECT"):
        walk("SELECT name FROM src.sites UNION ALL SELECT status FROM src.stations")
    with pytest.raises(ValueError, match="cannot parse"):
        walk("SELEC name FROM src.sites")


@pytest.fixture(scope="module")
def registered() -> None:
    import evpipeline.definitions  # noqa: F401  (registers every component's migrations)


def deps(table: str, column: str) -> set[tuple[str, str]]:
    return {dep for by_column in lineage.mart_lineage(table).values() for dep in by_column.get(column, ())}


def test_known_lineage_of_the_mappings(registered: None) -> None:
    assert deps("mart.evses", "status") >= {
        ("greenflux.evses", "status"),
        ("evroam.availability", "availability_status"),  # through rules_evroam_availability
        ("evroam.charging_stations", "installation_status"),
        ("evroam.connectors", "operation_status"),  # every connector Inoperative
        ("zaptec.charger_states", "operation_mode"),  # through rules_zaptec_modes
        ("zaptec.chargers", "active"),
    }
    assert deps("mart.locations", "name") == {
        ("evroam.sites", "name"),
        ("greenflux.locations", "name"),
        ("zaptec.installations", "name"),
    }
    assert deps("mart.locations", "postal_code") == {
        ("evroam.sites", "address"),
        ("greenflux.locations", "postal_code"),
        ("zaptec.installations", "zip_code"),
    }
    assert deps("mart.connectors", "standard") == {
        ("evroam.connectors", "connector_type"),
        ("greenflux.connectors", "standard"),
        ("zaptec.chargers", "model"),
    }
    assert ("evroam.sites", "operator") in deps("mart.evses", "party_id")  # through rules_operators
    assert ("reference.parties", "party_id") in deps("mart.locations", "party_id")  # GreenFlux's assignment
    assert deps("mart.tariffs", "currency") == {
        ("greenflux.tariffs", "currency"),
        ("reference.tariffs", "currency"),
    }
    assert deps("mart.evses", "capabilities") == {("greenflux.evses", "capabilities")}  # EVRoam/Zaptec: NULL


def test_dagster_lineage_names_upstream_assets(registered: None) -> None:
    evses = lineage.mart_column_lineage("mart.evses")
    assert evses is not None
    status = evses.deps_by_column["status"]
    for key, column in (
        (["greenflux", "evses"], "status"),
        (["evroam", "availability"], "availability_status"),
        (["zaptec", "charger_states"], "operation_mode"),
    ):
        assert dg.TableColumnDep(dg.AssetKey(key), column) in status
    tariffs = lineage.mart_column_lineage("mart.tariffs")
    assert tariffs is not None  # reference/operator_data loads several tables: its columns say which
    assert (
        dg.TableColumnDep(dg.AssetKey(["reference", "operator_data"]), "tariffs.currency")
        in tariffs.deps_by_column["currency"]
    )


def test_every_dependency_is_a_declared_column_of_an_upstream_asset(registered: None) -> None:
    from evpipeline.model.assets import REFERENCE_KEY, SOURCE_INPUTS

    schemas = catalog.declared_schemas()
    for table, _kind in KINDS:
        for source, by_column in lineage.mart_lineage(table).items():
            assert set(by_column) == {c.name for c in schemas[table].columns}, (table, source)
            for column, found in by_column.items():
                for dep_table, dep_column in found:
                    assert dep_column in {c.name.lower() for c in schemas[dep_table].columns}, (
                        table,
                        column,
                        dep_table,
                    )
        mart = lineage.mart_column_lineage(table)
        assert mart is not None
        assert {d.asset_key for ds in mart.deps_by_column.values() for d in ds} <= {
            *SOURCE_INPUTS,
            REFERENCE_KEY,
        }
    assert lineage.mart_lineage("mart.evses") is lineage.mart_lineage("mart.evses")  # parsed once, cached


def coverage(source: str) -> tuple[int, int, int]:
    """(columns with a dependency by the same-name rule, by the SQL, mart columns) over the tables it maps."""
    from evpipeline.model.mappings import registry

    mapping = next(m for m in registry() if m.source == source)
    before = after = total = 0
    for table, _kind in KINDS:
        by_column = lineage.mart_lineage(table).get(source)
        if by_column is None:
            continue
        total += len(by_column)
        after += sum(1 for found in by_column.values() if found)
        before += sum(1 for column in by_column if lineage.same_named(mapping, table, column))
    return before, after, total


def test_lineage_covers_more_mart_columns_than_same_names(registered: None) -> None:
    found = {source: coverage(source) for source in ("evroam", "greenflux", "zaptec", "reference")}
    for source, (before, after, total) in found.items():
        print(
            f"mart column lineage {source}: {before}/{total} columns before (same name), "
            f"{after}/{total} from the SQL"
        )
    for source in ("evroam", "zaptec"):
        assert found[source][1] > found[source][0], source
    assert found["greenflux"][1] > found["greenflux"][0]
