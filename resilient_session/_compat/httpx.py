"""What the httpx twin needs from httpx beyond its documented API."""

from __future__ import annotations

import httpx

__all__ = ["read_body", "request_of", "set_read_body"]


def read_body(response: httpx.Response) -> bytes | None:
    """The body if it was read already (``response.content`` without reading), else None."""
    try:
        return response.content
    except httpx.ResponseNotRead:
        return None


def request_of(response: httpx.Response) -> httpx.Request | None:
    """The request *response* answered, or None for a response built without one."""
    try:
        return response.request
    except RuntimeError:  # httpx: "The request instance has not been set on this response."
        return None


def set_read_body(response: httpx.Response, content: bytes) -> None:
    """Record *content* as the body read, as ``Response.read()`` does (``_content``): the transport reads
    the stream itself, chunk by chunk, so that the call's deadline is checked between chunks."""
    response._content = content
