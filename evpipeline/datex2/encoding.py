"""One declaration of a DATEX II object, two encodings, rendered by DuckDB.

A document is declared once as a tree of nodes: each object lists its properties under the AFIR
profile's JSON names and says where each one goes in DATEX II 3.7's XML. `json(node)` and
`xml(node, tag)` turn the same tree into SQL expressions that DuckDB evaluates row by row into
finished text. An absent optional value is omitted, never written as null: string concatenation
propagates NULL, while `concat_ws`/`concat`/`array_to_string` skip it, so an element whose value is
NULL disappears with its key or tags.

The two encodings:

- **JSON** follows the profile's JSON Schema encoding (`idG`/`versionG`, enumerations as
  `{"value": ...}`, multilingual strings as `{"values": [{"lang", "value"}]}`, a choice of subtype as
  a wrapper key such as `afacOpenAllHours`).
- **XML** is DATEX II 3.7: a property the 3.7 schema set has (`Prop.xml`, a qualified element name)
  is written where 3.7 puts it, in the declared order (which must be the schema's sequence); every
  profile property 3.7 lacks goes, in declaration order, into the object's own extension element
  (`Obj.ext`, e.g. `egi:_electricChargingPointExtension`, which 3.7 leaves open). A subtype is
  `xsi:type`; `idG`/`versionG` (and a few other `Attr`s) are attributes.
- Inside an extension, and in the status publication (which has no XSD), XML is **profile-native**:
  it mirrors the profile's JSON in the `afir:` namespace, one element per key (a subtype's wrapper
  key too), enumerations and multilingual strings written as DATEX II XML writes them.

Nodes hold SQL expressions over whatever the rendering query has in scope (columns, or a lambda's
variable); the declaration's author keeps them consistent with that query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape

Format = Literal["json", "xml"]
# Profile elements in 3.7's extension points (the profile has no XSD).
AFIR_NS = "urn:evpipeline:datex2:afir:01-00-00"
XML_NAMESPACES = {
    "d2": "http://datex2.eu/schema/3/d2Payload",
    "com": "http://datex2.eu/schema/3/common",
    "egi": "http://datex2.eu/schema/3/energyInfrastructure",
    "fac": "http://datex2.eu/schema/3/facilities",
    "loc": "http://datex2.eu/schema/3/locationReferencing",
    "locx": "http://datex2.eu/schema/3/locationExtension",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "afir": AFIR_NS,
}


# ------------------------------------------------------------------------------------------------
# SQL text helpers


def literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


_LITERAL = re.compile(r"^'((?:[^']|'')*)'$")


def constant(expr: str) -> str | None:
    """The text of `expr` when it is an SQL string literal (folded in Python: DuckDB plans every
    expression node, and the planning of a whole document's expression is what costs)."""
    match = _LITERAL.match(expr.strip())
    return match.group(1).replace("''", "'") if match else None


def json_string(expr: str) -> str:
    """A JSON string literal of `expr` (NULL stays NULL)."""
    if (text := constant(expr)) is not None:
        return literal(json.dumps(text, ensure_ascii=False))
    return f"CAST(to_json(CAST({expr} AS VARCHAR)) AS VARCHAR)"


def xml_text(expr: str) -> str:
    """`expr` escaped for XML character data (and attribute values in double quotes)."""
    if (text := constant(expr)) is not None:
        return literal(escape(text, {'"': "&quot;"}))
    return (
        f"replace(replace(replace(replace(CAST({expr} AS VARCHAR), '&', '&amp;'), '<', '&lt;'), '>', "
        "'&gt;'), '\"', '&quot;')"
    )


def number(expr: str) -> str:
    """A number's text (DuckDB prints the shortest text that round-trips, as JSON and XML both accept)."""
    return f"CAST({expr} AS VARCHAR)"


def joined(parts: Sequence[str], sep: str) -> str:
    """The non-NULL `parts` joined by `sep` ('' when all are NULL)."""
    if not parts:
        return "''"
    if sep == "":
        return f"concat({', '.join(parts)})" if len(parts) > 1 else f"coalesce({parts[0]}, '')"
    return f"concat_ws({literal(sep)}, {', '.join(parts)})"


def joined_or_null(parts: Sequence[str], sep: str) -> str:
    """The non-NULL `parts` (each never '') joined by `sep`, NULL when all are NULL. One pass over the
    parts: `nullif(joined(...), '')` would repeat them, as DuckDB expands nullif into a CASE."""
    if not parts:
        return "NULL"
    if len(parts) == 1:
        return parts[0]
    return f"list_aggregate([{', '.join(parts)}], 'string_agg', {literal(sep)})"


def _open_tag(tag: str, attrs: Sequence[tuple[str, str]]) -> str:
    """SQL for `<tag a="...">` (attribute values are SQL expressions; a NULL attribute is left out)."""
    if not attrs:
        return literal(f"<{tag}")
    parts = [literal(f"<{tag}")] + [
        f"coalesce(' {name}=\"' || {xml_text(value)} || '\"', '')" for name, value in attrs
    ]
    return " || ".join(parts)


# ------------------------------------------------------------------------------------------------
# Nodes


class Node:
    """A value of the document: rendered as a JSON value or as XML element(s) named `tag`."""

    def json(self) -> str:
        raise NotImplementedError

    def present(self, fmt: Format) -> bool:
        """Whether the value is never absent (never NULL) in `fmt`, as far as the declaration shows:
        an object holding such a value needs no emptiness test. The test matters for speed:
        `nullif(x, '')` is expanded by DuckDB to `CASE WHEN x = '' THEN NULL ELSE x END`, so every
        level of nesting that tests its body doubles the expression the planner binds."""
        return False

    def xml(self, tag: str, native: bool) -> str:
        """The element(s) `tag` holding this value; `native`: inside an extension (profile names only)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Leaf(Node):
    """A single value from one SQL expression (present when the expression is a literal)."""

    expr: str

    def present(self, fmt: Format) -> bool:
        return constant(self.expr) is not None


@dataclass(frozen=True)
class Text(Leaf):
    def json(self) -> str:
        return json_string(self.expr)

    def xml(self, tag: str, native: bool) -> str:
        return f"'<{tag}>' || {xml_text(self.expr)} || '</{tag}>'"


@dataclass(frozen=True)
class Number(Leaf):
    def json(self) -> str:
        return number(self.expr)

    def xml(self, tag: str, native: bool) -> str:
        return f"'<{tag}>' || {number(self.expr)} || '</{tag}>'"


@dataclass(frozen=True)
class Boolean(Node):
    expr: str

    def json(self) -> str:
        return f"(CASE WHEN {self.expr} THEN 'true' WHEN NOT {self.expr} THEN 'false' END)"

    def xml(self, tag: str, native: bool) -> str:
        return f"'<{tag}>' || {self.json()} || '</{tag}>'"


@dataclass(frozen=True)
class Enum(Leaf):
    """An enumeration value (`expr` yields one of the schema's values, from our rule tables)."""

    def json(self) -> str:
        return f"""'{{"value":' || {json_string(self.expr)} || '}}'"""

    def xml(self, tag: str, native: bool) -> str:
        return f"'<{tag}>' || {xml_text(self.expr)} || '</{tag}>'"


@dataclass(frozen=True)
class Extended(Leaf):
    """A value outside the enumeration (`extendedG` plus the value), as DATEX II extends enumerations."""

    def json(self) -> str:
        return f"""'{{"value":"extendedG","extendedValueG":' || {json_string(self.expr)} || '}}'"""

    def xml(self, tag: str, native: bool) -> str:
        return f"'<{tag} _extendedValue=\"' || {xml_text(self.expr)} || '\">_extended</{tag}>'"


@dataclass(frozen=True)
class Multilingual(Node):
    """A MultilingualString with one value in language `lang` (an SQL expression)."""

    expr: str
    lang: str

    def json(self) -> str:
        return (
            f"""'{{"values":[{{"lang":' || {json_string(self.lang)} """
            f"""|| ',"value":' || {json_string(self.expr)}"""
            f""" || '}}]}}'"""
        )

    def xml(self, tag: str, native: bool) -> str:
        return (
            f"'<{tag}><com:values><com:value lang=\"' || {xml_text(self.lang)} "
            f"|| '\">' || {xml_text(self.expr)} || '</com:value></com:values></{tag}>'"
        )


@dataclass(frozen=True)
class Prop:
    """A property: its profile JSON key, its value, and its 3.7 XML element (None: not in 3.7, so it
    goes into the object's extension under its profile name)."""

    key: str
    node: Node
    xml: str | None = None


@dataclass(frozen=True)
class Attr:
    """A property XML writes as an attribute (`idG` as `id`, `versionG` as `version`, a line's `order`):
    `expr` is its text, `number` says whether JSON writes it as a number."""

    key: str
    xml: str
    expr: str
    number: bool = False
    required: bool = False  # never NULL: an identifier the publication computes for every object

    def json(self) -> str:
        return number(self.expr) if self.number else json_string(self.expr)

    def present(self) -> bool:
        return self.required or constant(self.expr) is not None


def ids(id_expr: str, version_expr: str | None = None) -> list[Attr]:
    """`idG` (and `versionG`) of an identifiable object."""
    return [Attr("idG", "id", id_expr, required=True)] + (
        [Attr("versionG", "version", version_expr)] if version_expr else []
    )


@dataclass(frozen=True)
class Obj(Node):
    """An object: its attributes and properties in order; `ext`: its 3.7 extension element, which holds
    the profile-only properties; `keep_empty`: written even without any (e.g. OpenAllHours `{}`)."""

    props: Sequence[Prop | Attr]
    ext: str | None = None
    keep_empty: bool = False

    @property
    def attrs(self) -> list[Attr]:
        return [p for p in self.props if isinstance(p, Attr)]

    @property
    def elements(self) -> list[Prop]:
        return [p for p in self.props if isinstance(p, Prop)]

    def present(self, fmt: Format) -> bool:
        if self.keep_empty or (fmt == "xml" and self.attrs):
            return True
        return self._filled(fmt)

    def _filled(self, fmt: Format) -> bool:
        """Whether some member is never absent, so the body is never empty (no test needed)."""
        if fmt == "json":
            return any(p.present() if isinstance(p, Attr) else p.node.present(fmt) for p in self.props)
        return any(p.node.present(fmt) for p in self.elements)

    def json(self) -> str:
        members = [
            f"""'"{p.key}":' || {(p.json() if isinstance(p, Attr) else p.node.json())}""" for p in self.props
        ]
        if self._filled("json"):
            return f"'{{' || {joined(members, ',')} || '}}'"
        body = f"'{{' || {joined_or_null(members, ',')} || '}}'"
        return f"coalesce({body}, '{{}}')" if self.keep_empty else body

    def xml(self, tag: str, native: bool, xsi_type: str | None = None) -> str:
        attrs = [(a.xml, a.expr) for a in self.attrs] + (
            [("xsi:type", literal(xsi_type))] if xsi_type else []
        )
        if native:
            children = [_native(p) for p in self.elements]
        elif self.ext is None:
            children = [p.node.xml(_tag(p), False) for p in self.elements]
        else:
            inner = [_native(p) for p in self.elements if p.xml is None]
            inner_sql = (
                joined(inner, "")
                if any(p.node.present("xml") for p in self.elements if p.xml is None)
                else joined_or_null(inner, "")
            )
            ext = [f"'<{self.ext}>' || {inner_sql} || '</{self.ext}>'"] if inner else []
            children = [p.node.xml(p.xml, False) for p in self.elements if p.xml is not None] + ext
        content = joined(children, "") if self._filled("xml") else joined_or_null(children, "")
        if not attrs and not self.keep_empty:
            return f"'<{tag}>' || {content} || '</{tag}>'"
        return f"{_open_tag(tag, attrs)} || coalesce('>' || {content} || '</{tag}>', '/>')"


def _tag(prop: Prop) -> str:
    if prop.xml is None:
        raise ValueError(
            f"{prop.key}: an object without an extension element must name every property's 3.7 element"
        )
    return prop.xml


def _native(prop: Prop) -> str:
    return prop.node.xml(f"afir:{prop.key}", True)


@dataclass(frozen=True)
class Choice(Node):
    """One subtype of an abstract type: JSON wraps it in `key` (e.g. `afacOpenAllHours`); 3.7 XML
    types the element with `xsi:type`; profile-native XML mirrors JSON with a `key` element (a
    receiver validating 3.7 resolves every xsi:type, even in an extension, so none are used there)."""

    key: str
    xsi_type: str
    node: Obj

    def present(self, fmt: Format) -> bool:
        return self.node.present(fmt)  # (3.7 XML's xsi:type element is never absent; native XML's can be)

    def json(self) -> str:
        return f"""'{{"{self.key}":' || {self.node.json()} || '}}'"""

    def xml(self, tag: str, native: bool) -> str:
        if native:
            return f"'<{tag}>' || {self.node.xml(f'afir:{self.key}', True)} || '</{tag}>'"
        return self.node.xml(tag, native, xsi_type=self.xsi_type)


@dataclass(frozen=True)
class When(Node):
    """`then` where the SQL condition holds, else `otherwise` (absent when None)."""

    condition: str
    then: Node
    otherwise: Node | None = None

    def present(self, fmt: Format) -> bool:
        return self.otherwise is not None and self.then.present(fmt) and self.otherwise.present(fmt)

    def json(self) -> str:
        return (
            f"(CASE WHEN {self.condition} THEN "
            f"{self.then.json()}{self._else(self.otherwise.json() if self.otherwise else None)} END)"
        )

    def xml(self, tag: str, native: bool) -> str:
        other = self.otherwise.xml(tag, native) if self.otherwise else None
        return f"(CASE WHEN {self.condition} THEN {self.then.xml(tag, native)}{self._else(other)} END)"

    @staticmethod
    def _else(expr: str | None) -> str:
        return f" ELSE {expr}" if expr else ""


@dataclass(frozen=True)
class ListOf(Node):
    """A list: `item` rendered for each element of the SQL list `expr`, which it sees as `var`."""

    expr: str
    var: str
    item: Node

    # The items' texts joined in list order, NULL when none is present: string_agg over the list gives
    # both in one pass, where nullif(array_to_string(...), '') would repeat the rendering (a macro).
    def json(self) -> str:
        return (
            f"'[' || list_aggregate(list_transform({self.expr}, lambda {self.var}: "
            f"{self.item.json()}), 'string_agg', ',') || ']'"
        )

    def xml(self, tag: str, native: bool) -> str:
        return (
            f"list_aggregate(list_transform({self.expr}, lambda {self.var}: "
            f"{self.item.xml(tag, native)}), 'string_agg', '')"
        )


@dataclass(frozen=True)
class One(Node):
    """A list of exactly one item (absent when the item is): no lambda needed (DuckDB plans nested
    lambdas slowly, so a declaration avoids them where a list can only hold one item)."""

    item: Node

    def present(self, fmt: Format) -> bool:
        return self.item.present(fmt)

    def json(self) -> str:
        return f"'[' || {self.item.json()} || ']'"

    def xml(self, tag: str, native: bool) -> str:
        return self.item.xml(tag, native)


@dataclass(frozen=True)
class Raw(Node):
    """A value rendered beforehand in the same format by the same declarations (`expr` holds it: a
    JSON value, or the XML element with its tag), e.g. a site's facility location, rendered once per
    site and used by the site and each of its stations."""

    expr: str

    def json(self) -> str:
        return self.expr

    def xml(self, tag: str, native: bool) -> str:
        return self.expr


@dataclass(frozen=True)
class Rendered(Node):
    """Items rendered beforehand in the same format by the same declarations (e.g. a station's points,
    aggregated per station): `expr` holds them joined (',' between JSON values; XML elements, tagged)."""

    expr: str

    def json(self) -> str:
        return f"'[' || nullif({self.expr}, '') || ']'"

    def xml(self, tag: str, native: bool) -> str:
        return f"nullif({self.expr}, '')"


_ADJACENT = re.compile(r"'((?:[^']|'')*)' \|\| '((?:[^']|'')*)'")


def folded(sql: str) -> str:
    """`sql` with adjacent string literals joined (`'a' || 'b'` -> `'ab'`): fewer nodes to plan."""
    while True:
        joined_sql = _ADJACENT.sub(lambda m: f"'{m.group(1)}{m.group(2)}'", sql)
        if joined_sql == sql:
            return sql
        sql = joined_sql


def render(node: Node, fmt: Format, tag: str = "") -> str:
    """SQL for `node` as a JSON value, or as XML element `tag` in 3.7 placement."""
    return folded(node.json() if fmt == "json" else node.xml(tag, False))


def separator(fmt: Format) -> str:
    """What joins rendered list items of `fmt` (see `Rendered`)."""
    return "," if fmt == "json" else ""
