"""The request-id header under `responses` matchers that compare every header (docs/testing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from resilient_session import ResilientSession
from resilient_session.observe import bind_request_id

URL = "https://api.example.com/v1/orders"

# What requests.Session sends by itself: a strict matcher written for it lists exactly these.
EVERY_HEADER = dict(requests.utils.default_headers())


def _strict(mock: responses.RequestsMock, headers: dict[str, str]) -> None:
    mock.get(URL, json={"ok": True}, match=[matchers.header_matcher(headers, strict_match=True)])


def test_a_strict_header_matcher_sees_the_extra_header() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        _strict(mock, EVERY_HEADER)
        with pytest.raises(requests.ConnectionError, match="Headers do not match"):
            ResilientSession().get(URL)
        assert len(mock.calls) == 1
        assert "X-Request-ID" in mock.calls[0].request.headers
        assert requests.Session().get(URL).status_code == 200  # the matcher itself is right


def test_request_id_header_none_turns_it_off() -> None:
    with responses.RequestsMock() as mock:
        _strict(mock, EVERY_HEADER)
        assert ResilientSession(request_id_header=None).get(URL).status_code == 200
        assert "X-Request-ID" not in mock.calls[0].request.headers


def test_the_attribute_turns_it_off_too() -> None:
    session = ResilientSession()
    session.request_id_header = None
    with responses.RequestsMock() as mock:
        _strict(mock, EVERY_HEADER)
        assert session.get(URL).status_code == 200


def test_false_in_the_integrations_file_turns_it_off(tmp_path: Path) -> None:
    path = tmp_path / "integrations.toml"
    path.write_text(
        '[integrations.orders]\nbase_url = "https://api.example.com/v1"\nrequest_id_header = false\n'
    )
    session = ResilientSession.from_config(path)
    assert session.request_id_header is None
    with responses.RequestsMock() as mock:
        _strict(mock, EVERY_HEADER)
        assert session.get("orders").status_code == 200


def test_or_the_matcher_lists_a_bound_request_id() -> None:
    with responses.RequestsMock() as mock:
        _strict(mock, {**EVERY_HEADER, "X-Request-ID": "test-0001"})
        with bind_request_id("test-0001"):
            assert ResilientSession().get(URL).status_code == 200


def test_a_non_strict_matcher_is_unaffected() -> None:
    with responses.RequestsMock() as mock:
        mock.get(URL, match=[matchers.header_matcher({"Accept": "*/*"})])
        assert ResilientSession().get(URL).status_code == 200


@pytest.mark.parametrize(
    "keys",
    [[], ["Accept"], ["X-Request-ID"], ["x-request-id"], [b"X-REQUEST-ID"], [b"Accept", "X-Other"]],
    ids=repr,
)
def test_the_header_look_up_finds_what_a_scan_of_every_key_finds(keys: list[str | bytes]) -> None:
    from requests.structures import CaseInsensitiveDict

    from resilient_session.observe.request_id import _lower, _names

    header = "X-Request-ID"
    scanned = any(_lower(key) == header.lower() for key in keys)
    mixed: dict[Any, str] = dict.fromkeys(keys, "v")  # requests' merge also accepts bytes keys
    assert _names(CaseInsensitiveDict(mixed), header) is scanned
    assert _names(dict.fromkeys(keys, "v"), header) is scanned
    assert _names([(key, "v") for key in keys], header) is scanned
    assert _names(CaseInsensitiveDict(mixed), "X-Request-\u2160D") is False  # not latin-1
