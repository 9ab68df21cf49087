"""Hardened XML parsing with lxml and a fast element-to-dict conversion.

The parser never resolves entities, never touches the network, never loads a DTD and keeps libxml2's
resource limits (``huge_tree`` off). Entity references left in the tree are rejected, so a document can
never smuggle file contents or an expansion bomb into the result.

Dict convention (compatible with ``xmltodict.parse`` for namespace-free documents):

* the result is ``{root_name: value}``;
* an element with neither attributes nor children is its stripped text, or ``None`` when that is empty;
* otherwise it is a dict: attributes as ``"@name"``, children by name, a child name seen more than once
  becomes a list in document order, and non-blank text (own text and tails, joined, stripped) as ``"#text"``;
* names are local names (namespaces ``"strip"``, the default) or Clark notation ``"{uri}local"``
  (namespaces ``"clark"``); prefixes never appear, since a server may choose any prefix it likes.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any, Literal

from lxml import etree

__all__ = ["NamespaceMode", "UnsafeXMLError", "element_to_dict", "local_name", "parse_xml"]

NamespaceMode = Literal["strip", "clark"]


#: Without a hint, documents whose root has this many children are converted with the cyclic GC paused.
_GC_PAUSE_CHILDREN = 2048


class UnsafeXMLError(ValueError):
    """The document uses a construct that is refused (an entity reference)."""


class _DenyExternal(etree.Resolver):
    """Answers every external DTD or entity lookup with an empty document (defence in depth)."""

    # lxml-stubs lag behind lxml here: the real signatures take the parser context.
    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:  # type: ignore[override]
        return self.resolve_string("", context)  # type: ignore[call-arg]


_DENY_EXTERNAL = _DenyExternal()


def parse_xml(content: bytes, encoding: str | None = None) -> etree._Element:
    """Parse *content* with a hardened parser.

    Raises lxml's ``XMLSyntaxError`` when it is not well-formed XML or hits a libxml2 limit, and
    ``LookupError`` for an unknown *encoding*.

    *encoding* (an HTTP ``charset``) overrides the document's own declaration, as RFC 7303 requires.
    """
    # A parser per call: lxml parsers must not be shared between threads, and creating one costs ~µs.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,
        # collect_ids=False is deliberately absent: with it, libxml2 loads external parameter entities.
        encoding=encoding,
    )
    parser.resolvers.add(_DENY_EXTERNAL)
    root = etree.fromstring(content, parser)
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None:
        _refuse_entity_references(content, dtd, root.getroottree().docinfo.encoding)
    return root


# XML's own entities: a DTD may only declare them with their standard meaning.
_PREDEFINED_ENTITIES = frozenset({"lt", "gt", "amp", "apos", "quot"})


def _refuse_entity_references(content: bytes, dtd: etree.DTD, encoding: str | None) -> None:
    """Raise :class:`UnsafeXMLError` when the document uses an entity its internal subset declares.

    libxml2 substitutes internal entities in attribute values even with ``resolve_entities=False`` (only
    references in element content stay ``Entity`` nodes), so the expanded value cannot be told apart in
    the tree: the document itself is searched for ``&name;``. A mention inside a comment or CDATA section
    is refused too; documents declaring entities are not what APIs send.
    """
    for entity in dtd.iterentities():  # type: ignore[attr-defined]  # lxml-stubs lag behind lxml
        name = entity.name
        if not name or name in _PREDEFINED_ENTITIES:
            continue
        reference = f"&{name};"
        needles = {reference.encode("utf-8"), reference.encode("utf-16-le"), reference.encode("utf-16-be")}
        with contextlib.suppress(LookupError, UnicodeError):
            needles.add(reference.encode(encoding or "utf-8"))
        if any(needle in content for needle in needles):
            raise UnsafeXMLError("XML entity references are not allowed")


def local_name(tag: object) -> str:
    """The local part of an element or attribute name (``"{uri}Fault"`` -> ``"Fault"``)."""
    if type(tag) is not str:
        return ""
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def element_to_dict(
    root: etree._Element, namespaces: NamespaceMode = "strip", *, large: bool | None = None
) -> dict[str, Any]:
    """Convert *root* to plain dicts, lists and strings (see the module docstring for the convention).

    *large* (default: the root has thousands of children) pauses the cyclic garbage collector for the
    conversion: it creates no reference cycles, but on a document of megabytes the containers it allocates
    set off full collections over the whole heap, a third of the conversion's time.

    Raises :class:`UnsafeXMLError` when the tree holds an entity reference node.
    """
    strip = namespaces == "strip"
    # Names repeat enormously in API documents: computing each key once per document (and doing the
    # entity check on that rare cache-miss path) keeps the per-node cost to a dict lookup.
    keys: dict[object, str] = {}
    attribute_keys: dict[str, str] = {}

    def key_of(tag: object) -> str:
        if type(tag) is not str:
            if tag is etree.Entity:
                raise UnsafeXMLError("XML entity references are not allowed")
            raise UnsafeXMLError(f"unexpected XML node {tag!r}")
        key = tag.rpartition("}")[2] if strip and tag[:1] == "{" else tag
        keys[tag] = key
        return key

    def attribute_key_of(name: str) -> str:
        key = attribute_keys[name] = "@" + key_of(name)
        return key

    def convert(element: Any, attributes: Any) -> dict[str, Any]:
        node: dict[str, Any] = {}
        for name, attr_value in attributes:
            node[attribute_keys.get(name) or attribute_key_of(name)] = attr_value
        pieces = None
        # Positional iteration over children, with leaves handled inline: a call per leaf and per-node
        # lookups (findtext and friends) are what makes naive converters slow. ``items()`` gives the
        # attributes as one list, without the ``.attrib`` proxy object per element.
        value: Any
        for child in element.getchildren():  # one C call for the list: cheaper than the iterator
            tag = child.tag
            key = keys.get(tag) or key_of(tag)
            child_attributes = child.items()
            if len(child):
                value = convert(child, child_attributes)
            elif child_attributes:  # attributes and perhaps text: built here, without a call
                value = {}
                for name, attr_value in child_attributes:
                    value[attribute_keys.get(name) or attribute_key_of(name)] = attr_value
                text = child.text
                if text:
                    text = text.strip()
                    if text:
                        value["#text"] = text
            else:
                value = child.text
                if value is not None:
                    value = value.strip() or None
            if key in node:
                existing = node[key]
                # Child values are never lists themselves, so a list here means "already repeated".
                if type(existing) is list:
                    existing.append(value)
                else:
                    node[key] = [existing, value]
            else:
                node[key] = value
            tail = child.tail
            if tail:
                if pieces is None:
                    pieces = [tail]
                else:
                    pieces.append(tail)
        text = element.text
        if pieces:
            text = "".join([text or "", *pieces])
        if text:
            text = text.strip()
            if text:
                node["#text"] = text
        return node

    root_key = key_of(root.tag)
    root_attributes = root.items()
    if not root_attributes and not len(root):
        text = (root.text or "").strip()
        return {root_key: text or None}
    if large is None:
        large = len(root) >= _GC_PAUSE_CHILDREN
    if not large:
        return {root_key: convert(root, root_attributes)}
    # Paused for the conversion alone, and only if it was running; the conversion runs no code but ours
    # and lxml's (a thread that disables the collector meanwhile sees it re-enabled afterwards).
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return {root_key: convert(root, root_attributes)}
    finally:
        if paused:
            gc.enable()
