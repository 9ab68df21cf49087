"""What pyproject.toml declares: every import the package and its tests make is a declared dependency, and
the oldest-versions leg of CI installs exactly the floors pyproject.toml allows; setup.cfg holds only what
pyproject.toml cannot."""

from __future__ import annotations

import ast
import functools
import re
import sys
from collections.abc import Set as AbstractSet
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]
CONSTRAINTS = ROOT / ".ci" / "constraints-oldest.txt"
CI_RUN = ROOT / ".ci" / "run"


def _requirements(*groups: str) -> list[Requirement]:
    """The requirements of the runtime dependencies (group ``""``) and of the named extras."""
    found: list[Requirement] = []
    for group in groups:
        lines = PROJECT["dependencies"] if group == "" else PROJECT["optional-dependencies"][group]
        found.extend(Requirement(line) for line in lines)
    return found


def _floor(requirement: Requirement) -> Version:
    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(floors) == 1, f"{requirement}: give exactly one floor (>=), so CI can test it"
    return floors[0]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][0-9A-Za-z.]*)", line)
        assert match, f"{CONSTRAINTS.name}:{number}: not a name==version pin: {raw!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"{CONSTRAINTS.name}:{number}: {name} pinned twice"
        pins[name] = Version(match[2])
    return pins


def test_every_runtime_and_test_dependency_is_pinned_to_its_floor_for_the_oldest_leg() -> None:
    floors: dict[str, Version] = {}
    for requirement in _requirements("", "test"):
        name, floor = canonicalize_name(requirement.name), _floor(requirement)
        # A package listed twice (runtime and test) must not have two floors: only one can be tested.
        assert floors.setdefault(name, floor) == floor, f"{name}: two floors, {floors[name]} and {floor}"
    pins = _pins()
    disagree = {
        name: (str(floor), str(pins.get(name))) for name, floor in floors.items() if pins.get(name) != floor
    }
    assert not disagree, f"pyproject.toml floor vs {CONSTRAINTS.name} pin: {disagree}"
    unknown = sorted(set(pins) - set(floors))
    assert not unknown, f"{CONSTRAINTS.name} pins what pyproject.toml does not require: {unknown}"


def test_the_oldest_leg_runs_on_the_oldest_python_the_package_supports() -> None:
    requires = PROJECT["requires-python"]
    match = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert match, f"requires-python {requires!r} is not a plain floor"
    script = CI_RUN.read_text(encoding="utf-8")
    assert re.search(rf"^oldest_python=3\.{match[1]}$", script, re.MULTILINE), (
        f".ci/run does not test on Python 3.{match[1]}, the floor of requires-python"
    )
    assert "constraints-oldest.txt" in script
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py3{match[1]}"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == f"3.{match[1]}"


# tomllib is stdlib from Python 3.11 on, and imported only there.
STDLIB = sys.stdlib_module_names | {"tomllib"}


@functools.cache
def _module_distributions() -> dict[str, set[str]]:
    """Each installed top-level module and the distributions that install it, from their file lists
    (importlib.metadata.packages_distributions() on Python 3.10 reads only top_level.txt, which
    namespace packages such as opentelemetry and flit-built ones such as werkzeug lack)."""
    found: dict[str, set[str]] = {}
    for distribution in distributions():
        record = distribution.read_text("RECORD")
        paths = (
            [line.rpartition(",")[0].rpartition(",")[0] for line in record.splitlines()]
            if record is not None
            else [str(file) for file in distribution.files or []]
        )
        name = canonicalize_name(distribution.metadata["Name"])
        for path in paths:
            top, slash, _ = path.partition("/")
            if not slash and not top.endswith(".py"):
                continue
            if top.endswith((".dist-info", ".egg-info", ".data")) or top in {"..", "__pycache__"}:
                continue
            found.setdefault(top.removesuffix(".py"), set()).add(name)
    return found


def _third_party_imports(root: Path) -> dict[str, set[str]]:
    """Top-level modules imported under *root* that are neither stdlib nor files of this repository, each
    with the files that import it; ``if TYPE_CHECKING:`` blocks (never run) left out."""
    local = {path.stem for path in (ROOT / "tests").rglob("*.py")} | {"resilient_session", "tests"}
    found: dict[str, set[str]] = {}

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child, where)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        for name in names:
            top = name.partition(".")[0]
            if top not in STDLIB and top not in local:
                found.setdefault(top, set()).add(where)
        for inner in ast.iter_child_nodes(node):
            visit(inner, where)

    for path in sorted(root.rglob("*.py")):
        visit(ast.parse(path.read_text(encoding="utf-8")), str(path.relative_to(ROOT)))
    return found


def _undeclared(root: Path, declared: AbstractSet[str]) -> dict[str, list[str]]:
    installed = _module_distributions()
    missing = {}
    for module, where in _third_party_imports(root).items():
        # Not installed (tomli on Python 3.11+): the distribution is named after the module.
        names = installed.get(module, {canonicalize_name(module)})
        if not names & declared:
            missing[module] = sorted(where)
    return missing


def test_every_module_the_package_imports_comes_from_a_declared_dependency() -> None:
    declared = {
        canonicalize_name(requirement.name)
        for requirement in _requirements("", *PROJECT["optional-dependencies"])
    }
    missing = _undeclared(ROOT / "resilient_session", declared)
    assert not missing, f"imported by the package but in no dependency or extra: {missing}"


def test_every_module_the_tests_import_comes_from_the_test_extra() -> None:
    declared = {canonicalize_name(requirement.name) for requirement in _requirements("", "test")}
    missing = _undeclared(ROOT / "tests", declared)
    assert not missing, f"imported by the tests but not in the test extra: {missing}"


def test_the_import_check_sees_an_undeclared_import() -> None:
    declared = {canonicalize_name(requirement.name) for requirement in _requirements("", "test")}
    missing = _undeclared(ROOT / "resilient_session", declared - {"werkzeug"})
    assert set(missing) == {"werkzeug"}
    assert "resilient_session/testing/chaos/server.py" in missing["werkzeug"]


# -- setup.cfg: only what pyproject.toml cannot hold ---------------------------------------------------------

SETUP_CFG = ROOT / "setup.cfg"
# Sections of tools that read pyproject.toml (or metadata pyproject.toml declares): configured there.
_PYPROJECT_SECTIONS = re.compile(
    r"metadata|options(\..*)?|tool:pytest|pytest|mypy(-.*)?|coverage:.*|isort|pydocstyle|codespell|bdist_wheel"
)


def _setup_cfg() -> Any:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(SETUP_CFG.read_text(encoding="utf-8"))
    return parser


def test_setup_cfg_holds_no_setting_pyproject_toml_holds() -> None:
    sections = _setup_cfg().sections()
    assert sections, "setup.cfg configures nothing"
    assert [s for s in sections if _PYPROJECT_SECTIONS.fullmatch(s)] == []


def test_setup_cfg_checks_lines_as_ruff_does() -> None:
    cfg = _setup_cfg()
    line_length = str(PYPROJECT["tool"]["ruff"]["line-length"])
    for section in cfg.sections():
        assert cfg[section]["max-line-length"] == line_length, section
    # Every rule family it leaves on is one ruff checks: E and W from pycodestyle, F from pyflakes.
    assert {"E", "W", "F"} <= set(PYPROJECT["tool"]["ruff"]["lint"]["select"])
