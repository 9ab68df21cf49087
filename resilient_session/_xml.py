"""Deprecated alias of :mod:`resilient_session.normalization.xml`, kept for one release."""

from __future__ import annotations

import warnings

from .normalization.xml import (
    _DENY_EXTERNAL as _DENY_EXTERNAL,
)
from .normalization.xml import (
    _GC_PAUSE_CHILDREN as _GC_PAUSE_CHILDREN,
)
from .normalization.xml import (
    _PREDEFINED_ENTITIES as _PREDEFINED_ENTITIES,
)
from .normalization.xml import (
    NamespaceMode as NamespaceMode,
)
from .normalization.xml import (
    UnsafeXMLError as UnsafeXMLError,
)
from .normalization.xml import (
    _DenyExternal as _DenyExternal,
)
from .normalization.xml import (
    _refuse_entity_references as _refuse_entity_references,
)
from .normalization.xml import (
    element_to_dict as element_to_dict,
)
from .normalization.xml import (
    local_name as local_name,
)
from .normalization.xml import (
    parse_xml as parse_xml,
)

warnings.warn(
    "resilient_session._xml moved to resilient_session.normalization.xml",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["NamespaceMode", "UnsafeXMLError", "element_to_dict", "local_name", "parse_xml"]
