"""What the package logs in an application that configured logging, and in one that never did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.upstream import Reply, Upstream

ROOT = Path(__file__).resolve().parents[1]

# A retried call (503 then 200), then a circuit that opens (two 502s in a row): both log WARNINGs.
CALLS = """
import sys
from resilient_session import CircuitBreaker, ResilientSession, RetryPolicy

session = ResilientSession(
    retry=RetryPolicy(3, backoff_factor=0),
    breaker=CircuitBreaker(consecutive_failures=2, failure_rate_threshold=None),
)
print(session.get(sys.argv[1]).status_code)
print(session.get(sys.argv[2]).status_code, session.get(sys.argv[2]).status_code)
"""


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )


def script(upstream: Upstream) -> tuple[str, str]:
    flaky = upstream.script("/flaky", Reply(503), Reply(200))
    down = upstream.script("/down", Reply(502))
    return flaky, down


@pytest.mark.integration
def test_an_application_that_never_configured_logging_prints_nothing(upstream: Upstream) -> None:
    flaky, down = script(upstream)
    result = run(CALLS, flaky, down)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "502", "502"]
    assert result.stderr == ""
    assert upstream.count("/flaky") == 2  # the call really was retried
    assert upstream.count("/down") == 8  # and the second host-level failure opened the circuit


@pytest.mark.integration
def test_an_application_that_configured_logging_sees_the_warnings(upstream: Upstream) -> None:
    flaky, down = script(upstream)
    result = run("import logging\nlogging.basicConfig()\n" + CALLS, flaky, down)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert next(line for line in lines if "retrying GET" in line).startswith(
        "WARNING:resilient_session:retrying GET " + flaky + " (attempt 2, reason: status 503"
    )
    assert any(
        line.startswith("WARNING:resilient_session:circuit ") and "closed -> open" in line for line in lines
    )
    assert upstream.count("/flaky") == 2


@pytest.mark.integration
def test_importing_the_package_touches_no_other_logger() -> None:
    code = """
import logging
import requests  # urllib3 and requests add their own NullHandlers when imported

names = ("", "urllib3", "urllib3.connectionpool", "requests")
def seen():
    return {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level) for n in names}
before = seen()
import resilient_session
ours = logging.getLogger("resilient_session").handlers
print(before == seen(), [type(h).__name__ for h in ours], logging.lastResort is not None)
"""
    result = run(code)
    assert result.stdout.split() == ["True", "['NullHandler']", "True"]


def observability_snippet() -> str:
    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    logging_section = text.split("## Logging", 1)[1]
    match = re.search(r"```python\n(.*?)```", logging_section, re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.integration
def test_the_documented_format_works_for_every_logger(upstream: Upstream) -> None:
    flaky = upstream.script("/flaky", Reply(503), Reply(200))
    code = observability_snippet() + textwrap.dedent(
        """
        import sys
        from resilient_session import ResilientSession, RetryPolicy

        logging.getLogger("myapp").warning("an app record")
        logging.getLogger("urllib3.connectionpool").warning("a third-party record")
        ResilientSession(retry=RetryPolicy(3, backoff_factor=0), integration="billing").get(sys.argv[1])
        """
    )
    result = run(code, flaky)
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr and "KeyError" not in result.stderr
    lines = result.stderr.splitlines()
    assert "WARNING an app record [integration=- request_id=-]" in lines
    assert "WARNING a third-party record [integration=- request_id=-]" in lines
    retry = next(line for line in lines if line.startswith("WARNING retrying GET"))
    assert re.search(r"\[integration=billing request_id=[0-9a-f]{32}\]$", retry)
    summary = next(line for line in lines if line.startswith("INFO GET "))
    assert "-> 200" in summary and "(2 attempts)" in summary
    assert upstream.count("/flaky") == 2
