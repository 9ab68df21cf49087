"""``response.normalized`` against a real server on 127.0.0.1: retries, redirects, streaming, HEAD."""

from __future__ import annotations

from typing import Any

import pytest

from resilient_session import ResilientAdapter, ResilientSession, RetryPolicy, ServerError
from resilient_session.normalization import Normalizer

from .upstream import Reply, Upstream

FAST = RetryPolicy(backoff_factor=0.01)


def test_attempts_and_data_after_retries(upstream: Upstream) -> None:
    url = upstream.script(
        "/flaky",
        Reply(503),
        Reply(200, b'{"n": 2}', {"Content-Type": "application/json", "X-Request-ID": "r-9"}),
    )
    with ResilientSession(retry=FAST) as session:
        n = session.get(url).normalized  # type: ignore[attr-defined]
    assert (n.ok, n.data, n.request_id, n.method) == (True, {"n": 2}, "r-9", "GET")
    assert n.attempts == 2 == upstream.count("/flaky")
    assert n.elapsed > 0


def test_error_envelope_after_retries_run_out(upstream: Upstream) -> None:
    body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    url = upstream.script("/s3", Reply(503, body, {"Content-Type": "application/xml"}))
    with ResilientSession(retry=RetryPolicy(total=1, backoff_factor=0.01)) as session:
        n = session.get(url).normalized  # type: ignore[attr-defined]
    assert n.error is not None
    assert (n.error.code, n.error.message, n.error.retryable) == (
        "SlowDown",
        "Reduce your request rate.",
        True,
    )
    with pytest.raises(ServerError, match="Reduce your request rate"):
        n.raise_for_error()


def test_redirect_hops_are_normalized(upstream: Upstream) -> None:
    target = upstream.script("/new", Reply(200, b"<a>1</a>", {"Content-Type": "text/xml"}))
    url = upstream.script("/old", Reply(302, b"", {"Location": target}))
    with ResilientSession() as session:
        response = session.get(url)
    assert response.normalized.data == {"a": "1"}  # type: ignore[attr-defined]
    assert [hop.normalized.status for hop in response.history] == [302]  # type: ignore[attr-defined]


def test_head_is_empty(upstream: Upstream) -> None:
    url = upstream.script("/h", Reply(200, b'{"big": true}'))
    with ResilientSession() as session:
        n = session.head(url).normalized  # type: ignore[attr-defined]
    assert (n.format, n.data, n.ok) == ("empty", None, True)


def test_streamed_body_over_the_limit_is_never_read(upstream: Upstream) -> None:
    url = upstream.script("/big", Reply(200, b'{"x": "' + b"a" * 5000 + b'"}'))
    adapter = ResilientAdapter()
    adapter.normalizer = Normalizer(max_body_size=1000)
    with ResilientSession() as session:
        session.mount(upstream.url, adapter)
        response = session.get(url, stream=True)
        n = response.normalized  # type: ignore[attr-defined]
        assert n.error is not None and n.error.code == "body_too_large"
        assert response.raw.tell() == 0  # nothing was read from the socket
        assert len(response.content) > 5000  # the caller can still read it


def test_truncated_json_is_malformed_not_an_exception(upstream: Upstream) -> None:
    url = upstream.script("/trunc", Reply(200, b'{"items": [1, 2'))
    with ResilientSession() as session:
        n = session.get(url).normalized  # type: ignore[attr-defined]
    assert (n.format, n.data) == ("json", None)
    assert n.error is not None and n.error.code == "malformed_response"


@pytest.mark.parametrize(
    "body", [b'{"v": NaN}', b'{"v": Infinity}', b"[-Infinity]", b'{"v": 1e400}', b'{"v": -1e999}']
)
def test_nan_and_infinity_are_malformed_json_but_response_json_is_requests_own(
    upstream: Upstream, body: bytes
) -> None:
    url = upstream.script("/nan", Reply(200, body))
    with ResilientSession(retry=False) as session:
        response = session.get(url)
    n = response.normalized  # type: ignore[attr-defined]
    assert (n.ok, n.format, n.data) == (False, "json", None)
    assert n.error is not None and n.error.code == "malformed_response"
    assert "RFC 8259" in n.error.message or "overflows a float" in n.error.message
    import math

    value = response.json()  # requests' own parser still accepts them: drop-in behaviour kept
    assert any(not math.isfinite(v) for v in (value if isinstance(value, list) else value.values()))


def test_call_prints_strict_json_for_a_nan_body(upstream: Upstream, tmp_path: Any) -> None:
    import json
    from contextlib import redirect_stdout
    from io import StringIO

    from resilient_session.cli import main

    upstream.script("/nan", Reply(200, b'{"v": NaN, "w": Infinity}'))
    config = tmp_path / "c.toml"
    config.write_text(f'[integrations.api]\nbase_url = "{upstream.url}"\nretry = false\n', encoding="utf-8")
    out = StringIO()
    with redirect_stdout(out):
        code = main(["call", str(config), "api", "GET", "/nan"])
    assert code == 8  # the body could not be used
    document = json.loads(out.getvalue(), parse_constant=lambda name: pytest.fail(f"{name} printed"))
    assert document["error"]["code"] == "malformed_response"
