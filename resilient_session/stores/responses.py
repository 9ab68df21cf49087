"""Where degraded answers come from: the last good response of each request, in a requests-cache backend.

A :class:`ResponseStore` keeps what a :class:`~resilient_session.policies.Degrade` policy stores and
reads it back when a fresh answer cannot be had. The storage is a requests-cache backend (memory,
SQLite, Redis, or any ``BaseCache``), its ``CachedResponse`` the stored form; requests-cache is the
``degrade`` extra (``pip install resilient-session[degrade]``) and is imported on first use only.

Every operation is bounded by ``timeout`` (given to the backend's client) and fails open: an error is
logged once per ``cooldown`` and the call goes on as without the store, which is skipped until the
cooldown has passed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from .. import _fork
from .._compat.requests_cache import redis_key
from .._redact import SECRET_HEADERS, is_secret_name

__all__ = ["ResponseStore", "credential_names", "request_key"]

log = logging.getLogger("resilient_session")

#: Seconds a store operation may take before the call goes on without it.
DEFAULT_STORE_TIMEOUT = 0.05
#: What :meth:`ResponseStore.memory` holds at most by default: entries, and bytes of stored bodies.
DEFAULT_MEMORY_ENTRIES = 10_000
DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024
# Decoded answers a store remembers, so reading an unchanged entry again costs no deserialization.
_DECODED_ENTRIES = 512
_DECODED_BYTES = 16 * 1024 * 1024


class ResponseStore:
    """The last good answer of each request and credential identity, in a requests-cache backend.

    Build one with :meth:`memory` (this process; tests), :meth:`sqlite` (one machine; the default of a
    :class:`~resilient_session.policies.Degrade` policy) or :meth:`redis` (a fleet), or wrap any
    requests-cache ``BaseCache`` instance: ``ResponseStore(backend)``.

    :param backend: A requests-cache ``BaseCache``, or a function returning one (called on first use,
        so building a store does no I/O).
    :param timeout: Seconds each operation may take. The backends built here pass it to their client
        (SQLite's busy timeout, Redis' socket timeouts); a backend given ready-made is trusted to be
        bounded.
    :param cooldown: Seconds the store is skipped after an operation failed.
    :param key_secret: Bytes keying the hash of the credential identity in every key. Keys never hold a
        credential, but without a secret anyone able to read the store can test a guessed credential
        against them; with one shared by the fleet, they cannot.

    Thread-safe when its backend is (requests-cache's are).
    """

    def __init__(
        self,
        backend: Any,
        *,
        timeout: float = DEFAULT_STORE_TIMEOUT,
        cooldown: float = 5.0,
        key_secret: bytes | None = None,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(cooldown, bool) or not isinstance(cooldown, (int, float)) or cooldown < 0:
            raise ValueError(f"cooldown must be a number of seconds >= 0, not {cooldown!r}")
        if key_secret is not None and not isinstance(key_secret, bytes):
            raise TypeError("key_secret must be bytes or None")
        self.timeout = float(timeout)
        self.cooldown = float(cooldown)
        self._key_secret = key_secret[:64] if key_secret else b""
        self._factory: Callable[[], Any] | None = backend if callable(backend) else None
        self._backend: Any = None if callable(backend) else backend
        self._lock = threading.Lock()
        self._skip_until = 0.0
        # key -> (the stored bytes, the CachedResponse decoded from them, their size); see _read_shared.
        self._decoded: OrderedDict[str, tuple[Any, Any, int]] = OrderedDict()
        self._decoded_bytes = 0
        self._decoded_lock = threading.Lock()
        #: How to build an equal store in another process (see __reduce__), or None: not picklable.
        self._recipe: tuple[str, tuple[Any, ...]] | None = None

    @classmethod
    def memory(
        cls,
        *,
        max_entries: int = DEFAULT_MEMORY_ENTRIES,
        max_bytes: int = DEFAULT_MEMORY_BYTES,
        **options: Any,
    ) -> ResponseStore:
        """A store in this process's memory (requests-cache's ``BaseCache``), for tests and one worker.

        :param max_entries: Entries kept at most (default 10,000); the least recently used goes first.
        :param max_bytes: Bytes of stored bodies kept at most (default 64 MiB), likewise.
        """
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

        def build() -> Any:
            return _bounded_memory_cache(max_entries, max_bytes)

        store = cls(build, **options)
        store._recipe = ("memory", (max_entries, max_bytes))
        return store

    @classmethod
    def sqlite(
        cls, path: str | None = None, *, timeout: float = DEFAULT_STORE_TIMEOUT, **options: Any
    ) -> ResponseStore:
        """A SQLite file shared by the processes of one machine (requests-cache's ``SQLiteCache``).

        :param path: The database file; ``None`` puts ``resilient_session_degrade.sqlite`` in the
            user's cache directory (``~/.cache`` on Linux).
        """

        def build() -> Any:
            from requests_cache.backends.sqlite import SQLiteCache

            busy = max(1, int(timeout * 1000))
            if path is None:
                return SQLiteCache(
                    "resilient_session_degrade", use_cache_dir=True, busy_timeout=busy, wal=True
                )
            return SQLiteCache(path, busy_timeout=busy, wal=True, timeout=timeout)

        store = cls(build, timeout=timeout, **options)
        store._recipe = ("sqlite", (path,))
        return store

    @classmethod
    def redis(
        cls,
        url: str | None = None,
        *,
        connection: Any = None,
        namespace: str = "resilient_session_degrade",
        timeout: float = DEFAULT_STORE_TIMEOUT,
        **options: Any,
    ) -> ResponseStore:
        """A Redis database shared by a fleet (requests-cache's ``RedisCache``); entries expire when
        they are too old to be served.

        :param url: ``redis://host:port/db``; the client is built with ``timeout`` as its socket
            timeouts.
        :param connection: A ``redis.Redis`` client to use instead (its own timeouts apply).
        """

        def build() -> Any:
            from redis import Redis
            from requests_cache.backends.redis import RedisCache

            client = connection
            if client is None:
                client = Redis.from_url(
                    url or "redis://127.0.0.1:6379/0",
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                )
            # Deleted by Redis as soon as they are too old to be served.
            return RedisCache(namespace, connection=client, ttl_offset=0)

        store = cls(build, timeout=timeout, **options)
        if connection is None:
            store._recipe = ("redis", (url, namespace))
        return store

    # -- operations (all fail open) ---------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The ``CachedResponse`` stored under *key*, or ``None`` (also when the store failed)."""
        return self._run("read", lambda backend: backend.responses.get(key))

    def _read_shared(self, key: str) -> Any:
        """As :meth:`get`, but the answer may be shared with other callers: read it, never change it.

        The stored bytes are read every time (another process may have replaced or deleted them); only
        their deserialization, most of a read's cost, is skipped when they are the bytes last decoded.
        """
        return self._run("read", lambda backend: self._read_decoded(backend.responses, key))

    def _read_decoded(self, storage: Any, key: str) -> Any:
        read_raw = _raw_reader(storage, key)
        if read_raw is None:
            return storage.get(key)
        raw = read_raw()
        if raw is None:
            self._forget_decoded(key)
            return None
        with self._decoded_lock:
            known = self._decoded.get(key)
            if known is not None and known[0] == raw:
                self._decoded.move_to_end(key)
                return known[1]
        decoded = storage.deserialize(key, raw)
        size = len(raw)
        if decoded is None or size > _DECODED_BYTES // 4:
            return decoded
        with self._decoded_lock:
            old = self._decoded.pop(key, None)
            if old is not None:
                self._decoded_bytes -= old[2]
            self._decoded[key] = (raw, decoded, size)
            self._decoded_bytes += size
            while len(self._decoded) > _DECODED_ENTRIES or self._decoded_bytes > _DECODED_BYTES:
                self._decoded_bytes -= self._decoded.popitem(last=False)[1][2]
        return decoded

    def _forget_decoded(self, key: str | None = None) -> None:
        with self._decoded_lock:
            if key is None:
                self._decoded.clear()
                self._decoded_bytes = 0
                return
            old = self._decoded.pop(key, None)
            if old is not None:
                self._decoded_bytes -= old[2]

    def put(self, key: str, response: requests.Response, *, keep_for: float, redact: Iterable[str]) -> bool:
        """Store *response* under *key* for *keep_for* seconds, the request's *redact* headers and query
        parameters removed from the stored copy. False when the store failed."""

        def put(backend: Any) -> bool:
            from requests_cache.cache_keys import redact_response
            from requests_cache.models.response import CachedResponse

            expires = datetime.now(timezone.utc) + timedelta(seconds=keep_for)
            cached = CachedResponse.from_response(response, expires=expires)
            cached = redact_response(cached, list(redact))
            self._forget_decoded(key)
            backend.responses[key] = cached
            return True

        return bool(self._run("write", put))

    def delete(self, key: str) -> None:
        """Forget what is stored under *key* (nothing when there is none, or the store failed)."""
        self._forget_decoded(key)
        self._run("delete", lambda backend: backend.responses.pop(key, None))

    def clear(self) -> None:
        """Forget everything stored."""
        self._forget_decoded()
        self._run("clear", lambda backend: backend.clear())

    def close(self) -> None:
        """Close the backend's connections."""
        backend = self._backend
        if backend is not None:
            with contextlib.suppress(Exception):  # closing is best effort
                backend.close()

    @property
    def backend(self) -> Any:
        """The requests-cache backend (built on first use)."""
        backend = self._backend
        if backend is None:
            with self._lock:
                if self._backend is None and self._factory is not None:
                    self._backend = self._factory()
                    _fork.track(self)
                backend = self._backend
        return backend

    def _after_fork_in_child(self) -> None:
        # The parent's lock may be held by a thread that does not exist here, and a SQLite connection or
        # a Redis socket must not be shared by two processes: the child builds its own on first use.
        self._lock = threading.Lock()
        self._decoded_lock = threading.Lock()
        self._skip_until = 0.0
        if self._factory is not None and (self._recipe is None or self._recipe[0] != "memory"):
            self._backend = None
        after_fork = getattr(getattr(self._backend, "responses", None), "after_fork_in_child", None)
        if after_fork is not None:
            after_fork()

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled session (or policy) gets the same store in the receiving process: the same SQLite
        # file or Redis URL, or a new empty memory store (as a pickled MemoryStore does).
        if self._recipe is None:
            raise TypeError(
                "a ResponseStore built on a backend or client object cannot be pickled; build it with "
                "ResponseStore.memory(), .sqlite(path) or .redis(url)"
            )
        kind, args = self._recipe
        options = {"timeout": self.timeout, "cooldown": self.cooldown, "key_secret": self._key_secret or None}
        return (_rebuild, (kind, args, options))

    def __repr__(self) -> str:
        kind = type(self._backend).__name__ if self._backend is not None else "not built yet"
        return f"<ResponseStore {kind} timeout={self.timeout}s>"

    def _run(self, what: str, operation: Callable[[Any], Any]) -> Any:
        if self._skip_until and time.monotonic() < self._skip_until:
            return None
        try:
            return operation(self.backend)
        except Exception as exc:
            self._skip_until = time.monotonic() + self.cooldown
            # The type only: a backend's message may quote a connection URL with its password.
            log.warning(
                "degrade store %s failed (%s); calls go on without it for %.0f s",
                what,
                type(exc).__name__,
                self.cooldown,
            )
            return None


def _rebuild(kind: str, args: tuple[Any, ...], options: dict[str, Any]) -> ResponseStore:
    if kind == "memory":
        max_entries, max_bytes = args
        return ResponseStore.memory(max_entries=max_entries, max_bytes=max_bytes, **options)
    if kind == "sqlite":
        return ResponseStore.sqlite(*args, **options)
    url, namespace = args
    return ResponseStore.redis(url, namespace=namespace, **options)


# The keys this module builds: safe to quote in SQL (requests-cache's own SQLite read quotes the key).
_KEY_CHARS = re.compile(r"[0-9a-zA-Z_.-]+")


def _raw_reader(storage: Any, key: str) -> Callable[[], Any] | None:
    """A function reading the serialized bytes stored under *key* (``None``: absent) from requests-cache's
    SQLite or Redis storage, as its own ``__getitem__`` does before deserializing; or ``None`` for any
    other storage (its ``get`` is used as it is)."""
    if getattr(storage, "serializer", None) is None or not _KEY_CHARS.fullmatch(key):
        return None
    kind = type(storage)
    sqlite = sys.modules.get("requests_cache.backends.sqlite")
    if sqlite is not None and kind is sqlite.SQLiteDict:

        def from_sqlite() -> Any:
            with storage.connection() as connection:
                # Quoted as requests-cache quotes it: its connection is shared by threads, which
                # placeholders do not survive on every Python version.
                cursor = connection.execute(f"SELECT value FROM {storage.table_name} WHERE key='{key}'")
                row = cursor.fetchone()
                cursor.close()
            return row[0] if row else None

        return from_sqlite
    redis = sys.modules.get("requests_cache.backends.redis")
    if redis is not None and kind is redis.RedisDict:
        return lambda: storage.connection.get(redis_key(storage, key))
    return None


def _bounded_memory_cache(max_entries: int, max_bytes: int) -> Any:
    """requests-cache's in-memory ``BaseCache``, its responses bounded (least recently used out first)."""
    from requests_cache.backends.base import BaseCache, DictStorage

    class BoundedDictStorage(DictStorage):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self._lock = threading.Lock()
            self._sizes: OrderedDict[Any, int] = OrderedDict()
            self._bytes = 0

        def __getitem__(self, key: Any) -> Any:
            item = super().__getitem__(key)  # type: ignore[no-untyped-call]
            with self._lock:
                if key in self._sizes:
                    self._sizes.move_to_end(key)
            return item

        def __setitem__(self, key: Any, item: Any) -> None:
            size = len(getattr(item, "content", None) or b"")
            with self._lock:
                self._bytes -= self._sizes.pop(key, 0)
                self.data.pop(key, None)  # replaced: the older answer is not to be served
                if size > max_bytes:
                    return  # larger than the whole store: not kept
                self.data[key] = item
                self._sizes[key] = size
                self._bytes += size
                while len(self._sizes) > max_entries or self._bytes > max_bytes:
                    old, old_size = self._sizes.popitem(last=False)
                    self._bytes -= old_size
                    self.data.pop(old, None)

        def __delitem__(self, key: Any) -> None:
            with self._lock:
                self._bytes -= self._sizes.pop(key, 0)
                del self.data[key]

        def after_fork_in_child(self) -> None:
            self._lock = threading.Lock()  # the parent's may be held by a thread that is not here

        def clear(self) -> None:
            with self._lock:
                self._sizes.clear()
                self._bytes = 0
                self.data.clear()

    cache = BaseCache()
    cache.responses = BoundedDictStorage()
    return cache


#: Request headers that carry the caller's identity, besides those named like secrets.
_IDENTITY_HEADERS = frozenset({*SECRET_HEADERS, "authorization", "proxy-authorization", "cookie"})


def credential_names(request: requests.PreparedRequest) -> tuple[list[str], list[str]]:
    """The headers and query parameters of *request* that carry credentials."""
    headers = [name for name in request.headers if name.lower() in _IDENTITY_HEADERS or is_secret_name(name)]
    query = urlsplit(request.url or "").query
    params = sorted({name for name, _ in parse_qsl(query, keep_blank_values=True) if is_secret_name(name)})
    return headers, params


def request_key(
    request: requests.PreparedRequest,
    *,
    extra_headers: Collection[str] = (),
    cert: Any = None,
    secret: bytes = b"",
) -> tuple[str, list[str]]:
    """The store key of *request* and the names to redact from what is stored.

    requests-cache's ``create_key`` (method, normalized URL, body) without the credentials, followed
    by a keyed hash of the credential identity: every header and query parameter that carries a
    credential, the client certificate and *extra_headers*. Two callers with different credentials
    never share a key, and no key holds a credential in clear.
    """
    from requests_cache.policy.settings import DEFAULT_IGNORED_PARAMS

    headers, params = credential_names(request)
    redact = [*DEFAULT_IGNORED_PARAMS, *headers, *params]
    body = request.body
    if body is None or (isinstance(body, (bytes, str)) and len(body) <= _MEMO_BODY):
        base = _base_key(request.method or "GET", request.url or "", body, tuple(redact))
    else:
        from requests_cache.cache_keys import create_key

        base = create_key(request, ignored_parameters=redact)
    identity = hashlib.blake2b(digest_size=16, key=secret, person=b"rs-degrade-v1")
    for name in sorted({*headers, *extra_headers}, key=str.lower):
        value = request.headers.get(name)
        if value is not None:
            identity.update(b"h\0" + name.lower().encode() + b"\0" + _bytes(value) + b"\0")
    if params:
        wanted = set(params)
        pairs = parse_qsl(urlsplit(request.url or "").query, keep_blank_values=True)
        for name, value in sorted(p for p in pairs if p[0] in wanted):
            identity.update(b"q\0" + name.encode() + b"\0" + value.encode() + b"\0")
    if cert:
        identity.update(b"c\0" + repr(cert).encode() + b"\0")
    return f"{base}.{identity.hexdigest()}", redact


# Bodies up to this size are part of the memoized base key (a GET rarely has one).
_MEMO_BODY = 1024


@functools.lru_cache(maxsize=4096)
def _base_key(method: str, url: str, body: str | bytes | None, redact: tuple[str, ...]) -> str:
    """requests-cache's ``create_key`` of a request without headers, remembered: normalizing the URL
    costs more than the rest of a degraded answer."""
    from requests_cache.cache_keys import create_key

    request = requests.PreparedRequest()
    request.method, request.url, request.body = method, url, body
    request.headers = requests.structures.CaseInsensitiveDict()
    return create_key(request, ignored_parameters=list(redact))


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1", "replace")
