"""A process that imports pipelines ends without the final garbage collection (see process_exit)."""

from __future__ import annotations

import subprocess
import sys

CYCLE = """
import sys
if sys.argv[1] == "import":
    import pipelines  # noqa: F401
class Cycle:
    def __del__(self):
        print("collected")
cycle = Cycle()
cycle.me = cycle
del cycle
"""


def _exit_output(mode: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", CYCLE, mode], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def test_cyclic_garbage_is_left_to_the_os_once_pipelines_is_imported():
    assert _exit_output("plain") == "collected\n"  # the interpreter's own final collection
    assert _exit_output("import") == ""
