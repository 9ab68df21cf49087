"""The incoming request id: bound to every integration call of the request, echoed on the response."""

from __future__ import annotations

import os
import re
from contextlib import ExitStack, suppress
from typing import Any

import flask
from flask import current_app, g, has_request_context, request

from ...observe.request_id import bind_request_id
from ...policies.degrade import DEGRADED_HEADER
from .sessions import DEGRADED

__all__ = ["bind_incoming_request_id", "echo_request_id", "request_id_of_request", "unbind_request_id"]

# An incoming id is used only if it looks like an id: it lands in log lines and upstream headers.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=@-]{1,128}$")
_REQUEST_ID = "_resilient_session_request_id"
_BINDING = "_resilient_session_request_id_binding"


def bind_incoming_request_id() -> None:
    """``before_request``: bind the incoming id (a fresh one when absent or not id-like) to the request."""
    header = current_app.config.get("RESILIENT_REQUEST_ID_HEADER")
    if not header:
        return
    incoming = request.headers.get(header, "")
    request_id = incoming if _VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
    setattr(g, _REQUEST_ID, request_id)
    # The binding spans two hooks rather than one block: the stack holds it open until teardown.
    binding = ExitStack()
    binding.enter_context(bind_request_id(request_id))
    setattr(g, _BINDING, binding)


def echo_request_id(response: flask.Response) -> flask.Response:
    """``after_request``: send the request's id back, unless the view set the header itself."""
    header = current_app.config.get("RESILIENT_REQUEST_ID_HEADER")
    request_id = g.get(_REQUEST_ID)
    if header and request_id and header not in response.headers:
        response.headers[header] = request_id
    _mark_degraded(response)
    return response


def _mark_degraded(response: flask.Response) -> None:
    """A response built from degraded upstream answers says so: one ``Resilient-Degraded`` header per
    answer (``stale; reason=circuit_open; age=42; integration=billing``) and a ``Warning`` (``110``
    for a stale answer, ``199`` for a fallback). Its status stays the view's."""
    answers: list[tuple[str, Any]] = g.get(DEGRADED) or []
    if not answers:
        return
    for name, info in answers:
        response.headers.add(DEGRADED_HEADER, f"{info.header_value()}; integration={name}")
    if any(info.kind == "stale" for _, info in answers):
        response.headers.add("Warning", '110 - "Response is Stale"')
    if any(info.kind == "fallback" for _, info in answers):
        response.headers.add("Warning", '199 - "Fallback answer: the upstream could not be reached"')


def unbind_request_id(exc: BaseException | None) -> None:
    """``teardown_request``: end the binding made by :func:`bind_incoming_request_id`."""
    binding: ExitStack | None = g.pop(_BINDING, None)
    if binding is not None:
        # ValueError: torn down in another context than the one bound; the binding died with it.
        with suppress(ValueError):
            binding.close()


def request_id_of_request() -> str | None:
    """The request id bound for the request being handled, or None (outside a request, or none bound)."""
    return g.get(_REQUEST_ID) if has_request_context() else None
