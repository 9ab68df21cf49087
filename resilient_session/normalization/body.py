"""Reading a body without holding more than a limit in memory."""

from __future__ import annotations

import requests

from .._compat.requests import content_consumed, mark_consumed


class Overflow:
    """The body passed the limit after *size* decoded bytes; nothing more was read."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


_READ_CHUNK = 64 * 1024


def read_bounded(response: requests.Response, limit: int) -> bytes | Overflow | None:
    """The decoded body of a response not read yet, read chunk by chunk up to *limit* bytes.

    Counts bytes after content decoding (gzip, deflate, br, zstd), which urllib3 inflates at most a
    chunk at a time, so neither a compression bomb nor an endless chunked body is held in memory past
    one chunk over the limit. Within the limit the body is kept where ``response.content`` finds it;
    past it the connection is closed and the body is marked consumed (``response.content`` then raises
    requests' ``RuntimeError``, never returns a truncated body).
    """
    if content_consumed(response):
        raise RuntimeError("The content for this response was already consumed")
    if response.status_code == 0 or response.raw is None:
        mark_consumed(response, None)
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            chunks.clear()
            mark_consumed(response)
            response.close()
            return Overflow(size)
        chunks.append(chunk)
    content = b"".join(chunks)
    mark_consumed(response, content)
    return content
