"""The pytest plugin's fixtures, run inside a throw-away pytest session (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.integration

PLUGIN = "resilient_session.testing.pytest_plugin"
FIXTURES = ("chaos_server", "chaos_session", "no_backoff", "resilient_session")


@pytest.fixture
def opted_in(pytester: pytest.Pytester) -> pytest.Pytester:
    """A throw-away project whose conftest opts in, as docs/testing.md shows."""
    pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
    return pytester


def test_installing_the_package_changes_no_other_test_suite(pytester: pytest.Pytester) -> None:
    """No entry point: a suite that does not ask gets no fixture, no marker and no autouse reset."""
    result = pytester.runpytest("--fixtures")
    assert not any(f"{name} -- " in result.stdout.str() for name in FIXTURES)
    assert PLUGIN not in result.stdout.str()
    pytester.makepyfile(
        """
        import requests
        from resilient_session import CircuitBreaker

        BREAKER = CircuitBreaker(consecutive_failures=1, failure_rate_threshold=None)
        HOST = "https://api.example.test:443"

        def test_opens_the_circuit():
            BREAKER.record(BREAKER.acquire(HOST), error=requests.ConnectionError("down"))

        def test_state_is_the_suites_own_business():
            assert BREAKER.state(HOST).state.value == "open"  # nothing reset it behind the suite's back
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("how", ["conftest", "-p"])
def test_the_plugin_is_opt_in_by_conftest_or_command_line(pytester: pytest.Pytester, how: str) -> None:
    if how == "conftest":
        pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
        result = pytester.runpytest("--fixtures")
    else:
        result = pytester.runpytest("--fixtures", "-p", PLUGIN)
    # One at a time: pytest lists fixtures sorted by "file:line" as text, not in definition order.
    for name in FIXTURES:
        result.stdout.fnmatch_lines([f"{name} -- *pytest_plugin.py:*"])


