"""msgspec ``Struct``s in ``into()``: the same XML mapping, msgspec's own JSON decoding and conversion.

A type is handled here when it is a ``msgspec.Struct`` or is built of them (``list[Item]``,
``Item | None``, ``Annotated[Item, ...]`` ...); msgspec is then already imported by the caller's code, so
nothing is imported here that the caller did not import. The XML shape is read off
``msgspec.inspect.type_info`` (a field's key is its encoded name: ``msgspec.field(name="@id")`` takes the
attribute ``id``). msgspec reports the first mismatch only; its message is parsed into a path, what was
expected and the kind of value received, and never kept whole (an enum's message quotes the value).
"""

from __future__ import annotations

import re
import sys
import typing
from typing import Any

from .xmlmodel import ANY, Shape, add_field

__all__ = ["Invalid", "convert", "decode_json", "is_struct_type", "struct_shape", "unknown_json_paths"]


class Invalid(Exception):
    """What did not fit, as pydantic-style error dicts (``type``, ``loc``, ``expected``, ``input``)."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("the data does not fit its type")
        self.errors = errors


class Malformed(Exception):
    """The JSON body is not JSON (the generic parse says what is wrong with it)."""


def is_struct_type(type_: Any, depth: int = 0) -> bool:
    """Whether *type_* is a ``msgspec.Struct`` or made of them."""
    msgspec = sys.modules.get("msgspec")
    if msgspec is None:
        return False
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return True
    return depth < 8 and any(is_struct_type(arg, depth + 1) for arg in typing.get_args(type_))


def struct_shape(type_: Any) -> Shape:
    """The XML :class:`~.xmlmodel.Shape` of a msgspec type."""
    from msgspec import inspect

    return _Builder(inspect).build(inspect.type_info(type_))


class _Builder:
    def __init__(self, inspect: Any) -> None:
        self.inspect = inspect
        self.done: dict[Any, Shape] = {}

    def build(self, info: Any, nullable: bool = False) -> Shape:
        mi = self.inspect
        if isinstance(info, mi.Metadata):
            return self.build(info.type, nullable)
        if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            return Shape("list", nullable, item=self.build(info.item_type))
        if isinstance(info, mi.TupleType):
            items = info.item_types
            return Shape("list", nullable, item=self.build(items[0]) if items else ANY)
        if isinstance(info, mi.UnionType):
            nullable = nullable or any(isinstance(t, mi.NoneType) for t in info.types)
            options = [t for t in info.types if not isinstance(t, mi.NoneType)]
            if len(options) == 1:
                return self.build(options[0], nullable)
            structured = [s for s in (self.build(t) for t in options) if s.kind != "scalar"]
            return structured[0] if structured else Shape("scalar", nullable)
        if isinstance(info, (mi.DictType, mi.AnyType)):
            return Shape("any", nullable)
        if isinstance(info, (mi.StructType, mi.DataclassType, mi.TypedDictType)):
            if getattr(info, "array_like", False):
                return Shape("any", nullable)
            if info.cls in self.done:
                return self.done[info.cls]
            shape = self.done[info.cls] = Shape("object", nullable)  # before the fields: recursion
            tag_field = getattr(info, "tag_field", None)
            if tag_field:
                add_field(shape, tag_field, Shape("scalar"))
            for field in info.fields:
                add_field(shape, field.encode_name, self.build(field.type))
            return shape
        return Shape("scalar", nullable)


def convert(type_: Any, data: Any) -> Any:
    """*data* (plain dicts, lists, strings) as *type_*, in lax mode: ``"7"`` fits an ``int``."""
    import msgspec

    try:
        return msgspec.convert(data, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise Invalid([_error(str(exc), data)]) from None


def decode_json(type_: Any, content: str | bytes, strict: bool) -> Any:
    """The JSON *content* as *type_*; lax (``"7"`` fits an ``int``) unless *strict*."""
    import msgspec

    try:
        return msgspec.json.decode(content, type=type_, strict=strict)
    except msgspec.ValidationError as exc:
        message = str(exc)
    except msgspec.DecodeError:
        raise Malformed from None
    try:
        # msgspec stops at the first mismatch: what follows it may not be JSON at all.
        data = msgspec.json.decode(content)
    except msgspec.DecodeError:
        raise Malformed from None
    raise Invalid([_error(message, data)])


def unknown_json_paths(data: Any, shape: Shape) -> tuple[str, ...]:
    """The paths of keys in the decoded JSON *data* that *shape* does not declare."""
    found: set[str] = set()
    _unknown(data, shape, "", found)
    return tuple(sorted(found))


def _unknown(data: Any, shape: Shape, path: str, found: set[str]) -> None:
    if shape.kind == "list" and isinstance(data, list):
        for item in data:
            _unknown(item, shape.item or ANY, path + "[*]", found)
    elif shape.kind == "object" and isinstance(data, dict):
        for key, value in data.items():
            entry = shape.elements.get(key)
            child = f"{path}.{key}" if path else str(key)
            if entry is not None:
                _, item, is_list = entry
                _unknown(value, Shape("list", item=item) if is_list else item, child, found)
            elif key not in shape.attributes.values() and key != shape.text_key:
                found.add(child)


# -- msgspec's messages, without their values ----------------------------------------------------------

_AT = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_TYPE = re.compile(r"^Expected `([^`]+)`, got `(\w+)`$")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`$")
_EXTRA = re.compile(r"^Object contains unknown field `([^`]+)`$")
# Bounds, lengths and multiples: every figure comes from the type.
_CONSTRAINT = re.compile(
    r"^Expected `[^`]+`(?: of length)? (?:>=|<=|>|<) -?[\d.eE+]+$"
    r"|^Expected `[^`]+` that is a multiple of [\d.eE+-]+$"
)
# What is left of any other message: it ends before the first quote or number, where a value would be.
_CUT = re.compile(r"['\"]|(?<![\w.])-?\d")
_KINDS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "null": "null"}


def _error(message: str, data: Any) -> dict[str, Any]:
    loc: tuple[Any, ...] = ()
    at = _AT.search(message)
    if at:
        message = message[: at.start()]
        loc = tuple(int(index) if index else key for key, index in _STEP.findall(at.group(1)))
    found = _MISSING.match(message)
    if found:
        return {"type": "missing", "loc": (*loc, found.group(1)), "expected": "Field required"}
    found = _EXTRA.match(message)
    if found:
        return {"type": "extra_forbidden", "loc": (*loc, found.group(1)), "expected": "not declared"}
    error: dict[str, Any] = {"type": "invalid", "loc": loc}
    found = _TYPE.match(message)
    if found:
        error.update(type="type", expected=f"Expected `{found.group(1)}`")
        error["received"] = _KINDS.get(found.group(2), found.group(2))
    elif _CONSTRAINT.match(message):
        error.update(type="constraint", expected=message)
    else:
        error["expected"] = _CUT.split(message, maxsplit=1)[0].strip() or "a valid value"
    node = data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return error
    error["input"] = node
    return error
