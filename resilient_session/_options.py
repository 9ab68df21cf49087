"""Policy options: the values each option of a policy takes, said once.

Each policy lists its plain-data options as :class:`Option` specs (its ``OPTIONS``). Its constructor
checks what it is given against them, and the integrations file's schema is built from the same specs,
so a type or a bound is written in one place and the file cannot accept what the constructor refuses.
Checks that relate two options (``minimum_calls <= window_size``) stay in the constructor; the file
reports them too, since it builds the policy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from urllib3.util import Retry, Timeout

from ._redact import redact_url

__all__ = [
    "DRIFT_POLICIES",
    "SECONDS",
    "Option",
    "check_attributes",
    "check_options",
    "check_session_option",
    "policy_option",
    "session_option_problem",
    "show",
]

Kind = Literal["count", "integer", "number", "boolean", "string", "statuses", "methods", "header"]

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def show(value: Any) -> str:
    """*value* as it would be written in TOML (strings quoted, booleans lower-case)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "an array"
    return str(value)


@dataclass(frozen=True)
class Option:
    """What one option accepts.

    :param kind: ``count`` (a retry counter: an integer; in Python also a bool, as urllib3 allows),
        ``integer``, ``number`` (finite), ``boolean``, ``string`` (not blank), ``statuses`` (HTTP
        statuses 100-599), ``methods`` (HTTP method names) or ``header`` (a header name).
    :param minimum: Lowest number or integer accepted (``exclusive``: the bound itself is not).
    :param maximum: Highest number accepted, if any.
    :param nullable: ``None`` is accepted (what it means is the policy's to document).
    :param false_is_none: In an integrations file ``false`` stands for ``None`` (TOML has no null).
    """

    kind: Kind
    minimum: float = 0
    exclusive: bool = False
    maximum: float | None = None
    nullable: bool = False
    false_is_none: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with the Python *value*, or ``None``."""
        if value is None:
            return None if self.nullable else "must be set (None is not accepted)"
        return self._type_problem(value, python=True) or self._bound_problem(value)

    def is_type_problem(self, value: Any) -> bool:
        """True when *value* is of the wrong type (not merely out of bounds)."""
        return value is not None and self._type_problem(value, python=True) is not None

    def file_problem(self, value: Any) -> str | None:
        """What is wrong with *value* as read from an integrations file, or ``None``."""
        if value is False and self.false_is_none:
            return None
        return self._type_problem(value, python=False) or self._bound_problem(value)

    def from_file(self, value: Any) -> Any:
        """The constructor argument for the file's (valid) *value*."""
        if value is False and self.false_is_none:
            return None
        if self.kind == "statuses":
            return frozenset(value)
        if self.kind == "methods":
            return frozenset(m.upper() for m in value)
        return value

    def _type_problem(self, value: Any, *, python: bool) -> str | None:
        kind = self.kind
        if kind == "count" and python and isinstance(value, bool):
            return None
        if kind in ("count", "integer"):
            if isinstance(value, bool) or not isinstance(value, int):
                return f"expected an integer, got {show(value)}"
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"expected a number, got {show(value)}"
        elif kind == "boolean":
            if not isinstance(value, bool):
                return f"expected true or false, got {show(value)}"
        elif kind in ("string", "header"):
            if not isinstance(value, str):
                return f"expected a string, got {show(value)}"
        else:
            what = "HTTP statuses" if kind == "statuses" else "HTTP methods"
            if python:
                if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
                    return f"expected a collection of {what}, got {show(value)}"
            elif not isinstance(value, list):
                return f"expected an array of {what}, got {show(value)}"
            for index, item in enumerate(value):
                if kind == "statuses" and (isinstance(item, bool) or not isinstance(item, int)):
                    return f"[{index}] expected an HTTP status (100-599), got {show(item)}"
                if kind == "methods" and not isinstance(item, str):
                    return f"[{index}] expected a string, got {show(item)}"
        return None

    def _bound_problem(self, value: Any) -> str | None:
        kind = self.kind
        if kind in ("string", "header"):
            if not value.strip():
                return "must not be empty"
            if kind == "header" and not _HEADER_NAME.match(value):
                return f"{show(value)} is not a valid header name"
            return None
        if kind in ("statuses", "methods"):
            for index, item in enumerate(value):
                if kind == "statuses" and not 100 <= item <= 599:
                    return f"[{index}] expected an HTTP status (100-599), got {show(item)}"
                if kind == "methods" and not item.strip():
                    return f"[{index}] must not be empty"
                if kind == "methods" and not item.isalpha():
                    return f"[{index}] {show(item)} is not an HTTP method"
            return None
        if kind == "boolean" or isinstance(value, bool):
            return None
        minimum = self.minimum
        if value < minimum or (self.exclusive and value == minimum):
            return f"must be {'>' if self.exclusive else '>='} {minimum:g}, got {value:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be <= {self.maximum:g}, got {value:g}"
        return None


