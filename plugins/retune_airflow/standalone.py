"""``python -m retune_airflow.standalone`` (what ``make airflow`` runs): ``airflow standalone``
that finds its components and leaves nothing behind when stopped.

``airflow standalone`` starts the api-server, scheduler, dag-processor and triggerer as bare
``airflow …`` subprocesses, so this virtualenv's ``bin`` goes first on PATH (without it each one
dies with ``FileNotFoundError: 'airflow'`` while standalone keeps running). On Ctrl-C standalone
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
import time
from pathlib import Path

GRACE_SECONDS = 10.0  # for standalone's own shutdown (it stops its components on SIGINT)
TERM_SECONDS = 5.0  # then SIGTERM to every process of the group; then SIGKILL


def main() -> int:
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    child = subprocess.Popen(
        [os.path.join(bin_dir, "airflow"), "standalone"],
        env=env,
        start_new_session=True,  # a group of its own: one signal reaches every component
        preexec_fn=lambda: signal.signal(
            signal.SIGINT, signal.SIG_DFL
        ),  # even if we were started with it ignored
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
