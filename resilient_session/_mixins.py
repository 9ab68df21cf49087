"""Moved to :mod:`resilient_session._compat.classes` (the one module that makes classes at run time)."""

from __future__ import annotations

from ._compat.classes import with_mixin

__all__ = ["with_mixin"]
