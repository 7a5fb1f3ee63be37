"""Both encodings of a publication as one tree, by the XML rule of docs/datex2.md, written here without
`evpipeline.datex2.encoding` (a test sharing the encoder's code would agree with its mistakes).

The tree: every object a dict from property name to the list of its values (a JSON non-list value is
a list of one; repeated XML elements are the list); every leaf a string, or a float where it reads as
a decimal number (JSON numbers and XML text alike).

XML -> tree:
- namespaces are dropped; an `_...Extension` element is transparent (its children are its parent's);
- attributes `id`/`version` are `idG`/`versionG`, other attributes keep their names;
- `xsi:type="p:Type"` is the profile's wrapper key (`fac` -> `afac`, `egi` -> `aegi`, `loc`, `com`,
  `afir` -> the type's own profile prefix) around the element's attributes and children;
- an element `values` of `value` children (a multilingual string) is the list of {lang, value};
- `<x _extendedValue="v">_extended</x>` is the extended value `extendedG:v`;
- the root `d2:payload` (attributes modelBaseVersion, profileName, profileVersion, lang, xsi:type) is
  the profile's `payload` with `modelBaseVersionG`, `profileNameG`, `profileVersionG` and the typed
  publication holding `lang`;
- the documented deviation: `nutsArea`, beside `facilityLocation` in `_locationReferenceExtension`,
  goes into it, and `facilityLocation` is the extension's class key `FacilityLocation`.

JSON -> tree:
- a key ending in `ExtensionG` is transparent;
- an enumeration `{"value": x}` is x, `{"value": "extendedG", "extendedValueG": v}` is `extendedG:v`;
- booleans are `true`/`false`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

Tree = dict[str, list[Any]]
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
WRAPPER_PREFIX = {"fac": "afac", "egi": "aegi", "loc": "loc", "com": "com"}
# Types our documents write in an `afir:` xsi:type (none expected: profile-only types go into extensions
# as profile-native wrapper elements); listed so a new one fails loudly rather than silently.
AFIR_TYPE_PREFIX: dict[str, str] = {}
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def leaf(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    return float(text) if NUMBER.match(text) else text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _add(tree: Tree, key: str, value: Any) -> None:
    tree.setdefault(key, []).append(value)


def _merge(tree: Tree, other: Tree) -> None:
    for key, values in other.items():
        tree.setdefault(key, []).extend(values)


# -- XML ----------------------------------------------------------------------------------------------


def _wrapper(xsi_type: str) -> str:
    prefix, _, name = xsi_type.partition(":")
    if prefix == "afir":
        if name not in AFIR_TYPE_PREFIX:
            raise AssertionError(f"xsi:type {xsi_type}: an afir type has no 3.7 place")
        return AFIR_TYPE_PREFIX[name] + name
    return WRAPPER_PREFIX[prefix] + name


def _xml_value(element: ET.Element) -> Any:
    """The value an element holds (its own tag is the caller's key)."""
    attrs = {k: v for k, v in element.attrib.items() if k != XSI_TYPE}
    if "_extendedValue" in attrs:
        assert (element.text or "") == "_extended" and len(attrs) == 1 and not len(element), ET.tostring(
            element
        )
        return f"extendedG:{attrs['_extendedValue']}"
    children = list(element)
    if not children and not attrs and element.text is not None:
        value: Any = leaf(element.text)
    else:
        assert not (element.text or "").strip() or not children, f"mixed content in {element.tag}"
        tree: Tree = {}
        for name, text in attrs.items():
            _add(tree, {"id": "idG", "version": "versionG"}.get(_local(name), _local(name)), leaf(text))
        if not children and (element.text or "").strip():
            _add(tree, "value", leaf(element.text))  # a text with attributes (a multilingual value)
        for child in children:
            _xml_child(tree, child)
        value = tree
    if XSI_TYPE in element.attrib:
        return {_wrapper(element.attrib[XSI_TYPE]): [value]}
    return value


def _xml_child(tree: Tree, child: ET.Element) -> None:
    name = _local(child.tag)
    if name.startswith("_") and name.endswith("Extension"):
        inner: Tree = {}
        for grandchild in child:
            _xml_child(inner, grandchild)
        if name == "_locationReferenceExtension":  # the documented nutsArea relocation
            facility = inner.pop("facilityLocation", None)
            if facility is not None:
                (only,) = facility
                if "nutsArea" in inner:
                    only["nutsArea"] = inner.pop("nutsArea")
                inner["FacilityLocation"] = [only]
        _merge(tree, inner)
    elif name == "values" and len(child) and all(_local(c.tag) == "value" for c in child):
        tree.setdefault("values", []).extend(_xml_value(c) for c in child)
    else:
        _add(tree, name, _xml_value(child))


def xml_tree(document: bytes) -> Tree:
    root = ET.fromstring(document)
    name = _local(root.tag)
    if name != "payload":  # the status publication: profile-native throughout
        return {name: [_xml_value(root)]}
    attrs = dict(root.attrib)
    publication: Tree = {"lang": [leaf(attrs.pop("lang"))]}
    for child in root:
        _xml_child(publication, child)
    payload: Tree = {
        f"{key}G": [leaf(attrs.pop(key))] for key in ("modelBaseVersion", "profileName", "profileVersion")
    }
    payload[_wrapper(attrs.pop(XSI_TYPE))] = [publication]
    assert not attrs, f"unexpected root attributes {attrs}"
    return {"payload": [payload]}


# -- JSON ---------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"value"} and not isinstance(value["value"], dict | list):
            return leaf(value["value"])
        if set(value) == {"value", "extendedValueG"} and value["value"] == "extendedG":
            return f"extendedG:{value['extendedValueG']}"
        return json_tree(value)
    return leaf(value)


def json_tree(body: dict[str, Any]) -> Tree:
    tree: Tree = {}
    for key, value in body.items():
        if key.endswith("ExtensionG"):
            _merge(tree, json_tree(value))
            continue
        for item in value if isinstance(value, list) else [value]:
            _add(tree, key, _json_value(item))
    return tree


def first_difference(a: Any, b: Any, path: str = "$") -> str | None:
    """Where two trees differ first (for a readable failure), None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'xml' if key in a else 'json'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} values"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"
