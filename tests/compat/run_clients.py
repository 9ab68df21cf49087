"""Run the unit suites of real API clients with ``requests.Session`` swapped for ``ResilientSession``.

For each client: download its released sdist at a pinned version (``pip download --no-deps --no-binary
:all:``), unpack it, build a dedicated venv with the client, its test dependencies and the
resilient-session checkout given by ``--repo``, then run the client's unit tests twice: once plain and
once with ``requests.Session`` swapped (the pytest plugin ``clients_swap.py`` beside this file, loaded
with ``-p`` so the swap happens before the client is imported). The report gives, per client, the tests
passing plain, the tests passing swapped, how many tests' calls reached the circuit breaker and the
retry budget, and every test that passed plain but not swapped, with the first lines of its failure.
A test whose swapped run retried a GET answered 502/503/504 (our stated default: requests sends it
once) is flagged as such.

Not part of CI. It takes about 3 minutes on 2 cores, the first run included (downloads and venv
builds add well under a minute; they are kept in ``~/.cache/resilient-session-compat``, ``--cache``
to change it). Most of it is PyGithub's suite run twice and tableauserverclient's swapped run, whose 36
tests that fail either way (their sdist lacks assets) call an unresolvable host that ours retries.

    python tests/compat/run_clients.py                       # every client, against this checkout
    python tests/compat/run_clients.py --repo ../other-checkout --client hvac
    python tests/compat/run_clients.py --json report.json --markdown report.md

Exit status: 0 when every test that passed plain also passed swapped (flagged 502/503/504 retries
excepted), 1 otherwise, 2 when a client could not be set up or its suite did not run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_REPO = HERE.parent.parent
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resilient-session-compat"

# Every venv gets the same requests and urllib3, whatever the client pins.
COMMON_PINS = ["requests==2.34.2", "urllib3==2.7.0"]
GATEWAY_REASON = "a GET answered 502/503/504 is retried by our default policy; requests sends it once"


@dataclass(frozen=True)
class Client:
    name: str
    dist: str
    version: str
    test_args: list[str]
    test_deps: list[str]
    mounts: str
    mocks: str
    extra_deps: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


CLIENTS: list[Client] = [
    Client(
        name="PyGithub",
        dist="PyGithub",
        version="2.10.0",
        test_args=["tests", "--ignore=openapi"],
        test_deps=[
            "pytest==8.4.2",
            "pytest-subtests==0.14.2",
            "responses==0.25.8",
            "parameterized==0.9.0",
            "more-itertools==10.8.0",
        ],
        mounts="yes: HTTPAdapter(max_retries=retry) on every session",
        mocks="responses (replay data)",
    ),
    Client(
        name="python-gitlab",
        dist="python-gitlab",
        version="8.6.0",
        test_args=["tests/unit"],
        # Its requirements-test.txt pins, less coverage and build tools.
        test_deps=[
            "pytest==9.1.1",
            "responses==0.26.3",
            "PyYAML==6.0.3",
            "anyio==4.15.1",
            "trio==0.34.0",
            "respx==0.23.1",
            "pytest-console-scripts==1.4.1",
        ],
        extra_deps=["gql==4.0.0", "httpx==0.28.1", "requests-toolbelt==1.0.0"],
        mounts="no",
        mocks="responses",
    ),
    Client(
        name="hvac",
        dist="hvac",
        version="2.4.0",
        test_args=["tests/unit_tests"],
        test_deps=[
            "pytest==8.4.2",
            "requests-mock==1.12.1",
            "parameterized==0.9.0",
            "pytest-mock==3.15.1",
        ],
        mounts="no (accepts a session)",
        mocks="requests_mock",
    ),
    Client(
        name="tableauserverclient",
        dist="tableauserverclient",
        version="0.42",
        test_args=["test"],
        test_deps=["pytest==8.4.2", "requests-mock==1.12.1", "pytest-subtests==0.14.2"],
        mounts="no (requests.session factory)",
        mocks="requests_mock",
    ),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, text=True, capture_output=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... failed ({result.returncode}):\n{tail}")
    return result


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def fetch_sdist(client: Client, cache: Path) -> Path:
    """The client's source tree, from its released sdist (downloaded and unpacked once)."""
    source = cache / "src" / client.key
    if source.is_dir():
        return source
    downloads = cache / "sdists" / client.key
    downloads.mkdir(parents=True, exist_ok=True)
    archives = sorted(downloads.glob("*.tar.gz"))
    if not archives:
        log(f"[{client.name}] downloading the sdist of {client.dist}=={client.version}")
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        run([*pip, f"{client.dist}=={client.version}", "-d", str(downloads)])
        archives = sorted(downloads.glob("*.tar.gz"))
    with tempfile.TemporaryDirectory(dir=cache) as tmp, tarfile.open(archives[0]) as archive:
        archive.extractall(tmp, filter="data")
        (top,) = Path(tmp).iterdir()
        source.parent.mkdir(parents=True, exist_ok=True)
        top.rename(source)
    return source


