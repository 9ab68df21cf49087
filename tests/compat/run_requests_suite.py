"""Run requests' own test suite twice, plain and with ``ResilientSession`` as ``requests.Session``.

A drop-in must not break what requests promises, so every test of requests' suite that passes with plain
requests has to pass with the swap too. The suite comes from the sdist of the *installed* requests
version; the two runs are compared test by test, and any test that passed plain but not swapped is a
regression (exit status 1). Exit status 2 means the comparison itself could not be trusted (the sdist
could not be had, a run collected nothing or failed to collect, a test tried to leave the machine, or
resilient-session's pytest plugin was not active in the swapped run).

    python tests/compat/run_requests_suite.py [--install-deps] [--workdir DIR] [-- PYTEST_ARGS...]

Arguments after ``--`` go to both pytest runs (``-- -k redirect`` to look at some tests only).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# Tests that cannot run without an address outside the loopback range; nothing else is deselected.
# (requests_swap.py refuses any other address anyway, and this script fails when a test not listed
# here tried one, so the list stays complete.)
DESELECT = (
    # Connect to TARPIT = 10.255.255.1, a non-routable private address, so that the connect hangs until
    # the connect timeout fires.
    "tests/test_requests.py::TestTimeout::test_connect_timeout",
    "tests/test_requests.py::TestTimeout::test_total_timeout_connect",
    # Looks up doesnotexist.google.com in DNS (a DNS server off the machine) to get a resolution error.
    "tests/test_requests.py::TestRequests::test_errors[http://doesnotexist.google.com-ConnectionError]",
    # Looks up the proxy host "non-resolvable-address" in DNS, expecting the look-up to fail.
    "tests/test_requests.py::TestRequests::test_proxy_error",
)

# requests' test extras that only its own CI uses (coverage, parallel runs).
_UNNEEDED = {"pytest-cov", "pytest-xdist"}

# What requests 2.32-2.34 list, for an sdist whose pyproject.toml has no test extra.
_FALLBACK_TEST_DEPS = ["PySocks", "pytest-httpbin==2.1.0", "httpbin~=0.10.0", "pytest-mock", "trustme"]


def _log(message: str = "") -> None:
    print(message, flush=True)


def installed_requests_version() -> str:
    return importlib.metadata.version("requests")


def fetch_sdist(version: str, workdir: Path) -> Path:
    """The unpacked sdist of requests *version* in *workdir* (downloaded once, then reused)."""
    tree = workdir / f"requests-{version}"
    if (tree / "tests").is_dir():
        return tree
    archives = sorted(workdir.glob(f"requests-{version}.tar.gz"))
    if not archives:
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", "--dest", str(workdir), f"requests=={version}"),
            ],
            check=True,
        )
        archives = sorted(workdir.glob(f"requests-{version}.tar.gz"))
    if not archives:
        raise SystemExit(f"pip download gave no requests-{version}.tar.gz in {workdir}")
    with tarfile.open(archives[0]) as archive:
        archive.extractall(workdir, filter="data")
    if not (tree / "tests").is_dir():
        raise SystemExit(f"{archives[0].name} has no tests/ folder")
    return tree


def suite_requirements(tree: Path, version: str) -> list[str]:
    """What requests' tests need, from the sdist's ``test`` extra (requests itself stays as installed)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    pyproject = tree / "pyproject.toml"
    extras: dict[str, list[str]] = {}
    if pyproject.is_file():
        extras = tomllib.loads(pyproject.read_text()).get("project", {}).get("optional-dependencies", {})
    requirements = []
    for requirement in extras.get("test") or _FALLBACK_TEST_DEPS:
        name = re.split(r"[\s\[<>=~!;]", requirement, maxsplit=1)[0]
        if name.lower() in _UNNEEDED:
            continue
        if name.lower() == "requests":  # requests[socks]: the extra, pinned to the installed version
            extra = re.search(r"\[[^\]]*\]", requirement)
            requirement = f"requests{extra.group(0) if extra else ''}=={version}"
        requirements.append(requirement)
    return requirements


