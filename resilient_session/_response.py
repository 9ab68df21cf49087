"""``HTTPAdapter.build_response`` for a urllib3 response, from its parts.

requests builds every response the same way: an empty ``Response()`` (a new header dict and cookie jar),
the urllib3 headers copied one by one into a ``CaseInsensitiveDict`` (two Python calls per header), the
encoding read from ``Content-Type``, and the cookies the server set extracted through ``http.cookiejar``
(mock request and response objects and a parse of the headers, also when there is no cookie).
:func:`build_response` makes the same ``Response`` with the header dict built in one step, and hands the
cookies to requests' own ``extract_cookies_to_jar`` only when the response has a ``Set-Cookie`` or
``Set-Cookie2`` header; without one, the jar is left as that call leaves it (empty, with its clock stamp).

When requests' ``build_response`` was replaced (wrapped by an instrumentation library, say), or it or a
name it uses is not the one this mirrors (requests 2.32-2.34), or the response is not a plain urllib3
``HTTPResponse``, requests' own method runs.
``tests/test_response.py`` compares both, attribute by attribute.
"""

from __future__ import annotations

from typing import Any

import requests
import requests.adapters as _adapters
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import SSLError as RequestsSSLError
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.response import HTTPResponse

from ._compat.requests import (
    body_unread,
    headers_from_store,
    mark_consumed,
    response_from_parts,
)
from ._compat.stdlib import stamp_cookie_jar
from ._compat.urllib3 import header_pairs, original_response

__all__ = ["build_response", "read_content"]

# The names requests' HTTPAdapter.build_response uses (requests 2.32-2.34).
_MIRRORED_NAMES = frozenset(
    {
        "CaseInsensitiveDict", "Response", "bytes", "connection", "cookies", "decode", "encoding",
        "extract_cookies_to_jar", "get_encoding_from_headers", "getattr", "headers", "isinstance", "raw",
        "reason", "request", "status_code", "url",
    }
)  # fmt: skip
_BUILD_RESPONSE = HTTPAdapter.build_response
_GLOBALS = (requests.Response, CaseInsensitiveDict, get_encoding_from_headers, extract_cookies_to_jar)


def _mirrors_requests() -> bool:
    names = getattr(_BUILD_RESPONSE, "__code__", None)
    return names is not None and set(names.co_names) - {"_is_prepared"} == _MIRRORED_NAMES


MIRRORS_REQUESTS = _mirrors_requests()


def build_response(
    adapter: HTTPAdapter,
    req: requests.PreparedRequest,
    resp: Any,
    cls: type[requests.Response] = requests.Response,
) -> requests.Response:
    """What ``HTTPAdapter.build_response(adapter, req, resp)`` returns; built as *cls* (a subclass of
    ``Response`` that adds no state of its own) when built from its parts."""
    if (
        not MIRRORS_REQUESTS
        or HTTPAdapter.build_response is not _BUILD_RESPONSE  # wrapped (an instrumentation library)
        or type(resp) is not HTTPResponse
        or (_adapters.Response, _adapters.CaseInsensitiveDict, _adapters.get_encoding_from_headers,
            _adapters.extract_cookies_to_jar) != _GLOBALS
    ):  # fmt: skip
        return HTTPAdapter.build_response(adapter, req, resp)  # as it is now: maybe wrapped
    pairs = header_pairs(resp.headers)
    if pairs is None:
        return HTTPAdapter.build_response(adapter, req, resp)  # as it is now: maybe wrapped
    headers = headers_from_store(pairs)
    url = req.url
    cookies = RequestsCookieJar()
    response = response_from_parts(
        cls,
        resp.status,
        headers,
        get_encoding_from_headers(headers),
        resp,
        url.decode("utf-8") if isinstance(url, bytes) else url,
        cookies,
        req,
        adapter,
    )
    if "set-cookie" in pairs or "set-cookie2" in pairs:
        extract_cookies_to_jar(cookies, req, resp)  # type: ignore[no-untyped-call]
    elif original_response(resp):
        stamp_cookie_jar(cookies)  # what extract_cookies does to the jar when the headers set none
    return response


_CONTENT = requests.Response.content
_ITER_CONTENT = requests.Response.iter_content


def read_content(response: requests.Response) -> None:
    """``response.content``: the body read and kept, as requests reads it.

    requests reads a body through ``iter_content`` in 10 KiB steps of urllib3's ``stream``. A body whose
    length the server stated (not chunked) is read here by one ``read()`` of the same urllib3 response:
    the same bytes (decoded as ``stream`` decodes them), the same errors mapped to the same requests
    exceptions as ``iter_content`` maps them, the same state left on the response. Anything else is read by
    ``response.content`` itself.
    """
    raw = response.raw
    if (
        type(raw) is not HTTPResponse
        or raw.chunked
        or raw.length_remaining is None
        or response.status_code == 0
        or not body_unread(response)
        or type(response).content is not _CONTENT
        or type(response).iter_content is not _ITER_CONTENT
    ):
        response.content  # noqa: B018 - reading caches the body
        return
    try:
        data = raw.read(decode_content=True)
    except ProtocolError as e:
        raise ChunkedEncodingError(e)  # noqa: B904 - chained as requests chains it
    except DecodeError as e:
        raise ContentDecodingError(e)  # noqa: B904 - chained as requests chains it
    except ReadTimeoutError as e:
        raise RequestsConnectionError(e)  # noqa: B904 - chained as requests chains it
    except SSLError as e:
        raise RequestsSSLError(e)  # noqa: B904 - chained as requests chains it
    mark_consumed(response, data or b"")
