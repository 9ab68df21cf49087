"""What the package needs from requests beyond its documented API."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests.sessions

__all__ = ["OriginalSession", "original_session_class"]


def original_session_class() -> type[requests.sessions.Session]:
    """requests' own ``Session`` class, even after a library replaced ``requests.Session``.

    ``requests_cache.install_cache()`` assigns its own subclass to ``requests.Session`` and
    ``requests.sessions.Session``; a class defined after that must not inherit the cache by accident, and a
    patch meant for every session must go on the class every session shares.
    """
    for cls in requests.sessions.Session.__mro__:
        if cls.__module__ == "requests.sessions" and cls.__name__ == "Session":
            return cls
    raise RuntimeError("requests.sessions.Session is not requests' Session class")  # pragma: no cover


if TYPE_CHECKING:
    from requests.sessions import Session as OriginalSession
else:
    #: requests' own ``Session`` class, resolved when this module was imported (see above).
    OriginalSession = original_session_class()
