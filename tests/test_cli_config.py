"""``resilient-session check`` and ``resilient-session call``, against a loopback server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from resilient_session.cli import EXIT_BROKEN_PIPE, main
from tests.conftest import free_port
from tests.integration.upstream import Reply, Upstream

pytestmark = pytest.mark.integration

SECRET = "k-live-5f1d2c3b4a"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "integrations.toml"


@pytest.fixture
def config(tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOCAL_API_KEY", SECRET)
    path = tmp_path / "integrations.toml"
    path.write_text(
        f"""
[integrations.local]
base_url = "{upstream.url}/v1"
timeout = {{ connect = 1, read = 0.3 }}
retry = {{ total = 1, backoff_factor = 0 }}
headers = {{ Accept = "application/json" }}
auth = {{ type = "api_key", key_env = "LOCAL_API_KEY", header = "X-API-Key" }}

[integrations.down]
base_url = "http://127.0.0.1:{free_port()}"
retry = false
""",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- check --------------------------------------------------------------------------------------------


def test_check_prints_each_policy_and_env_var_names_never_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_API_TOKEN", SECRET)
    monkeypatch.delenv("CRM_API_KEY", raising=False)
    code, out, err = run(capsys, "check", str(EXAMPLE))
    assert code == 0
    assert "3 integrations, valid" in out
    assert "[billing]" in out and "[crm]" in out and "[identity]" in out
    assert "connect 3.05 s, read 20 s" in out and "total=4, backoff_factor=0.5" in out
    assert "$BILLING_API_TOKEN (set)" in out and "$CRM_API_KEY (NOT SET)" in out
    assert "CRM_API_KEY is not set" in err
    assert SECRET not in out + err


def test_check_json_output(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_API_TOKEN", SECRET)
    monkeypatch.delenv("CRM_API_KEY", raising=False)
    code, out, _ = run(capsys, "check", "--json", str(EXAMPLE))
    policies = json.loads(out)
    assert code == 0 and set(policies) == {"billing", "crm", "identity"}
    billing, crm, identity = policies["billing"], policies["crm"], policies["identity"]
    # Numbers are numbers: a script can compare them without parsing text.
    assert billing["timeout"] == {"connect": 3.05, "read": 20.0}
    assert crm["timeout"] == {"connect": 10.0, "read": 10.0}
    assert billing["deadline"] == 30 and crm["deadline"] is None
    assert billing["retry"]["total"] == 4 and billing["retry"]["backoff_max"] == 10
    assert billing["retry"]["status_forcelist"] == [429, 502, 503, 504]
    assert billing["breaker"]["open_wait"] == 5 and billing["breaker"]["failure_statuses"] == [502, 503, 504]
    assert crm["bulkhead"] == {"max_concurrent": 5, "max_wait": 0.5, "name": None}
    assert identity["budget"] is None and billing["bulkhead"] is None
    assert billing["raise_for_status"] is True and crm["raise_for_status"] is False
    assert billing["auth"] == {"type": "bearer", "env": {"BILLING_API_TOKEN": True}}
    assert crm["auth"]["env"] == {"CRM_API_KEY": False} and crm["auth"]["header"] == "X-API-Key"
    assert identity["store"]["type"] == "redis" and identity["store"]["env"] == {"REDIS_URL": False}
    assert SECRET not in out
    for value in (billing["timeout"]["connect"], billing["deadline"], crm["bulkhead"]["max_wait"]):
        assert isinstance(value, (int, float)) and not isinstance(value, bool)


def test_check_shows_every_disabled_policy_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "off.toml"
    path.write_text(
        "[integrations.off]\nbase_url = 'http://127.0.0.1:9'\nretry = false\nbreaker = false\n"
        "budget = false\nbulkhead = false\ndeadline = false\n",
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "check", "--json", str(path))
    off = json.loads(out)["off"]
    assert code == 0
    assert [off[k] for k in ("retry", "breaker", "budget", "bulkhead", "deadline")] == [None] * 5
    code, out, _ = run(capsys, "check", str(path))
    lines = {line.split()[0]: line.split(None, 1)[1] for line in out.splitlines()[3:] if line.strip()}
    assert code == 0 and [lines[k] for k in ("retry", "breaker", "budget", "bulkhead")] == ["off"] * 4
    assert lines["deadline"] == "none"


def test_check_require_env_fails_when_a_variable_is_unset(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("BILLING_API_TOKEN", "IDENTITY_CLIENT_ID", "IDENTITY_CLIENT_SECRET", "REDIS_URL"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("CRM_API_KEY", raising=False)
    code, out, err = run(capsys, "check", "--require-env", str(EXAMPLE))
    assert code == 3 and "integrations.crm.auth.key_env: environment variable CRM_API_KEY is not set" in err
    # The verdict printed agrees with the exit code.
    assert out.splitlines()[0] == f"{EXAMPLE}: 3 integrations, INVALID: 1 environment variable not set"
    assert "valid" not in out.splitlines()[0].replace("INVALID", "")

    code, out, _ = run(capsys, "check", str(EXAMPLE))  # without --require-env: usable, with a warning
    assert code == 0
    assert out.splitlines()[0] == f"{EXAMPLE}: 3 integrations, valid (1 environment variable not set)"

    monkeypatch.setenv("CRM_API_KEY", "x")
    code, out, err = run(capsys, "check", "--require-env", str(EXAMPLE))
    assert (code, out.splitlines()[0], err) == (0, f"{EXAMPLE}: 3 integrations, valid", "")


def test_check_lists_every_problem_of_an_invalid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[integrations.a]\nbase_url = "https://a.example.com"\nretry = { total = "three" }\n'
        'auth = { type = "bearer", token = "literal-secret-value" }\n',
        encoding="utf-8",
    )
    code, out, err = run(capsys, "check", str(path))
    assert code == 3 and out == ""
    assert 'integrations.a.retry.total: expected an integer, got "three"' in err
    assert "integrations.a.auth.token: secret values must not be written" in err
    assert "literal-secret-value" not in err


# -- call ---------------------------------------------------------------------------------------------


def test_call_prints_the_normalized_response(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.script("/v1/users/42", Reply(200, body=b'{"id": 42, "name": "Ada"}'))
    code, out, _ = run(capsys, "call", str(config), "local", "GET", "/users/42")
    document = json.loads(out)
    assert code == 0
    assert document["ok"] is True and document["status"] == 200 and document["format"] == "json"
    assert document["data"] == {"id": 42, "name": "Ada"}
    assert document["error"] is None and document["attempts"] == 1
    assert document["url"] == f"{upstream.url}/v1/users/42" and document["method"] == "GET"
    (sent,) = upstream.calls["/v1/users/42"]
    assert sent.headers["X-API-Key"] == SECRET and sent.headers["Accept"] == "application/json"
    assert sent.headers["X-Request-ID"]
    assert SECRET not in out


def test_call_sends_a_json_body_and_headers(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.script("/v1/orders", Reply(201, body=b'{"id": "o-1"}'))
    code, out, _ = run(
        capsys, "call", str(config), "local", "post", "/orders", "--json", '{"qty": 2}', "-H", "X-Trace: t1"
    )
    assert code == 0 and json.loads(out)["data"] == {"id": "o-1"}
    (sent,) = upstream.calls["/v1/orders"]
    assert sent.method == "POST" and json.loads(sent.body) == {"qty": 2}
    assert sent.headers["Content-Type"] == "application/json" and sent.headers["X-Trace"] == "t1"


def test_call_retries_as_configured(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.script("/v1/flaky", Reply(503), Reply(200))
    code, out, _ = run(capsys, "call", str(config), "local", "GET", "/flaky")
    assert code == 0 and json.loads(out)["attempts"] == 2 and upstream.count("/v1/flaky") == 2


@pytest.mark.parametrize(("status", "code"), [(404, 4), (401, 4), (500, 5)])
def test_call_exit_code_reflects_an_error_status(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str], status: int, code: int
) -> None:
    upstream.script("/v1/x", Reply(status, body=b'{"error": {"code": "nope", "message": "no such thing"}}'))
    exit_code, out, _ = run(capsys, "call", str(config), "local", "GET", "/x")
    document = json.loads(out)
    assert exit_code == code and document["status"] == status and document["ok"] is False
    assert document["error"]["code"] == "nope" and document["error"]["message"] == "no such thing"


def test_call_timeout_is_exit_6(config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]) -> None:
    upstream.script("/v1/slow", Reply(hang=True))
    code, out, _ = run(capsys, "call", str(config), "local", "GET", "/slow")
    error = json.loads(out)["error"]
    assert (
        code == 6 and error["type"] == "APIReadTimeout" and error["attempts"] == 1
    )  # read timeouts are not retried by default


def test_call_connection_refused_is_exit_7(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "call", str(config), "down", "GET", "/")
    assert code == 7 and json.loads(out)["error"]["type"] == "APIConnectionError"


def test_call_malformed_body_is_exit_8(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.script("/v1/broken", Reply(200, body=b'{"id": 4'))
    code, out, _ = run(capsys, "call", str(config), "local", "GET", "/broken")
    document = json.loads(out)
    assert code == 8 and document["error"]["code"] == "malformed_response" and document["data"] is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, body=b'{"id": 42, "name": "x"}', reset="mid"),
        Reply(200, body=b'{"id": 4', content_length=400),
    ],
)
def test_call_body_broken_mid_way_is_exit_8_not_unexpected(
    config: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str], reply: Reply
) -> None:
    upstream.script("/v1/cut", reply)
    code, out, _ = run(capsys, "call", str(config), "local", "GET", "/cut")
    assert code == 8 and json.loads(out)["error"]["type"] == "IncompleteBodyError"


def test_call_usage_and_configuration_errors(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "call", str(config), "local", "POST", "/x", "--json", "{not json")
    assert code == 2 and "--json is not valid JSON" in err
    code, _, err = run(capsys, "call", str(config), "nope", "GET", "/")
    assert code == 3 and "no integration 'nope'" in err and "defined: down, local" in err
    monkeypatch.delenv("LOCAL_API_KEY")
    code, _, err = run(capsys, "call", str(config), "local", "GET", "/")
    assert code == 3 and "LOCAL_API_KEY is not set" in err


def test_call_with_an_unusable_method_or_path_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "call", str(config), "local", "G ET", "/x")
    assert code == 2 and out == "" and "not an HTTP method" in err
    code, out, err = run(capsys, "call", str(config), "local", "GET", "http://[bad/x?api_key=leaked")
    assert code == 2 and out == "" and "Traceback" not in err and "leaked" not in err
    code, out, err = run(capsys, "call", str(config), "local", "GET", "ftp://127.0.0.1/x")
    assert code == 2 and "No connection adapters" in err


@pytest.mark.parametrize(("status", "code"), [(503, 5), (429, 4)])
def test_call_retries_exhausted_on_a_status_exits_by_that_status(
    tmp_path: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str], status: int, code: int
) -> None:
    # raise_on_status = true turns the last retryable answer into RetryExhaustedError, not a status error.
    path = tmp_path / "integrations.toml"
    path.write_text(
        f"""
