"""``.normalized`` of a streamed body reads at most ``max_body_size`` decoded bytes (plus one chunk).

Raw-socket servers send what no well-behaved one would: 1 MB of gzip that inflates to 1 GiB, and a
chunked body that never ends. The client runs in a subprocess so its peak RSS (``VmHWM``) can be
measured: it must grow by less than :data:`RSS_BOUND` over what the process had reached before the call,
and stay under :data:`PEAK_BOUND` overall.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import resilient_session

#: Peak RSS growth allowed during the call, in bytes. The body limit is 10 MiB; a chunk is 64 KiB.
RSS_BOUND = 64 * 1024 * 1024
#: And the client's peak RSS overall (about 40 MiB after importing the package).
PEAK_BOUND = 160 * 1024 * 1024
LIMIT = 10 * 1024 * 1024
CHUNK = 64 * 1024
GIB = 1024 * 1024 * 1024

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a large pytest
# process would report the parent's peak; the high-water mark of the new address space starts afresh.
CLIENT = """
import json, sys
from resilient_session import ResilientSession

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

url, stream = sys.argv[1], sys.argv[2] == "stream"
session = ResilientSession(retry=False, timeout=(2, 10))
before = peak()
response = session.get(url, stream=stream)
normalized = response.normalized
outcome = {"format": normalized.format, "code": normalized.error.code if normalized.error else None,
           "details": dict(normalized.error.details) if normalized.error else None}
try:
    response.content
    outcome["content"] = "returned"
except RuntimeError:
    outcome["content"] = "RuntimeError"
outcome["peak"] = peak()
outcome["growth"] = outcome["peak"] - before
outcome["package"] = __import__("resilient_session").__file__
print(json.dumps(outcome))
"""


@dataclass
class RawServer:
    """Accepts connections on 127.0.0.1 and answers each with ``respond(connection)``."""

    respond: object
    sent: list[int] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    data = connection.recv(65536)
                    if not data:
                        break
                    request += data
                sent = 0
                try:
                    sent = self.respond(connection)  # type: ignore[operator]
                except OSError:
                    pass
                finally:
                    self.sent.append(sent)
                    self.finished.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    # 16 gzip members of 64 MiB of zeros each (a multi-member gzip body is one valid body, RFC 1952).
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    zeros = b"\0" * (1024 * 1024)
    member = b"".join([*(compressor.compress(zeros) for _ in range(64)), compressor.flush()])
    bomb = member * 16
    assert zlib.decompressobj(31).decompress(member, 1) == b"\0"
    assert 900_000 < len(bomb) < 1_100_000  # about 1 MB on the wire for 1 GiB decoded
    return bomb


@pytest.fixture
def bomb_server(gzip_bomb: bytes) -> Iterator[RawServer]:
    def respond(connection: socket.socket) -> int:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(gzip_bomb)}\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(head.encode() + gzip_bomb)
        return len(gzip_bomb)

    server = RawServer(respond)
    yield server
    server.close()


@pytest.fixture
def endless_server() -> Iterator[RawServer]:
    piece = b"[1," * (CHUNK // 3)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    def respond(connection: socket.socket) -> int:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sent = 0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:  # "endless": until the client hangs up
                connection.sendall(chunk)
                sent += len(piece)
        except OSError:
            pass
        return sent

    server = RawServer(respond)
    yield server
    server.close()


def run_client(tmp_path: Path, url: str, mode: str) -> dict[str, object]:
    script = tmp_path / "client.py"
    script.write_text(CLIENT, encoding="utf-8")
    # The package under test, not whichever copy the interpreter would find from tmp_path.
    root = str(Path(resilient_session.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(script), url, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(result["package"]).startswith(root), result["package"]
    return result


def test_a_gzip_bomb_streamed_stops_at_the_decoded_limit(bomb_server: RawServer, tmp_path: Path) -> None:
    outcome = run_client(tmp_path, bomb_server.url, "stream")
    assert outcome["code"] == "body_too_large"
    assert outcome["format"] == "json"
    details = outcome["details"]
    assert isinstance(details, dict)
    assert details["limit"] == LIMIT
    assert LIMIT < details["read"] <= LIMIT + CHUNK  # decoded bytes: reading stopped one chunk past
    assert outcome["content"] == "RuntimeError"  # never a truncated body afterwards
    assert isinstance(outcome["growth"], int) and outcome["growth"] < RSS_BOUND, outcome
    assert isinstance(outcome["peak"], int) and outcome["peak"] < PEAK_BOUND, outcome


def test_an_endless_chunked_body_is_body_too_large_not_memory_error(
    endless_server: RawServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    outcome = run_client(tmp_path, endless_server.url, "stream")
    assert outcome["code"] == "body_too_large"
    details = outcome["details"]
    assert isinstance(details, dict)
    assert LIMIT < details["read"] <= LIMIT + CHUNK
    assert isinstance(outcome["growth"], int) and outcome["growth"] < RSS_BOUND, outcome
    assert isinstance(outcome["peak"], int) and outcome["peak"] < PEAK_BOUND, outcome
    # Nothing more was read: the client hung up and the server's sending ended well before its minute.
    assert endless_server.finished.wait(30)
    assert time.monotonic() - started < 30
    assert endless_server.sent[0] < 16 * LIMIT
