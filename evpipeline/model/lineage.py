"""Column lineage read from SQL: which warehouse columns each output column of a SELECT is computed from.

DuckDB parses the SQL into a JSON AST (`json_serialize_sql`); nothing is bound, so the tables it names
need not exist. For every output column, each column reference in its expression is resolved through
the FROM tree (base tables, joins, subqueries, CTEs, `alias.*`) down to the warehouse tables
`columns_of` knows. Lookups into tables it does not know (the mapping rules, registered as relations)
stand for the columns they are joined on: `LEFT JOIN rules_x r ON r.value = st.status` makes `r.*`
depend on `st.status`. An unqualified column more than one relation may hold is skipped, never guessed.
A construct the walk does not understand (a set operation, renamed columns, an unknown alias) marks
the output column unresolved (`None`), so the caller can fall back to something else for it alone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import duckdb

from evpipeline import catalog
from evpipeline.model import mappings
from evpipeline.model.build import KINDS
from evpipeline.model.mappings import SourceMapping, registry
from evpipeline.warehouse import migrations

Dep = tuple[str, str]  # (schema.table, column) of a warehouse table
Deps = frozenset[Dep]
Node = Mapping[str, Any]
# The columns of a warehouse table (`schema.table`), or None for a table that is not one.
ColumnsOf = Callable[[str], frozenset[str] | None]


class Unresolved(Exception):
    """A reference the walk cannot follow: its output column's lineage is unknown."""


@dataclass
class Table:
    """A base table: a warehouse table (known columns) or a lookup (rules,
    temp) standing for its join keys."""

    name: str
    columns: frozenset[str] | None
    via: Deps = frozenset()  # a lookup's join keys on the other side

    def has(self, column: str) -> bool | None:
        return None if self.columns is None else column.lower() in self.columns

    def resolve(self, column: str) -> Deps:
        if self.columns is None:
            return self.via
        if column.lower() not in self.columns:
            raise Unresolved(f"{self.name} has no column {column}")
        return frozenset({(self.name, column.lower())})


@dataclass
class Derived:
    """A subquery or CTE: its named output columns and the relations its `*`s pass through."""

    outputs: dict[str, Deps | None] = field(default_factory=dict)
    stars: list[tuple[Relation, frozenset[str]]] = field(default_factory=list)  # (relation, excluded)

    def has(self, column: str) -> bool | None:
        if column.lower() in self.outputs:
            return True
        found = [rel.has(column) for rel, excluded in self.stars if column.lower() not in excluded]
        return True if True in found else None if None in found else False

    def resolve(self, column: str) -> Deps:
        if column.lower() in self.outputs:
            deps = self.outputs[column.lower()]
            if deps is None:
                raise Unresolved(f"output {column} is unresolved")
            return deps
        for rel, excluded in self.stars:
            if column.lower() not in excluded and rel.has(column):
                return rel.resolve(column)
        raise Unresolved(f"no output {column}")


@dataclass
class Opaque:
    """A FROM item the walk does not read into (table function, set operation, renamed columns)."""

    def has(self, column: str) -> bool | None:
        return None

    def resolve(self, column: str) -> Deps:
        raise Unresolved(f"column {column} of an opaque relation")


Relation = Table | Derived | Opaque
Scope = dict[str, Relation]  # alias (lower case) -> relation


def parse(sql: str) -> Node:
    """The statement's query node, as DuckDB's parser sees it (no catalog needed)."""
    con = duckdb.connect()
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    finally:
        con.close()
    ast: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if ast.get("error"):
        raise ValueError(f"DuckDB cannot parse the SQL: {ast.get('error_message')}")
    node: Node = ast["statements"][0]["node"]
    return node


def column_lineage(sql: str, columns_of: ColumnsOf) -> dict[str, Deps | None]:
    """Output column (lower case) -> the warehouse columns it is computed from; None where unresolved."""
    query = _query(parse(sql), {}, {}, columns_of)
    if isinstance(query, Opaque):
        raise ValueError("the statement is not a plain SELECT")  # e.g. a UNION: outputs are positional
    return query.outputs


