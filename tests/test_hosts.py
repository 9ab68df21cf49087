"""The per-host scope of the policies: host_key."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient_session import _hosts, stores
from resilient_session.stores import host_key


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://api.example.com/v1/x?token=secret", "https://api.example.com:443"),
        ("HTTP://API.Example.COM/", "http://api.example.com:80"),
        ("http://api.example.com:8080/a", "http://api.example.com:8080"),
        ("https://user:pw@api.example.com/", "https://api.example.com:443"),
        ("http://[::1]:9000/a", "http://[::1]:9000"),
        ("http://127.0.0.1/", "http://127.0.0.1:80"),
    ],
)
def test_host_key_is_scheme_host_port_and_nothing_secret(url: str, key: str) -> None:
    assert host_key(url) == key


def test_host_key_is_public_from_stores_and_its_old_module_path_warns() -> None:
    assert stores.host_key is _hosts.host_key
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from resilient_session.stores.base import host_key as old
    assert old is _hosts.host_key
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "resilient_session.stores" in str(caught[0].message)


def _cut_by_finding(url: str) -> str:
    # The origin cut as it was written before the regular expression: first "://", then "/?#".
    start = url.find("://")
    if start < 0:
        return url
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start + 3)
        if 0 <= found < end:
            end = found
    return url[:end]


@given(st.text(alphabet="htps:/?#@[]1.aB\n", max_size=40))
def test_the_origin_is_cut_where_finding_cut_it(url: str) -> None:
    from resilient_session._hosts import _ORIGIN

    match = _ORIGIN.match(url)
    assert (url if match is None else match.group()) == _cut_by_finding(url)
