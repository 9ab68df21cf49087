"""A misbehaving HTTP server for loopback tests: every failure an external API can produce, on demand.

Start it in a test or a script::

    with ChaosServer() as chaos:
        session.get(chaos.url + "/fail/503?times=2")   # 503, 503, then 200
        assert chaos.calls("/fail/503") == 3

or from a shell: ``python -m resilient_session.testing.chaos --port 0`` prints its URL and serves until
interrupted.

It is a Flask app on werkzeug's threaded server and listens on two loopback ports, so redirects can cross
origins (:attr:`ChaosServer.url` and :attr:`ChaosServer.second_url`). It refuses to bind anything but a
loopback address. Connection resets are real TCP resets (POSIX only).

Routes (``GET`` unless noted; ``times=K`` on any fault route makes only the first K calls to that path
misbehave, later calls get ``200 {"ok": true}``):

======================================  =====================================================================
``/ok``                                 200 JSON.
``/echo`` (any method)                  200 JSON: method, path, query, headers and body received.
``/latency?ms=N``                       Answers after N ms; ``min_ms=A&max_ms=B[&seed=S]`` picks a random
                                        latency (reproducible with a seed).
``/fail/<code>[?retry_after=S]``        Status ``code`` with a JSON error body (and ``Retry-After: S``).
``/flaky?rate=R[&status=503]``          Fails a fraction R of calls with ``status``; ``reset_rate=P`` resets
``[&reset_rate=P][&seed=S]``            a fraction P of connections. Seeded: the same sequence every run.
``/reset``                              Resets the connection (RST) before sending anything.
``/reset-body[?pause_ms=50]``           Sends headers and half the body, then resets the connection.
``/hang[?seconds=N]``                   Accepts the request and never answers (until N s or shutdown).
``/stall[?seconds=N]``                  Sends headers and part of the body, then goes silent.
``/drip?bytes=N&interval_ms=M``         Sends the body one byte every M ms.
``/truncated[?length=N&sent=M]``        Declares ``Content-Length: N``, sends M bytes, closes cleanly.
``/malformed-json``                     200 ``application/json`` whose body is cut mid-document.
``/xml``                                200 ``application/xml`` document (attributes, namespaces, lists).
``/soap-fault``                         500 SOAP 1.1 Fault.
``/problem?status=N``                   RFC 9457 ``application/problem+json`` error.
``/redirect?to=PATH[&status=302]``      Redirects to PATH; ``cross=1`` sends it to the other origin;
                                        ``to`` may also be an absolute loopback URL.
``/__chaos__/calls``                    JSON ``{path: calls}`` (control routes are not counted).
``/__chaos__/reset`` (POST)             Zeroes the counters and reseeds the random sequences.
======================================  =====================================================================

The package: :mod:`.app` (the Flask app and its routes), :mod:`.faults` (connection-level faults: TCP
resets, responses that stop mid-way), :mod:`.server` (:class:`ChaosServer`, two loopback origins),
:mod:`.loopback` (what counts as loopback) and :mod:`.cli` (``python -m``).
"""

from __future__ import annotations

from .app import CONTROL_PREFIX, create_app
from .cli import main
from .loopback import is_loopback
from .server import ChaosServer

__all__ = ["CONTROL_PREFIX", "ChaosServer", "create_app", "is_loopback", "main"]