def check_options(options: Mapping[str, Option], values: Mapping[str, Any]) -> None:
    """Raise for the first of *values* its option refuses: ``TypeError`` for a wrong type,
    ``ValueError`` for a value out of bounds; the message starts with the option's name."""
    for name, value in values.items():
        option = options[name]
        problem = option.problem(value)
        if problem is not None:
            error = TypeError if option.is_type_problem(value) else ValueError
            raise error(f"{name}: {problem}")


def check_attributes(policy: Any) -> None:
    """:func:`check_options` for a policy whose options are its attributes (the dataclass policies)."""
    options: Mapping[str, Option] = type(policy).OPTIONS
    check_options(options, {name: getattr(policy, name) for name in options})


# -- the session's options --------------------------------------------------------------------------
# The constructor (and the attribute setters) of ResilientSession and the integrations file check these
# with the functions below, so the same value is refused by both, with the same words.

#: What ``into()`` does with a body that does not fit its type (the default first).
DRIFT_POLICIES = ("raise", "warn", "ignore")

#: A timeout, a part of one, or a deadline: seconds, finite and > 0.
SECONDS = Option("number", exclusive=True)
_RETRY_COUNT = Option("count")
_BOOLEAN = Option("boolean")
_STRING = Option("string")
_HEADER = Option("header")


def session_option_problem(name: str, value: Any, *, python: bool = True) -> tuple[str, str, bool] | None:
    """What is wrong with *value* for the session option *name*: ``(where, problem, is_type)``, where
    ``where`` is ``""`` or the part (``".connect"``), or ``None`` when it is accepted.

    *python* says where the value comes from: Python also takes ``None`` (the default or "off"), urllib3
    ``Timeout`` and ``Retry`` objects; a file also takes ``false`` for "off", and tables, which the
    file checks key by key itself.
    """
    if value is None and python:
        return None
    if name == "timeout":
        return _timeout_problem(value, python=python)
    if name == "deadline":
        return None if value is False and not python else _problem(SECONDS, value)
    if name == "base_url":
        return _base_url_problem(value)
    if name == "retry":
        return _retry_problem(value, python=python)
    if name == "raise_for_status":
        return _problem(_BOOLEAN, value)
    if name == "request_id_header":
        return None if value is False and not python else _problem(_HEADER, value)
    if name == "drift":
        if value in DRIFT_POLICIES and isinstance(value, str):
            return None
        expected = f"expected one of {', '.join(show(p) for p in DRIFT_POLICIES)}; got {show(value)}"
        return "", expected, not isinstance(value, str)
    raise KeyError(name)


def policy_option(value: Any, cls: type[Any], name: str) -> Any:
    """A policy option of a session or transport (``breaker=``, ``budget=`` ...): *cls*'s default for
    ``True``, ``None`` for ``False``/``None``, the policy itself; anything else is a ``TypeError``."""
    if value is True:
        return cls()
    if value is False or value is None:
        return None
    if isinstance(value, cls):
        return value
    raise TypeError(f"{name} must be a {cls.__name__}, True, False or None, not {type(value).__name__}")


def check_session_option(name: str, value: Any) -> None:
    """Raise for a Python *value* the session option *name* refuses, as the integrations file words it:
    ``TypeError`` for a wrong type, ``ValueError`` for a value out of bounds, the option's name first."""
    found = session_option_problem(name, value)
    if found is not None:
        where, problem, is_type = found
        raise (TypeError if is_type else ValueError)(f"{name}{where}: {problem}")


def _problem(option: Option, value: Any) -> tuple[str, str, bool] | None:
    problem = option.problem(value)
    return None if problem is None else ("", problem, option.is_type_problem(value))


def _timeout_problem(value: Any, *, python: bool) -> tuple[str, str, bool] | None:
    if python and isinstance(value, Timeout):
        return None  # urllib3 checked it when it was made
    if not python and isinstance(value, Mapping):
        return None  # the file's { connect, read } table: checked key by key
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            return "", f"expected a number or a (connect, read) pair, got {show(value)}", True
        for part, seconds in zip((".connect", ".read"), value, strict=True):
            if seconds is None and python:
                continue  # wait forever for this part, as in requests
            found = _problem(SECONDS, seconds)
            if found is not None:
                return part, found[1], found[2]
        return None
    if isinstance(value, (Mapping, set, frozenset)):
        return "", f"expected a number or a (connect, read) pair, got {show(value)}", True
    return _problem(SECONDS, value)


def _base_url_problem(value: Any) -> tuple[str, str, bool] | None:
    found = _problem(_STRING, value)
    if found is not None:
        return found
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "", "not a valid URL (bad port or brackets)", False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "", f"expected an http:// or https:// URL with a host, got {show(redact_url(value))}", False
    return None


def _retry_problem(value: Any, *, python: bool) -> tuple[str, str, bool] | None:
    if isinstance(value, bool) or (python and isinstance(value, Retry)):
        return None
    if not python and isinstance(value, Mapping):
        return None  # the file's retry table: checked key by key against RetryPolicy.OPTIONS
    if isinstance(value, int):
        return _problem(_RETRY_COUNT, value)
    return "", f"expected a number of retries, true, false or a retry policy, got {show(value)}", True
