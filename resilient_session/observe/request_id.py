"""Request ids: the id each call sends, and the one bound to the work in progress.

Every call sends one id (``X-Request-ID`` unless the session names another header), the same on its
retries and redirect hops. Inside :func:`bind_request_id` calls send the bound id, so an incoming
request's id reaches every upstream call it causes.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict

from .._call import current_call
from .._compat.requests import header_store

__all__ = [
    "DEFAULT_REQUEST_ID_HEADER",
    "bind_request_id",
    "bound_request_id",
    "current_request_id",
    "ensure_request_id",
    "new_request_id",
    "with_request_id",
]

#: The header carrying the request id unless a session names another (or ``None`` for none).
DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"

_bound_request_id: ContextVar[str | None] = ContextVar("resilient_session_request_id", default=None)


@contextmanager
def bind_request_id(request_id: str) -> Iterator[str]:
    """Calls made inside the block send *request_id* instead of a fresh one.

    Use it to carry an incoming request's id to every upstream call it causes::

        with bind_request_id(flask.request.headers["X-Request-ID"]):
            session.get("/users/42")
    """
    token = _bound_request_id.set(request_id)
    try:
        yield request_id
    finally:
        _bound_request_id.reset(token)


def current_request_id() -> str | None:
    """The request id of the call running in this context, or the one bound by :func:`bind_request_id`."""
    call = current_call()
    value = call.extras.get("request_id") if call is not None else None
    return value if isinstance(value, str) else _bound_request_id.get()


def bound_request_id() -> str | None:
    """The id bound by :func:`bind_request_id` in this context, if any."""
    return _bound_request_id.get()


_random_bits = random.getrandbits


def with_request_id(request: requests.Request, header: str, session_headers: Any) -> requests.Request:
    """*request*, or a copy of it whose headers also carry a new request id in *header*.

    Done before the request is prepared, so an auth that signs every header it sees signs this one.
    A request or session (*session_headers*) naming *header* already (``None`` included) is left as is.
    """
    for headers in (request.headers, session_headers):
        # (An empty CaseInsensitiveDict is looked into rather than asked its length: no Python call.)
        if (type(headers) is CaseInsensitiveDict or headers) and _names(headers, header):
            return request
    if type(request) is requests.Request:
        # copy.copy's own result for a plain instance (its __dict__ copied into a new object), without
        # copy's dispatch through __reduce_ex__; a subclass may copy itself otherwise, so it gets copy.copy.
        copied = object.__new__(requests.Request)
        copied.__dict__.update(request.__dict__)
        request = copied
    else:
        request = copy.copy(request)
    request.headers = {**dict(_items(request.headers or {})), header: _new_request_id()}
    return request


def _names(headers: Any, header: str) -> bool:
    """True when *headers* (a mapping or a list of pairs) has a key that is *header*, in any case."""
    if type(headers) is CaseInsensitiveDict:
        # The scan below, in one or two look-ups: the dict keeps a str key and a bytes key (which
        # requests' merge also accepts) under their lower case (``bytes.lower`` folds ASCII only).
        store = header_store(headers)
        if header.lower() in store:
            return True
        try:
            return header.encode("latin-1").lower() in store  # type: ignore[comparison-overlap]
        except UnicodeEncodeError:
            return False  # no bytes key decodes to it
    return any(_lower(key) == header.lower() for key, _ in _items(headers))


def _items(headers: Any) -> Any:
    # What requests' merge_setting accepts: a mapping or a list of pairs.
    return headers.items() if hasattr(headers, "items") else headers


def _lower(key: Any) -> str:
    return (key.decode("latin-1") if isinstance(key, bytes) else str(key)).lower()


def ensure_request_id(request: requests.PreparedRequest, header: str) -> str:
    """The request id *request* carries in *header*, given one first when it has none."""
    headers = request.headers
    if type(headers) is CaseInsensitiveDict:  # headers.get(header), without two Python calls
        existing = header_store(headers).get(header.lower(), (None, None))[1]
    else:
        existing = headers.get(header)
    if existing:
        return str(existing)
    # Only a request prepared without the session (requests.Request.prepare()) gets its id this late.
    request_id = request.headers[header] = _new_request_id()
    return request_id


def new_request_id() -> str:
    """The id a new call sends: the one bound by :func:`bind_request_id`, else 32 random hex digits."""
    # 128 random bits: as unique as a UUID4. An id needs uniqueness, not secrecy, so the process's PRNG
    # (reseeded after fork) serves, without a system call per request.
    return _bound_request_id.get() or f"{_random_bits(128):032x}"


_new_request_id = new_request_id  # its name before it was public
