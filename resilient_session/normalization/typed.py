"""``response.normalized.into(Type)``: a JSON or XML body as an instance of the caller's own type.

pydantic (the ``models`` extra) does the validation; a ``TypeAdapter`` is built once per type. A JSON
body goes from bytes straight into ``TypeAdapter.validate_json``; an XML body is mapped by the type's
fields (:mod:`.xmlmodel`) and validated with ``validate_python``. A body that does not fit is schema
drift, handled by the drift policy (see :mod:`.drift` and ``docs/normalization.md``):

* ``"raise"`` (default): :class:`~resilient_session.errors.SchemaMismatchError`, reported;
* ``"warn"``: what validates, in lax mode, is returned (an invalid value of a field with a default falls
  back to the default, a list item that does not fit is left out), and the drift is reported; only a
  body whose top level cannot be built raises;
* ``"ignore"``: as ``"warn"``, reporting nothing.

Fields the type does not declare are reported as drift under ``"raise"`` and ``"warn"`` without failing
(unless the type itself forbids them).
"""

from __future__ import annotations

import codecs
import gc
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lxml import etree

from ..errors import SchemaMismatchError
from .drift import (
    Mismatch,
    SchemaDrift,
    check_drift_policy,
    look_for_unknown,
    note_unknown,
    report_drift,
    route_of,
)
from .sniff import _declared_format, _media_type
from .xml import UnsafeXMLError, local_name, parse_xml
from .xmlmodel import Shape, map_xml, shape_of

if TYPE_CHECKING:
    from .view import NormalizedResponse

__all__ = ["into"]

_UNKNOWN_TYPES = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
_MAX_REPAIRS = 16
_MAX_SHOWN = 10
_CACHE_LIMIT = 1024
_GC_PAUSE_CHILDREN = 2048

_NOT_HANDLED = object()


class _Target:
    """A type's ``TypeAdapter`` and (built on first XML use) its XML shape."""

    __slots__ = ("adapter", "name", "shape")

    def __init__(self, type_: Any) -> None:
        try:
            from pydantic import TypeAdapter
        except ImportError:  # pragma: no cover - exercised without the extra only
            raise ImportError("into() needs pydantic: pip install 'resilient-session[models]'") from None
        self.adapter: Any = TypeAdapter(type_)
        self.name: str = getattr(type_, "__name__", None) or repr(type_)
        self.shape: Shape | None = None

    def xml_shape(self) -> Shape:
        shape = self.shape
        if shape is None:
            shape = self.shape = shape_of(self.adapter.core_schema)
        return shape


_targets: dict[Any, _Target] = {}


def _target(type_: Any) -> _Target:
    try:
        target = _targets.get(type_)
    except TypeError:  # unhashable (an Annotated with a dict in it): not cached
        return _Target(type_)
    if target is None:
        target = _Target(type_)
        if len(_targets) >= _CACHE_LIMIT:  # types made per call (create_model): do not grow forever
            _targets.clear()
        _targets[type_] = target  # two threads may both build one: the same adapter, either is kept
    return target


def into(
    view: NormalizedResponse,
    type_: Any,
    read: Callable[[str], Any],
    *,
    drift: str | None = None,
    route: str | None = None,
) -> Any:
    """The body of *view* as an instance of *type_* (see :meth:`NormalizedResponse.into`); *read* reads
    the body declared as ``"json"`` or ``"xml"`` (bytes, or what went wrong)."""
    if drift is not None:
        check_drift_policy(drift)
    target = _target(type_)
    if view.status >= 400:
        view.raise_for_error()  # the typed status error, never a validation error
    call = _Call(view, target, drift, route)
    result = call.fast(read)
    if result is not _NOT_HANDLED:
        return result
    view.raise_for_error()  # malformed, too large, unreadable, an error envelope with a 2xx
    response = view._response
    fmt = view.format
    if fmt == "json":
        result = call.json(response.content)
        if result is not _NOT_HANDLED:
            return result
    elif fmt == "xml":
        return call.xml(parse_xml(response.content, call.charset))
    what = {"json": "malformed JSON", "empty": "an empty body"}.get(fmt, f"a {fmt} body")
    mismatch = Mismatch("", f"a JSON or XML body for {target.name}", what, "body_format")
    return call.fail([], (), fmt, reported=(mismatch,))  # reported as drift, then raised


