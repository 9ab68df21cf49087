"""The chaos app served on two loopback ports in background threads."""

from __future__ import annotations

import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import State, create_app
from .loopback import is_loopback

__all__ = ["ChaosServer"]


class _QuietHandler(WSGIRequestHandler):
    # Declared here so werkzeug does not switch the shared WSGIRequestHandler class to HTTP/1.1 itself.
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access logs would drown test output; errors are still logged."""


class ChaosServer:
    """The chaos app served on two loopback ports in background threads.

    :param host: A loopback address to bind (default ``127.0.0.1``); anything else is refused.
    :param port: Port of the first origin; 0 (the default) picks a free one. The second origin always
        takes a free port.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. While running it also stands for
    its URL: ``str(chaos)`` is :attr:`url` and ``chaos + "/ok"`` is ``chaos.url + "/ok"``. Server threads
    are daemons, and :meth:`stop` releases every hanging or stalled request (with a reset), so nothing
    keeps the process alive. Thread-safe.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the chaos server only listens on loopback addresses, not {host!r}")
        self.host = host
        self.port = port
        self.app = create_app()
        self._state: State = self.app.extensions["chaos"]
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """Base URL of the first origin, e.g. ``http://127.0.0.1:53411`` (no trailing slash)."""
        return self._origin(0)

    @property
    def second_url(self) -> str:
        """Base URL of the second origin (same routes and counters, another port)."""
        return self._origin(1)

    def _origin(self, index: int) -> str:
        if not self._servers:
            raise RuntimeError("the chaos server is not running; call start() or use it as a context manager")
        return self._state.origins[index]

    def start(self) -> ChaosServer:
        """Bind both ports and start serving; returns the server."""
        if self._servers:
            return self
        self._state.stopping.clear()
        host = f"[{self.host}]" if ":" in self.host else self.host
        for port in (self.port, 0):
            server = make_server(self.host, port, self.app, threaded=True, request_handler=_QuietHandler)
            self._servers.append(server)
            self._state.origins.append(f"http://{host}:{server.server_address[1]}")
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"chaos-server-{server.server_address[1]}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop serving, release hanging requests and close both ports."""
        self._state.stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self._state.origins.clear()

    def calls(self, path: str) -> int:
        """How many requests *path* (e.g. ``"/fail/503"``) received since the start or the last reset."""
        with self._state.lock:
            return self._state.calls[path]

    def all_calls(self) -> dict[str, int]:
        """Calls per path, as served by ``/__chaos__/calls``."""
        with self._state.lock:
            return dict(self._state.calls)

    def reset(self) -> None:
        """Zero the call counters and restart the seeded random sequences."""
        self._state.reset()

    def __enter__(self) -> ChaosServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __str__(self) -> str:
        """The URL while running, so ``f"{chaos}/ok"`` and ``requests.get(chaos)`` work as with a str."""
        return self.url if self._servers else repr(self)

    def __add__(self, path: str) -> str:
        """``chaos + "/fail/503"``: the URL of *path* on the first origin."""
        if not isinstance(path, str):
            return NotImplemented
        return self.url + path

    def __repr__(self) -> str:
        where = ", ".join(self._state.origins) if self._servers else "stopped"
        return f"<ChaosServer {where}>"
