"""resilient_session._compat.urllib3: each internal of urllib3 the package relies on, checked against the
installed urllib3 (and a real pool on loopback)."""

from __future__ import annotations

from typing import Any

import pytest
from urllib3 import HTTPConnectionPool, PoolManager
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from resilient_session._compat.urllib3 import (
    ConnectionHooks,
    MethodRule,
    pools_with,
    retry_copy,
    timeout_parts,
)

from .integration.echo import EchoServer


def test_timeout_parts_are_the_values_given_before_total_folds_in() -> None:
    assert timeout_parts(Timeout(connect=1.5, read=7.0, total=3.0)) == (1.5, 7.0)
    assert timeout_parts(Timeout(connect=2.0, read=None)) == (2.0, None)
    connect, read = timeout_parts(Timeout(total=4.0))
    # Not given: urllib3's "default" marker, which it resolves to the socket default, not a number.
    assert not isinstance(connect, (int, float)) and not isinstance(read, (int, float))
    assert Timeout(connect=connect, read=read, total=4.0).connect_timeout == 4.0


class Counting(ConnectionHooks):
    lent: list[Any]
    returned: list[Any]

    def connection_lent(self, conn: Any) -> None:
        type(self).lent.append(conn)

    def connection_returned(self, conn: Any) -> None:
        type(self).returned.append(conn)


def test_the_pools_a_manager_makes_carry_the_mixin_and_call_its_hooks_per_attempt() -> None:
    Counting.lent, Counting.returned = [], []
    manager = PoolManager()
    pools_with(manager, Counting)
    made = manager.pool_classes_by_scheme["http"]
    pools_with(manager, Counting)  # done once: the same classes
    assert manager.pool_classes_by_scheme["http"] is made
    assert made.__mro__[1] is Counting and issubclass(made, HTTPConnectionPool)
    with EchoServer() as server:
        for _ in range(2):
            response = manager.request("GET", f"{server.url}/200/text/target")
            assert response.status == 200 and b"/200/text/target" in response.data
        pool = manager.connection_from_url(server.url)
        assert isinstance(pool, Counting)
    manager.clear()
    # One connection, lent for each request and returned after each (keep-alive).
    assert len(Counting.lent) == 2 and len(Counting.returned) >= 2
    assert Counting.lent[0] is Counting.lent[1] is Counting.returned[0]


def test_a_manager_without_pool_classes_is_left_alone() -> None:
    class Bare:
        pass

    bare = Bare()
    pools_with(bare, Counting)
    assert vars(bare) == {}


class Widening(MethodRule):
    def _method_retryable(self, method: str, allowed: bool) -> bool:
        return allowed or method == "POST"


@pytest.mark.parametrize(
    ("method", "plain", "widened"),
    [("GET", True, True), ("POST", False, True), ("PATCH", False, False)],
)
def test_method_rule_gets_urllib3s_answer_and_gives_the_final_one(
    method: str, plain: bool, widened: bool
) -> None:
    assert Retry(total=3, status_forcelist=[503]).is_retry(method, 503) is plain
    assert MethodRule(total=3, status_forcelist=[503]).is_retry(method, 503) is plain
    assert Widening(total=3, status_forcelist=[503]).is_retry(method, 503) is widened


def test_retry_copy_keeps_every_attribute_and_the_history_in_the_subclass() -> None:
    original = Retry(total=5, backoff_factor=0.5, status_forcelist=[502]).increment(
        "GET", "/x", error=OSError()
    )

    class Sub(Retry):
        pass

    copy = retry_copy(original, Sub)
    assert type(copy) is Sub
    assert vars(copy) == vars(original) and copy.history == original.history and copy.total == 4
    assert copy is not original
