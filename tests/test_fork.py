"""Objects tracked for fork are reset in a forked child, each once, even when another one fails."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


class Resettable:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    def _after_fork_in_child(self) -> None:
        if self.fail:
            raise RuntimeError("cannot reset")
        os.write(1, f"{self.name}\n".encode())


def test_nothing_is_hooked_at_import() -> None:
    script = "import resilient_session, resilient_session._fork as f; print(f._hooked, len(f._objects))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.split() == ["False", "0"], completed.stderr


def test_a_child_resets_every_live_tracked_object_and_logs_a_failing_one() -> None:
    # In a fresh interpreter, so that the child's output is all this test's.
    script = """
import gc, logging, os, sys
sys.path[:0] = [os.getcwd()]
from resilient_session import _fork
from tests.test_fork import Resettable
logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
kept = [Resettable("first"), Resettable("broken", fail=True), Resettable("last")]
gone = Resettable("gone")
for obj in [*kept, gone]:
    _fork.track(obj)
_fork.track(kept[0])  # tracked twice, reset once
del gone, obj
gc.collect()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print("parent done")
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=os.getcwd()
    )
    lines = completed.stdout.splitlines()
    assert sorted(line for line in lines if line in {"first", "last", "gone"}) == ["first", "last"]
    assert any(line.startswith("resilient_session ERROR") and "Resettable" in line for line in lines)
    assert lines[-1] == "parent done"  # the parent resets nothing
