"""The package's shape: an acyclic import graph, Lua only in .lua files, a small top level."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import resilient_session

PACKAGE = Path(resilient_session.__file__).resolve().parent
ROOT = "resilient_session"


def _module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str) -> set[tuple[str, bool]]:
    """Every module *name* imports, and whether at module level: function bodies included,
    ``if TYPE_CHECKING:`` blocks (never run) left out."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[tuple[str, bool]] = set()

    def visit(node: ast.AST, top: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, top)
            return
        if isinstance(node, ast.Import):
            found.update((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update((module, top) for module in submodules)  # ``from . import errors``
            if len(submodules) < len(node.names):
                found.add((target, top))
        inner = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for inside in ast.iter_child_nodes(node):
            visit(inside, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports. A module-level import also runs the __init__ of every
    package above the imported module, but for the top-level package: it is the facade every import runs
    first, and no module may import it."""
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        edges: set[str] = set()
        for target, top in _imports(name):
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            assert target != ROOT or name == ROOT, f"{name} imports the top-level package"
            if target in MODULES and target != ROOT:
                edges.add(target)
            if top:
                parents = {".".join(target.split(".")[:i]) for i in range(2, target.count(".") + 1)}
                # The packages holding *name* itself are already initialised (or running) by then.
                edges.update(p for p in parents if p in MODULES and not (name + ".").startswith(p + "."))
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_import_graph_is_acyclic_function_level_imports_included() -> None:
    graph = _graph()
    assert len(graph) > 40
    assert "resilient_session.session" in graph["resilient_session"]
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or ())


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


_LUA = re.compile(r"redis\.call\s*\(|^\s*local\s+(function\s+)?\w+|\bend\s*$", re.MULTILINE)


def test_lua_lives_only_in_lua_files() -> None:
    offenders = [
        f"{name}:{node.lineno}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _LUA.search(node.value)
    ]
    assert offenders == []
    scripts = sorted(p.name for p in (PACKAGE / "stores" / "lua").glob("*.lua"))
    assert "redis_prelude.lua" in scripts
    assert "breaker_record.lua" in scripts
    assert "budget_withdraw.lua" in scripts


def test_the_top_level_exports_at_most_32_names() -> None:
    # 30 before install()/uninstall(): the process-wide switch is called as resilient_session.install().
    assert len(resilient_session.__all__) <= 32
    for name in resilient_session.__all__:
        assert name in vars(resilient_session), name  # bound, not reached through the deprecated getattr


def test_names_moved_off_the_top_level_still_import_with_a_warning() -> None:
    import importlib
    import warnings

    for name, module in resilient_session._MOVED.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(resilient_session, name)
        assert value is getattr(importlib.import_module(f"resilient_session.{module}"), name)
        assert [w.category for w in caught] == [DeprecationWarning], name
        assert f"resilient_session.{module}.{name}" in str(caught[0].message)


SIDE_EFFECTS = """
import logging
import sys

import requests  # urllib3, requests and requests-oauthlib add their own NullHandlers when imported
import requests_oauthlib

def seen():
    return {
        name: (list(logger.handlers), list(logger.filters))
        for name, logger in [("", logging.getLogger()), *logging.Logger.manager.loggerDict.items()]
        if isinstance(logger, logging.Logger) and not name.startswith("resilient_session")
    }

before = seen()
import resilient_session
from resilient_session import APIKeyAuth, BasicAuth, BearerAuth, OAuth2ClientCredentials, ResilientSession

ResilientSession(auth=APIKeyAuth("k-123456", query="sig"))
BearerAuth("t-123456"), BasicAuth("user", "p-123456")
OAuth2ClientCredentials("https://id.example.test/token", "client", "s-123456")
after = seen()
changed = sorted(n for n in after if after[n] != before.get(n, ([], [])))
own = [type(f).__name__ for f in logging.getLogger("resilient_session").filters]
print(changed, own, [type(h).__name__ for h in logging.getLogger("resilient_session").handlers])
"""


def test_importing_or_building_a_session_adds_no_filter_or_handler_to_another_library() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", SIDE_EFFECTS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Nothing changed on any other logger; ours has its NullHandler and its redacting filter.
    changed, own_filters, own_handlers = result.stdout.splitlines()[0].split("] [")
    assert changed == "[" and "'RedactingFilter'" in own_filters and own_handlers == "'NullHandler']"


def test_redact_library_logs_is_the_opt_in(library_logs_redacted: None) -> None:
    import logging

    from resilient_session.observe.logging import LIBRARY_LOGGERS, RedactingFilter

    for name in LIBRARY_LOGGERS:
        assert any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters), name


# Modules that read the call context (``_call.current_call``), and why: requests' API hands them nothing
# of the call in progress (see ``resilient_session._call``'s docstring, which lists the same places).
CALL_CONTEXT_READERS = {
    "resilient_session._call": "owns it (a nested token fetch takes the outer call's deadline)",
    "resilient_session.session": "a redirect hop or a hook's re-send; requests' get_adapter gets a URL only",
    "resilient_session._attempts": "an adapter called by a hook; a PreparedRequest the caller gave send()",
    "resilient_session._pools": "urllib3's pools are handed nothing of the call",
    "resilient_session.observe.log_context": "log records carry no call",
    "resilient_session.observe.request_id": "current_request_id() is asked with no call in hand",
    "resilient_session._install": "a plain session's redirect hop or re-send; get_adapter gets a URL",
    "resilient_session.httpx.client": "httpx hands a request only: the client begins the call",
    "resilient_session.httpx.transport": "httpx hands the transport a request only",
    "resilient_session.httpx.auth": "httpx's auth flow is handed a request only",
    "resilient_session.policies.breaker": "a state change is told to the call that caused it",
    "resilient_session.stores.redis": "a Redis op is bounded by the time its call has left",
}

# Classes still made at run time, with what they stand in for (none may keep another class's name).
MADE_AT_RUN_TIME = {
    "resilient_session._compat.classes": (
        "with_mixin: the op bound mixed into the user's redis-py connection class (stores.redis)"
    ),
    "resilient_session.stores.responses": "requests-cache is imported only when a bounded store is made",
}


def _tree(name: str) -> ast.AST:
    return ast.parse(MODULES[name].read_text(encoding="utf-8"))


def _context_vars() -> dict[str, set[str]]:
    """Module -> the names it binds to a ``ContextVar(...)`` at module level."""
    found: dict[str, set[str]] = {}
    for name in MODULES:
        for node in ast.iter_child_nodes(_tree(name)):
            value: ast.expr | None
            targets: list[ast.expr]
            if isinstance(node, ast.Assign):
                value, targets = node.value, node.targets
            elif isinstance(node, ast.AnnAssign):
                value, targets = node.value, [node.target]
            else:
                continue
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "ContextVar":
                found.setdefault(name, set()).update(t.id for t in targets if isinstance(t, ast.Name))
    return found


def test_context_variables_are_private_to_the_modules_that_own_them() -> None:
    owned = _context_vars()
    assert "resilient_session._call" in owned
    names = {var: owner for owner, variables in owned.items() for var in variables}
    assert all(var.startswith("_") for var in names), names
    leaks = []
    for module in MODULES:
        for node in ast.walk(_tree(module)):
            if isinstance(node, ast.ImportFrom):
                leaks += [(module, a.name) for a in node.names if a.name in names and names[a.name] != module]
            elif isinstance(node, ast.Attribute) and node.attr in names and names[node.attr] != module:
                leaks.append((module, node.attr))
    assert not leaks, f"ContextVars read outside the module that owns them: {leaks}"


def _reads_current_call(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return any(alias.name == "current_call" for alias in node.names)
    return isinstance(node, ast.Attribute) and node.attr == "current_call"


def test_the_call_context_is_read_only_where_requests_passes_nothing_along() -> None:
    readers = {module for module in MODULES if any(_reads_current_call(n) for n in ast.walk(_tree(module)))}
    readers.add("resilient_session._call")
    assert readers == set(CALL_CONTEXT_READERS), sorted(readers ^ set(CALL_CONTEXT_READERS))


def test_no_class_is_made_at_run_time() -> None:
    made = []
    for module in MODULES:
        tree = _tree(module)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                made += [(module, inner.name) for inner in ast.walk(node) if isinstance(inner, ast.ClassDef)]
            elif isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "type" and len(node.args) == 3:
                    made.append((module, "type(name, bases, namespace)"))
                elif isinstance(func, ast.Attribute) and func.attr == "new_class":
                    made.append((module, "types.new_class"))
    assert {module for module, _ in made} <= set(MADE_AT_RUN_TIME), made


# -- Private access in one place ---------------------------------------------------------------------

COMPAT = f"{ROOT}._compat"


def _outside_compat() -> dict[str, ast.Module]:
    return {
        name: ast.parse(path.read_text(encoding="utf-8"))
        for name, path in MODULES.items()
        if name != COMPAT and not name.startswith(COMPAT + ".")
    }


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(trees: dict[str, ast.Module]) -> set[str]:
    """Every private name the package outside ``_compat`` defines: functions, classes, variables,
    attributes it assigns (on any object), ``__slots__`` entries and parameters."""
    own: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                own.add(node.attr)
            elif isinstance(node, ast.arg):
                own.add(node.arg)
            elif isinstance(node, ast.alias):
                own.add(node.asname or node.name.split(".")[0])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                own.add(node.value)  # __slots__ entries, ContextVar and attribute names given as strings
    return {name for name in own if _private(name)}


# Private names of requests, urllib3, redis-py and the standard library that the package stands on, or
# did: reading, writing or overriding one of them outside _compat fails, whoever else uses the same name.
KNOWN_PRIVATE = {
    # requests
    "_body_position", "_content", "_content_consumed", "_cookies", "_next",
    # urllib3
    "_make_request", "_put_conn", "_get_conn", "_new_conn", "_validate_conn", "_is_method_retryable",
    "_connect", "_read", "_fp",
    # redis-py
    "_sock", "_parser",
    # the standard library
    "_Environ", "_SubParsersAction",
}  # fmt: skip
# Private methods of their classes: a method of that name overrides one.
PRIVATE_METHODS = {
    "_make_request", "_put_conn", "_get_conn", "_new_conn", "_validate_conn", "_is_method_retryable",
    "_connect",
}  # fmt: skip
# Documented-looking names the libraries do not document: the same rule.
UNDOCUMENTED = {
    # requests.sessions, requests.utils, requests.cookies
    "get_environ_proxies", "merge_setting", "merge_hooks", "merge_cookies", "get_netrc_auth",
    "should_bypass_proxies", "NETRC_FILES", "proxy_bypass",
    # urllib3 PoolManager
    "pool_classes_by_scheme",
    # redis-py ConnectionPool
    "connection_kwargs", "connection_class",
}  # fmt: skip
# Private names of other libraries that are their public API, with the reason.
SANCTIONED = {
    "_replace": "namedtuple's documented method (the underscore only keeps it apart from field names)",
    "_Element": "lxml's documented element type (lxml.etree._Element is the class every element has)",
    "_get_current_object": "werkzeug's documented LocalProxy method, Flask's way to the app itself",
}
# Modules of other libraries with a private name, which only _compat may import.
_PRIVATE_MODULE = re.compile(r"(^|\.)_(?!_)")


def _private_uses(trees: dict[str, ast.Module], own: set[str]) -> list[str]:
    found: list[str] = []
    for name, tree in trees.items():
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Attribute):
                attr = node.attr
                on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                if (attr in KNOWN_PRIVATE and not on_self) or attr in UNDOCUMENTED:
                    found.append(f"{where} .{attr}")
                elif _private(attr) and attr not in own and attr not in SANCTIONED:
                    found.append(f"{where} .{attr} (defined nowhere in the package)")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in PRIVATE_METHODS:
                found.append(f"{where} def {node.name} (overrides a library's private method)")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
                    key = node.args[1]
                    if isinstance(key, ast.Constant) and (
                        key.value in KNOWN_PRIVATE or key.value in UNDOCUMENTED
                    ):
                        found.append(f"{where} {node.func.id}(..., {key.value!r})")
            elif isinstance(node, ast.ImportFrom) and not node.level:
                module = node.module or ""
                if not module.startswith(ROOT) and module != "__future__":
                    if _PRIVATE_MODULE.search(module):
                        found.append(f"{where} from {module} import")
                    found.extend(
                        f"{where} from {module} import {alias.name}"
                        for alias in node.names
                        if alias.name in KNOWN_PRIVATE or alias.name in UNDOCUMENTED
                    )
            elif isinstance(node, ast.Import):
                found.extend(
                    f"{where} import {alias.name}"
                    for alias in node.names
                    if _PRIVATE_MODULE.search(alias.name)
                )
    return found


def test_private_names_of_other_libraries_are_used_only_in_compat() -> None:
    trees = _outside_compat()
    assert _private_uses(trees, _own_names(trees)) == []
    # _compat is where they are: the check sees them there.
    compat = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}
    compat = {name: tree for name, tree in compat.items() if name.startswith(COMPAT + ".")}
    seen = " ".join(_private_uses(compat, _own_names(trees)))
    for expected in (
        "._content_consumed",
        "'_body_position'",
        "._Environ",
        "pool_classes_by_scheme",
        "_sock",
    ):
        assert expected in seen, expected


def test_the_private_name_check_finds_each_kind_of_use() -> None:
    source = """
import _socket
from requests.sessions import merge_setting
from urllib3._collections import HTTPHeaderDict

class Pool(HTTPConnectionPool):
    def _put_conn(self, conn):
        self._unknown_to_us(conn)

def f(response, pool):
    response._content_consumed = True
    getattr(response, "_body_position", None)
    pool.connection_kwargs
    self._content  # on self too, unless the package itself sets it
    return ours._mine

class Ours:
    def __init__(self):
        self._mine = 1
        self._data = {}

    def data(self):
        return self._data, row._replace(a=1)
"""
    trees = {"m": ast.parse(source)}
    found = sorted(use.split(" ", 1)[1] for use in _private_uses(trees, _own_names(trees)))
    assert found == sorted(
        [
            "import _socket",
            "from requests.sessions import merge_setting",
            "from urllib3._collections import",
            "def _put_conn (overrides a library's private method)",
            "._unknown_to_us (defined nowhere in the package)",
            "._content_consumed",
            "getattr(..., '_body_position')",
            ".connection_kwargs",
            "._content (defined nowhere in the package)",
        ]
    )


def test_classes_are_made_at_run_time_only_in_compat() -> None:
    made = [
        f"{name}:{node.lineno}"
        for name, tree in _outside_compat().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "type" and len(node.args) == 3)
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "new_class")
        )
    ]
    assert made == []


def test_the_package_imports_none_of_its_own_deprecated_paths() -> None:
    """Every module imports cleanly with DeprecationWarning as an error, except the aliases that exist
    only to warn (a module whose own code calls ``warnings.warn`` at import)."""
    import subprocess
    import sys

    def warns_at_import(path: Path) -> bool:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        return any(
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "attr", getattr(node.value.func, "id", None)) == "warn"
            for node in tree.body
        )

    names = [
        name
        for name, path in MODULES.items()
        if not warns_at_import(path) and "pytest_plugin" not in name and not name.endswith("__main__")
    ]
    # A module needing an optional library that is not installed (PySocks for the SOCKS pools) is skipped.
    script = (
        "import importlib\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        if (exc.name or '').startswith('resilient_session'):\n"
        "            raise\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
