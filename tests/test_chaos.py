"""Every route of the chaos server, exercised over real loopback sockets with plain requests."""

from __future__ import annotations

import errno
import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from lxml import etree

from resilient_session.testing.chaos import ChaosServer, is_loopback

pytestmark = pytest.mark.integration

TIMEOUT = (1.0, 2.0)


@pytest.fixture
def client() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _innermost(error: BaseException) -> BaseException:
    seen: BaseException = error
    while True:
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
        elif seen.args and isinstance(seen.args[-1], BaseException):
            seen = seen.args[-1]
        else:
            return seen


def _raw_get(url: str, path: str) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2)
    connection.request("GET", path)
    return connection.getresponse()


# -- server lifecycle and counters ------------------------------------------------------------------


def test_counts_calls_per_path_in_process_and_over_http(
    chaos_server: ChaosServer, client: requests.Session
) -> None:
    for _ in range(3):
        assert client.get(chaos_server.url + "/ok", timeout=TIMEOUT).json()["ok"] is True
    client.get(chaos_server.url + "/echo?x=1", timeout=TIMEOUT)

    assert chaos_server.calls("/ok") == 3
    assert chaos_server.calls("/never-called") == 0
    over_http = client.get(chaos_server.url + "/__chaos__/calls", timeout=TIMEOUT).json()
    assert over_http == {"/ok": 3, "/echo": 1} == chaos_server.all_calls()


def test_reset_over_http_zeroes_counters(chaos_server: ChaosServer, client: requests.Session) -> None:
    client.get(chaos_server.url + "/ok", timeout=TIMEOUT)
    assert client.post(chaos_server.url + "/__chaos__/reset", timeout=TIMEOUT).json() == {"ok": True}
    assert chaos_server.all_calls() == {}


def test_both_origins_share_routes_and_counters(chaos_server: ChaosServer, client: requests.Session) -> None:
    assert chaos_server.url != chaos_server.second_url
    client.get(chaos_server.url + "/ok", timeout=TIMEOUT)
    answer = client.get(chaos_server.second_url + "/ok", timeout=TIMEOUT).json()
    assert answer["call"] == 2
    assert chaos_server.calls("/ok") == 2


def test_index_lists_every_route(chaos_server: ChaosServer, client: requests.Session) -> None:
    index = client.get(chaos_server.url + "/", timeout=TIMEOUT).json()
    assert {"/ok", "/fail/<int:code>", "/flaky", "/reset", "/stall", "/redirect"} <= set(index["routes"])
    assert index["origins"] == [chaos_server.url, chaos_server.second_url]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_refuses_non_loopback_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ChaosServer(host)


def test_loopback_names() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.5.5.5", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("10.0.0.1", "0.0.0.0", "localhost.example.com", ""))


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = ChaosServer().url


def test_the_server_stands_for_its_url(chaos_server: ChaosServer, client: requests.Session) -> None:
    assert str(chaos_server) == f"{chaos_server}" == chaos_server.url
    assert chaos_server + "/ok" == chaos_server.url + "/ok"
    assert client.get(chaos_server + "/ok", timeout=2).json()["ok"] is True
    assert client.get(chaos_server, timeout=2).status_code == 200  # type: ignore[arg-type]  # requests calls str() on the URL
    assert str(ChaosServer()) == "<ChaosServer stopped>"


def test_stop_releases_a_hanging_request() -> None:
    outcome: list[BaseException | requests.Response] = []

    def call(url: str) -> None:
        try:
            outcome.append(requests.get(url + "/hang"))  # no timeout: only the server can end this
        except requests.RequestException as error:
            outcome.append(error)

    server = ChaosServer().start()
    client = threading.Thread(target=call, args=(server.url,), daemon=True)
    client.start()
    arrived = threading.Event()
    for _ in range(200):  # wait (bounded) until the request is inside the server
        if server.calls("/hang"):
            break
        arrived.wait(0.01)
    assert server.calls("/hang") == 1
    server.stop()
    client.join(timeout=5)

    assert not client.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)


def test_command_line_prints_its_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "resilient_session.testing.chaos", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/ok", timeout=TIMEOUT).json()["ok"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_line_refuses_a_public_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resilient_session.testing.chaos", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


# -- statuses ---------------------------------------------------------------------------------------