def _query(node: Node, ctes: Mapping[str, Relation], outer: Scope, columns_of: ColumnsOf) -> Derived | Opaque:
    """A query node as a relation (a set operation stays opaque: its outputs are matched by position)."""
    if node.get("type") != "SELECT_NODE":
        return Opaque()
    ctes = _ctes(node, ctes, outer, columns_of)
    scope = _from(node["from_table"], ctes, outer, columns_of)
    derived = Derived()
    for expr in node["select_list"]:
        if expr["class"] == "STAR":
            derived.stars.extend(_stars(expr, scope))
            continue
        name = expr["alias"] or (expr["column_names"][-1] if expr["class"] == "COLUMN_REF" else "")
        if name:  # an unnamed expression gets a generated name no mart column has
            derived.outputs[name.lower()] = _expression(expr, scope, outer, ctes, columns_of, derived)
    return derived


def _ctes(
    node: Node, ctes: Mapping[str, Relation], outer: Scope, columns_of: ColumnsOf
) -> dict[str, Relation]:
    """The CTEs visible in `node`: the enclosing ones plus its own, each seeing those before it."""
    visible = dict(ctes)
    for entry in node.get("cte_map", {}).get("map", []):
        value = entry["value"]
        # WITH t(a, b) renames the outputs by position: not followed.
        visible[entry["key"].lower()] = (
            Opaque() if value.get("aliases") else _query(value["query"]["node"], visible, outer, columns_of)
        )
    return visible


def _stars(expr: Node, scope: Scope) -> Iterator[tuple[Relation, frozenset[str]]]:
    """`alias.*` or `*` (with EXCLUDE): the relations whose columns pass through. COLUMNS(...), REPLACE
    and RENAME change what passes: those outputs stay unknown (never guessed)."""
    if expr.get("columns") or expr.get("replace_list") or expr.get("rename_list"):
        return
    excluded = frozenset(c.lower() for c in expr.get("exclude_list", []))
    relation = expr.get("relation_name", "").lower()
    if relation:
        if relation in scope:
            yield scope[relation], excluded
        return
    for rel in scope.values():
        yield rel, excluded


def _from(node: Node | None, ctes: Mapping[str, Relation], outer: Scope, columns_of: ColumnsOf) -> Scope:
    """alias -> relation for a FROM tree."""
    if node is None or node["type"] == "EMPTY":
        return {}
    if node["type"] == "JOIN":
        return _join(node, ctes, outer, columns_of)
    relation: Relation
    name = node.get("alias", "")
    if node["type"] == "BASE_TABLE" and not node.get("column_name_alias"):
        table = f"{node['schema_name']}.{node['table_name']}" if node["schema_name"] else node["table_name"]
        cte = ctes.get(table.lower()) if not node["schema_name"] else None
        relation = cte if cte is not None else Table(table.lower(), columns_of(table.lower()))
        name = name or node["table_name"]
    elif node["type"] == "SUBQUERY" and not node.get("column_name_alias"):
        relation = _query(node["subquery"]["node"], ctes, outer, columns_of)
    else:  # TABLE_FUNCTION, PIVOT, renamed columns (t AS x(a, b)): not followed
        relation = Opaque()
    return {name.lower(): relation}


def _join(node: Node, ctes: Mapping[str, Relation], outer: Scope, columns_of: ColumnsOf) -> Scope:
    """Both sides of a join; a lookup side (a table that is not a warehouse table) takes the join keys of the
    other."""
    left = _from(node["left"], ctes, outer, columns_of)
    right = _from(node["right"], ctes, outer, columns_of)
    for lookup, other in ((right, left), (left, right)):
        if len(lookup) != 1:
            continue
        alias, rel = next(iter(lookup.items()))
        if isinstance(rel, Table) and rel.columns is None:
            rel.via = _join_keys(node, alias, other, outer)
    return {**left, **right}


def _join_keys(node: Node, alias: str, other: Scope, outer: Scope) -> Deps:
    """The other side's columns in a join's USING or ON (refs to the lookup `alias` itself left out)."""
    deps: set[Dep] = set()
    for column in node.get("using_columns", []):
        deps |= _unqualified(column, other) or set()
    if node.get("condition") is not None:
        for ref, _bound in _refs(node["condition"]):
            if ref[0].lower() != alias or len(ref) == 1:
                try:
                    deps |= _column(ref, other, outer) or set()
                except Unresolved:
                    continue  # a key the walk cannot follow adds nothing
    return frozenset(deps)


