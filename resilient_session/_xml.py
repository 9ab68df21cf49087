"""Deprecated alias of :mod:`resilient_session.normalization.xml`, kept for one release."""

from __future__ import annotations

import warnings

from .normalization.xml import (  # noqa: F401
    _DENY_EXTERNAL,
    _GC_PAUSE_CHILDREN,
    _PREDEFINED_ENTITIES,
    NamespaceMode,
    UnsafeXMLError,
    _DenyExternal,
    _refuse_entity_references,
    element_to_dict,
    local_name,
    parse_xml,
)

warnings.warn(
    "resilient_session._xml moved to resilient_session.normalization.xml",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["NamespaceMode", "UnsafeXMLError", "element_to_dict", "local_name", "parse_xml"]
