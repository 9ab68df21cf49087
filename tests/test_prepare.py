"""The common request prepared from remembered parts equals what requests' own steps prepare.

Every case prepares the same ``requests.Request`` twice with one session: through ``ResilientSession``
(which takes the shortcut of :mod:`resilient_session._prepare` when it applies) and through requests'
own ``Session.prepare_request``; the two prepared requests must agree attribute by attribute, or both
must raise the same error. A last test sends both over a loopback server and compares the bytes it got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.filepost
from hypothesis import given
from hypothesis import strategies as st

from resilient_session import ResilientSession, _prepare
from resilient_session._compat.requests import OriginalSession
from tests.integration.raw_server import raw_server

URL = "http://127.0.0.1:9/v1/items?q=1"


def _jar_state(jar: CookieJar) -> tuple[Any, ...]:
    # Cookie objects compare by identity: compared by what they hold. The clock stamp (_now) is the time
    # of the prepare, present on both.
    policy = {k: v for k, v in vars(jar._policy).items() if k != "_now"}  # type: ignore[attr-defined]
    cookies = [(c.name, c.value, c.domain, c.path, c.expires) for c in jar]
    return type(jar), sorted(vars(jar)), type(jar._policy), policy, sorted(vars(jar._policy)), cookies  # type: ignore[attr-defined]


def _state(prepared: requests.PreparedRequest) -> dict[str, Any]:
    return {
        "type": type(prepared),
        "attributes": sorted(vars(prepared)),
        "method": prepared.method,
        "url": prepared.url,
        "headers type": type(prepared.headers),
        "headers": list(prepared.headers.items()),
        "body": prepared.body,
        "hooks": prepared.hooks,
        "hooks types": [type(v) for v in prepared.hooks.values()],
        "body position": prepared._body_position,  # type: ignore[attr-defined]
        "cookies": _jar_state(prepared._cookies),  # type: ignore[attr-defined]
    }


def _outcome(prepare: Callable[[], requests.PreparedRequest]) -> Any:
    try:
        return _state(prepare())
    except Exception as exc:  # the same error, or the comparison fails
        return (type(exc), str(exc))


def _both(session: requests.Session, make: Callable[[], requests.Request]) -> tuple[Any, Any]:
    ours = _outcome(lambda: session.prepare_request(make()))
    theirs = _outcome(lambda: OriginalSession.prepare_request(session, make()))
    return ours, theirs


@pytest.fixture
def shortcuts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, per prepare, whether the shortcut answered (True) or requests' steps ran (False)."""
    taken: list[bool] = []
    original = _prepare.prepare_simple

    def recording(session: Any, request: Any, *args: Any) -> Any:
        prepared = original(session, request, *args)
        taken.append(prepared is not None)
        return prepared

    monkeypatch.setattr(_prepare, "prepare_simple", recording)
    return taken


@pytest.fixture(autouse=True)
def _no_netrc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))


def _session(**options: Any) -> ResilientSession:
    return ResilientSession(request_id_header=None, **options)


@pytest.mark.parametrize("method", ["GET", "get", "HEAD", "POST", "put", "PATCH", "DELETE", "OPTIONS"])
def test_methods_match_and_take_the_shortcut(method: str, shortcuts: list[bool]) -> None:
    session = _session()
    ours, theirs = _both(session, lambda: requests.Request(method, URL))
    assert ours == theirs
    assert shortcuts == [True]
    # A body-less POST/PUT/... gets "Content-Length: 0" from requests; GET and HEAD get none.
    assert ("Content-Length" in dict(ours["headers"])) == (method.upper() not in ("GET", "HEAD"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/",
        "HTTP://LOCALHOST:9/A B/ü?x=ä y#frag",
        "http://[::1]:9/path;params?a=1&a=2",
        "http://xn--nxasmq6b.example/",
        "http://ドメイン.テスト/パス",
    ],
)
def test_urls_are_prepared_as_requests_prepares_them(url: str, shortcuts: list[bool]) -> None:
    ours, theirs = _both(_session(), lambda: requests.Request("GET", url))
    assert ours == theirs
    assert shortcuts == [True]