def ensure_venv(client: Client, source: Path, cache: Path) -> Path:
    """A venv with the client (from its sdist) and its test dependencies; rebuilt when they change."""
    spec = [*client.test_deps, *client.extra_deps, *COMMON_PINS, "setuptools>=77", "wheel"]
    digest = hashlib.sha256(json.dumps([sys.version, str(source), spec]).encode()).hexdigest()[:12]
    venv = cache / "venvs" / client.key
    marker = venv / ".compat-deps"
    if marker.is_file() and marker.read_text() == digest:
        return venv
    log(f"[{client.name}] building its venv")
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv_python(venv))
    run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([python, "-m", "pip", "install", "-q", str(source), *spec])
    marker.write_text(digest)
    return venv


def install_repo(venv: Path, repo: Path, cache: Path) -> None:
    """Install the resilient-session checkout at *repo* (a copy, so the checkout gets no build files)."""
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".venv")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        copy = Path(tmp) / "resilient-session"
        shutil.copytree(repo, copy, ignore=ignore)
        python = str(venv_python(venv))
        run([python, "-m", "pip", "install", "-q", "--no-build-isolation", str(copy), *COMMON_PINS])


def run_suite(client: Client, venv: Path, source: Path, swap: bool, out: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(
        RS_COMPAT_SWAP="1" if swap else "0",
        RS_COMPAT_OUT=str(out),
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
        PYTHONDONTWRITEBYTECODE="1",
    )
    cmd = [
        str(venv_python(venv)),
        "-m",
        "pytest",
        "-p",
        "loopback_guard",  # nothing a client's tests do may leave the machine
        "-p",
        "clients_swap",
        # Opt-in, as for any suite: circuits and budgets reset between the clients' tests.
        "-p",
        "resilient_session.testing.pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",  # the clients' own addopts add xdist, coverage or junit output
        "-q",
        "--no-header",
        "-rN",
        *client.test_args,
    ]
    out.unlink(missing_ok=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=source, env=env, text=True, capture_output=True, timeout=1800)
    elapsed = time.monotonic() - started
    (out.with_suffix(".log")).write_text(proc.stdout + proc.stderr)
    if not out.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"pytest wrote no results (exit {proc.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(out.read_text())
    data["seconds"] = round(elapsed, 1)
    return data


def compare(client: Client, plain: dict[str, Any], swapped: dict[str, Any]) -> dict[str, Any]:
    plain_tests: dict[str, Any] = plain["tests"]
    swapped_tests: dict[str, Any] = swapped["tests"]
    passed_plain = {n for n, t in plain_tests.items() if t["outcome"] == "passed"}
    passed_swapped = {n for n, t in swapped_tests.items() if t["outcome"] == "passed"}
    gateway, regressions = [], []
    for nodeid in sorted(passed_plain - passed_swapped):
        test = swapped_tests.get(nodeid, {"outcome": "not run", "failure": [], "retried_gateway": []})
        entry = {"test": nodeid, "outcome": test["outcome"], "failure": test["failure"]}
        if test.get("retried_gateway"):
            entry["retried"] = test["retried_gateway"]
            gateway.append(entry)
        else:
            regressions.append(entry)
    values = swapped_tests.values()
    return {
        "client": client.name,
        "version": client.version,
        "mounts_adapter": client.mounts,
        "mocks": client.mocks,
        "tests": len(plain_tests),
        "passed_plain": len(passed_plain),
        "passed_swapped": len(passed_swapped),
        "passed_swapped_of_plain": len(passed_plain & passed_swapped),
        "tests_with_calls": sum(1 for t in values if t.get("calls")),
        "reached_breaker": sum(1 for t in values if t.get("breaker")),
        "reached_budget": sum(1 for t in values if t.get("budget")),
        "gateway_retry_exceptions": gateway,
        "regressions": regressions,
        "fixed": sorted(passed_swapped - passed_plain),
        "rebound": swapped["rebound"],
        "plain_subclasses": swapped["plain_subclasses"],
        "seconds": {"plain": plain["seconds"], "swapped": swapped["seconds"]},
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| client | version | mounts its own adapter | tests | pass plain | pass swapped "
        "| with calls via ResilientSession | reached breaker / budget "
        "| listed exceptions (502/503/504 retried) | other regressions |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['client']} | {r['version']} |{' |' * 7} setup failed: {r['error'][:80]} |")
            continue
        lines.append(
            f"| {r['client']} | {r['version']} | {r['mounts_adapter']} | {r['tests']} | {r['passed_plain']} "
            f"| {r['passed_swapped_of_plain']} | {r['tests_with_calls']} "
            f"| {r['reached_breaker']} / {r['reached_budget']} "
            f"| {len(r['gateway_retry_exceptions'])} | {len(r['regressions'])} |"
        )
    for r in results:
        sections = (("502/503/504 retried", "gateway_retry_exceptions"), ("regression", "regressions"))
        for title, key in sections:
            for entry in r.get(key, []):
                lines.append("")
                lines.append(f"- {r['client']} {title}: `{entry['test']}` ({entry['outcome']})")
                if key == "gateway_retry_exceptions":
                    lines.append(f"  - {GATEWAY_REASON}; retried: {', '.join(entry['retried'])}")
                lines.extend(f"  - `{line}`" for line in entry["failure"][:5])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="resilient-session checkout to test")
    names = [c.name for c in CLIENTS]
    parser.add_argument("--client", action="append", choices=names, help="only this client (repeatable)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads, sources and venvs")
    parser.add_argument("--json", type=Path, help="also write the full report as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    args = parser.parse_args(argv)

    repo = args.repo.resolve()
    if not (repo / "resilient_session" / "session.py").is_file():
        parser.error(f"{repo} is not a resilient-session checkout")
    cache: Path = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    selected = [c for c in CLIENTS if not args.client or c.name in args.client]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for client in selected:
        try:
            source = fetch_sdist(client, cache)
            venv = ensure_venv(client, source, cache)
            install_repo(venv, repo, cache)
            runs = cache / "runs"
            runs.mkdir(exist_ok=True)
            log(f"[{client.name}] running its suite with plain requests")
            plain = run_suite(client, venv, source, False, runs / f"{client.key}-plain.json")
            log(f"[{client.name}] running its suite with ResilientSession swapped in")
            swapped = run_suite(client, venv, source, True, runs / f"{client.key}-swapped.json")
            results.append(compare(client, plain, swapped))
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            log(f"[{client.name}] failed: {exc}")
            results.append({"client": client.name, "version": client.version, "error": str(exc)})
    total = time.monotonic() - started
    table = markdown(results)
    print(table)
    print(f"total {total:.0f} s; per-run logs under {cache / 'runs'}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": round(total, 1), "results": results}, indent=1))
    if args.markdown:
        args.markdown.write_text(table)
    if any("error" in r for r in results):
        return 2
    return 1 if any(r["regressions"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
