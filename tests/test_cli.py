"""The ``resilient-session`` command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resilient_session import cli
from resilient_session.cli import demo as _demo

# -- the command itself -----------------------------------------------------------------------------


def test_without_a_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_module_entry_point_shows_the_demo_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "resilient_session", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "demo" in result.stdout


# -- demo -------------------------------------------------------------------------------------------


def _side(name: str, labels: list[str], typed: set[str], wall: float, hits: int) -> _demo.SideResult:
    outcomes = [_demo.Outcome(label, typed=label in typed) for label in labels]
    return _demo.SideResult(name, outcomes, wall_time=wall, dead_host_hits=hits)


def test_render_counts_each_kind_of_outcome() -> None:
    script = (
        _demo.Step("flaky", "/fail/503?times=1"),
        _demo.Step("dead", None),
        _demo.Step("dead", None),
        _demo.Step("bad body", "/malformed-json"),
    )
    before = _side("requests.Session", ["HTTPError", "hung", "hung", "JSONDecodeError"], set(), 4.2, 2)
    after = _side(
        "ResilientSession",
        ["ok", "DeadlineExceededError", "CircuitOpenError", "MalformedResponseError"],
        {"DeadlineExceededError", "CircuitOpenError", "MalformedResponseError"},
        1.7,
        1,
    )
    after.events = ["circuit of the dead host: closed -> open (2 consecutive failures)"]

    report = _demo.render(before, after, script, watchdog=2)
    rows = {line.split("  ")[0].strip(): line.split() for line in report.splitlines() if "  " in line}

    assert rows["calls succeeded"][-2:] == ["0/4", "1/4"]
    assert rows["typed errors (APIError)"][-2:] == ["0", "3"]
    assert rows["raw errors"][-2:] == ["2", "0"]
    assert rows["hangs (no answer after 2 s)"][-2:] == ["2", "0"]
    assert rows["requests that hit the dead host"][-2:] == ["2", "1"]
    assert "hung x2" in report
    assert "DeadlineExceededError, CircuitOpenError" in report
    assert "avoided 2 hangs" in report
    assert "closed -> open" in report


@pytest.mark.integration
def test_demo_workload_shows_the_difference() -> None:
    script = (
        _demo.Step("503, 503, then 200", "/fail/503?times=2"),
        _demo.Step("reset, then 200", "/reset?times=1"),
        _demo.Step("malformed JSON", "/malformed-json"),
        _demo.Step("dead host", None),
        _demo.Step("dead host", None),
        _demo.Step("dead host", None),
    )
    before, after = _demo.run_demo(script=script, watchdog=2.5, progress=False)

    assert [o.label for o in before.outcomes] == [
        "HTTPError",
        "ConnectionError",
        "JSONDecodeError",
        "hung",
        "hung",
        "hung",
    ]
    assert not any(o.typed for o in before.outcomes)
    assert before.dead_host_hits == 3

    labels = [o.label for o in after.outcomes]
    assert labels[:3] == ["ok", "ok", "MalformedResponseError"]
    assert labels[5] == "CircuitOpenError"  # the breaker opened after two dead-host failures
    assert all(o.typed for o in after.outcomes[2:])
    assert _demo.HUNG not in labels
    assert after.dead_host_hits < before.dead_host_hits * 2
    assert any("open" in event for event in after.events)


def test_demo_rejects_a_watchdog_below_the_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--watchdog", "1"]) == 2
    assert "--watchdog must exceed" in capsys.readouterr().err


def test_demo_prints_the_report(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = {}

    def fake_run_demo(**kwargs: object) -> tuple[_demo.SideResult, _demo.SideResult]:
        seen.update(kwargs)
        labels = ["ok"] * len(_demo.SCRIPT)
        return _side("requests.Session", labels, set(), 1.0, 0), _side(
            "ResilientSession", labels, set(), 1.0, 0
        )

    monkeypatch.setattr(_demo, "run_demo", fake_run_demo)
    assert cli.main(["demo", "--no-progress", "--watchdog", "3"]) == 0
    assert seen == {"watchdog": 3.0, "progress": False}
    out = capsys.readouterr().out
    assert f"{len(_demo.SCRIPT)}/{len(_demo.SCRIPT)}" in out
    assert "hangs (no answer after 3 s)" in out


def test_demo_without_flask_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)  # makes "import flask" fail
    monkeypatch.delitem(sys.modules, "resilient_session.cli.demo")
    for name in [m for m in sys.modules if m.startswith("resilient_session.testing.chaos")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr("resilient_session.cli.demo", raising=False)
    monkeypatch.delattr("resilient_session.testing.chaos", raising=False)

    assert cli.main(["demo"]) == 2
    assert 'pip install "resilient-session[chaos]"' in capsys.readouterr().err
