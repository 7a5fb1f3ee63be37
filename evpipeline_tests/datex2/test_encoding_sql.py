"""The SQL the declarations compile to: absent values stay absent, and nesting costs what it holds.

Literal expected values, evaluated by DuckDB itself (no mocks): an object or list with nothing in it
is left out with its key, and an object's rendering grows linearly with its nesting depth (DuckDB
expands `nullif` into a CASE that repeats its argument, so a test of emptiness at every level made
the SQL, and the planner's work, double per level)."""

from __future__ import annotations

import json

import duckdb
import pytest

from evpipeline.datex2.document import Declarations
from evpipeline.datex2.encoding import Enum, ListOf, Number, Obj, One, Prop, Text, ids, render


def rendered(node: Obj | ListOf, fmt: str, row: str, tag: str = "x") -> str | None:
    con = duckdb.connect()
    value = con.execute(f"SELECT {render(node, fmt, tag)} FROM (SELECT {row})").fetchone()  # type: ignore[arg-type]
    assert value is not None
    return value[0]


def test_an_object_whose_members_are_all_absent_is_absent_in_both_encodings() -> None:
    inner = Obj([Prop("a", Text("a"), "p:a"), Prop("b", Number("b"), "p:b")])
    outer = Obj([Prop("inner", inner, "p:inner"), Prop("c", Text("c"), "p:c")])
    row = "NULL::VARCHAR AS a, NULL::INTEGER AS b, NULL::VARCHAR AS c"
    assert rendered(outer, "json", row) is None
    assert rendered(outer, "xml", row) is None
    row = "NULL::VARCHAR AS a, 7 AS b, NULL::VARCHAR AS c"
    assert json.loads(rendered(outer, "json", row) or "") == {"inner": {"b": 7}}
    assert rendered(outer, "xml", row) == "<x><p:inner><p:b>7</p:b></p:inner></x>"


def test_an_object_with_an_id_is_written_even_when_its_other_members_are_absent() -> None:
    point = Obj([*ids("id"), Prop("a", Text("a"))])
    assert json.loads(rendered(point, "json", "'P1' AS id, NULL::VARCHAR AS a") or "") == {"idG": "P1"}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_list_is_absent_when_empty_null_or_all_its_items_are(fmt: str) -> None:
    holder = Obj([Prop("v", ListOf("vs", "_v", Enum("_v")), "p:v"), Prop("w", Text("w"), "p:w")])
    for vs in ("[]::VARCHAR[]", "NULL::VARCHAR[]", "[NULL, NULL]::VARCHAR[]"):
        assert rendered(holder, fmt, f"{vs} AS vs, 'w' AS w") in ('{"w":"w"}', "<x><p:w>w</p:w></x>")
    text = rendered(holder, fmt, "['b', NULL, 'a'] AS vs, NULL::VARCHAR AS w")
    expected = {
        "json": '{"v":[{"value":"b"},{"value":"a"}]}',
        "xml": "<x><p:v>b</p:v><p:v>a</p:v></x>",
    }
    assert text == expected[fmt]


def repeated_depth(sql: str) -> int:
    """How deeply `nullif(` calls nest in `sql` (string literals skipped): the binder copies a
    nullif's argument, so what it binds is about 2 ** depth times the text."""
    depth, deepest, stack, i = 0, 0, [], 0
    while i < len(sql):
        if sql[i] == "'":
            i = sql.index("'", i + 1) + 1
            while i < len(sql) and sql[i] == "'":  # an escaped quote inside the literal
                i = sql.index("'", i + 1) + 1
            continue
        if sql.startswith("nullif(", i):
            depth += 1
            deepest = max(deepest, depth)
            stack.append(True)
            i += len("nullif(")
            continue
        if sql[i] == "(":
            stack.append(False)
        elif sql[i] == ")" and stack.pop():
            depth -= 1
        i += 1
    return deepest


def nested(depth: int) -> Obj:
    node = Obj([Prop("leaf", Text("leaf"), "p:leaf"), Prop("n", One(Number("n")), "p:n")])
    for level in range(depth):
        node = Obj([Prop(f"l{level}", node, f"p:l{level}"), Prop(f"t{level}", Text("leaf"), f"p:t{level}")])
    return node


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_nested_objects_and_lists_never_repeat_their_contents_for_the_planner(fmt: str) -> None:
    assert repeated_depth("nullif(a, nullif(b, ')''(')) || nullif(c, '')") == 2  # the counter itself
    doc = Declarations("nl")
    for node in (nested(8), doc.site(), doc.station(), doc.charging_point()):
        assert repeated_depth(render(node, fmt, "x")) <= 1  # type: ignore[arg-type]
    for status in (doc.point_status(), doc.station_status(), doc.site_status()):  # XML: profile-native
        assert repeated_depth(status.json() if fmt == "json" else status.xml("x", True)) <= 1
    assert rendered(nested(8), fmt, "'v' AS leaf, 1 AS n") is not None
