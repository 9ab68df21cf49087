"""Classes made on the fly: a mixin put in front of a class someone else chose (a pool, a Retry, a
Redis connection), so their behaviour stays and ours is added."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

T = TypeVar("T")

_made: dict[tuple[type[Any], type[Any]], type[Any]] = {}
_lock = threading.Lock()


def with_mixin(mixin: type[Any], cls: type[T]) -> type[T]:
    """*cls* with *mixin* first in its MRO (*cls* itself when it already has it); one class per pair,
    keeping *cls*'s name and module so reprs and pickles read as before."""
    if issubclass(cls, mixin):
        return cls
    made = _made.get((mixin, cls))
    if made is None:
        with _lock:
            made = _made.get((mixin, cls))
            if made is None:
                made = type(cls.__name__, (mixin, cls), {"__module__": cls.__module__})
                _made[(mixin, cls)] = made
    return made
