"""``.normalized`` and ``.attempts`` on httpx responses, read by the same parser as the requests session's."""

from __future__ import annotations

import datetime
from typing import Any

import httpx
import requests
from requests.structures import CaseInsensitiveDict

from .._compat.httpx import read_body, request_of
from .._compat.requests import mark_consumed
from ..normalization.view import DEFAULT_NORMALIZER, NormalizedResponse, Normalizer

__all__ = ["ResilientResponse", "as_resilient"]


class _Unread:
    """The raw body of a streamed response nobody read: reading it says so (``body_unavailable``)."""

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("the streamed body was not read; call await response.aread() first")


class ResilientResponse(httpx.Response):
    """An ``httpx.Response`` with ``attempts`` (requests sent for it) and a lazy ``normalized`` view.

    Responses of the resilient transports are of this class; nothing else differs from httpx's.
    """

    attempts: int = 1
    normalizer: Normalizer = DEFAULT_NORMALIZER

    @property
    def normalized(self) -> NormalizedResponse:
        """The :class:`~resilient_session.NormalizedResponse` of this response (parsed on first use of a
        parsed field; the body must have been read, as it is unless the call streamed)."""
        view = self.__dict__.get("_normalized")
        if view is None:
            view = self.__dict__["_normalized"] = NormalizedResponse(_mirror(self), self.normalizer)
        return view


def as_resilient(response: httpx.Response, *, attempts: int, normalizer: Normalizer) -> ResilientResponse:
    """*response* itself, now a :class:`ResilientResponse` (no copy: its stream and state stay)."""
    if not isinstance(response, ResilientResponse):
        response.__class__ = ResilientResponse
    assert isinstance(response, ResilientResponse)
    response.attempts = attempts
    if normalizer is not DEFAULT_NORMALIZER:
        response.normalizer = normalizer
    return response


def _mirror(response: httpx.Response) -> requests.Response:
    """A ``requests.Response`` with *response*'s status, headers, URL and decoded body, for the parser."""
    mirror = requests.Response()
    mirror.status_code = response.status_code
    mirror.reason = response.reason_phrase
    mirror.headers = CaseInsensitiveDict(response.headers.items())
    mirror.headers.pop("Content-Encoding", None)  # the body below is decoded already
    body = read_body(response)
    if body is not None:
        mark_consumed(mirror, body)
        mirror.headers["Content-Length"] = str(len(body))
    else:
        mirror.raw = _Unread()
    request = request_of(response)
    mirror.url = str(request.url) if request is not None else ""
    if request is not None:
        prepared = requests.PreparedRequest()
        prepared.method = request.method
        prepared.url = str(request.url)
        # The request's credentials: a body echoing them back is redacted, as for the session.
        prepared.headers = CaseInsensitiveDict(request.headers.items())
        prepared.body = request.content if isinstance(request.stream, httpx.ByteStream) else None
        mirror.request = prepared
    try:
        mirror.elapsed = response.elapsed
    except RuntimeError:  # not closed yet (streamed): no duration known
        mirror.elapsed = datetime.timedelta(0)
    mirror.attempts = getattr(response, "attempts", 1)  # type: ignore[attr-defined]
    return mirror