def _expression(
    expr: Node,
    scope: Scope,
    outer: Scope,
    ctes: Mapping[str, Relation],
    columns_of: ColumnsOf,
    earlier: Derived,
) -> Deps | None:
    """The warehouse columns one select-list expression reads; None if a reference cannot be followed."""
    deps: set[Dep] = set()
    try:
        for ref, bound in _refs(expr):
            if len(ref) == 1 and ref[0].lower() in bound:
                continue  # a lambda parameter
            found = _column(ref, scope, outer)
            if found is None and len(ref) == 1 and _alias_only(ref[0], scope, earlier):
                found = earlier.outputs[ref[0].lower()]  # DuckDB lets a select item name an earlier alias
            deps |= found or set()
        for sub in _subqueries(expr):
            query = _query(sub, ctes, {**outer, **scope}, columns_of)
            if isinstance(query, Opaque) or any(d is None for d in query.outputs.values()):
                return None
            deps |= {dep for found in query.outputs.values() if found for dep in found}
    except Unresolved:
        return None
    return frozenset(deps)


def _column(ref: list[str], scope: Scope, outer: Scope) -> Deps | None:
    """What a column reference reads: `[column]`, `[alias, column]`, `[schema, table, column]` or a
    struct field (`[alias, column, field]`, `[column, field]`). None: a column not certainly one
    relation's (skipped). Raises Unresolved for a qualifier that names nothing in scope."""
    if len(ref) == 1:
        return _unqualified(ref[0], scope)
    visible = {**outer, **scope}
    head = ref[0].lower()
    if len(ref) >= 3 and f"{head}.{ref[1].lower()}" in visible:
        return visible[f"{head}.{ref[1].lower()}"].resolve(ref[2])
    if head in visible:
        return visible[head].resolve(ref[1])
    if len(ref) == 3 and ref[1].lower() in visible:  # schema.table.column, aliased by its table name
        return visible[ref[1].lower()].resolve(ref[2])
    if any(rel.has(ref[0]) is not False for rel in scope.values()):
        return _unqualified(ref[0], scope)  # no relation: DuckDB reads `a.b` as field b of column a
    raise Unresolved(f"no relation or column {ref[0]} in scope")


def _alias_only(column: str, scope: Scope, earlier: Derived) -> bool:
    """`column` is an earlier select item's alias and surely no FROM relation's column (those win)."""
    return column.lower() in earlier.outputs and all(rel.has(column) is False for rel in scope.values())


def _unqualified(column: str, scope: Scope) -> Deps | None:
    """An unqualified column: resolved only when exactly one relation surely has it and no other may."""
    found = [(rel, rel.has(column)) for rel in scope.values()]
    sure = [rel for rel, has in found if has]
    if len(sure) == 1 and not any(has is None for _rel, has in found):
        return sure[0].resolve(column)
    return None


def _refs(node: Any, bound: frozenset[str] = frozenset()) -> Iterator[tuple[list[str], frozenset[str]]]:
    """Every COLUMN_REF in an expression with the lambda parameters bound around it
    (not entering subqueries)."""
    if isinstance(node, list):
        for item in node:
            yield from _refs(item, bound)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind == "COLUMN_REF":
        yield node["column_names"], bound
    elif kind == "LAMBDA":
        params = frozenset(ref[0].lower() for ref, _b in _refs(node["lhs"]))
        yield from _refs(node["expr"], bound | params)
    elif kind == "SUBQUERY":
        yield from _refs(node.get("child"), bound)  # `x IN (SELECT ...)`: x; the query is `_subqueries`'
    else:
        for value in node.values():
            yield from _refs(value, bound)


def _subqueries(node: Any) -> Iterator[Node]:
    """The query nodes of the subqueries inside an expression (EXISTS, IN, scalar)."""
    if isinstance(node, list):
        for item in node:
            yield from _subqueries(item)
    elif isinstance(node, dict):
        if node.get("class") == "SUBQUERY":
            yield node["subquery"]["node"]
            yield from _subqueries(node.get("child"))
        else:
            for value in node.values():
                yield from _subqueries(value)


# -- the mart's column lineage, read from every source mapping's SQL ----------------------------------
# (Here, with the model that owns the mappings; `evpipeline.catalog.annotate` is handed
# `mart_column_lineage`.)


