"""What a subclass of the session defined itself, so the session's ``__init__`` leaves it alone.

Code built on ``requests.Session`` sets its own attributes in two ways our ``__init__`` must not undo:
on the class (``timeout = 10``, read back by the subclass's own ``request()``), or on the instance
before calling ``super().__init__()`` (requests-toolbelt's ``BaseUrlSession`` sets ``base_url`` so).
A keyword argument given to our ``__init__`` is still the caller's explicit choice and wins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ParamSpec

import requests

__all__ = [
    "class_value",
    "defined_by_subclass",
    "given_arguments",
    "inherits_from_requests",
    "remembers_arguments",
]

P = ParamSpec("P")

_given: ContextVar[frozenset[str]] = ContextVar("resilient_session_init_arguments", default=frozenset())


def remembers_arguments(init: Callable[P, None]) -> Callable[P, None]:
    """Wrap a keyword-only ``__init__`` so it can ask :func:`given_arguments` which keywords it got
    (a default value passed explicitly counts as given); its signature stays the same."""

    @functools.wraps(init)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        token = _given.set(frozenset(kwargs))
        try:
            init(*args, **kwargs)
        finally:
            _given.reset(token)

    return wrapper


def given_arguments() -> frozenset[str]:
    """The keyword names the innermost running :func:`remembers_arguments` ``__init__`` was called with."""
    return _given.get()


def defined_by_subclass(session: Any, name: str, *, stored_as: str | None = None, own: type) -> bool:
    """Whether *session* already has attribute *name* from somewhere other than the class *own*.

    True when it is set on the instance (under *stored_as* for a property that stores its value in a
    private attribute) or defined by a class of ``type(session).__mro__`` that is neither *own*, one
    of *own*'s bases (``requests.Session``, ``object``), nor a class *own* itself made.
    """
    if (stored_as or name) in vars(session):
        return True
    return any(name in vars(cls) for cls in _foreign_classes(type(session), own))


def class_value(session: Any, name: str, *, own: type) -> tuple[bool, Any]:
    """``(True, value)`` when a foreign class of *session* (see :func:`defined_by_subclass`) defines
    *name* as a plain value (not a property or other descriptor), else ``(False, None)``."""
    for cls in _foreign_classes(type(session), own):
        if name in vars(cls):
            value = vars(cls)[name]
            if hasattr(type(value), "__get__"):
                return False, None
            return True, value
    return False, None


def inherits_from_requests(cls: type, own: type, name: str, origin: type = requests.Session) -> bool:
    """Whether the method *name* that ``super()`` reaches from *own* in *cls* is *origin*'s (requests'
    ``Session``, or ``HTTPAdapter``): no class after *own* in the MRO, a mixin such as toolbelt's
    ``BaseUrlSession``, overrides it."""
    key = (cls, own, name, origin)
    known = _inherits.get(key)
    if known is None:
        mro = cls.__mro__
        if len(_inherits) >= 1024:
            _inherits.clear()
        following = [klass for klass in mro[mro.index(own) + 1 :] if name in vars(klass)]
        known = _inherits[key] = bool(following) and following[0] is origin
    return known


# Session classes are few; the bound only keeps classes made on the fly (tests) from piling up.
_inherits: dict[tuple[type, type, str, type], bool] = {}


def _foreign_classes(cls: type, own: type) -> Iterator[type]:
    ours = set(own.__mro__) | {requests.Session}
    for klass in cls.__mro__:
        if klass not in ours:
            yield klass
