"""Classes made at run time: a mixin put in front of a class another library instantiates for us (a
urllib3 pool, a redis-py connection, a ``Retry``), so its behaviour stays and ours is added.

The only place the package calls ``type()`` to make a class. A made class is named after both classes
(``HTTPConnectionPool+DeadlineAwarePool``) and lives in the mixin's module, so a repr or a traceback never
passes it off as the class it extends.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

__all__ = ["with_mixin"]

T = TypeVar("T")

_made: dict[tuple[type[Any], type[Any]], type[Any]] = {}
_lock = threading.Lock()


def with_mixin(mixin: type[Any], cls: type[T]) -> type[T]:
    """*cls* with *mixin* first in its MRO (*cls* itself when it already has it); one class per pair."""
    if issubclass(cls, mixin):
        return cls
    made = _made.get((mixin, cls))
    if made is None:
        with _lock:
            made = _made.get((mixin, cls))
            if made is None:
                name = f"{cls.__name__}+{mixin.__name__.lstrip('_')}"
                made = type(name, (mixin, cls), {"__module__": mixin.__module__, "__qualname__": name})
                _made[(mixin, cls)] = made
    return made
