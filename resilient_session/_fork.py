"""Process-local state made new in a child after ``os.fork()``.

A forked child keeps only the thread that forked: a lock another thread held stays held for good, a
thread object of the parent is dead, and calls the parent had in flight will never end in the child.
Objects holding such state register here on first use (nothing at import time); the first registration
installs one ``os.register_at_fork`` hook, which calls each live object's ``_after_fork_in_child()``.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

log = logging.getLogger("resilient_session")


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_hooked = False


def track(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked from now on, while *obj* lives."""
    global _hooked
    if not _hooked:
        _hooked = True  # two threads racing here register twice: the reset runs twice, harmlessly
        if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
            os.register_at_fork(after_in_child=_after_fork_in_child)
    _objects.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_objects):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's failure must not leave the others' locks held
            log.exception("resetting %s after fork failed", type(obj).__name__)