def _lowered(schema: dg.TableSchema) -> dict[str, str]:
    """lower-case column name -> the column's name (DuckDB names are case-insensitive)."""
    return {c.name.lower(): c.name for c in schema.columns}


def same_named(mapping: SourceMapping, table: str, column: str) -> frozenset[Dep]:
    """The same-named column of the mapping's table named like the mart table (greenflux.evses.status
    for mart.evses.status): the lineage for a column whose SQL the walk cannot follow."""
    if column in catalog.STANDARD_DESCRIPTIONS or column == "last_updated":
        return frozenset()  # bookkeeping columns every table has: a same name says nothing
    schemas = catalog.declared_schemas()
    short = table.split(".")[1]
    found: set[Dep] = set()
    for key in mapping.inputs:
        source = key.replace("/", ".")
        if key.split("/")[-1] == short and source in schemas and column.lower() in _lowered(schemas[source]):
            found.add((source, column.lower()))
    return frozenset(found)


def _mapping_lineage(mapping: SourceMapping, table: str, kind: str) -> dict[str, frozenset[Dep]]:
    """Mart column -> the warehouse columns the mapping's full-build SQL computes it from."""
    sql = mapping.sql(kind, mappings.Scope(mapping.source))
    if sql is None:
        return {}
    schemas = catalog.declared_schemas()
    known = {name: frozenset(_lowered(schema)) for name, schema in schemas.items()}
    # The rule relations and the scope temp tables are no warehouse tables: `known` leaves them out,
    # so a rule lookup stands for the source columns it is joined on.
    try:
        walked = column_lineage(sql, known.get)
    except ValueError:  # not one plain SELECT (e.g. a UNION): every column falls back to its same name
        walked = dict.fromkeys(_lowered(schemas[table]), None)
    out: dict[str, frozenset[Dep]] = {}
    for lower, column in _lowered(schemas[table]).items():
        deps = walked.get(lower, frozenset())  # a mart column the mapping does not select (bookkeeping): none
        out[column] = same_named(mapping, table, column) if deps is None else deps
    return out


@functools.cache
def _mart_lineage(registered: int) -> dict[str, dict[str, dict[str, frozenset[Dep]]]]:
    del registered  # the cache key, as for `_declared`: the SQL is parsed once per process
    return {
        table: {m.source: found for m in registry() if (found := _mapping_lineage(m, table, kind))}
        for table, kind in KINDS
        if table in catalog.declared_schemas()
    }


def mart_lineage(table: str) -> dict[str, dict[str, frozenset[Dep]]]:
    """source -> mart column -> the (table, column)s of the warehouse its mapping computes it from,
    read from the mapping's SQL (`column_lineage` above); {} for a table no mapping writes."""
    return _mart_lineage(len(migrations.registered())).get(table, {})


def _asset_column(table: str, column: str) -> dg.TableColumnDep | None:
    """The dependency on a warehouse column as Dagster names it: `greenflux/evses` column `status`; a table
    of a source whose one asset loads several (reference/operator_data) as `parties.country_code`."""
    name = _lowered(catalog.declared_schemas()[table]).get(column, column)
    keys = {key for m in registry() for key in m.inputs}
    if table.replace(".", "/") in keys:
        return dg.TableColumnDep(dg.AssetKey(table.split(".")), name)
    schema, short = table.split(".")
    owners = [key for m in registry() if m.source == schema for key in m.inputs]
    if len(owners) == 1:
        return dg.TableColumnDep(dg.AssetKey(owners[0].split("/")), f"{short}.{name}")
    return None  # no asset to name (a table the mart's declared inputs do not load)


def mart_column_lineage(table: str) -> dg.TableColumnLineage | None:
    """Each mart column's upstream columns, from every source mapping that writes the table
    (`mart_lineage`)."""
    deps: dict[str, list[dg.TableColumnDep]] = {}
    for by_column in mart_lineage(table).values():
        for column, found in by_column.items():
            for source_table, source_column in sorted(found):
                dep = _asset_column(source_table, source_column)
                if dep is not None and dep not in deps.get(column, []):
                    deps.setdefault(column, []).append(dep)
    return dg.TableColumnLineage(deps_by_column=deps) if deps else None