def test_integration_marker_is_declared(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.integration
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest("-q", "--strict-markers", "-W", "error::pytest.PytestUnknownMarkWarning")
    result.assert_outcomes(passed=1)


def test_chaos_server_fixture_counts_and_resets_between_tests(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import requests

        URLS = []

        def test_first(chaos_server):
            URLS.append(chaos_server.url)
            assert requests.get(chaos_server.url + "/fail/503?times=1", timeout=2).status_code == 503
            assert chaos_server.calls("/fail/503") == 1

        def test_second_sees_fresh_counters(chaos_server):
            URLS.append(chaos_server.url)
            assert chaos_server.all_calls() == {}
            assert requests.get(chaos_server.url + "/fail/503?times=1", timeout=2).status_code == 503

        def test_one_server_for_the_whole_session(chaos_server):
            assert URLS == [chaos_server.url] * 2
            assert chaos_server.url.startswith("http://127.0.0.1:")
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=3)


def test_chaos_session_fixture_talks_to_the_chaos_server(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        from resilient_session import ResilientSession

        def test_relative_urls_reach_the_chaos_server(chaos_session, chaos_server, no_backoff):
            assert isinstance(chaos_session, ResilientSession)
            assert chaos_session.base_url == chaos_server.url
            assert chaos_session.get("/fail/503?times=2").status_code == 200
            assert chaos_server.calls("/fail/503") == 3
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)


def test_the_old_resilient_session_fixture_name_still_works_and_warns(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import pytest

        def test_old_name(resilient_session, chaos_server):
            assert resilient_session.base_url == chaos_server.url
        """
    )
    result = pytester.runpytest("-q", "-W", "error::DeprecationWarning")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*resilient_session fixture is renamed chaos_session*"])
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)


def test_in_memory_circuits_are_closed_again_between_tests(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import requests

        from resilient_session import CircuitBreaker

        BREAKER = CircuitBreaker(consecutive_failures=1, failure_rate_threshold=None)  # module-level state
        HOST = "https://api.example.test:443"

        def test_opens_the_circuit():
            permit = BREAKER.acquire(HOST)
            BREAKER.record(permit, error=requests.ConnectionError("down"))
            assert BREAKER.state(HOST).state.value == "open"

        def test_next_test_finds_it_closed():
            assert BREAKER.state(HOST).state.value == "closed"
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)


def test_no_backoff_skips_waits_but_keeps_retries(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import time
        from resilient_session import ResilientSession, RetryPolicy

        def test_backoff_and_retry_after_take_no_time(chaos_server, no_backoff):
            policy = RetryPolicy(total=3, backoff_factor=20, backoff_max=100, full_jitter=False)
            with ResilientSession(base_url=chaos_server.url, retry=policy) as session:
                started = time.monotonic()
                assert session.get("/fail/503?times=2").status_code == 200
                assert session.get("/fail/429?times=1&retry_after=7").status_code == 200
                took = time.monotonic() - started
            assert chaos_server.calls("/fail/503") == 3
            assert chaos_server.calls("/fail/429") == 2
            assert no_backoff == [20.0, 40.0, 7.0]
            assert no_backoff.total == 67.0
            assert took < 5
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)


def test_no_backoff_covers_plain_urllib3_retry(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import time
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        def test_plain_requests_with_urllib3_retry(chaos_server, no_backoff):
            retry = Retry(total=3, backoff_factor=30, status_forcelist=[503])
            with requests.Session() as session:
                session.mount("http://", HTTPAdapter(max_retries=retry))
                started = time.monotonic()
                answer = session.get(chaos_server.url + "/fail/503?times=2", timeout=2)
            assert answer.status_code == 200
            assert chaos_server.calls("/fail/503") == 3
            assert len(no_backoff) == 1 and no_backoff[0] > 0  # urllib3 waits only from the 2nd retry on
            assert time.monotonic() - started < 5
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)


def test_no_backoff_is_undone_after_the_test(opted_in: pytest.Pytester) -> None:
    pytester = opted_in
    pytester.makepyfile(
        """
        import time
        import resilient_session._attempts as retry_module

        def test_patched(no_backoff):
            assert retry_module.time is not time

        def test_restored():
            assert retry_module.time is time
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)


def _plugin_args() -> list[str]:
    # Loaded through its entry point once the package is installed; named here when it is not (an
    # editable install made before the entry point existed), never both (pytest refuses a plugin twice).
    from importlib.metadata import entry_points

    if any(ep.name == "resilient_session" for ep in entry_points(group="pytest11")):
        return []
    return ["-p", "resilient_session.testing.pytest_plugin"]


def test_process_wide_state_and_registrations_are_reset_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import requests

        from resilient_session import CircuitBreaker, registry

        HOST = "https://api.example.com:443"
        registry.register("kept", base_url="https://kept.example.com")  # at import: stays for every test

        def test_first_changes_everything():
            registry.register("added", base_url="https://added.example.com")
            registry.register("kept", base_url="https://changed.example.com", replace=True)
            breaker = CircuitBreaker(consecutive_failures=1)  # the process-wide store
            breaker.record(breaker.acquire(HOST), error=requests.ConnectionError("refused"))
            assert breaker.state(HOST).state.value == "open"

        def test_second_sees_none_of_it():
            assert sorted(registry.registered()) == ["kept"]
            assert registry.get("kept").base_url == "https://kept.example.com"
            assert CircuitBreaker().state(HOST).state.value == "closed"

        def test_third_unregisters():
            registry.unregister("kept")

        def test_fourth_has_it_back():
            assert sorted(registry.registered()) == ["kept"]
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:randomly", *_plugin_args())
    result.assert_outcomes(passed=4)


@pytest.mark.parametrize("in_conftest", [False, True], ids=["installed-by-a-test", "installed-by-conftest"])
def test_install_is_put_back_as_each_test_found_it(pytester: pytest.Pytester, in_conftest: bool) -> None:
    pytester.makeconftest(
        "import resilient_session\n\nresilient_session.install(all_origins=True)\n" if in_conftest else ""
    )
    pytester.makepyfile(
        f"""
        from requests.sessions import Session

        import resilient_session
        from resilient_session._install import state

        OWN = Session.__dict__["send"]
        INSTALLED = {in_conftest!r}

        def test_first_switches_it():
            if INSTALLED:
                resilient_session.uninstall()
                resilient_session.install()  # without all_origins: changed too
                resilient_session.uninstall()
            else:
                resilient_session.install(all_origins=True)
            assert state()[0] is not INSTALLED

        def test_second_finds_it_as_before():
            assert state() == (INSTALLED, INSTALLED)
            assert (Session.__dict__["send"] is OWN) is True
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:randomly", *_plugin_args())
    result.assert_outcomes(passed=2)