@pytest.mark.parametrize(
    ("url", "shortcut"),
    [
        ("http://user:pass@127.0.0.1:9/", False),  # credentials in the URL: requests' auth step
        ("http://127.0.0.1:9/@x", False),
        ("http://", False),  # requests raises InvalidURL
        ("http://127.0.0.1:9999999/", False),
        ("127.0.0.1:9/x", True),  # kept as given by requests (no http scheme): a pure answer too
        ("ftp://h/x", True),
    ],
)
def test_credentials_in_url_and_invalid_urls(url: str, shortcut: bool, shortcuts: list[bool]) -> None:
    ours, theirs = _both(_session(), lambda: requests.Request("GET", url))
    assert ours == theirs
    assert shortcuts == [shortcut]


@pytest.mark.parametrize(
    "extra",
    [
        {"data": {"a": "1"}},
        {"data": b"raw"},
        {"data": iter([b"x"])},
        {"json": {"a": 1}},
        {"json": []},
        {"files": {"f": ("f.txt", b"x")}},
        {"params": {"a": "1"}},
        {"params": [("a", "1")]},
        {"cookies": {"c": "1"}},
        {"auth": ("user", "pass")},
        {"hooks": {"response": [lambda r, **kw: r]}},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_anything_but_the_simple_shape_goes_through_requests(
    extra: dict[str, Any], shortcuts: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(urllib3.filepost, "choose_boundary", lambda: "boundary")  # one per multipart body
    ours, theirs = _both(_session(), lambda: requests.Request("POST", URL, **extra))
    if "hooks" in extra:  # each prepare registers the hook function it was given: the same object
        assert [len(v) for v in ours["hooks"].values()] == [len(v) for v in theirs["hooks"].values()]
        ours.pop("hooks"), theirs.pop("hooks")
    if "data" in extra and not isinstance(extra["data"], (dict, bytes)):
        ours.pop("body"), theirs.pop("body")  # two generators: each prepare got its own
    assert ours == theirs
    assert shortcuts == [False]


def test_session_settings_that_change_the_request_go_through_requests(shortcuts: list[bool]) -> None:
    for change in (
        lambda s: s.cookies.set("c", "1"),
        lambda s: setattr(s, "auth", ("user", "pass")),
        lambda s: s.params.update(a="1"),
        lambda s: s.hooks["response"].append(lambda r, **kw: r),
        lambda s: setattr(s, "headers", {"Accept": "x"}),
    ):
        session = _session()
        change(session)
        ours, theirs = _both(session, lambda: requests.Request("GET", URL))
        if session.hooks["response"]:
            assert len(ours["hooks"]["response"]) == len(theirs["hooks"]["response"]) == 1
            ours.pop("hooks"), theirs.pop("hooks")
        assert ours == theirs
    assert shortcuts == [False] * 5


def test_a_netrc_entry_for_the_host_goes_through_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shortcuts: list[bool]
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login robot password s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    ours, theirs = _both(_session(), lambda: requests.Request("GET", URL))
    assert ours == theirs
    assert dict(ours["headers"])["Authorization"].startswith("Basic ")
    assert shortcuts == [False]
    session = _session()
    session.trust_env = False
    ours, theirs = _both(session, lambda: requests.Request("GET", URL))
    assert ours == theirs
    assert "Authorization" not in dict(ours["headers"])
    assert shortcuts == [False, True]


def test_session_header_changes_are_seen_by_the_next_request(shortcuts: list[bool]) -> None:
    session = _session()
    steps: list[Callable[[Any], object]] = [
        lambda h: h.update({"X-Team": "a"}),
        lambda h: h.update({"x-team": "b"}),  # same key, new spelling and value
        lambda h: h.pop("Accept"),
        lambda h: h.update({"Accept": "text/plain"}),  # back, at the end
        lambda h: h.update({"X-Empty": ""}),
        lambda h: h.clear(),
    ]
    for step in steps:
        step(session.headers)
        ours, theirs = _both(session, lambda: requests.Request("GET", URL))
        assert ours == theirs
    assert shortcuts == [True] * len(steps)


@pytest.mark.parametrize(
    ("session_headers", "request_headers"),
    [
        ({}, {"X-A": "1", "x-a": "2"}),
        ({"Accept": "a"}, {"accept": "b"}),  # the request's spelling, the session's position
        ({"Accept": "a", "X-B": "b"}, {"Accept": None}),  # None removes the session's header
        ({"Accept": None}, {"Accept": "b"}),  # a None session value, replaced by the request's
        ({"Accept": None}, {}),
        ({}, {"X-None": None}),
        ({"X-Bytes": b"v"}, {}),
        ({}, {b"X-Bytes-Name": "v"}),
        ({}, {"X-Bytes": b"v"}),
        ({}, {"X-Int": 1}),  # requests refuses it
        ({"X-Int": 1}, {}),
        ({}, {"X-Bad": "a\r\nInjected: 1"}),
        ({}, {" X-Space": "a"}),
        ({}, {"X-Lead": " a"}),
        ({"X-Bad": "a\nb"}, {"X-Bad": "fine"}),  # overridden before requests validates it
        ({}, {"Content-Length": "5"}),
        ({}, {"content-length": None}),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_header_merges_match_requests(
    session_headers: dict[Any, Any], request_headers: dict[Any, Any], method: str
) -> None:
    session = _session()
    session.headers.update(session_headers)
    ours, theirs = _both(session, lambda: requests.Request(method, URL, headers=request_headers))
    assert ours == theirs


_NAMES = st.sampled_from(["Accept", "accept", "X-Id", "x-id", "Content-Length", "X Bad", "X-Ünï", "Host"])
_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "v", " lead", "trail ", "a\r\nb", "ü", "1"]),
    st.text(max_size=6),
    st.binary(max_size=4),
)


@given(
    session_headers=st.dictionaries(_NAMES, _VALUES, max_size=4),
    request_headers=st.dictionaries(_NAMES, _VALUES, max_size=4),
    method=st.sampled_from(["GET", "post", "HEAD", "DELETE"]),
)
def test_any_header_combination_matches_requests(
    session_headers: dict[str, Any], request_headers: dict[str, Any], method: str
) -> None:
    session = _session()
    session.headers.update(session_headers)
    ours, theirs = _both(session, lambda: requests.Request(method, URL, headers=request_headers))
    assert ours == theirs


def test_the_request_id_header_is_merged_like_any_request_header(shortcuts: list[bool]) -> None:
    session = ResilientSession()
    prepared = session.prepare_request(requests.Request("GET", URL))
    request_id = prepared.headers["X-Request-ID"]
    assert len(request_id) == 32
    again = OriginalSession.prepare_request(
        session, requests.Request("GET", URL, headers={"X-Request-ID": request_id})
    )
    assert _state(prepared) == _state(again)
    assert shortcuts == [True]


def test_replaced_prepare_steps_run_requests_path(
    monkeypatch: pytest.MonkeyPatch, shortcuts: list[bool]
) -> None:
    seen: list[str] = []
    original = requests.PreparedRequest.prepare_headers

    def prepare_headers(self: requests.PreparedRequest, headers: Any) -> None:
        seen.append("called")
        original(self, headers)

    monkeypatch.setattr(requests.PreparedRequest, "prepare_headers", prepare_headers)
    _session().prepare_request(requests.Request("GET", URL))
    assert seen == ["called"]
    assert shortcuts == [False]


def test_prepared_requests_share_nothing_mutable() -> None:
    session = _session()
    first = session.prepare_request(requests.Request("GET", URL))
    second = session.prepare_request(requests.Request("GET", URL))
    first.headers["X-Changed"] = "1"
    first.hooks["response"].append(print)
    first._cookies.set("c", "1")  # type: ignore[attr-defined]
    assert "X-Changed" not in second.headers and "X-Changed" not in session.headers
    assert second.hooks == {"response": []}
    assert len(second._cookies) == 0  # type: ignore[attr-defined]
    third = session.prepare_request(requests.Request("GET", URL))
    assert "X-Changed" not in third.headers


# -- on the wire ------------------------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback server that records each request's bytes up to the end of its headers."""
    with raw_server() as (base, _, received):
        yield base, received


def test_the_server_receives_the_same_bytes(recorder: tuple[str, list[bytes]], shortcuts: list[bool]) -> None:
    base, received = recorder
    session = _session()
    session.headers["X-Team"] = "payments"
    session.send(session.prepare_request(requests.Request("DELETE", base + "/v1/items/7?force=1")))
    session.send(
        OriginalSession.prepare_request(session, requests.Request("DELETE", base + "/v1/items/7?force=1"))
    )
    assert len(received) == 2
    assert received[0] == received[1]
    assert b"Content-Length: 0\r\n" in received[0] and b"X-Team: payments\r\n" in received[0]
    assert shortcuts == [True]


def test_a_wrapped_prepare_request_of_requests_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    # As an instrumentation library wraps it: every session, ours included, goes through the wrapper.
    seen: list[str] = []
    original = OriginalSession.prepare_request

    def wrapped(self: requests.Session, request: requests.Request) -> requests.PreparedRequest:
        seen.append(str(request.url))
        return original(self, request)

    monkeypatch.setattr(OriginalSession, "prepare_request", wrapped)
    prepared = _session().prepare_request(requests.Request("GET", URL))
    assert seen == [URL]
    assert prepared.url == URL


def test_a_header_removed_then_set_again_keeps_its_place() -> None:
    # Found by the property test above: requests merges every header, then drops the None values.
    ours, theirs = _both(
        _session(), lambda: requests.Request("GET", URL, headers={"Accept": None, "accept": ""})
    )
    assert ours == theirs
    assert [name for name, _ in ours["headers"]][2] == "accept"


@pytest.mark.parametrize(
    ("request_headers", "session_headers"),
    [
        ({}, {}),
        ({"X-Other": "1"}, {}),
        ({"x-request-id": "mine"}, {}),  # the request names it: left as it is
        ({"X-Request-ID": None}, {}),  # named with None: no header at all
        ({}, {"X-Request-Id": "fixed"}),  # the session names it
        ({"X-Request-ID": None}, {"X-Request-ID": "fixed"}),
    ],
)
def test_the_request_id_in_the_shortcut_is_what_with_request_id_gives(
    request_headers: dict[str, Any], session_headers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient_session.observe import request_id as request_id_module

    monkeypatch.setattr(request_id_module, "_random_bits", lambda bits: 0xABC)  # the same id each time
    session = ResilientSession()
    session.headers.update(session_headers)
    ours = _outcome(lambda: session.prepare_request(requests.Request("GET", URL, headers=request_headers)))
    with_id = request_id_module.with_request_id(
        requests.Request("GET", URL, headers=request_headers), "X-Request-ID", session.headers
    )
    theirs = _outcome(lambda: OriginalSession.prepare_request(session, with_id))
    assert ours == theirs


def test_a_bound_request_id_is_sent_and_an_invalid_one_refused_as_requests_refuses_it() -> None:
    from resilient_session.observe import bind_request_id

    session = ResilientSession()
    with bind_request_id("incoming-7"):
        assert session.prepare_request(requests.Request("GET", URL)).headers["X-Request-ID"] == "incoming-7"
    with bind_request_id("bad\r\nInjected: 1"), pytest.raises(requests.exceptions.InvalidHeader):
        session.prepare_request(requests.Request("GET", URL))


def test_a_body_whose_truth_is_ambiguous_is_left_to_requests(shortcuts: list[bool]) -> None:
    class Ambiguous(list[bytes]):  # as a DataFrame: asking its truth or comparing it raises
        def __bool__(self) -> bool:
            raise ValueError("ambiguous")

        def __eq__(self, other: object) -> bool:
            raise ValueError("ambiguous")

        __hash__ = None

    ours, theirs = _both(_session(), lambda: requests.Request("POST", URL, data=Ambiguous([b"a"])))
    assert ours == theirs
    assert shortcuts == [False]
