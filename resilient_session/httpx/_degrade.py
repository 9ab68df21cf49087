"""How the httpx clients apply their :class:`~resilient_session.policies.Degrade` policy: the session's
decisions (:mod:`resilient_session._degrade`), on ``requests`` views of the httpx request and response.

The views make the store keys, the stored form and the answers those of the session: a requests session
and an httpx client of one integration, given the same store, keep and serve each other's answers.
"""

from __future__ import annotations

from typing import Any

import httpx
import requests
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict
from urllib3.response import HTTPResponse

from .. import _degrade
from .._call import CallState
from .._compat.httpx import read_body
from .._compat.requests import mark_consumed
from .response import ResilientResponse, as_resilient, mirror_request

__all__ = ["after_response", "instead_of_error"]

# Headers that describe the wire form of a body, not the decoded bytes a stored answer holds.
_WIRE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})


def instead_of_error(
    client: Any, call: CallState, request: httpx.Request, error: BaseException
) -> ResilientResponse | None:
    """A degraded answer in place of *error*, or ``None``: the call raises it."""
    if client.degrade is None:
        return None
    kwargs = {"cert": client._resilient_cert}
    answer = _degrade.instead_of_error(client, call, mirror_request(request), error, kwargs)
    return None if answer is None else _as_httpx(answer, call, request, client)


def after_response(
    client: Any, call: CallState, request: httpx.Request, response: httpx.Response, stream: bool
) -> httpx.Response:
    """*response*, kept in the store when it may be; or a degraded answer in place of a failure status
    (*response* is then closed by the caller)."""
    if _degrade.policy_for(client, request.method, str(request.url)) is None:
        return response
    prepared = mirror_request(request)
    view = _stored_view(response, prepared)
    kwargs = {"cert": client._resilient_cert, "stream": stream}
    answer = _degrade.after_response(client, call, prepared, view, kwargs)
    if answer is view:
        return response
    return _as_httpx(answer, call, request, client)


def _stored_view(response: httpx.Response, prepared: requests.PreparedRequest) -> requests.Response:
    """*response* as the session's store keeps a ``requests.Response``: decoded body, its headers."""
    view = requests.Response()
    view.status_code = response.status_code
    view.reason = response.reason_phrase
    view.headers = CaseInsensitiveDict(
        (k, v) for k, v in response.headers.items() if k.lower() not in _WIRE_HEADERS
    )
    body = read_body(response) or b""
    view.headers["Content-Length"] = str(len(body))
    mark_consumed(view, body)
    view.encoding = response.encoding
    view.url = str(response.request.url)
    view.request = prepared
    # requests-cache reads the raw response's attributes; this one holds no socket.
    view.raw = HTTPResponse(
        body=b"",
        headers=HTTPHeaderDict(list(view.headers.items())),
        status=response.status_code,
        reason=response.reason_phrase,
        preload_content=False,
        decode_content=False,
        request_url=view.url,
    )
    return view


def _as_httpx(
    answer: requests.Response, call: CallState, request: httpx.Request, client: Any
) -> ResilientResponse:
    """The session's degraded *answer* as an httpx response to *request*, marked the same way."""
    headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in _WIRE_HEADERS]
    response = httpx.Response(answer.status_code, headers=headers, content=answer.content, request=request)
    normalizer = client.resilient_transport.policies.normalizer
    resilient = as_resilient(response, attempts=call.attempts, normalizer=normalizer)
    resilient.degraded = getattr(answer, "degraded", None)
    return resilient