class _Call:
    """One ``into()``: the response, the type, the policy and what is reported."""

    def __init__(
        self, view: NormalizedResponse, target: _Target, drift: str | None, route: str | None
    ) -> None:
        self.view = view
        self.target = target
        response = view._response
        self.response = response
        self.session = getattr(response, "_resilient_session", None)
        self.policy: str = drift or getattr(self.session, "drift", None) or "raise"
        self.route = route or route_of(view.method, response.url or "")
        self.integration: str | None = getattr(self.session, "integration", None)
        self.media, self.charset = _media_type(response.headers.get("Content-Type"))

    # -- formats -----------------------------------------------------------------------------------

    def fast(self, read: Callable[[str], Any]) -> Any:
        """The body declared JSON or XML, read and converted without the generic parse; else not handled."""
        view = self.view
        if view._parsed is not None or self.media == "application/problem+json":
            return _NOT_HANDLED
        expected = _declared_format(self.media)
        if expected not in ("json", "xml"):
            return _NOT_HANDLED
        content = read(expected)
        if not isinstance(content, bytes) or not content:
            return _NOT_HANDLED
        if expected == "json":
            return self.json(content)
        try:
            root = parse_xml(content, self.charset)
        except (etree.LxmlError, ValueError, LookupError, RecursionError):
            return _NOT_HANDLED  # the generic parse says what is wrong with it
        if local_name(root.tag) == "Envelope":
            return _NOT_HANDLED  # perhaps a SOAP Fault
        return self.xml(root)

    def json(self, content: bytes) -> Any:
        from pydantic import ValidationError

        data: str | bytes = content
        charset = (self.charset or "utf-8").lower().replace("_", "-")
        if content[:4] in (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE):
            charset = "utf-32"
        elif content[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            charset = "utf-16"
        if charset not in ("utf-8", "utf8"):
            try:
                data = content.decode(charset)
            except (UnicodeDecodeError, LookupError):
                return _NOT_HANDLED
        elif content.startswith(codecs.BOM_UTF8):
            data = content[len(codecs.BOM_UTF8) :]
        adapter = self.target.adapter
        strict = None if self.policy == "raise" else False
        look = self.policy != "ignore" and _extra_override() and self._look_for_unknown()
        errors: list[Any]
        try:
            if look:
                value = adapter.validate_json(data, strict=strict, extra="forbid")
            else:
                value = adapter.validate_json(data, strict=strict)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        else:
            return value
        if any(error["type"] == "json_invalid" for error in errors):
            return _NOT_HANDLED
        unknown = _unknown_paths(errors) if look else ()
        if unknown:
            self._note_unknown()
        mismatches = [error for error in errors if error["type"] not in _UNKNOWN_TYPES]
        if not mismatches:
            # Only undeclared fields: validated again as the type itself says (ignoring them, usually).
            try:
                value = adapter.validate_json(data, strict=strict)
            except ValidationError as exc:
                mismatches = exc.errors(include_url=False)
            else:
                self.report((), unknown, "json", raised=False)
                return value
        if self.policy == "raise":
            return self.fail(mismatches, unknown, "json")
        from pydantic_core import from_json

        return self.repair(from_json(data), mismatches, unknown, "json")

    def xml(self, root: Any) -> Any:
        from pydantic import ValidationError

        # A large document makes hundreds of thousands of containers and instances, none of them in a
        # reference cycle: with the cyclic GC running, its full passes over the growing heap take about
        # as long as the validation itself.
        paused = len(root) >= _GC_PAUSE_CHILDREN and gc.isenabled()
        if paused:
            gc.disable()
        errors: list[Any] = []
        try:
            data, found = map_xml(root, self.target.xml_shape())
            # Lax always: every XML value is text, converted by the declared type.
            value = self.target.adapter.validate_python(data, strict=False)
        except UnsafeXMLError:
            self.view.raise_for_error()
            raise
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        finally:
            if paused:
                gc.enable()
        unknown = tuple(sorted(found)) if self.policy != "ignore" else ()
        if not errors:
            if unknown:
                self.report((), unknown, "xml", raised=False)
            return value
        if self.policy == "raise":
            return self.fail(errors, unknown, "xml")
        return self.repair(data, errors, unknown, "xml")

    # -- drift -------------------------------------------------------------------------------------

    def repair(self, data: Any, errors: list[Any], unknown: tuple[str, ...], fmt: str) -> Any:
        """What validates: values that do not fit are removed until the rest does, or the top fails."""
        from pydantic import ValidationError

        first = tuple(_mismatch(error) for error in errors)
        adapter = self.target.adapter
        for _ in range(_MAX_REPAIRS):
            targets: set[tuple[Any, ...]] = set()
            for error in errors:
                loc = tuple(error["loc"])
                if error["type"] == "missing":
                    loc = loc[:-1]  # the object lacking a required field cannot be kept
                found = _reachable(data, loc)
                if not found:
                    return self.fail(errors, unknown, fmt, reported=first)
                targets.add(found)
            data = _remove(data, targets)
            try:
                value = adapter.validate_python(data, strict=False)
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                continue
            if self.policy != "ignore":
                self.report(first, unknown, fmt, raised=False)
            return value
        return self.fail(errors, unknown, fmt, reported=first)

    def fail(
        self,
        errors: list[Any],
        unknown: tuple[str, ...],
        fmt: str,
        reported: tuple[Mismatch, ...] | None = None,
    ) -> Any:
        mismatches = reported if reported is not None else tuple(_mismatch(error) for error in errors)
        if self.policy != "ignore":
            self.report(mismatches, unknown, fmt, raised=True)
        raise self.error(mismatches, unknown, fmt)

    def report(
        self, mismatches: tuple[Mismatch, ...], unknown: tuple[str, ...], fmt: str, *, raised: bool
    ) -> None:
        view = self.view
        drift = SchemaDrift(
            integration=self.integration,
            route=self.route,
            model=self.target.name,
            policy=self.policy,
            mismatches=tuple(mismatches),
            unknown=tuple(unknown),
            format=fmt,
            method=view.method,
            url=view.url,
            status=view.status,
            request_id=self._request_id(),
            raised=raised,
        )
        report_drift(drift, self.session)

    def error(
        self, mismatches: tuple[Mismatch, ...], unknown: tuple[str, ...], fmt: str = ""
    ) -> SchemaMismatchError:
        view = self.view
        response = self.response
        body = f"the {fmt} body" if fmt else "the body"
        message = f"{body} does not fit {self.target.name}: {_summary(mismatches)}"
        return SchemaMismatchError(
            message,
            mismatches=mismatches,
            unknown=unknown,
            model=self.target.name,
            integration=self.integration,
            route=self.route,
            request_id=self._request_id(),
            details={
                "model": self.target.name,
                "route": self.route,
                "mismatches": [vars(m) for m in mismatches],
                "unknown": list(unknown),
            },
            request=response.request,
            response=response,
            url=response.url,
            attempts=view.attempts,
            elapsed=view.elapsed,
        )

    # -- helpers -----------------------------------------------------------------------------------

    def _request_id(self) -> str | None:
        found = self.view.request_id
        if found is None:
            request = self.response.request
            header = getattr(self.session, "request_id_header", None) or "X-Request-ID"
            value = request.headers.get(header) if request is not None else None
            found = str(value) if value else None
        return found

    def _look_for_unknown(self) -> bool:
        return look_for_unknown((self.target, self.integration, self.route))

    def _note_unknown(self) -> None:
        note_unknown((self.target, self.integration, self.route))


_EXTRA_OVERRIDE: list[bool] = []


def _extra_override() -> bool:
    """Whether pydantic validates with ``extra=`` per call (2.12 on): how undeclared JSON fields are found."""
    if not _EXTRA_OVERRIDE:
        import inspect

        from pydantic import TypeAdapter

        _EXTRA_OVERRIDE.append("extra" in inspect.signature(TypeAdapter.validate_json).parameters)
    return _EXTRA_OVERRIDE[0]


# -- pydantic errors, without their values ---------------------------------------------------------------

# Context keys of pydantic's messages that come from the type, never from the input.
_SAFE_CONTEXT = frozenset(
    {
        "class_name",
        "gt",
        "ge",
        "lt",
        "le",
        "multiple_of",
        "min_length",
        "max_length",
        "expected_plural",
        "pattern",
        "expected",
        "field_type",
        "expected_schemes",
        "expected_version",
        "max_digits",
        "decimal_places",
        "whole_digits",
        "discriminator",
        "expected_tags",
        "tz_expected",
        "encoding",
    }
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_PARSER_DETAIL = re.compile(r"(?:,|:)?\s*(?:error:\s*)?\{(?:error|encoding_error)\}")


def _expected(kind: str, context: Any) -> str:
    """pydantic's message for an error type, rendered from the type's side of the context only."""
    from pydantic_core import PydanticKnownError

    try:
        template = PydanticKnownError(kind, context or None).message_template  # type: ignore[arg-type]
    except Exception:  # a custom error type (a validator's own): its message may quote the value
        return kind
    template = _PARSER_DETAIL.sub("", template)
    names = _PLACEHOLDER.findall(template)
    context = context or {}
    if any(name not in _SAFE_CONTEXT or name not in context for name in names):
        return kind
    return template.format(**{name: context[name] for name in names})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return type(value).__name__


def _path(loc: Any) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _mismatch(error: Any) -> Mismatch:
    kind = error["type"]
    received = "nothing" if kind == "missing" else _kind(error.get("input"))
    return Mismatch(_path(error["loc"]), _expected(kind, error.get("ctx")), received, kind)


def _unknown_paths(errors: list[Any]) -> tuple[str, ...]:
    found = {
        re.sub(r"\[\d+\]", "[*]", _path(error["loc"])) for error in errors if error["type"] in _UNKNOWN_TYPES
    }
    return tuple(sorted(found))


def _summary(mismatches: tuple[Mismatch, ...]) -> str:
    groups: dict[str, list[Mismatch]] = {}
    for mismatch in mismatches:
        groups.setdefault(mismatch.pattern, []).append(mismatch)
    parts = []
    for members in list(groups.values())[:_MAX_SHOWN]:
        more = f" (and {len(members) - 1} more like it)" if len(members) > 1 else ""
        parts.append(f"{members[0]}{more}")
    if len(groups) > _MAX_SHOWN:
        parts.append(f"... {len(groups) - _MAX_SHOWN} more paths")
    return "; ".join(parts) or "no value fits"


def _reachable(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The longest prefix of *loc* that names a value inside *data*."""
    node = data
    for depth, part in enumerate(loc):
        inside = (isinstance(node, dict) and isinstance(part, str) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not inside:
            return loc[:depth]
        node = node[part]
    return loc


def _remove(data: Any, targets: set[tuple[Any, ...]]) -> Any:
    """*data* without the values at *targets* (a list loses the item, an object the key)."""
    kept = sorted(t for t in targets if not any(t[: len(o)] == o and o != t for o in targets))
    for target in reversed(kept):  # later list positions first: earlier ones keep their numbers
        parent = data
        for part in target[:-1]:
            parent = parent[part]
        del parent[target[-1]]
    return data