[integrations.strict]
base_url = "{upstream.url}"
retry = {{ total = 1, backoff_factor = 0, raise_on_status = true }}
""",
        encoding="utf-8",
    )
    upstream.script("/busy", Reply(status, headers={"Retry-After": "0"}), Reply(status))
    exit_code, out, _ = run(capsys, "call", str(path), "strict", "GET", "/busy")
    error = json.loads(out)["error"]
    assert (exit_code, error["type"], error["status"], error["attempts"]) == (
        code,
        "RetryExhaustedError",
        status,
        2,
    )


# -- a reader that goes away (``| head``) -------------------------------------------------------------


def _cli(*argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "resilient_session", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )


def test_call_into_a_closed_pipe_exits_quietly(config: Path, upstream: Upstream) -> None:
    # About 1 MB of JSON: far more than a pipe buffer, so the writes are still going when the reader leaves.
    rows = b",".join(b'{"id": %d, "name": "row number %d"}' % (i, i) for i in range(30_000))
    upstream.script("/v1/rows", Reply(200, body=b"[" + rows + b"]"))
    process = _cli("call", str(config), "local", "GET", "/rows")
    assert process.stdout is not None and process.stderr is not None
    head = process.stdout.read(100)  # what `| head -c 100` reads before it exits
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert head.startswith(b"{")
    assert err == b""  # no BrokenPipeError traceback, no "Exception ignored" at exit
    assert upstream.count("/v1/rows") == 1


def test_check_into_a_closed_pipe_exits_quietly() -> None:
    process = _cli("check", str(EXAMPLE))
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_a_shell_pipeline_into_head_shows_no_traceback(config: Path, upstream: Upstream) -> None:
    rows = b",".join(b'{"id": %d}' % i for i in range(60_000))
    upstream.script("/v1/rows", Reply(200, body=b"[" + rows + b"]"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    python, path = shlex.quote(sys.executable), shlex.quote(str(config))
    command = f"{python} -m resilient_session call {path} local GET /rows"
    result = subprocess.run(
        ["sh", "-c", command + " | head -n 3"], capture_output=True, cwd=ROOT, env=env, timeout=60
    )
    assert result.stdout.splitlines()[0] == b"{"
    assert len(result.stdout.splitlines()) == 3
    assert result.stderr == b""


# -- files no parser should choke on: one InvalidConfigError, exit 3, no traceback -------------------------

VALID = '[integrations.api]\nbase_url = "https://api.example.com"\n'
HOSTILE_FILES = {
    "utf-16 with BOM": VALID.encode("utf-16"),
    "utf-16-be without BOM": VALID.encode("utf-16-be"),
    "latin-1": ("# caf\xe9\n" + VALID).encode("latin-1"),
    "lone continuation byte": b"\x80" + VALID.encode(),
    "50k nested arrays": (VALID + "x = " + "[" * 50_000 + "]" * 50_000 + "\n").encode(),
    "50k nested inline tables": (VALID + "x = " + "{a = " * 50_000 + "1" + " }" * 50_000 + "\n").encode(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
@pytest.mark.parametrize("command", ["check", "call"])
def test_an_unparseable_file_is_one_invalid_config_error_and_exit_3(
    tmp_path: Path, name: str, command: str
) -> None:
    import os
    import subprocess
    import sys

    import resilient_session

    path = tmp_path / "integrations.toml"
    path.write_bytes(HOSTILE_FILES[name])
    argv = [str(path)] if command == "check" else [str(path), "api", "GET", "/x"]
    root = str(Path(resilient_session.__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-m", "resilient_session", command, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("1 problem in") == 1, done.stderr


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    from resilient_session.config import load_config

    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert set(load_config(path)) == {"api"}


def test_check_prints_the_worst_case_of_each_integration(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient_session._worst_case import worst_case
    from resilient_session.config import load_config

    monkeypatch.setenv("BILLING_API_TOKEN", SECRET)
    code, out, _ = run(capsys, "check", str(EXAMPLE))
    assert code == 0
    lines = {
        name: next(line for line in block.splitlines() if line.strip().startswith("worst_case"))
        for name, block in (part.split("]", 1) for part in out.split("\n[")[1:])
    }
    assert set(lines) == {"billing", "crm", "identity"}
    for name, config in load_config(EXAMPLE).items():
        wait = config.bulkhead.max_wait if config.bulkhead is not None else 0.0
        expected = worst_case(config.timeout, config.retry, config.deadline, bulkhead_wait=wait)
        assert lines[name].split(None, 1)[1] == expected.describe()
    # By hand, from the example file: billing has a deadline; crm is timeout = 10, retry = 2 and a
    # bulkhead waiting 0.5 s; identity keeps the default timeouts with total = 3.
    assert lines["billing"].split(None, 1)[1].startswith("30 s (the deadline; without it 155.25 s per URL")
    assert "120.5 s per URL = bulkhead 0.5 s + 3 attempts x (10 + 10) s + waits 30 + 30 s" in lines["crm"]
    assert "222.2 s per URL = 4 attempts x (3.05 + 30) s + waits 30 + 30 + 30 s" in lines["identity"]
    assert "bounded only by a deadline" in lines["identity"]

    code, out, _ = run(capsys, "check", "--json", str(EXAMPLE))
    policies = json.loads(out)
    assert policies["billing"]["worst_case"] == {"seconds": 30, "per_url": pytest.approx(155.25)}
    assert policies["crm"]["worst_case"] == {"seconds": pytest.approx(120.5), "per_url": pytest.approx(120.5)}


def test_the_installed_command_prints_the_worst_case_too(tmp_path: Path) -> None:
    path = tmp_path / "integrations.toml"
    path.write_text('[integrations.plain]\nbase_url = "https://api.example.com"\n', encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "resilient_session", "check", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.strip().startswith("worst_case")]
    assert "222.2 s per URL = 4 attempts x (3.05 + 30) s + waits 30 + 30 + 30 s" in line
