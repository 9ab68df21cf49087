"""``python -m resilient_session.testing.chaos``: serve the chaos server until interrupted."""

from __future__ import annotations

import argparse
import sys
import threading

from .server import ChaosServer

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """``python -m resilient_session.testing.chaos``: serve until interrupted, printing the URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m resilient_session.testing.chaos",
        description="A misbehaving HTTP server for loopback tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the first origin (0: any free port)")
    args = parser.parse_args(argv)
    try:
        server = ChaosServer(args.host, args.port).start()
    except ValueError as error:
        parser.error(str(error))
    print(server.url, flush=True)
    print(f"second origin: {server.second_url}; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