def test_fail_for_the_first_k_calls_then_200(chaos_server: ChaosServer, client: requests.Session) -> None:
    url = chaos_server.url + "/fail/503?times=2"
    statuses = [client.get(url, timeout=TIMEOUT).status_code for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert chaos_server.calls("/fail/503") == 4


def test_fail_without_times_always_fails(chaos_server: ChaosServer, client: requests.Session) -> None:
    answers = [client.get(chaos_server.url + "/fail/500", timeout=TIMEOUT) for _ in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 500]
    assert answers[0].json()["error"]["status"] == 500


@pytest.mark.parametrize("code", [429, 503])
def test_fail_with_retry_after(chaos_server: ChaosServer, client: requests.Session, code: int) -> None:
    answer = client.get(f"{chaos_server.url}/fail/{code}?retry_after=2", timeout=TIMEOUT)
    assert answer.status_code == code
    assert answer.headers["Retry-After"] == "2"


def test_fail_rejects_non_error_codes(chaos_server: ChaosServer, client: requests.Session) -> None:
    assert client.get(chaos_server.url + "/fail/200", timeout=TIMEOUT).status_code == 400


# -- latency ----------------------------------------------------------------------------------------


def test_fixed_latency(chaos_server: ChaosServer, client: requests.Session) -> None:
    started = time.monotonic()
    answer = client.get(chaos_server.url + "/latency?ms=150", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.15
    assert answer.json()["latency_ms"] == 150


def test_random_latency_is_bounded_and_reproducible(
    chaos_server: ChaosServer, client: requests.Session
) -> None:
    url = chaos_server.url + "/latency?min_ms=1&max_ms=30&seed=7"

    def sequence() -> list[float]:
        return [client.get(url, timeout=TIMEOUT).json()["latency_ms"] for _ in range(5)]

    first = sequence()
    chaos_server.reset()
    assert sequence() == first
    assert all(1 <= value <= 30 for value in first)
    assert len(set(first)) > 1


def test_latency_only_for_the_first_k_calls(chaos_server: ChaosServer, client: requests.Session) -> None:
    url = chaos_server.url + "/latency?ms=100&times=1"
    assert "latency_ms" in client.get(url, timeout=TIMEOUT).json()
    assert "latency_ms" not in client.get(url, timeout=TIMEOUT).json()


# -- failure rate -----------------------------------------------------------------------------------


def _flaky_outcomes(client: requests.Session, url: str, n: int) -> list[str]:
    outcomes = []
    for _ in range(n):
        try:
            outcomes.append(str(client.get(url, timeout=TIMEOUT).status_code))
        except requests.ConnectionError:
            outcomes.append("reset")
    return outcomes


def test_flaky_rate_is_seeded_and_reproducible(chaos_server: ChaosServer, client: requests.Session) -> None:
    url = chaos_server.url + "/flaky?rate=0.3&reset_rate=0.1&status=502&seed=42"
    first = _flaky_outcomes(client, url, 200)
    chaos_server.reset()
    assert _flaky_outcomes(client, url, 200) == first

    assert set(first) == {"200", "502", "reset"}
    assert 0.2 <= first.count("502") / 200 <= 0.4
    assert 0.03 <= first.count("reset") / 200 <= 0.17


def test_flaky_without_seed_still_honours_the_rate(
    chaos_server: ChaosServer, client: requests.Session
) -> None:
    outcomes = _flaky_outcomes(client, chaos_server.url + "/flaky?rate=1", 5)
    assert outcomes == ["503"] * 5


# -- connection-level failures ----------------------------------------------------------------------


def test_reset_before_the_response_is_a_tcp_reset(
    chaos_server: ChaosServer, client: requests.Session
) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        client.get(chaos_server.url + "/reset", timeout=TIMEOUT)
    cause = _innermost(caught.value)
    assert isinstance(cause, ConnectionResetError)
    assert cause.errno == errno.ECONNRESET

    with pytest.raises(ConnectionResetError):
        _raw_get(chaos_server.url, "/reset")


def test_reset_for_the_first_k_calls(chaos_server: ChaosServer, client: requests.Session) -> None:
    outcomes = _flaky_outcomes(client, chaos_server.url + "/reset?times=2", 3)
    assert outcomes == ["reset", "reset", "200"]


def test_reset_during_the_body(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/reset-body", stream=True, timeout=TIMEOUT)
    assert answer.status_code == 200  # the headers arrived
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        _ = answer.content
    assert isinstance(_innermost(caught.value), ConnectionResetError)

    raw = _raw_get(chaos_server.url, "/reset-body")
    assert raw.status == 200
    with pytest.raises(ConnectionResetError):
        raw.read()


def test_hang_never_answers(chaos_server: ChaosServer, client: requests.Session) -> None:
    with pytest.raises(requests.ReadTimeout):
        client.get(chaos_server.url + "/hang", timeout=(1, 0.2))


def test_hang_with_a_limit_ends_in_a_reset(chaos_server: ChaosServer, client: requests.Session) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        client.get(chaos_server.url + "/hang?seconds=0.05", timeout=TIMEOUT)
    assert isinstance(_innermost(caught.value), ConnectionResetError)


def test_stalled_body_sends_headers_then_nothing(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/stall", stream=True, timeout=(1, 0.2))
    assert answer.status_code == 200
    declared = int(answer.headers["Content-Length"])
    received = bytearray()
    with pytest.raises(requests.ConnectionError) as caught:
        for chunk in answer.iter_content(64):
            received += chunk
    assert "timed out" in str(caught.value).lower()
    assert 0 < len(received) < declared


def test_slow_drip(chaos_server: ChaosServer, client: requests.Session) -> None:
    started = time.monotonic()
    answer = client.get(chaos_server.url + "/drip?bytes=5&interval_ms=40", timeout=TIMEOUT)
    assert time.monotonic() - started >= 0.16
    assert answer.content == b"....."
    assert answer.headers["Content-Length"] == "5"


def test_truncated_body_with_a_lying_content_length(
    chaos_server: ChaosServer, client: requests.Session
) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError) as caught:
        client.get(chaos_server.url + "/truncated?length=1000&sent=400", timeout=TIMEOUT)
    assert "400 bytes read, 600 more expected" in str(caught.value)


# -- bodies -----------------------------------------------------------------------------------------


def test_malformed_json(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/malformed-json", timeout=TIMEOUT)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.JSONDecodeError):
        answer.json()


def test_xml(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/xml", timeout=TIMEOUT)
    assert answer.headers["Content-Type"].startswith("application/xml")
    root = etree.fromstring(answer.content)
    assert root.tag == "{urn:example:catalog}catalog"
    assert [item.get("id") for item in root.iter("{urn:example:catalog}item")] == ["1", "2"]


def test_soap_fault(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.post(chaos_server.url + "/soap-fault", data="<x/>", timeout=TIMEOUT)
    assert answer.status_code == 500
    root = etree.fromstring(answer.content)
    namespace = {"soap": "http://schemas.xmlsoap.org/soap/envelope/"}
    assert (
        root.findtext("soap:Body/soap:Fault/faultstring", namespaces=namespace)
        == "Upstream ledger unavailable"
    )


def test_problem_json(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/problem?status=422", timeout=TIMEOUT)
    assert answer.status_code == 422
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == 422
    assert {"type", "title", "detail"} <= set(answer.json())


def test_echo_reflects_the_request(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.put(
        chaos_server.url + "/echo?a=1", data="hello", headers={"X-Trace": "t1"}, timeout=TIMEOUT
    )
    echoed = answer.json()
    assert echoed["method"] == "PUT"
    assert echoed["query"] == {"a": ["1"]}
    assert echoed["body"] == "hello"
    assert echoed["headers"]["X-Trace"] == "t1"


# -- redirects --------------------------------------------------------------------------------------


def test_redirect_same_origin(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.get(chaos_server.url + "/redirect?to=/echo", timeout=TIMEOUT)
    assert answer.json()["origin"] == chaos_server.url
    assert [r.status_code for r in answer.history] == [302]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_to_the_second_origin(
    chaos_server: ChaosServer, client: requests.Session, status: int
) -> None:
    answer = client.get(f"{chaos_server.url}/redirect?to=/echo&cross=1&status={status}", timeout=TIMEOUT)
    assert answer.json()["origin"] == chaos_server.second_url
    assert answer.history[0].status_code == status
    # and back again from the second origin
    back = client.get(f"{chaos_server.second_url}/redirect?to=/echo&cross=1", timeout=TIMEOUT)
    assert back.json()["origin"] == chaos_server.url


def test_redirect_307_keeps_method_and_body(chaos_server: ChaosServer, client: requests.Session) -> None:
    answer = client.post(
        chaos_server.url + "/redirect?to=/echo&status=307&cross=1", data="x", timeout=TIMEOUT
    )
    assert answer.json()["method"] == "POST"
    assert answer.json()["body"] == "x"


def test_redirect_to_an_absolute_loopback_url(chaos_server: ChaosServer, client: requests.Session) -> None:
    port = urlsplit(chaos_server.second_url).port
    answer = client.get(f"{chaos_server.url}/redirect?to=http://localhost:{port}/echo", timeout=TIMEOUT)
    assert answer.json()["path"] == "/echo"
    assert urlsplit(answer.url).hostname == "localhost"


@pytest.mark.parametrize("target", ["http://example.com/", "ftp://127.0.0.1/x", "//10.0.0.1/x"])
def test_redirect_refuses_non_loopback_targets(
    chaos_server: ChaosServer, client: requests.Session, target: str
) -> None:
    answer = client.get(chaos_server.url + "/redirect", params={"to": target}, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert answer.history == []
