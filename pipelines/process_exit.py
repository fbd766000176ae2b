"""Exit without the interpreter's final garbage collection.

With Airflow, torch, vectorbt and Great Expectations loaded, CPython's collection at shutdown
walks millions of objects: 3.6–4.5 s per process exit on a 2-core machine, paid by every
`retune` command, `airflow dags test`, Airflow task process and search worker (0.3–0.45 s
with the heap frozen). Freezing the heap in an exit hook makes that collection skip it; the
memory goes back to the OS either way. Files are flushed by their own ``with`` blocks and
log handlers by logging's exit hook, which runs after this one (hooks run last-in, first-out).
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collection() -> None:
    """Freeze the heap at exit, once per process."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
