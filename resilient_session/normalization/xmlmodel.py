"""XML to the data a type expects: the type's own fields drive the mapping.

The mapping is read off pydantic's core schema of the target type (a model, a dataclass, a ``TypedDict``,
a list of them ...), so every type pydantic's ``TypeAdapter`` accepts is mapped the same way:

* an object type (model, dataclass, ``TypedDict``) reads an element: each field takes, by its key (its
  validation alias, else its name; with ``AliasChoices`` the first choice the element has), a child
  element of that name, else an attribute of that name. A key ``"@name"`` takes only the attribute
  ``name``, a key ``"#text"`` the element's own text. Names match by local name; a key in Clark notation
  (``"{uri}name"``) matches only that namespace;
* a field typed as a list (``list``, ``set``, ``tuple[X, ...]`` ...) always gets a list: every child of
  its name in document order, even one; none at all leaves the field missing (its default applies). For
  a list of scalars, a single child that has children of its own is a wrapper: its children are the items;
* a scalar field gets the element's stripped text (``None`` for an empty element when the field accepts
  ``None``, else ``""``; ``xsi:nil="true"`` gives ``None``) and pydantic converts it by the declared type;
* ``dict``/``Any`` fields get the element as :func:`element_to_dict` converts it;
* at the root, an object type reads the root element; a list type reads the root's children.

Children and attributes no field takes are collected as unknown paths (``Contents[*].Owner.Extra``,
``item[*].@kind``), attributes of the XML Schema instance namespace (``xsi:type`` ...) excepted.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .xml import UnsafeXMLError, element_to_dict

__all__ = ["Shape", "map_xml", "shape_of"]

_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
_XSI_NIL = _XSI + "nil"
# A root with this many children is mapped (and validated) with the cyclic GC paused, as in xml.py.
_GC_PAUSE_CHILDREN = 2048


@dataclass(eq=False)
class Shape:
    """What one place of the target type expects: ``kind`` is ``"scalar"``, ``"object"``, ``"list"`` or
    ``"any"``."""

    kind: str
    nullable: bool = False
    item: Shape | None = None  # list: the items' shape
    # object: element name -> (key, shape of one value, is_list); attribute name -> key; the text's key.
    elements: dict[str, tuple[str, Shape, bool]] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)  # "@name" keys: the attribute only
    fallback: dict[str, str] = field(default_factory=dict)  # plain keys: the attribute when no child
    text_key: str | None = None
    keeps_extra: bool = False
    # object: element tag -> what it fills (see _Mapper.resolve), filled as tags are first seen.
    resolved: dict[Any, _Entry | None] = field(default_factory=dict)


# (key, shape of one value, is_list, is a scalar leaf field, the value of an empty element)
_Entry = tuple[str, "Shape", bool, bool, "str | None"]


_ANY = Shape("any")


def shape_of(schema: Any) -> Shape:
    """The :class:`Shape` of a pydantic core schema."""
    return _Builder(schema).build(schema)


class _Builder:
    def __init__(self, root: Any) -> None:
        self.definitions: dict[str, Any] = {}
        self.done: dict[str, Shape] = {}
        self._collect(root)

    def _collect(self, schema: Any) -> None:
        if isinstance(schema, dict) and schema.get("type") == "definitions":
            for definition in schema.get("definitions", ()):
                self.definitions[definition["ref"]] = definition

    def build(self, schema: Any, nullable: bool = False) -> Shape:
        kind = schema.get("type")
        ref = schema.get("ref")
        if ref is not None and ref in self.done:
            return self.done[ref]
        if kind == "definitions":
            self._collect(schema)
            return self.build(schema["schema"], nullable)
        if kind == "definition-ref":
            target = schema["schema_ref"]
            if target in self.done:
                return self.done[target]
            return self.build(self.definitions[target], nullable)
        if kind in ("nullable",):
            return self.build(schema["schema"], True)
        if kind in ("default", "function-before", "function-after", "function-wrap"):
            return self.build(schema["schema"], nullable)
        if kind == "lax-or-strict":
            return self.build(schema["lax_schema"], nullable)
        if kind == "json-or-python":
            return self.build(schema["json_schema"], nullable)
        if kind == "chain":
            return self.build(schema["steps"][0], nullable)
        if kind in ("list", "set", "frozenset", "generator"):
            items = schema.get("items_schema")
            return Shape("list", nullable, item=self.build(items) if items else _ANY)
        if kind == "tuple":
            items = schema.get("items_schema") or []
            return Shape("list", nullable, item=self.build(items[0]) if items else _ANY)
        if kind in ("union", "tagged-union"):
            choices = schema["choices"]
            options = choices.values() if isinstance(choices, dict) else choices
            shapes = [self.build(c[0] if isinstance(c, tuple) else c) for c in options]
            structured = [s for s in shapes if s.kind != "scalar"]
            if not structured:
                return Shape("scalar", nullable)
            return structured[0]
        if kind in ("dict", "any"):
            return Shape("any", nullable)
        if kind == "model":
            inner = schema["schema"]
            if schema.get("root_model"):
                return self.build(inner, nullable)
            config = schema.get("config") or {}
            return self._object(inner, nullable, ref, config.get("extra_fields_behavior"))
        if kind == "dataclass":
            config = schema.get("config") or {}
            return self._object(schema["schema"], nullable, ref, config.get("extra_fields_behavior"))
        if kind in ("typed-dict", "model-fields", "dataclass-args"):
            return self._object(schema, nullable, ref, None)
        return Shape("scalar", nullable)

    def _object(self, schema: Any, nullable: bool, ref: str | None, extra: str | None) -> Shape:
        shape = Shape("object", nullable)
        if ref is not None:
            self.done[ref] = shape  # before the fields: a recursive type refers back to this shape
        extra = schema.get("extra_behavior") or extra
        shape.keeps_extra = extra == "allow"
        fields = schema["fields"]
        items = fields.items() if isinstance(fields, dict) else ((f["name"], f) for f in fields)
        for name, spec in items:
            value = self.build(spec["schema"])
            for key in _keys(name, spec.get("validation_alias")):
                if key == "#text":
                    shape.text_key = shape.text_key or key
                elif key[:1] == "@":
                    shape.attributes.setdefault(key[1:], key)
                else:
                    is_list = value.kind == "list"
                    one = (value.item or _ANY) if is_list else value
                    shape.elements.setdefault(key, (key, one, is_list))
                    shape.fallback.setdefault(key, key)
        return shape


def _keys(name: str, alias: Any) -> list[str]:
    """The input keys a field is read from: its validation alias (each choice) or its name."""
    if alias is None:
        return [name]
    if isinstance(alias, str):
        return [alias]
    # A path ["a", 0] or a list of choices [["a"], ["b", 0]]: the first element of each names the key.
    paths = alias if alias and isinstance(alias[0], list) else [alias]
    return [path[0] for path in paths if path and isinstance(path[0], str)]


def map_xml(root: etree._Element, shape: Shape) -> tuple[Any, set[str]]:
    """The data *shape* expects from the document *root*, and the paths of what no field took."""
    unknown: set[str] = set()
    mapper = _Mapper(unknown)
    large = len(root) >= _GC_PAUSE_CHILDREN
    paused = large and gc.isenabled()
    if paused:
        gc.disable()
    try:
        if shape.kind == "list":
            item = shape.item or _ANY
            return [mapper.value(child, item, "[*]") for child in mapper.children(root)], unknown
        if shape.kind == "any":
            return element_to_dict(root), unknown
        return mapper.value(root, shape, ""), unknown
    finally:
        if paused:
            gc.enable()


class _Mapper:
    __slots__ = ("locals", "unknown")

    def __init__(self, unknown: set[str]) -> None:
        self.unknown = unknown
        self.locals: dict[str, str] = {}

    def local(self, tag: Any) -> str:
        name = self.locals.get(tag)
        if name is None:
            if type(tag) is not str:
                raise UnsafeXMLError("XML entity references are not allowed")
            name = self.locals[tag] = tag.rpartition("}")[2] if tag[:1] == "{" else tag
        return name

    def children(self, element: Any) -> list[Any]:
        children: list[Any] = element.getchildren()
        for child in children:
            self.local(child.tag)  # refuses entity nodes
        return children

    def value(self, element: Any, shape: Shape, path: str) -> Any:
        kind = shape.kind
        if kind == "object":
            return self.object(element, shape, path)
        if kind == "scalar":
            return self.scalar(element, shape, path)
        if kind == "list":  # a list nested directly in a list: the element's children are its items
            item = shape.item or _ANY
            return [self.value(child, item, path + "[*]") for child in self.children(element)]
        return element_to_dict(element)[self.local(element.tag)]

    def scalar(self, element: Any, shape: Shape, path: str) -> Any:
        if len(element):
            self.children(element)
            return element_to_dict(element)[self.local(element.tag)]  # a mismatch pydantic will report
        attributes = element.items()
        if attributes:
            for name, value in attributes:
                if name == _XSI_NIL:
                    if value in ("true", "1"):
                        return None
                elif name[: len(_XSI)] != _XSI:
                    self.unknown.add(f"{path}.@{self.local(name)}" if path else f"@{self.local(name)}")
        text = element.text
        if text:
            text = text.strip()
        if text:
            return text
        return None if shape.nullable else ""

    @staticmethod
    def repeat(existing: Any, value: Any, key: str, repeated: set[str] | None) -> list[Any]:
        """The same name twice for a field that takes one value: a list, which validation reports."""
        values: list[Any] = existing if repeated is not None and key in repeated else [existing]
        values.append(value)
        return values

    def resolve(self, shape: Shape, tag: Any) -> _Entry | None:
        """The field an element named *tag* fills in *shape* (cached on the shape), or ``None``."""
        name = self.local(tag)  # refuses entity nodes before anything is cached
        elements = shape.elements
        found = elements.get(tag)
        if found is None and tag != name:
            found = elements.get(name)
        entry = None
        if found is not None:
            key, item, is_list = found
            leaf = item.kind == "scalar" and not is_list
            entry = (key, item, is_list, leaf, None if item.nullable else "")
        shape.resolved[tag] = entry
        return entry

    def object(self, element: Any, shape: Shape, path: str) -> Any:
        node: dict[str, Any] = {}
        resolved = shape.resolved
        prefix = path + "." if path else ""
        repeated: set[str] | None = None
        pieces: list[str] | None = None
        length = len
        obj = self.object
        for child in element.getchildren():
            tag = child.tag
            try:
                entry = resolved[tag]
            except (KeyError, TypeError):
                entry = self.resolve(shape, tag)
            tail = child.tail
            if tail:
                pieces = [*(pieces or ()), tail]
            if entry is None:
                name = self.local(tag)
                if shape.keeps_extra:
                    node.setdefault(name, element_to_dict(child)[name])
                else:
                    self.unknown.add(prefix + name)
                continue
            key, item, is_list, leaf, empty = entry
            value: Any
            if leaf and not length(child):
                # A leaf for a scalar field, the bulk of any document: handled here, without a call.
                value = child.text
                if child.items():
                    value = self.scalar(child, item, prefix + key)
                elif value:
                    value = value.strip() or empty
                else:
                    value = empty
            elif is_list:
                child_path = prefix + key + "[*]"
                if item.kind == "scalar" and len(child):
                    # A wrapper element around a list of scalars: <tags><tag>a</tag><tag>b</tag></tags>.
                    values = [self.scalar(c, item, child_path) for c in self.children(child)]
                    node.setdefault(key, []).extend(values)
                elif item.kind == "object":
                    node.setdefault(key, []).append(obj(child, item, child_path))
                else:
                    node.setdefault(key, []).append(self.value(child, item, child_path))
                continue
            elif item.kind == "object":
                value = obj(child, item, prefix + key)
            else:
                value = self.value(child, item, prefix + key)
            if key in node:
                node[key] = self.repeat(node[key], value, key, repeated)
                repeated = repeated or set()
                repeated.add(key)
            else:
                node[key] = value
        explicit, fallback = shape.attributes, shape.fallback
        attribute_key: str | None
        for name, value in element.items():
            if name[:1] == "{":
                if name == _XSI_NIL:
                    if value in ("true", "1") and not node:
                        return None
                    continue
                if name[: len(_XSI)] == _XSI:
                    continue
                local = self.local(name)
                attribute_key = explicit.get(name) or explicit.get(local)
                if attribute_key is None:
                    attribute_key = fallback.get(name) or fallback.get(local)
                    if attribute_key in node:
                        attribute_key = None  # a child took the field: this attribute is something else
            else:
                local = name
                attribute_key = explicit.get(name)
                if attribute_key is None:
                    attribute_key = fallback.get(name)
                    if attribute_key in node:
                        attribute_key = None
            if attribute_key is None:
                if shape.keeps_extra:
                    node.setdefault("@" + local, value)
                else:
                    self.unknown.add(f"{prefix}@{local}")
            else:
                node[attribute_key] = value
        text = element.text
        if pieces:
            text = "".join([text or "", *pieces])
        if text:
            text = text.strip()
            if text:
                if shape.text_key is not None:
                    node[shape.text_key] = text
                else:
                    self.unknown.add(prefix + "#text")
        return node
