"""Connection pools through which one attempt of a call reaches urllib3, its own retries off.

requests' ``HTTPAdapter.send`` hands a pool only the method, URL, body, headers and urllib3's options:
nothing of the call it belongs to. So the pool reads the call in progress from the call context
(:func:`resilient_session._call.current_call`), the one place requests' API leaves no other path, to

- send the attempt the session's attempt loop asked for with urllib3's retries off
  (:data:`~resilient_session._decide.SINGLE_ATTEMPT`), and note the pool and URL it went to (urllib3's
  retry messages name them);
- tell the watchdog which connection the call is reading from, so the deadline can end a blocked read.

The classes are made here, once, with their own names; ``str()`` of a pool still reads as urllib3's
(``HTTPConnectionPool(host=..., port=...)``), because urllib3 and requests put it in their messages.
"""

from __future__ import annotations

from typing import Any

from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ._call import current_call
from ._compat.requests import plain_headers
from ._compat.urllib3 import ConnectionHooks
from ._decide import SINGLE_ATTEMPT
from ._watchdog import WATCHDOG

__all__ = ["DeadlineAwareHTTPConnectionPool", "DeadlineAwareHTTPSConnectionPool", "DeadlineAwarePool"]


class DeadlineAwarePool(ConnectionHooks):
    """Connection-pool mixin: one attempt of the call in progress, and the watchdog's view of it."""

    #: The urllib3 class whose name ``str()`` shows.
    shown_as: str = "HTTPConnectionPool"

    def __str__(self) -> str:
        return f"{self.shown_as}(host={self.host!r}, port={self.port!r})"  # type: ignore[attr-defined]

    def urlopen(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        call = current_call()
        if call is not None:
            attempt = call.attempt
            if attempt is not None:
                # The attempt loop retries: urllib3 sends once and reports the first outcome.
                attempt.pool, attempt.url, attempt.single = self, url, True
                retries = SINGLE_ATTEMPT
            if call.observer is not None:
                call.observer.attempt(call, headers, on_wire=True)
        # The same pairs, cheaper for urllib3 to walk (see plain_headers).
        headers = plain_headers(headers)
        return super().urlopen(method, url, body, headers, retries, *args, **kwargs)  # type: ignore[misc]

    def connection_lent(self, conn: Any) -> None:
        call = current_call()
        if call is not None and call.watched:
            WATCHDOG.attach(call, conn)

    def connection_returned(self, conn: Any) -> None:
        call = current_call()
        if call is not None and call.connection is not None:
            WATCHDOG.detach(call, conn)


class DeadlineAwareHTTPConnectionPool(DeadlineAwarePool, HTTPConnectionPool):  # type: ignore[misc]  # urlopen(*args, **kwargs) forwards
    """urllib3's ``HTTPConnectionPool``, deadline-aware."""


class DeadlineAwareHTTPSConnectionPool(DeadlineAwarePool, HTTPSConnectionPool):  # type: ignore[misc]  # urlopen(*args, **kwargs) forwards
    """urllib3's ``HTTPSConnectionPool``, deadline-aware."""

    shown_as = "HTTPSConnectionPool"