def install_requirements(requirements: list[str]) -> None:
    _log(f"installing requests' test requirements: {' '.join(requirements)}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *requirements], check=True)


def run_suite(tree: Path, workdir: Path, name: str, swap: bool, pytest_args: list[str]) -> dict[str, Any]:
    """One pytest run of requests' suite; its per-test outcomes, as requests_swap.py recorded them."""
    outcomes = workdir / f"{name}.json"
    log_path = workdir / f"{name}.log"
    outcomes.unlink(missing_ok=True)
    command = [
        *(sys.executable, "-m", "pytest", "tests", "-p", "requests_swap", "-p", "no:cacheprovider"),
        # Opt-in, as for any suite: the reset of breaker state between tests.
        *("-p", "resilient_session.testing.pytest_plugin"),
        *("-q", "-rfE", "--resilient-outcomes", str(outcomes)),
        *(arg for nodeid in DESELECT for arg in ("--resilient-deselect", nodeid)),
        *(["--resilient-swap"] if swap else []),
        *pytest_args,
    ]
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    # This folder for the plugin, then the repository, so the resilient_session under test is this
    # checkout's. The sdist's folder comes first (python -m puts the working directory first), so its
    # tests package is the one imported.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(HERE), str(REPO), env.get("PYTHONPATH"))))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.run(
            command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    seconds = time.monotonic() - started
    summary = _summary_line(log_path)
    summary = summary or "no pytest summary"
    _log(f"  {name}: {summary} ({seconds:.1f}s, exit {process.returncode}, log {log_path})")
    if not outcomes.is_file():
        _log(log_path.read_text(encoding="utf-8", errors="replace")[-4000:])
        raise SystemExit(2)
    result: dict[str, Any] = json.loads(outcomes.read_text(encoding="utf-8"))
    result["wall_seconds"] = seconds
    return result


def _summary_line(log_path: Path) -> str:
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|error|no tests ran)\b", line) and " in " in line:
            return line.strip("= ")
    return ""


def _passed(outcome: str | None) -> bool:
    return outcome in ("passed", "xfailed")


