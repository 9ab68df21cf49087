"""Log redaction: no secret reaches a handler through our loggers, nor, on request, through others'.

Records created on the package's own loggers are always redacted (the filter is attached to them when the
package is imported). Other libraries may log credentials too: urllib3 logs request lines with their query
strings, requests-oauthlib logs token request bodies and token responses at DEBUG. Redacting those
touches loggers that belong to them, so it is an explicit opt-in::

    import resilient_session.observe

    resilient_session.observe.redact_library_logs()  # once, at start-up
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from .._redact import redact_log_text

__all__ = ["LIBRARY_LOGGERS", "OWN_LOGGERS", "REDACTED_LOGGERS", "RedactingFilter", "redact_library_logs"]


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message (and traceback text) through
    :func:`~resilient_session._redact.redact_log_text`. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        redacted = redact_log_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_log_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        return True


# Filters apply to the logger a record is created on, not to its parents, hence the module-level names.
#: The package's own loggers, redacted from import on.
OWN_LOGGERS = ("resilient_session", "resilient_session.auth", "resilient_session.oauth2")
#: Other libraries' loggers that may print credentials, redacted after :func:`redact_library_logs`.
LIBRARY_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests_oauthlib.oauth2_session",
    "oauthlib",
)
#: Every logger :func:`redact_library_logs` covers by default: ours and the libraries'.
REDACTED_LOGGERS = OWN_LOGGERS + LIBRARY_LOGGERS

_filter = RedactingFilter()
_install_lock = threading.Lock()


def install_log_redaction(names: Iterable[str] = REDACTED_LOGGERS) -> None:
    """Attach the redacting filter to the loggers *names* (idempotent, thread-safe)."""
    with _install_lock:
        for name in names:
            logger = logging.getLogger(name)
            if _filter not in logger.filters:
                logger.addFilter(_filter)


def redact_library_logs(names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Redact secrets from the records of other libraries' loggers (urllib3, requests-oauthlib, oauthlib).

    Opt-in, because it adds a filter to loggers the package does not own. Call it once; calling it again
    adds nothing. Known secret values (of live auth objects), ``Bearer``/``Basic`` credentials and values
    of secret-named parameters (``api_key=``, ``"client_secret": ...``) become ``***``.
    """
    install_log_redaction(names)


def redact_own_logs() -> None:
    """Attach the filter to the package's own loggers (done once, when the package is imported)."""
    install_log_redaction(OWN_LOGGERS)
