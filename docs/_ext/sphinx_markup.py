"""Griffe extensions for the API reference: read the package's Sphinx-style markup as Markdown.

The docstrings are written for Sphinx (reST roles, ``#:`` attribute comments, ``::`` literal blocks);
mkdocstrings renders Markdown. These two extensions bridge the difference at build time, so the
source keeps one style.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(class|exc|attr|data|const|func|meth|mod|obj):`(~?)([^`]+)`")


def _role_to_code(match: re.Match[str]) -> str:
    kind, short, target = match.groups()
    name = target.rsplit(".", 1)[-1] if short else target
    if kind in ("func", "meth") and not name.endswith(")"):
        name += "()"
    return f"`{name}`"


_FIELD = re.compile(r":(param|type|raises?|returns?|rtype|var|ivar|cvar|yields?|except|exception)\b")


def _fields_last(text: str) -> str:
    """Paragraphs that follow a field list moved in front of it.

    In reST a blank line ends a field list, so the prose after ``:param ...:`` lines is the body's;
    griffe's Sphinx parser would append it to the last field's description instead.
    """
    body: list[str] = []
    fields: list[str] = []
    in_fields = False
    previous_blank = False
    for line in text.split("\n"):
        if _FIELD.match(line):
            in_fields = True
        elif in_fields and previous_blank and line.strip() and not line[0].isspace():
            in_fields = False
        (fields if in_fields else body).append(line)
        previous_blank = not line.strip()
    while fields and not fields[-1].strip():
        fields.pop()
    while body and not body[-1].strip():
        body.pop()
    return "\n".join(body + ([""] if body and fields else []) + fields)


def _markdown(text: str) -> str:
    """reST roles as code spans; ``text::`` introducing a literal block as ``text:``; fields last."""
    text = _fields_last(_ROLE.sub(_role_to_code, text))
    text = re.sub(r"(?m)^(\s*)::$", "", text)
    return re.sub(r"(?m)(\S)::$", r"\1:", text)


class SphinxComments(griffe.Extension):
    """``#:`` comments above an attribute (as autodoc reads them) become its docstring.

    Without this, constants and class attributes documented that way would be undocumented, and
    hidden, in the API reference.
    """

    def on_attribute_instance(self, *, node: Any, attr: griffe.Attribute, agent: Any, **kwargs: Any) -> None:
        if attr.docstring is not None or not isinstance(node, ast.AST) or attr.lineno is None:
            return
        code = getattr(agent, "code", None)
        if not isinstance(code, str):
            return
        lines = code.splitlines()
        comment: list[str] = []
        index = attr.lineno - 2  # the line above the assignment, 0-based
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            comment.insert(0, lines[index].lstrip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(
                "\n".join(comment), lineno=index + 2, endlineno=attr.lineno - 1, parent=attr
            )


class SphinxRoles(griffe.Extension):
    """reST roles (``:class:`~x.Y```), ``::`` and prose after fields in every docstring, as Markdown."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg)

    def _rewrite(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _markdown(obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias and isinstance(member, griffe.Object):
                self._rewrite(member)
