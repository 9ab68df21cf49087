"""Every name the docs show imports from the path they show, without a warning.

The top level still answers for names that moved to subpackages (with a DeprecationWarning); the docs
must never teach those old paths.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import resilient_session

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([*(ROOT / "docs").glob("*.md"), ROOT / "README.md"])
FENCE = re.compile(r"^```(?:python|py)\s*\n(.*?)^```", re.S | re.M)
MOVED: dict[str, str] = resilient_session._MOVED


def _imports(page: Path) -> list[str]:
    """The import statements of the page's Python blocks, as source lines."""
    found = []
    for block in FENCE.findall(page.read_text(encoding="utf-8")):
        try:
            tree = ast.parse(block)
        except SyntaxError:  # a fragment (``...`` in an argument list); its imports are still lines
            lines = [line for line in block.splitlines() if line.startswith(("from", "import"))]
            tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                source = ast.unparse(node)
                if "resilient_session" in source:
                    found.append(source)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_import_the_page_shows_works_without_a_warning(page: Path) -> None:
    statements = _imports(page)
    if not statements:
        pytest.skip("no imports of the package on this page")
    script = "\n".join(statements)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, f"{page.name}:\n{script}\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_a_moved_name_is_shown_with_its_home(page: Path) -> None:
    """A page that names a moved class shows where it lives, not only the bare name a reader would
    then import from the top level (and get a warning)."""
    text = page.read_text(encoding="utf-8")
    missing = []
    for name, module in MOVED.items():
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text):
            continue
        qualified = f"resilient_session.{module}.{name}"
        imported = re.search(rf"from resilient_session\.{module} import [^\n]*(?<!\w){name}(?!\w)", text)
        if qualified not in text and not imported:
            missing.append(f"{name} (resilient_session.{module})")
    assert not missing, f"{page.name} names {missing} without showing where they live"
