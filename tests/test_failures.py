"""_failures: what requests raises for each urllib3 error, checked against requests' own HTTPAdapter.send."""

from __future__ import annotations

from unittest import mock

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3 import exceptions as u3
from urllib3.connectionpool import HTTPConnectionPool

from resilient_session._failures import as_requests_error

POOL = HTTPConnectionPool("127.0.0.1", 9)

# Every branch of requests' except clauses, and an error it lets through as is.
ERRORS: dict[str, BaseException] = {
    "protocol": u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
    "oserror": ConnectionResetError(104, "reset"),
    "max retries, connect timeout": u3.MaxRetryError(POOL, "/x", u3.ConnectTimeoutError(POOL, "timed out")),
    "max retries, refused": u3.MaxRetryError(POOL, "/x", u3.NewConnectionError(POOL, "refused")),  # type: ignore[arg-type]
    "max retries, statuses": u3.MaxRetryError(POOL, "/x", u3.ResponseError("too many 503 error responses")),
    "max retries, proxy": u3.MaxRetryError(POOL, "/x", u3.ProxyError("proxy", OSError("down"))),
    "max retries, tls": u3.MaxRetryError(POOL, "/x", u3.SSLError("bad certificate")),
    "max retries, read": u3.MaxRetryError(POOL, "/x", u3.ProtocolError("Connection aborted.")),
    "max retries, read timeout": u3.MaxRetryError(POOL, "/x", u3.ReadTimeoutError(POOL, "/x", "timed out")),
    "closed pool": u3.ClosedPoolError(POOL, "closed"),
    "proxy": u3.ProxyError("proxy", OSError("down")),
    "tls": u3.SSLError("bad certificate"),
    "read timeout": u3.ReadTimeoutError(POOL, "/x", "timed out"),
    "invalid header": u3.InvalidHeader("bad header"),
    "refused, bare": u3.NewConnectionError(POOL, "refused"),  # type: ignore[arg-type]
    "pool full": u3.EmptyPoolError(POOL, "full"),
}


def _requests_raises(error: BaseException) -> BaseException:
    """What requests' own HTTPAdapter.send raises when the pool's urlopen raises *error*."""
    request = requests.Request("GET", "http://127.0.0.1:9/x").prepare()
    adapter = HTTPAdapter()
    with mock.patch.object(HTTPConnectionPool, "urlopen", side_effect=error):
        try:
            adapter.send(request)
        except BaseException as exc:
            return exc
        finally:
            adapter.close()
    raise AssertionError("requests raised nothing")


@pytest.mark.parametrize("error", ERRORS.values(), ids=ERRORS.keys())
def test_each_urllib3_error_becomes_what_requests_raises(error: BaseException) -> None:
    theirs = _requests_raises(error)
    request = requests.Request("GET", "http://127.0.0.1:9/x").prepare()
    ours = as_requests_error(error, request)
    assert type(ours) is type(theirs)
    assert ours.args == theirs.args
    assert str(ours) == str(theirs)
    assert (getattr(ours, "request", None) is None) == (getattr(theirs, "request", None) is None)
