"""Drift reporting: the once-per-process WARNING, the look-up of undeclared fields, ``ignore``."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import responses
from pydantic import BaseModel

from resilient_session import ResilientSession
from resilient_session.normalization import SchemaDrift, reset_drift_warnings

URL = "http://127.0.0.1:9/v1/users"


class User(BaseModel):
    id: str


class Users(BaseModel):
    users: list[User]
    label: str = ""


def _calls(body: Any, times: int, **options: Any) -> tuple[list[Any], list[SchemaDrift]]:
    drifts: list[SchemaDrift] = []
    session = ResilientSession(integration="crm", **options)
    session.events.on_schema_drift(drifts.append)
    with responses.RequestsMock() as mock:
        mock.get(URL, json=body)
        results = [session.get(URL).normalized.into(Users) for _ in range(times)]  # type: ignore[attr-defined]
    return results, drifts


def test_undeclared_json_fields_are_looked_for_again_after_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("resilient_session.normalization.drift.monotonic", lambda: now[0])
    body = {"users": [{"id": "a", "new": 1}]}
    _, drifts = _calls(body, 3)
    assert [d.unknown for d in drifts] == [("users[*].new",)]  # then not looked for: one validation
    now[0] += 59.0
    _, drifts = _calls(body, 1)
    assert drifts == []
    now[0] += 1.0
    _, drifts = _calls(body, 2)
    assert [d.unknown for d in drifts] == [("users[*].new",)]


def test_ignore_returns_what_validates_and_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    body = {"users": [{"id": "a"}, {"id": 5}, {"name": "x"}], "label": 7, "new": True}
    with caplog.at_level(logging.DEBUG, logger="resilient_session"):
        results, drifts = _calls(body, 2, drift="ignore")
    assert results[0] == results[1] == Users(users=[User(id="a")], label="")
    assert drifts == []
    assert not [r for r in caplog.records if "drift" in r.getMessage()]


def test_the_warning_is_once_per_integration_route_and_path(caplog: pytest.LogCaptureFixture) -> None:
    body = {"users": [{"id": 1}, {"id": 2}]}
    with caplog.at_level(logging.WARNING, logger="resilient_session"):
        _calls(body, 3, drift="warn")
        _calls({"users": [{"id": 3}], "label": 4}, 1, drift="warn")  # one new path: one new WARNING
        reset_drift_warnings()
        _calls(body, 1, drift="warn")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3
    assert messages[0].count("users[*].id:") == 1  # two items, one path
    assert "label:" in messages[1] and "users[*].id" not in messages[1]
    assert "users[*].id:" in messages[2]
    assert all(r.integration == "crm" for r in caplog.records if r.levelno == logging.WARNING)  # type: ignore[attr-defined]


def test_empty_xml_elements_are_empty_strings_unless_none_is_accepted() -> None:
    class Row(BaseModel):
        a: str
        b: str | None
        c: int | None

    with responses.RequestsMock() as mock:
        mock.get(URL, body=b"<row><a/><b/><c>  </c></row>", content_type="application/xml")
        row = ResilientSession().get(URL).normalized.into(Row)  # type: ignore[attr-defined]
    assert (row.a, row.b, row.c) == ("", None, None)


def test_racing_threads_log_the_first_report_exactly_once(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    from resilient_session.normalization import Mismatch
    from resilient_session.normalization.drift import report_drift

    report = SchemaDrift(
        "crm", "GET /v1/users", "Users", "warn", (Mismatch("users[0].id", "x", "integer", "t"),), (),
        "json", "GET", URL, 200, None, False,
    )  # fmt: skip
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        for _ in range(200):
            report_drift(report, None)

    for _ in range(20):
        reset_drift_warnings()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="resilient_session"):
            threads = [threading.Thread(target=go) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
