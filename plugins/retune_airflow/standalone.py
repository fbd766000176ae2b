"""``python -m retune_airflow.standalone`` (what ``make airflow`` runs): ``airflow standalone``
that finds its components and leaves nothing behind when stopped.

``airflow standalone`` starts the api-server, scheduler, dag-processor and triggerer as bare
``airflow …`` subprocesses, so this virtualenv's ``bin`` goes first on PATH (without it each one
dies with ``FileNotFoundError: 'airflow'`` while standalone keeps running), behind a shim that
runs ``airflow scheduler`` as ``python -m retune_airflow.scheduler``: the scheduler the compose
deployment runs, which imports the task libraries once so that no task pays for them. On Ctrl-C standalone
terminates its components but waits for their output forever if one lingers (the scheduler's
executor workers), and a SIGTERM kills it without touching them. So it runs in a process group of
its own: Ctrl-C or SIGTERM here asks the whole group to stop, then ends whatever is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRACE_SECONDS = 8.0  # for standalone's own shutdown (it stops its components on SIGINT)
TERM_SECONDS = 3.0  # then SIGTERM to every process of the group; then SIGKILL


SHIM = """#!/bin/sh
# airflow standalone starts `airflow scheduler`: run the one that preloads the task libraries
if [ "$1" = scheduler ]; then shift; exec "{python}" -m retune_airflow.scheduler "$@"; fi
exec "{airflow}" "$@"
"""


def main() -> int:
    bin_dir = str(Path(sys.executable).parent)
    with tempfile.TemporaryDirectory(prefix="retune-standalone-") as shim_dir:
        shim = Path(shim_dir) / "airflow"
        shim.write_text(SHIM.format(python=sys.executable, airflow=os.path.join(bin_dir, "airflow")))
        shim.chmod(0o755)
        return run_standalone([shim_dir, bin_dir])


def run_standalone(path_first: list[str]) -> int:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([*path_first, os.environ.get("PATH", "")]))
    child = subprocess.Popen(
        [os.path.join(bin_dir, "airflow"), "standalone"],
        env=env,
        start_new_session=True,  # a group of its own: one signal reaches every component
        # Ctrl-C must reach standalone even when this launcher was started with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while child.poll() is None and not stopping:
        time.sleep(0.2)
    for sig, grace in ((signal.SIGINT, GRACE_SECONDS), (signal.SIGTERM, TERM_SECONDS), (signal.SIGKILL, 5.0)):
        if not group_alive(child.pid):
            break
        if sig != signal.SIGINT:
            print(f"still running, sending {sig.name}: {', '.join(alive(child.pid))}", file=sys.stderr)
        _signal_group(child.pid, sig)
        deadline = time.monotonic() + grace
        while group_alive(child.pid) and time.monotonic() < deadline:
            child.poll()  # reap standalone itself, so it is not counted as alive
            time.sleep(0.2)
    child.wait()
    print("airflow standalone stopped: no process left", file=sys.stderr)
    return 0


def alive(pgid: int) -> list[str]:
    names = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            fields = text.rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                names.append(
                    f"{stat.parent.name} {(stat.parent / 'cmdline').read_text().replace(chr(0), ' ')[:60]}"
                )
    return names


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies are dead: their parent reaps them)."""
    if not Path("/proc/self/stat").exists():  # no procfs (macOS): any member, zombies included
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


if __name__ == "__main__":
    sys.exit(main())