def compare(plain: dict[str, Any], swapped: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(nodeid, swapped outcome, first lines of its failure) for each test passing plain but not swapped."""
    regressions = []
    for nodeid, entry in sorted(plain["outcomes"].items()):
        if not _passed(entry["outcome"]):
            continue
        theirs = swapped["outcomes"].get(nodeid)
        if theirs is None:
            regressions.append((nodeid, "not run", ""))
        elif not _passed(theirs["outcome"]):
            regressions.append((nodeid, theirs["outcome"], theirs.get("failure", "")))
    return regressions


#: A test this much slower with the swap is listed (its retries show up as time, not as a failure).
SLOWER_BY = 1.0


def slower_tests(plain: dict[str, Any], swapped: dict[str, Any]) -> list[tuple[str, float]]:
    """(nodeid, extra seconds) for tests passing both ways but at least SLOWER_BY slower swapped."""
    slower = []
    for nodeid, entry in plain["outcomes"].items():
        theirs = swapped["outcomes"].get(nodeid)
        if theirs is None or not (_passed(entry["outcome"]) and _passed(theirs["outcome"])):
            continue
        extra = theirs["duration"] - entry["duration"]
        if extra >= SLOWER_BY:
            slower.append((nodeid, extra))
    return sorted(slower, key=lambda item: -item[1])


def harness_problems(plain: dict[str, Any], swapped: dict[str, Any]) -> list[str]:
    """Reasons the comparison cannot be trusted."""
    problems = []
    for name, run in (("plain", plain), ("swapped", swapped)):
        if not any(_passed(entry["outcome"]) for entry in run["outcomes"].values()):
            problems.append(f"the {name} run passed no test")
        for error in run.get("collection_errors", []):
            problems.append(f"the {name} run could not collect {error['nodeid']}:\n{error['failure']}")
        for attempt in run["blocked"]:
            problems.append(
                f"{attempt['nodeid']} ({name}) tried to leave the machine ({attempt['event']} "
                f"{attempt['target']}): add it to DESELECT in {Path(__file__).name} if it needs that"
            )
    if not swapped.get("swapped"):
        problems.append("the swapped run did not swap requests.Session")
    if not swapped.get("resilient_session_plugin"):
        problems.append(
            "resilient-session's pytest plugin (breaker state reset between tests) was not active in the "
            "swapped run (it is loaded with -p resilient_session.testing.pytest_plugin)"
        )
    expected = str(REPO / "resilient_session")
    if swapped.get("resilient_session_file") and not swapped["resilient_session_file"].startswith(expected):
        problems.append(f"the swapped run imported {swapped['resilient_session_file']}, not {expected}")
    return problems


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="keep the sdist, logs and outcomes here (reused)")
    parser.add_argument("--install-deps", action="store_true", help="pip install what requests' tests need")
    options = parser.parse_args(argv)

    started = time.monotonic()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="requests-suite-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        version = installed_requests_version()
        _log(f"requests {version}: fetching its test suite into {workdir}")
        tree = fetch_sdist(version, workdir)
        if options.install_deps:
            install_requirements(suite_requirements(tree, version))
        _log("running requests' test suite:")
        plain = run_suite(tree, workdir, "plain", swap=False, pytest_args=pytest_args)
        swapped = run_suite(tree, workdir, "swapped", swap=True, pytest_args=pytest_args)
        if plain["requests_file"] != swapped["requests_file"] or plain["requests_version"] != version:
            imported = f"{plain['requests_file']} / {swapped['requests_file']}"
            _log(f"requests imported: {imported}, wanted {version}")
            return 2

        passing_plain = {n for n, e in plain["outcomes"].items() if _passed(e["outcome"])}
        passing_swapped = {n for n, e in swapped["outcomes"].items() if _passed(e["outcome"])}
        regressions = compare(plain, swapped)
        _log()
        _log(f"tests passing with plain requests:    {len(passing_plain)} of {len(plain['outcomes'])}")
        _log(f"tests passing with ResilientSession:  {len(passing_swapped)} of {len(swapped['outcomes'])}")
        failing_plain = sorted(n for n, e in plain["outcomes"].items() if e["outcome"] in ("failed", "error"))
        if failing_plain:
            _log(f"failing with plain requests too (not compared): {len(failing_plain)}")
            for nodeid in failing_plain:
                _log(f"  {nodeid}")
        only_swapped = sorted(passing_swapped - passing_plain)
        if only_swapped:
            _log(f"passing only with ResilientSession: {len(only_swapped)}")
            for nodeid in only_swapped:
                _log(f"  {nodeid}")
        _log(f"deselected (need an address off the machine): {len(plain['deselected'])}")
        for nodeid in plain["deselect_unmatched"]:
            _log(f"  note: DESELECT entry {nodeid} matched no collected test")
        slower = slower_tests(plain, swapped)
        if slower:
            _log(f"passing both ways, {SLOWER_BY:.0f}s+ slower with ResilientSession: {len(slower)}")
            for nodeid, extra in slower:
                _log(f"  +{extra:.1f}s {nodeid}")
        _log(f"regressions (pass with plain requests, not with ResilientSession): {len(regressions)}")
        for nodeid, outcome, failure in regressions:
            _log(f"  {nodeid} [{outcome}]")
            if failure:
                _log(_indent(failure))
        problems = harness_problems(plain, swapped)
        for problem in problems:
            _log(f"HARNESS: {problem}")
        _log(f"requests suite took {time.monotonic() - started:.1f}s")
        if problems:
            return 2
        return 1 if regressions else 0
    finally:
        if options.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
