"""A state store in Redis, so every process of a fleet shares one breaker and one budget per host.

Needs the ``redis`` extra (``pip install "resilient-session[redis]"``); redis-py is imported only when a
:class:`RedisStore` is created.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .._call import current_call
from .._compat.redis import (
    SocketHook,
    async_client_from_url,
    async_client_like,
    close_async_client,
    connection_settings,
    connections_with,
)
from .base import AtomicOp, Result, StateStore, lua_file
from .memory import MemoryStore

if TYPE_CHECKING:
    import redis
    from redis.commands.core import Script

__all__ = ["RedisStore"]

log = logging.getLogger("resilient_session")

# The key of an event loop's redis.asyncio client among its scripts (no op is named so).
_CLIENT = ""


#: Client settings used by :meth:`RedisStore.from_url`: a policy check must never wait long on Redis,
#: and redis-py's own retries (seconds of backoff by default) would stall the HTTP call behind it.
CLIENT_DEFAULTS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}

#: Inside a call with a deadline, one store op may take at most this share of the time left ...
OP_SHARE = 0.1
#: ... but never less than this many seconds (a loopback or LAN round trip takes well under a millisecond),
#: and never more than the time left.
OP_FLOOR = 0.005

# When the op in progress must be over (monotonic seconds); read by _ClampedConnection. A ContextVar, so
# each thread, asyncio task or greenlet running an op sees its own.
_op_ends: ContextVar[float | None] = ContextVar("resilient_session_redis_op_ends", default=None)


class RedisStore(StateStore):
    """Keeps policy state in Redis; every op is one Lua script, atomic on the server.

    Many processes and machines using the same server and ``prefix`` share each host's circuit and
    retry budget. An update is never lost: each script reads, decides and writes in one step, whatever
    the number of concurrent clients. Keys expire after ``ttl`` seconds untouched.

    **Each op is bounded** by ``op_timeout`` (connecting, sending and reading together), and inside a
    call with a deadline also by a tenth of the time left (never below 5 ms, never past the deadline),
    so a stalled Redis costs a call a small share of its time, not all of it. An op asked once the
    deadline has passed (telling the breaker of that failure, giving a quota slot back) gets 5 ms: the
    other processes hear of the failure, and the call still ends well within its deadline's slack.

    **When Redis cannot be used** (down, unreachable, not answering within the op's bound, refusing the
    command), no call fails because of it: the store logs one WARNING on the ``resilient_session``
    logger and carries on with a process-local :class:`~resilient_session.MemoryStore` (``fallback``),
    so each process protects itself alone. After ``retry_interval`` seconds it tries Redis again; once
    Redis answers it logs at INFO and the shared state, as Redis kept it, is used again (what was
    recorded locally meanwhile is dropped). :attr:`degraded` tells whether the fallback is in use.

    **When a key holds garbage** (``nan``, ``inf``, ``1e400``, text, a negative count, a circuit open
    until later than ``ttl`` from now, set by hand or by another program), no call fails because of it
    either: the script treats the key as absent (closed circuit, full budget) and rewrites or deletes
    it, and the store logs one WARNING per key.

    :param client: A ``redis.Redis`` client, or a ``redis://`` URL (see :meth:`from_url`). A client you
        build yourself should have short socket timeouts and no retries of its own, or a Redis outage
        stalls the calls that consult it until the client gives up.
    :param prefix: Prepended to every key (``prefix:breaker:https://api.example.com:443``).
        Default ``"resilient_session"``.
    :param ttl: Seconds an untouched key lives; must exceed the longest open wait. Default one day.
    :param retry_interval: Seconds between attempts to reach Redis again after it failed. Default 5.
    :param op_timeout: Most seconds one op may take before Redis counts as unusable; a positive finite
        number, default 0.1. The client's own (shorter) socket timeouts still apply.
    :param clock: Wall-clock time, shared by every machine (keep them NTP-synced); default ``time.time``.
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "resilient_session",
        ttl: float = 86400.0,
        retry_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        op_timeout: float = 0.1,
    ) -> None:
        redis_module = _import_redis()
        if ttl <= 0 or retry_interval < 0:
            raise ValueError("need ttl > 0 and retry_interval >= 0")
        if (
            isinstance(op_timeout, bool)
            or not isinstance(op_timeout, (int, float))
            or not math.isfinite(op_timeout)
            or op_timeout <= 0
        ):
            raise ValueError(f"op_timeout must be a positive finite number of seconds, got {op_timeout!r}")
        self._url: str | None = None
        if isinstance(client, str):
            self._url = client
            client = _client_from_url(client)
        self.client = client
        _clamp_connections(client)
        self.prefix = prefix
        self.ttl = ttl
        self.retry_interval = retry_interval
        self.op_timeout = float(op_timeout)
        self.clock = clock
        self.hints = {}
        self.fallback = MemoryStore(clock=clock, ttl=ttl)
        self._errors: tuple[type[BaseException], ...] = (redis_module.RedisError,)
        # ... and an async op past its bound (anyio's TimeoutError), or a connection the loop dropped.
        self._async_errors: tuple[type[BaseException], ...] = (redis_module.RedisError, TimeoutError, OSError)
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._degraded = False
        self._retry_at = 0.0
        self._corrupt_keys: set[str] = set()
        # Per asyncio event loop: (pid that built it, {_CLIENT: redis.asyncio client, op name: script}).
        self._async_clients: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        """A store on a client built from *url* (``redis://[:password@]host:port/db``, ``rediss://``,
        ``unix://``) with :data:`CLIENT_DEFAULTS`: half-second socket timeouts and no client retries."""
        return cls(url, **kwargs)

    @property
    def degraded(self) -> bool:
        """True while Redis cannot be used and the local fallback holds the state."""
        return self._degraded

    def run(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        if self._degraded and time.monotonic() < self._retry_at:
            return self.fallback.run(op, key, args)
        call = current_call()
        bound = _op_bound(self.op_timeout, call.remaining() if call is not None else None)
        token = _op_ends.set(time.monotonic() + bound)
        try:
            raw = self._script(op)(keys=[f"{self.prefix}:{key}"], args=self._argv(args))
        except self._errors as exc:
            return self._failed(op, key, args, exc)
        finally:
            _op_ends.reset(token)
        return self._answered(op, key, args, raw)

    async def arun(self, op: AtomicOp, key: str, args: Sequence[float]) -> Result:
        """:meth:`run` for a task under asyncio, through a ``redis.asyncio`` client: the same key, the
        same script (same SHA), the same bound on the op and the same fallback, and the event loop
        keeps running while Redis answers. Under another event loop (trio), :meth:`run` in a worker
        thread.

        Each event loop of each process gets its own ``redis.asyncio`` client, built on first use from
        the store's URL or the settings of the client it was given: an asyncio connection belongs to
        the loop that opened it, and a child process after ``os.fork()`` must not share its parent's
        sockets (the parent's clients are left unclosed there, as the parent still uses them)."""
        if self._degraded and time.monotonic() < self._retry_at:
            return self.fallback.run(op, key, args)
        call = current_call()
        scripts = self._loop_scripts()
        if scripts is None:
            import anyio.to_thread

            return await anyio.to_thread.run_sync(self.run, op, key, args)
        bound = _op_bound(self.op_timeout, call.remaining() if call is not None else None)
        import anyio

        try:
            with anyio.fail_after(bound):
                raw = await self._async_script(scripts, op)(
                    keys=[f"{self.prefix}:{key}"], args=self._argv(args)
                )
        except self._async_errors as exc:
            return self._failed(op, key, args, exc)
        return self._answered(op, key, args, raw)

    def _argv(self, args: Sequence[float]) -> list[str]:
        return [repr(self.clock()), repr(float(self.ttl)), *[repr(float(a)) for a in args]]

    def _failed(self, op: AtomicOp, key: str, args: Sequence[float], exc: BaseException) -> Result:
        """Redis could not answer *op*: the fallback's answer (and, unless the call's deadline cut the
        op short, the store counts as down)."""
        call = current_call()
        if call is None or not call.deadline_passed():
            # Not the call's deadline cutting the command short (less than OP_FLOOR left): an outage.
            self._went_down(exc)
        return self.fallback.run(op, key, args)

    def _answered(self, op: AtomicOp, key: str, args: Sequence[float], raw: Any) -> Result:
        if self._degraded:
            self._came_back()
        if raw and raw[-1] in (b"corrupt", "corrupt"):
            raw = raw[:-1]
            self._corrupt(key, "the op found unusable values and reset it")
        try:
            result = tuple(float(value) for value in raw)
        except (TypeError, ValueError):
            result = ()
        if not result or not all(math.isfinite(value) for value in result):
            # Never expected after the scripts' checks; if it happens anyway, this call is answered
            # from local state rather than failing.
            self._corrupt(key, "the op answered non-numeric or non-finite values")
            return self.fallback.run(op, key, args)
        return result

    def _loop_scripts(self) -> dict[str, Any] | None:
        """The scripts registered on this process's ``redis.asyncio`` client for the running asyncio
        loop (built on first use); ``None`` outside asyncio (under trio, no asyncio loop runs)."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        pid = os.getpid()
        entry = self._async_clients.get(loop)
        if entry is None or entry[0] != pid:
            with self._lock:
                entry = self._async_clients.get(loop)
                if entry is None or entry[0] != pid:
                    entry = (pid, {_CLIENT: self._new_async_client()})
                    self._async_clients[loop] = entry
        return entry[1]

    def _new_async_client(self) -> Any:
        if self._url is not None:
            return async_client_from_url(self._url, CLIENT_DEFAULTS)
        return async_client_like(self.client)

    def _async_script(self, scripts: dict[str, Any], op: AtomicOp) -> Any:
        script = scripts.get(op.name)
        if script is None:
            client = scripts[_CLIENT]
            script = scripts.setdefault(op.name, client.register_script(self._source(op)))
        return script

    async def aclose(self) -> None:
        """Close the ``redis.asyncio`` client of the running event loop, if one was built (the sync
        client stays open)."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self._async_clients.pop(loop, None)
        if entry is not None and entry[0] == os.getpid():
            await close_async_client(entry[1][_CLIENT])

    def _corrupt(self, key: str, what: str) -> None:
        with self._lock:
            first = key not in self._corrupt_keys
            if first and len(self._corrupt_keys) < 1024:
                self._corrupt_keys.add(key)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "Redis at %s held corrupt state under %s:%s (%s); it was treated as absent "
            "(circuit closed, budget full) and rewritten",
            self.address,
            self.prefix,
            key,
            what,
            extra={"store": self.address, "key": key, "reason": "corrupt state"},
        )

    def _script(self, op: AtomicOp) -> Script:
        script = self._scripts.get(op.name)
        if script is None:
            # Script objects run EVALSHA and load the script again if the server lost it (restart).
            script = self._scripts.setdefault(op.name, self.client.register_script(self._source(op)))
        return script

    @staticmethod
    def _source(op: AtomicOp) -> str:
        """The whole Lua script of *op*: the same text, so the same SHA, for the sync and async clients."""
        return lua_file("redis_prelude.lua") + op.source + lua_file("redis_epilogue.lua")

    def _went_down(self, exc: BaseException) -> None:
        with self._lock:
            first = not self._degraded
            self._degraded = True
            self._retry_at = time.monotonic() + self.retry_interval
        if first:
            log.warning(
                "Redis at %s cannot be used (%s: %s); breaker and budget state is local to this process "
                "until it answers again (next try in %.3gs)",
                self.address,
                type(exc).__name__,
                exc,
                self.retry_interval,
                extra={"store": self.address, "reason": type(exc).__name__},
            )
        else:
            log.debug("Redis at %s still cannot be used: %s", self.address, type(exc).__name__)

    def _came_back(self) -> None:
        with self._lock:
            if not self._degraded:
                return
            self._degraded = False
        # Redis's state rules again: drop the local one, and the hints drawn from it (an open circuit
        # noted only locally must not outlive the outage, nor resurface at the next one).
        self.fallback.clear()
        self.hints.clear()
        log.info(
            "Redis at %s answers again; breaker and budget state is shared again",
            self.address,
            extra={"store": self.address},
        )

    @property
    def address(self) -> str:
        """Where the server is (``host:port/db`` or the socket path), never with credentials."""
        kwargs = connection_settings(self.client)
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r}, prefix={self.prefix!r}, ttl={self.ttl!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._url is None:
            raise TypeError(
                "a RedisStore built on a client object cannot be pickled; build it from a URL instead"
            )
        return (
            _rebuild,
            (self._url, self.prefix, self.ttl, self.retry_interval, self.clock, self.op_timeout),
        )


def _op_bound(op_timeout: float, remaining: float | None) -> float:
    """Seconds one op may take, given the call's time left (``None`` without a deadline). Once the
    deadline has passed the op tells what became of the call, and gets ``OP_FLOOR``."""
    if remaining is None:
        return op_timeout
    if remaining <= 0:
        return min(op_timeout, OP_FLOOR)
    return min(op_timeout, max(OP_FLOOR, OP_SHARE * remaining), remaining)


def _rebuild(
    url: str,
    prefix: str,
    ttl: float,
    retry_interval: float,
    clock: Callable[[], float],
    op_timeout: float = 0.1,  # absent from pickles made before the option existed
) -> RedisStore:
    return RedisStore(
        url, prefix=prefix, ttl=ttl, retry_interval=retry_interval, clock=clock, op_timeout=op_timeout
    )


def _time_left() -> float | None:
    """Seconds the store op in progress has left, else the call in progress; ``None`` when unbounded."""
    ends = _op_ends.get()
    if ends is not None:
        return ends - time.monotonic()
    call = current_call()
    return call.remaining() if call is not None else None


class _ClampedConnection(SocketHook):
    """redis-py connection mixin: no connect, read or write waits past the end of the store op, or of
    the call, in progress.

    The client's ``socket_timeout`` and ``socket_connect_timeout`` bound each socket operation; during a
    :meth:`RedisStore.run` the op's time left bounds them too, and otherwise (the client used directly
    inside a call) the call's time left. Every ``recv`` and ``send`` is bounded afresh (see
    :class:`_BoundedSocket`), so an answer dripping in byte by byte cannot outlast the op either.
    """

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def open_socket(self, open_: Callable[[], Any]) -> Any:
        left = _time_left()
        if left is None:
            return _BoundedSocket(open_())
        left = max(0.001, left)
        # A connection is used by one thread at a time (it is out of the pool), so its timeouts can be
        # lowered for this connect (and a TLS handshake, which runs under socket_timeout) and put back.
        connect, read = self.socket_connect_timeout, self.socket_timeout
        self.socket_connect_timeout = left if connect is None else min(connect, left)
        self.socket_timeout = left if read is None else min(read, left)
        try:
            return _BoundedSocket(open_())
        finally:
            self.socket_connect_timeout, self.socket_timeout = connect, read


class _BoundedSocket:
    """A connection's socket whose every ``recv`` and ``send`` waits at most its own timeout and the
    time the op (or call) in progress has left; everything else is the socket's."""

    __slots__ = ("_timeout", "_wrapped")

    def __init__(self, sock: Any) -> None:
        self._wrapped = sock
        self._timeout: float | None = sock.gettimeout()

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._wrapped.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _bound(self) -> None:
        left = _time_left()
        timeout = self._timeout
        if left is not None and timeout != 0:  # a non-blocking read or peek never waits
            if left <= 0:
                raise TimeoutError("timed out")  # what socket.timeout is; redis-py's TimeoutError follows
            timeout = left if timeout is None else min(timeout, left)
        self._wrapped.settimeout(timeout)

    def recv(self, *args: Any) -> Any:
        self._bound()
        return self._wrapped.recv(*args)

    def recv_into(self, *args: Any) -> Any:
        self._bound()
        return self._wrapped.recv_into(*args)

    def send(self, *args: Any) -> Any:
        self._bound()
        return self._wrapped.send(*args)

    def sendall(self, *args: Any) -> Any:
        self._bound()
        return self._wrapped.sendall(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


def _clamp_connections(client: Any) -> None:
    """Make the connections *client*'s pool opens from now on :class:`_ClampedConnection`."""
    connections_with(client, _ClampedConnection)


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError('RedisStore needs redis-py: pip install "resilient-session[redis]"') from exc
    return redis


def _client_from_url(url: str) -> redis.Redis:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **CLIENT_DEFAULTS)
