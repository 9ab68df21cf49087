"""resilient_session._compat.requests: requests' own Session, whatever replaced ``requests.Session``."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import requests

from resilient_session._compat.requests import OriginalSession, original_session_class


def test_the_original_session_class_is_requests_own() -> None:
    assert OriginalSession is original_session_class() is requests.sessions.Session
    assert OriginalSession.__module__ == "requests.sessions"


def test_importing_after_install_cache_does_not_bake_the_cache_in(tmp_path: object) -> None:
    """requests_cache.install_cache() before the import: ResilientSession still derives from requests'
    own Session, takes its own keywords, and does not cache unless asked to."""
    script = textwrap.dedent(
        """
        import requests, requests_cache
        requests_cache.install_cache(backend="memory")
        from resilient_session import ResilientSession
        from resilient_session._compat.requests import OriginalSession
        assert requests.Session is not OriginalSession
        assert OriginalSession.__module__ == "requests.sessions"
        assert not issubclass(ResilientSession, requests_cache.CacheMixin), ResilientSession.__mro__
        session = ResilientSession(base_url="http://127.0.0.1:9", timeout=1)
        assert session.timeout == 1 and not hasattr(session, "cache")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
